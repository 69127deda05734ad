"""Payment side effects and scheduled money jobs.

Outbox handlers make the Stripe calls queued by `booking.services.payments` after the
booking's transaction committed. Each is idempotent twice over: it checks our record's
state first, and it sends an idempotency key built from our ids, so a retry after a
timeout (our call reached Stripe, the answer never came back) replays Stripe's first
answer instead of charging again. Outages (timeouts, 5xx, 429) raise, and the outbox
retries with backoff; the booking itself stays as it was. Answers that would be the same
however often we asked are not retried: a refused card is recorded and the carer told,
and Stripe refusing a capture, cancel or refund is a permanent failure staff see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app

from app import outbox
from app.models import OutboxMessage
from app.notify import DeliveryError
from app.outbox import DeliveryContext
from app.scheduler import job
from booking.models.payments import PaymentStatus
from booking.services import payments, payouts, reconciliation
from booking.services.stripe_backend import CardRefused, StripeRejected, make_gateway


@outbox.handler("stripe.authorise")
def authorise(message: OutboxMessage, ctx: DeliveryContext) -> None:
    """Reserve the card part on the card (manual capture)."""
    payment = payments.lock_payment(message.payload["payment_id"])
    # CAPTURED: the break was completed while this call waited out an outage; the
    # queued capture takes the card part once the card is reserved.
    waiting = payment.status is PaymentStatus.AUTHORISING or (
        payment.status is PaymentStatus.CAPTURED and not payments.not_collected(payment)
    )
    if not waiting or payment.stripe_payment_intent_id or not payment.payment_method_id:
        return None  # cancelled, already authorised, or nothing to authorise
    try:
        intent = make_gateway(ctx.config).authorise(
            amount_pence=payment.amount_pence,
            payment_method_id=payment.payment_method_id,
            idempotency_key=f"{payment.idempotency_prefix}-authorise",
            metadata={
                "payment_id": str(payment.id),
                "booking_id": str(payment.booking_id),
                "attempt": str(payment.attempt),
            },
        )
    except CardRefused as exc:
        payments.card_refused(payment, message=exc.message, now=ctx.now)
        return None
    payments.record_authorisation(
        payment,
        intent_id=intent.id,
        stripe_status=intent.status,
        message=intent.message,
        cancellation_reason=intent.cancellation_reason,
        now=ctx.now,
    )
    return None


@outbox.handler("stripe.capture")
def capture(message: OutboxMessage, ctx: DeliveryContext) -> None:
    """Take the card's part of the actual charge (the rest of the reservation lapses)."""
    payment = payments.lock_payment(message.payload["payment_id"])
    if payments.not_collected(payment):
        return None  # the card was never reserved: nothing to take (staff see it)
    if payment.stripe_payment_intent_id is None:
        if payments.authorisation_queued(payment):
            # The authorisation is still queued (or retrying): try again later.
            raise DeliveryError("the card authorisation has not reached Stripe yet")
        raise DeliveryError("no card was reserved for this payment", permanent=True)
    try:
        intent = make_gateway(ctx.config).capture(
            payment.stripe_payment_intent_id,
            amount_pence=int(message.payload["amount_pence"]),
            idempotency_key=f"{payment.idempotency_prefix}-capture",
        )
    except StripeRejected as exc:
        raise DeliveryError(f"Stripe refused the capture: {exc}", permanent=True) from exc
    payments.record_stripe_status(payment, stripe_status=intent.status, now=ctx.now)
    return None


@outbox.handler("stripe.cancel")
def cancel(message: OutboxMessage, ctx: DeliveryContext) -> None:
    """Release the reservation on the card."""
    payment = payments.lock_payment(message.payload["payment_id"])
    if payment.stripe_payment_intent_id is None:
        return None  # never reached Stripe; the authorise handler now skips it
    try:
        intent = make_gateway(ctx.config).cancel(
            payment.stripe_payment_intent_id,
            idempotency_key=f"{payment.idempotency_prefix}-cancel",
        )
    except StripeRejected as exc:
        raise DeliveryError(f"Stripe refused the cancel: {exc}", permanent=True) from exc
    payments.record_stripe_status(payment, stripe_status=intent.status, now=ctx.now)
    return None


@outbox.handler("stripe.refund")
def refund(message: OutboxMessage, ctx: DeliveryContext) -> None:
    """Pay part of a captured card payment back after a dispute."""
    payment = payments.lock_payment(message.payload["payment_id"])
    if payment.stripe_payment_intent_id is None:
        raise DeliveryError("this payment was never taken by Stripe", permanent=True)
    try:
        make_gateway(ctx.config).refund(
            payment.stripe_payment_intent_id,
            amount_pence=int(message.payload["amount_pence"]),
            idempotency_key=(
                f"{payment.idempotency_prefix}-refund-to-{message.payload['refunded_after']}"
            ),
        )
    except StripeRejected as exc:
        raise DeliveryError(f"Stripe refused the refund: {exc}", permanent=True) from exc
    return None


def _config() -> dict[str, Any]:
    return dict(current_app.config)


@job(
    "pay_workers",
    trigger="interval",
    minutes=30,
    description="Pay workers for completed, undisputed breaks once the dispute window closes",
)
def pay_workers(now: datetime) -> dict[str, int]:
    return payouts.pay_due_payouts(gateway=make_gateway(_config()), now=now)


@job(
    "reconcile_payments",
    trigger="cron",
    hour=3,
    minute=30,
    description="Compare our payments and payouts with Stripe's and list differences",
)
def reconcile_payments(now: datetime) -> dict[str, int]:
    config = _config()
    if config.get("PAYMENT_BACKEND") != "stripe":
        return {"checked": 0, "differences": 0}
    return reconciliation.reconcile(gateway=make_gateway(config), now=now)
