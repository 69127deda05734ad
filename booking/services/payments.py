"""Card top-ups: the part of a break's price the budget does not cover, paid by card.

How the money is recorded (the same for both backends):

* At request the carer's card part (`top_up_pence`) is credited to the budget as a
  ledger `top_up`, so the booking's budget hold can cover the whole price.
* On completion the bookings service releases the hold and captures the actual charge
  from the budget. **The budget pays first, the card the rest**: the budget's part of
  the booking is `price − top_up`; the card pays `max(0, charged − budget part)`, never
  more than was authorised. The top-up the card did not need is taken back out of the
  budget with an `adjustment` (tag `card_top_up`), so the budget bears exactly its part.
* When the booking ends unpaid (cancelled, declined, expired) the whole top-up is taken
  back out of the budget the same way and the card reservation is cancelled.
* After a dispute, a refund goes **to the card first** (the carer's own money), up to
  what the card paid; the rest stays with the budget. The bookings service refunds the
  whole amount into the budget; we take the card's part back out again.

Backends (config `PAYMENT_BACKEND`, passed in by callers as `backend=`):

* `ledger` (default): no card is charged here; the top-up is recorded as paid outside
  Stripe (e.g. the carer pays the provider directly) with status `recorded`. The ledger
  movements are exactly those above, so statements read the same.
* `stripe`: the card is authorised with a manual-capture PaymentIntent, captured for the
  card's part on completion, cancelled when the break ends unpaid, and partly refunded
  after a dispute. Stripe is never called inside the caller's transaction: these hooks
  only flush rows and enqueue outbox messages (`booking/jobs/payments.py` does the calls,
  with idempotency keys built from our ids).

Order for callers: call `on_booking_ended_unpaid` and `on_booking_completed` *after*
writing the budget release/capture in the same transaction, and `on_booking_refunded`
after the ledger refund; the hooks only flush, the caller commits.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit, outbox
from app.clock import to_london
from app.errors import DomainError, Forbidden, NotFound
from app.extensions import db
from app.models import OutboxMessage, OutboxStatus, ProcessedWebhook, User
from booking.models.bookings import Booking
from booking.models.budgets import Budget
from booking.models.payments import Payment, PaymentStatus, Payout, PayoutStatus
from booking.services import ledger
from booking.services.stripe_backend import Intent, PaymentGateway

LEDGER = "ledger"
STRIPE = "stripe"
BACKENDS = (LEDGER, STRIPE)
# The carer's time to dispute a completed break; the worker is paid after it.
DISPUTE_WINDOW = timedelta(hours=48)
# Stripe's smallest card charge in pounds sterling: a card part is never less than this.
CARD_MINIMUM_PENCE = 30
ADJUSTMENT_TAG = "card_top_up"
# The shape of a Stripe PaymentMethod id ("pm_" and letters, digits or "_", as in Stripe's
# test ids such as pm_card_visa). Anything else is refused before it reaches Stripe.
PAYMENT_METHOD_ID = re.compile(r"pm_[A-Za-z0-9_]{1,250}")
# Statuses where the carer is asked to enter a card (again).
NEEDS_CARD = (PaymentStatus.AWAITING_CARD, PaymentStatus.FAILED)

# Statuses where money is (or may soon be) reserved on the card.
OPEN_STATUSES = (
    PaymentStatus.AWAITING_CARD,
    PaymentStatus.AUTHORISING,
    PaymentStatus.REQUIRES_ACTION,
    PaymentStatus.AUTHORISED,
    PaymentStatus.FAILED,
    PaymentStatus.RECORDED,
)


class PaymentError(DomainError):
    code = "payment_error"
    status = 422


class PaymentNotOpen(PaymentError):
    code = "payment_not_open"
    status = 409


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown payment backend {backend!r}; use one of {BACKENDS}")
    return backend


def clean_payment_method(payment_method_id: str | None) -> str | None:
    """A Stripe PaymentMethod id as sent by the carer's browser or an API client, or None
    when none was sent. Anything not shaped like one (`pm_...`) is refused with 422 here,
    because Stripe would refuse it later, after the booking was made, where the carer
    could only be told by e-mail."""
    value = (payment_method_id or "").strip()
    if not value:
        return None
    if PAYMENT_METHOD_ID.fullmatch(value) is None:
        raise PaymentError(
            "The payment method must be a Stripe PaymentMethod id, starting pm_.",
            code="invalid_payment_method",
            fields={"payment_method": "Give a Stripe PaymentMethod id, like pm_1Nv0FG…"},
        )
    return value


def card_payments_on(config: Mapping[str, Any]) -> bool:
    """Carers can pay by card only with the Stripe backend and a publishable key (for
    Stripe Elements). The offline `ledger` backend never offers it."""
    return config.get("PAYMENT_BACKEND") == STRIPE and bool(config.get("STRIPE_PUBLISHABLE_KEY"))


def payment_for_booking(booking_id: int) -> Payment | None:
    """The card top-up of a booking, if it has one."""
    return db.session.scalar(select(Payment).where(Payment.booking_id == booking_id))


def lock_payment(payment_id: int) -> Payment:
    payment = db.session.scalar(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if payment is None:
        raise NotFound("That payment does not exist.")
    return payment


def _budget_of(payment: Payment) -> Budget:
    budget = db.session.get(Budget, payment.budget_id)
    if budget is None:  # pragma: no cover - the foreign key makes this impossible
        raise NotFound("That budget does not exist.")
    return budget


def _take_back_top_up(
    payment: Payment, amount_pence: int, *, key: str, why: str, now: datetime
) -> None:
    """Take card money back out of the budget (an adjustment; top-ups are never negative)."""
    if amount_pence <= 0:
        return
    ledger.adjust(
        _budget_of(payment),
        -amount_pence,
        actor=None,
        reason=f"Break {payment.booking_id}: {why}",
        tag=ADJUSTMENT_TAG,
        idempotency_key=f"payment:{payment.id}:{key}",
        now=now,
        commit=False,
    )


def _dedupe_key(kind: str, payment: Payment, key: str) -> str:
    """The outbox dedupe key of one Stripe call for this payment (see `_enqueue`)."""
    return f"{kind}:payment:{payment.id}:{key}"


def _enqueue(kind: str, payment: Payment, key: str, **payload: Any) -> None:
    outbox.enqueue(
        kind,
        payload={"payment_id": payment.id, **payload},
        council_id=payment.council_id,
        dedupe_key=_dedupe_key(kind, payment, key),
    )


def _audit(action: str, payment: Payment, *, actor: User | None, **details: Any) -> None:
    audit.record(
        action,
        actor=actor,
        council_id=payment.council_id,
        subject=payment,
        details={"booking_id": payment.booking_id, "status": str(payment.status), **details},
    )


# --- hooks called by the bookings service inside its transaction (flush only) -------------


def prepare_top_up(
    *,
    booking: Booking,
    budget: Budget,
    top_up_pence: int,
    payment_method_id: str | None,
    actor: User | None,
    now: datetime,
    backend: str = LEDGER,
) -> Payment:
    """Record the card part of a booking and credit it to the budget as a `top_up`.

    Call it before placing the hold, so the hold can cover the whole price. With the
    `stripe` backend the authorisation is queued (or, without a payment method yet, the
    carer is asked for a card on the card page); with `ledger` it is recorded as paid
    outside Stripe. Idempotent per booking.
    """
    _check_backend(backend)
    if isinstance(top_up_pence, bool) or not isinstance(top_up_pence, int) or top_up_pence <= 0:
        raise PaymentError("The amount to pay by card must be more than £0.")
    if top_up_pence > booking.price_pence:
        raise PaymentError("The amount to pay by card cannot be more than the price of the break.")
    payment_method_id = clean_payment_method(payment_method_id)
    existing = payment_for_booking(booking.id)
    if existing is not None:
        return existing

    if backend == STRIPE:
        status = PaymentStatus.AUTHORISING if payment_method_id else PaymentStatus.AWAITING_CARD
    else:
        status = PaymentStatus.RECORDED
    payment = Payment(
        council_id=booking.council_id,
        booking_id=booking.id,
        budget_id=budget.id,
        carer_id=booking.carer_id,
        backend=backend,
        status=status,
        amount_pence=top_up_pence,
        payment_method_id=payment_method_id,
        created_at=now,
        updated_at=now,
    )
    db.session.add(payment)
    db.session.flush()
    ledger.top_up(
        budget,
        top_up_pence,
        booking_id=booking.id,
        actor=actor,
        reason=f"Break {booking.id}: part paid by card",
        idempotency_key=f"payment:{payment.id}:top_up",
        now=now,
        commit=False,
    )
    if status is PaymentStatus.AUTHORISING:
        _enqueue("stripe.authorise", payment, f"attempt-{payment.attempt}")
    _audit("payment.top_up_requested", payment, actor=actor, amount_pence=top_up_pence)
    return payment


def card_part_for(*, price_pence: int, available_pence: int) -> int:
    """What the card pays when the budget cannot cover the price: the shortfall, but at
    least Stripe's smallest charge (the budget then pays a few pence less), so a carer a
    few pence short is never asked for a card payment Stripe would refuse."""
    shortfall = price_pence - max(available_pence, 0)
    if shortfall <= 0:
        return 0
    return min(price_pence, max(shortfall, CARD_MINIMUM_PENCE))


def card_share(payment: Payment, *, price_pence: int, charged_pence: int) -> int:
    """What the card pays of `charged_pence`: the budget pays first, the card the rest,
    and a card part is never below Stripe's smallest charge."""
    budget_part = price_pence - payment.amount_pence
    share = max(0, min(payment.amount_pence, charged_pence - budget_part))
    if 0 < share < CARD_MINIMUM_PENCE:
        share = min(payment.amount_pence, charged_pence, CARD_MINIMUM_PENCE)
    return share


def on_booking_completed(
    *, booking: Booking, charged_pence: int, now: datetime, backend: str = LEDGER
) -> Payment | None:
    """Settle the card part for the actual charge and schedule the worker's payout.

    Call for every completed booking (with or without a card part): it also creates the
    worker's payout, payable once the dispute window closes. Idempotent.
    """
    _check_backend(backend)
    _create_payout(booking, charged_pence=charged_pence, now=now)
    payment = payment_for_booking(booking.id)
    if payment is None:
        return None
    payment = lock_payment(payment.id)
    if payment.status not in OPEN_STATUSES:
        return payment

    share = card_share(payment, price_pence=booking.price_pence, charged_pence=charged_pence)
    _take_back_top_up(
        payment,
        payment.amount_pence - share,
        key="top_up_unused",
        why="card top-up not needed for the actual time",
        now=now,
    )
    was = payment.status
    payment.captured_pence = share
    payment.updated_at = now
    payment.captured_at = now
    if payment.backend == STRIPE:
        payment.status = PaymentStatus.CAPTURED if share > 0 else PaymentStatus.CANCELLED
        if share > 0 and was in (PaymentStatus.AUTHORISED, PaymentStatus.AUTHORISING):
            # Only money reserved on the card is captured. While the authorisation is
            # still on its way (an outage), the capture waits for it in the outbox.
            _enqueue("stripe.capture", payment, "capture", amount_pence=share)
        else:
            if share > 0:
                # No card was ever authorised (none entered, refused, or the bank's check
                # never done): the carer owes the card part. Staff see it on the
                # differences page (the reconciliation job lists uncollected top-ups).
                _mark_not_collected(payment, now=now)
            else:
                payment.cancelled_at = now
            # Release whatever Stripe may hold (the handler skips an intent never made).
            _enqueue("stripe.cancel", payment, "cancel")
    else:
        payment.status = PaymentStatus.CAPTURED if share > 0 else PaymentStatus.CANCELLED
    _audit("payment.captured", payment, actor=None, charged_pence=charged_pence, card_pence=share)
    return payment


NOT_COLLECTED = "The break ended before a card was accepted."


def _mark_not_collected(payment: Payment, *, now: datetime) -> None:
    """The break was completed but the card part was never reserved: nothing will be
    captured. The ledger keeps the card part as owed; reconciliation lists it."""
    payment.failure_message = NOT_COLLECTED
    payment.updated_at = now


def not_collected(payment: Payment) -> bool:
    """A completed break's card part that no card paid (see `_mark_not_collected`)."""
    return (
        payment.status is PaymentStatus.CAPTURED
        and payment.captured_pence > 0
        and payment.failure_message is not None
    )


def authorisation_queued(payment: Payment) -> bool:
    """Whether this attempt's authorisation is still waiting in the outbox (an outage)."""
    key = _dedupe_key("stripe.authorise", payment, f"attempt-{payment.attempt}")
    return (
        db.session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.dedupe_key == key, OutboxMessage.status == OutboxStatus.PENDING
            )
        )
        is not None
    )


def on_booking_ended_unpaid(
    *, booking: Booking, now: datetime, backend: str = LEDGER
) -> Payment | None:
    """Cancelled, declined or expired: release the card and reverse the ledger top-up.

    Call after the budget hold was released (in the same transaction). Idempotent.
    """
    _check_backend(backend)
    payout = _payout_for(booking.id)
    if payout is not None and payout.status in (PayoutStatus.PENDING, PayoutStatus.HELD):
        payout.status = PayoutStatus.CANCELLED
    payment = payment_for_booking(booking.id)
    if payment is None:
        return None
    payment = lock_payment(payment.id)
    if payment.status not in OPEN_STATUSES:
        return payment
    _take_back_top_up(
        payment, payment.amount_pence, key="top_up_reversed", why="card top-up reversed", now=now
    )
    payment.status = PaymentStatus.CANCELLED
    payment.cancelled_at = now
    payment.updated_at = now
    if payment.backend == STRIPE:
        _enqueue("stripe.cancel", payment, "cancel")
    _audit("payment.cancelled", payment, actor=None, booking_status=str(booking.status))
    return payment


def on_booking_disputed(*, booking: Booking, now: datetime, backend: str = LEDGER) -> None:
    """The carer disputed the break: hold the worker's payout until it is resolved."""
    _check_backend(backend)
    payout = _payout_for(booking.id)
    if payout is not None and payout.status is PayoutStatus.PENDING:
        payout.status = PayoutStatus.HELD
        audit.record(
            "payout.held",
            actor=None,
            council_id=payout.council_id,
            subject=payout,
            details={"booking_id": booking.id},
        )


def on_booking_refunded(
    *, booking: Booking, refund_pence: int, now: datetime, backend: str = LEDGER
) -> Payment | None:
    """A dispute was settled with `refund_pence` back (0 when it was turned down).

    The refund goes to the card first, up to what the card paid; the worker's payout is
    reduced by the whole refund and released for payment. Call after the ledger refund.
    """
    _check_backend(backend)
    if refund_pence < 0:
        raise PaymentError("A refund cannot be less than £0.")
    payout = _payout_for(booking.id)
    if payout is not None and payout.status in (PayoutStatus.PENDING, PayoutStatus.HELD):
        payout.amount_pence = max(0, payout.amount_pence - refund_pence)
        payout.status = PayoutStatus.PENDING if payout.amount_pence else PayoutStatus.CANCELLED
        payout.payable_from = max(payout.payable_from, now)
    payment = payment_for_booking(booking.id)
    if payment is None or refund_pence == 0:
        return payment
    payment = lock_payment(payment.id)
    to_card = min(refund_pence, payment.captured_pence - payment.refunded_pence)
    if to_card <= 0:
        return payment
    refunded_after = payment.refunded_pence + to_card
    _take_back_top_up(
        payment,
        to_card,
        key=f"refund-to-{refunded_after}",
        why="refund paid back to the card",
        now=now,
    )
    payment.refunded_pence = refunded_after
    payment.updated_at = now
    # A card part that was never collected is only owed less: nothing to pay back.
    if payment.backend == STRIPE and not not_collected(payment):
        _enqueue(
            "stripe.refund",
            payment,
            f"refund-to-{refunded_after}",
            amount_pence=to_card,
            refunded_after=refunded_after,
        )
    _audit("payment.refunded", payment, actor=None, refund_pence=to_card)
    return payment


def top_up_secured(booking: Booking) -> bool:
    """Whether the booking's card part (if any) is reserved or recorded, so the worker
    may be asked to accept it."""
    payment = payment_for_booking(booking.id)
    return payment is None or payment.status in (PaymentStatus.AUTHORISED, PaymentStatus.RECORDED)


def unsecured_booking_ids(booking_ids: Collection[int]) -> set[int]:
    """Of these bookings, the ones whose card part is not reserved yet (one query): the
    worker's list shows them as waiting for the card instead of offering Accept."""
    if not booking_ids:
        return set()
    return set(
        db.session.scalars(
            select(Payment.booking_id).where(
                Payment.booking_id.in_(booking_ids),
                Payment.status.not_in((PaymentStatus.AUTHORISED, PaymentStatus.RECORDED)),
            )
        )
    )


# --- public use cases (one transaction each) ----------------------------------------------


def submit_card(payment: Payment, *, payment_method_id: str, actor: User, now: datetime) -> Payment:
    """The carer entered a card on the card page: queue its authorisation.

    After a refusal, a new card is a new attempt (a new PaymentIntent and new
    idempotency keys); the same card submitted twice is queued once.
    """
    if actor.id != payment.carer_id and not _acts_for(actor, payment.carer_id):
        raise Forbidden("You can only pay for your own breaks.")
    payment = lock_payment(payment.id)
    if payment.backend != STRIPE:
        raise PaymentNotOpen("Card payments are not switched on for this service.")
    if payment.status not in NEEDS_CARD:
        raise PaymentNotOpen("This payment does not need a card now.")
    payment_method_id = payment_method_id.strip()
    if PAYMENT_METHOD_ID.fullmatch(payment_method_id) is None:
        raise PaymentError(
            "We could not read the card details. Please try again.",
            fields={"payment_method": "Enter your card details"},
        )
    if payment.status is PaymentStatus.FAILED:
        payment.attempt += 1
        payment.stripe_payment_intent_id = None
        payment.stripe_status = None
    payment.payment_method_id = payment_method_id
    payment.status = PaymentStatus.AUTHORISING
    payment.failure_message = None
    payment.updated_at = now
    _enqueue("stripe.authorise", payment, f"attempt-{payment.attempt}")
    _audit("payment.card_submitted", payment, actor=actor, attempt=payment.attempt)
    db.session.commit()
    return payment


def confirmation_secret(payment: Payment, *, gateway: PaymentGateway) -> str | None:
    """The client secret the carer's browser needs to show their bank's check (3-D
    Secure) with Stripe.js `handleNextAction`. Read from Stripe when the page is shown,
    never stored; None when no check is waiting. Stripe's errors are left to the caller.
    """
    if payment.status is not PaymentStatus.REQUIRES_ACTION or not payment.stripe_payment_intent_id:
        return None
    intent = gateway.retrieve_intent(payment.stripe_payment_intent_id)
    return intent.client_secret if intent.status == "requires_action" else None


def refresh_card_status(
    payment: Payment, *, gateway: PaymentGateway, actor: User, now: datetime
) -> Payment:
    """After the carer's bank check (or when they ask): read the PaymentIntent from Stripe
    and bring our record up to date, rather than wait for the webhook. One transaction.

    Stripe is asked before the row is locked, so no lock is held over the network;
    `record_authorisation` only moves a payment that is still waiting for its card.
    """
    if actor.id != payment.carer_id and not _acts_for(actor, payment.carer_id):
        raise Forbidden("You can only pay for your own breaks.")
    waiting = (PaymentStatus.AUTHORISING, PaymentStatus.REQUIRES_ACTION)
    if payment.status not in waiting or not payment.stripe_payment_intent_id:
        return payment
    intent: Intent = gateway.retrieve_intent(payment.stripe_payment_intent_id)
    payment = lock_payment(payment.id)
    if payment.stripe_payment_intent_id == intent.id:
        record_authorisation(
            payment,
            intent_id=intent.id,
            stripe_status=intent.status,
            message=intent.message,
            cancellation_reason=intent.cancellation_reason,
            now=now,
        )
    db.session.commit()
    return payment


def _acts_for(user: User, carer_id: int) -> bool:
    from app.models import Representation

    return (
        db.session.scalar(
            select(Representation.id).where(
                Representation.representative_id == user.id,
                Representation.carer_id == carer_id,
            )
        )
        is not None
    )


def payment_for_carer(booking_id: int, *, user: User) -> Payment:
    """The booking's card payment, if the user is its carer (or their representative)."""
    payment = payment_for_booking(booking_id)
    if payment is None or (payment.carer_id != user.id and not _acts_for(user, payment.carer_id)):
        raise NotFound("We could not find a card payment for that break.")
    return payment


# --- results of Stripe calls and webhooks (used by the outbox handlers and the webhook) --


def record_authorisation(
    payment: Payment,
    *,
    intent_id: str,
    stripe_status: str,
    message: str | None,
    now: datetime,
    cancellation_reason: str | None = None,
) -> Payment:
    """Store what Stripe said about the authorisation (our call's answer, a webhook, or a
    check after the bank's 3-D Secure step). Only flushes."""
    payment.stripe_payment_intent_id = intent_id
    payment.stripe_status = stripe_status
    payment.updated_at = now
    if payment.status is PaymentStatus.CAPTURED:
        # The break was completed while the authorisation was on its way: the capture is
        # queued. If the card was not reserved after all, there is nothing to capture.
        if stripe_status not in ("requires_capture", "processing", "succeeded"):
            if payment.failure_message is None:
                _mark_not_collected(payment, now=now)
                _audit("payment.not_collected", payment, actor=None, stripe_status=stripe_status)
            if stripe_status in ("requires_action", "requires_confirmation"):
                _enqueue("stripe.cancel", payment, "cancel")
        return payment
    if payment.status not in (PaymentStatus.AUTHORISING, PaymentStatus.REQUIRES_ACTION):
        return payment  # cancelled or settled meanwhile: the cancel handler tidies Stripe
    match stripe_status:
        case "requires_capture":
            payment.status = PaymentStatus.AUTHORISED
            payment.authorised_at = now
            payment.failure_message = None
        case "requires_action" | "requires_confirmation":
            if payment.status is PaymentStatus.REQUIRES_ACTION:
                return payment
            payment.status = PaymentStatus.REQUIRES_ACTION
            _ask_to_confirm(payment)
        case "canceled" if cancellation_reason == "automatic":
            _authorisation_lapsed(payment, now=now)
        case "requires_payment_method" | "canceled":
            _card_refused(payment, message=message, now=now)
        case _:
            return payment
    _audit("payment.authorisation", payment, actor=None, stripe_status=stripe_status)
    return payment


def _email_carer(payment: Payment, *, subject: str, body: str, key: str) -> None:
    carer = db.session.get(User, payment.carer_id)
    if carer is not None and carer.email:
        outbox.enqueue(
            "email",
            recipient=carer.email,
            payload={"subject": subject, "body": body},
            council_id=payment.council_id,
            dedupe_key=f"email:payment:{payment.id}:{key}",
        )


def _break_day(payment: Payment) -> str:
    booking = db.session.get(Booking, payment.booking_id)
    if booking is None:  # pragma: no cover - the foreign key makes this impossible
        return "your break"
    return "your break on " + to_london(booking.starts_at).strftime("%A %-d %B")


def _ask_to_confirm(payment: Payment) -> None:
    _email_carer(
        payment,
        subject="Your bank needs you to confirm a card payment",
        body=(
            f"Your bank wants you to confirm the card payment for {_break_day(payment)}. "
            "Please sign in, open the break and choose 'Confirm the card payment'. "
            "Nothing has been taken from your card."
        ),
        key=f"confirm:{payment.attempt}",
    )


def _card_refused(payment: Payment, *, message: str | None, now: datetime) -> None:
    payment.status = PaymentStatus.FAILED
    payment.failure_message = message or "The card was not accepted."
    _email_carer(
        payment,
        subject="Your card was not accepted",
        body=(
            "Your card was not accepted for the part of your break that your budget "
            "does not cover. Please sign in and try another card, or cancel the "
            "break if you prefer. Nothing has been taken from your card."
        ),
        key=f"refused:{payment.attempt}",
    )


LAPSED_MESSAGE = (
    "Banks only keep money reserved on a card for about 7 days, so the money reserved "
    "for this break has been released. Nothing was taken from your card. Please enter "
    "your card again before the break."
)


def _authorisation_lapsed(payment: Payment, *, now: datetime) -> None:
    """Stripe let an uncaptured authorisation lapse (after about 7 days): the card was
    not refused. The payment waits for a card again, as a new attempt (a card used once
    without a Stripe customer cannot be used again), and the carer is asked for it."""
    lapsed_intent = payment.stripe_payment_intent_id
    payment.status = PaymentStatus.AWAITING_CARD
    payment.attempt += 1
    payment.stripe_payment_intent_id = None
    payment.stripe_status = None
    payment.payment_method_id = None
    payment.authorised_at = None
    payment.failure_message = LAPSED_MESSAGE
    payment.updated_at = now
    _email_carer(
        payment,
        subject="Please enter your card again for your break",
        body=(
            f"Banks only keep money reserved on a card for about 7 days, so the money "
            f"reserved for {_break_day(payment)} has been released. Nothing was taken "
            "from your card and your break is still booked. Please sign in, open the "
            "break and enter your card again before the break."
        ),
        key=f"lapsed:{payment.attempt}",
    )
    _audit("payment.authorisation_lapsed", payment, actor=None, stripe_intent=lapsed_intent)


def card_refused(payment: Payment, *, message: str | None, now: datetime) -> Payment:
    """Stripe refused the card (a decline, a failed bank check, or a card Stripe cannot
    use; not an outage). Only flushes."""
    if payment.status in (PaymentStatus.AUTHORISING, PaymentStatus.REQUIRES_ACTION):
        _card_refused(payment, message=message, now=now)
        payment.updated_at = now
        _audit("payment.failed", payment, actor=None, message=payment.failure_message)
    elif payment.status is PaymentStatus.CAPTURED and payment.failure_message is None:
        # Completed while the authorisation was queued, and then refused.
        _mark_not_collected(payment, now=now)
        _audit("payment.not_collected", payment, actor=None, message=message)
    return payment


def record_stripe_status(payment: Payment, *, stripe_status: str, now: datetime) -> Payment:
    """Remember Stripe's last word on the PaymentIntent (the reconciliation job compares
    it with ours). Only flushes."""
    if payment.stripe_status != stripe_status:
        payment.stripe_status = stripe_status
        payment.updated_at = now
    return payment


def _payment_for_intent(intent: Any) -> Payment | None:
    """Find our payment by PaymentIntent id, or by the ids we put in its metadata (the
    webhook can arrive before our own call's answer was stored)."""
    intent_id = _field(intent, "id")
    payment = db.session.scalar(
        select(Payment).where(Payment.stripe_payment_intent_id == intent_id)
    )
    if payment is not None:
        return lock_payment(payment.id)
    metadata = _field(intent, "metadata") or {}
    payment_id = _field(metadata, "payment_id")
    if not payment_id or not str(payment_id).isdigit():
        return None
    payment = db.session.get(Payment, int(payment_id))
    if payment is None or str(_field(metadata, "attempt")) != str(payment.attempt):
        return None
    payment = lock_payment(payment.id)
    if payment.stripe_payment_intent_id is None:
        payment.stripe_payment_intent_id = intent_id
    return payment


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return obj[name]
    except (KeyError, TypeError):
        return getattr(obj, name, None)


def handle_stripe_event(event: Any, *, now: datetime) -> bool:
    """Apply one verified Stripe event. Stored by id first, so a replay changes nothing:
    returns False for an event seen before. One transaction; commits."""
    event_id = str(_field(event, "id"))
    event_type = str(_field(event, "type"))
    seen = db.session.scalar(
        select(ProcessedWebhook.id).where(
            ProcessedWebhook.provider == "stripe", ProcessedWebhook.event_id == event_id
        )
    )
    if seen is not None:
        return False
    db.session.add(
        ProcessedWebhook(
            provider="stripe", event_id=event_id, event_type=event_type[:64], received_at=now
        )
    )
    try:
        db.session.flush()
    except IntegrityError:  # the same event delivered twice at once
        db.session.rollback()
        return False
    obj = _field(_field(event, "data"), "object")
    match event_type:
        case "payment_intent.amount_capturable_updated":
            payment = _payment_for_intent(obj)
            if payment is not None:
                record_authorisation(
                    payment,
                    intent_id=str(_field(obj, "id")),
                    stripe_status=str(_field(obj, "status") or "requires_capture"),
                    message=None,
                    now=now,
                )
        case "payment_intent.succeeded":
            payment = _payment_for_intent(obj)
            if payment is not None:
                record_stripe_status(payment, stripe_status=str(_field(obj, "status")), now=now)
        case "payment_intent.canceled":
            payment = _payment_for_intent(obj)
            if payment is None:
                pass
            elif payment.status in (
                PaymentStatus.AUTHORISED,
                PaymentStatus.AUTHORISING,
                PaymentStatus.REQUIRES_ACTION,
            ):
                # Stripe ended a reservation we still count on: most often it lapsed
                # (reason "automatic", about 7 days after it was made).
                reason = _field(obj, "cancellation_reason")
                if reason == "automatic":
                    _authorisation_lapsed(payment, now=now)
                else:
                    payment.stripe_status = "canceled"
                    payment.updated_at = now
                    _card_refused(
                        payment, message="The reservation on the card has ended.", now=now
                    )
                    _audit("payment.failed", payment, actor=None, stripe_status="canceled")
            else:
                record_stripe_status(payment, stripe_status="canceled", now=now)
        case "payment_intent.payment_failed":
            payment = _payment_for_intent(obj)
            if payment is not None:
                record_stripe_status(payment, stripe_status=str(_field(obj, "status")), now=now)
                error = _field(obj, "last_payment_error")
                card_refused(payment, message=_field(error, "message"), now=now)
        case "charge.refunded":
            intent_id = _field(obj, "payment_intent")
            payment = payment_by_intent(str(intent_id)) if intent_id else None
            if payment is not None:
                refunded = int(_field(obj, "amount_refunded") or 0)
                status = "refunded" if _field(obj, "refunded") else "partially_refunded"
                record_stripe_status(payment, stripe_status=status, now=now)
                audit.record(
                    "payment.refund_confirmed",
                    actor=None,
                    council_id=payment.council_id,
                    subject=payment,
                    details={"stripe_amount_refunded": refunded},
                )
        case "account.updated":
            from booking.services import payouts

            payouts.apply_account_update(
                str(_field(obj, "id")),
                details_submitted=bool(_field(obj, "details_submitted")),
                charges_enabled=bool(_field(obj, "charges_enabled")),
                payouts_enabled=bool(_field(obj, "payouts_enabled")),
                now=now,
            )
        case _:
            pass  # stored, so a replay is still recognised; nothing else to do
    db.session.commit()
    return True


def payment_by_intent(intent_id: str) -> Payment | None:
    return db.session.scalar(select(Payment).where(Payment.stripe_payment_intent_id == intent_id))


def _payout_for(booking_id: int) -> Payout | None:
    return db.session.scalar(select(Payout).where(Payout.booking_id == booking_id))


def _create_payout(booking: Booking, *, charged_pence: int, now: datetime) -> Payout:
    existing = _payout_for(booking.id)
    if existing is not None:
        return existing
    payout = Payout(
        council_id=booking.council_id,
        booking_id=booking.id,
        worker_id=booking.worker_id,
        amount_pence=max(0, charged_pence),
        status=PayoutStatus.PENDING if charged_pence > 0 else PayoutStatus.CANCELLED,
        payable_from=now + DISPUTE_WINDOW,
        created_at=now,
    )
    db.session.add(payout)
    db.session.flush()
    return payout
