"""Daily reconciliation: compare our ledger and payment records with Stripe's objects.

For every Stripe card payment we compare three figures that must agree:
* the ledger: the card money still counted in the budget for the booking
  (its `top_up` minus our `card_top_up` adjustments),
* our payment record: `captured − refunded` (0 when cancelled),
* Stripe: the charge's `amount − amount_refunded` once captured (0 otherwise),
and Stripe's status with the status we expect. For every paid payout we compare the
Transfer's amount. Each disagreement becomes one `ReconciliationDifference` row per day,
for staff to look into; running the job twice on one day adds nothing.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select

from app.clock import to_london
from app.extensions import db
from booking.models.budgets import LedgerEntry
from booking.models.payments import (
    Payment,
    PaymentStatus,
    Payout,
    PayoutStatus,
    ReconciliationDifference,
)
from booking.services.payments import STRIPE
from booking.services.stripe_backend import PaymentGateway

# What Stripe should say for each of our statuses.
EXPECTED_STRIPE = {
    PaymentStatus.AUTHORISED: ("requires_capture",),
    PaymentStatus.CAPTURED: ("succeeded",),
    PaymentStatus.CANCELLED: ("canceled",),
    PaymentStatus.FAILED: ("requires_payment_method", "canceled"),
    PaymentStatus.REQUIRES_ACTION: ("requires_action",),
}


def ledger_card_pence(payment: Payment) -> int:
    """The card money the budget's ledger still counts for this payment."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_pence), 0)).where(
            LedgerEntry.idempotency_key.like(f"payment:{payment.id}:%")
        )
    )
    return int(total or 0)


def _add(
    found: list[ReconciliationDifference],
    *,
    today: date,
    kind: str,
    ref: str,
    ours: str,
    theirs: str,
    message: str,
    payment: Payment | None = None,
    payout: Payout | None = None,
    now: datetime,
) -> None:
    exists = db.session.scalar(
        select(ReconciliationDifference.id).where(
            ReconciliationDifference.found_on == today,
            ReconciliationDifference.object_ref == ref,
            ReconciliationDifference.kind == kind,
        )
    )
    if exists is not None:
        return
    row = ReconciliationDifference(
        council_id=payment.council_id if payment else (payout.council_id if payout else None),
        found_on=today,
        kind=kind,
        object_ref=ref,
        payment_id=payment.id if payment else None,
        payout_id=payout.id if payout else None,
        ours=ours[:255],
        theirs=theirs[:255],
        message=message,
        created_at=now,
    )
    db.session.add(row)
    found.append(row)


def _check_payment(
    payment: Payment,
    gateway: PaymentGateway,
    found: list[ReconciliationDifference],
    *,
    today: date,
    now: datetime,
) -> None:
    ours_net = (
        0
        if payment.status is PaymentStatus.CANCELLED
        else payment.captured_pence - payment.refunded_pence
    )
    ledger_net = ledger_card_pence(payment)
    ref = payment.stripe_payment_intent_id or f"payment-{payment.id}"
    settled = payment.status in (PaymentStatus.CAPTURED, PaymentStatus.CANCELLED)
    if settled and ledger_net != ours_net:
        _add(
            found,
            today=today,
            kind="ledger_amount",
            ref=ref,
            ours=f"ledger {ledger_net}p",
            theirs=f"payment record {ours_net}p",
            message="The budget ledger and the payment record disagree about the card's part.",
            payment=payment,
            now=now,
        )
    if payment.stripe_payment_intent_id is None:
        if payment.status is PaymentStatus.CAPTURED and payment.captured_pence > 0:
            _add(
                found,
                today=today,
                kind="not_collected",
                ref=ref,
                ours=f"captured {payment.captured_pence}p",
                theirs="no PaymentIntent",
                message="The break was completed but no card was ever authorised for its top-up.",
                payment=payment,
                now=now,
            )
        return
    intent = gateway.retrieve_intent(payment.stripe_payment_intent_id)
    expected = EXPECTED_STRIPE.get(payment.status)
    if expected is not None and intent.status not in expected:
        _add(
            found,
            today=today,
            kind="status",
            ref=ref,
            ours=str(payment.status),
            theirs=intent.status,
            message=f"We have this payment as {payment.status}; Stripe has it as {intent.status}.",
            payment=payment,
            now=now,
        )
    if settled and intent.net_pence != ledger_net:
        _add(
            found,
            today=today,
            kind="amount",
            ref=ref,
            ours=f"{ledger_net}p",
            theirs=f"{intent.net_pence}p",
            message="The card money in our ledger differs from what Stripe kept on the card.",
            payment=payment,
            now=now,
        )


def _check_payout(
    payout: Payout,
    gateway: PaymentGateway,
    found: list[ReconciliationDifference],
    *,
    today: date,
    now: datetime,
) -> None:
    if payout.stripe_transfer_id is None:
        return
    transfer = gateway.retrieve_transfer(payout.stripe_transfer_id)
    if transfer.amount != payout.amount_pence or transfer.reversed:
        _add(
            found,
            today=today,
            kind="transfer",
            ref=payout.stripe_transfer_id,
            ours=f"{payout.amount_pence}p paid",
            theirs=f"{transfer.amount}p{' reversed' if transfer.reversed else ''}",
            message="The worker's payout differs from the Stripe transfer.",
            payout=payout,
            now=now,
        )


def reconcile(*, gateway: PaymentGateway, now: datetime) -> dict[str, int]:
    """Run the comparison for every Stripe payment and payout; one transaction."""
    today = to_london(now).date()
    found: list[ReconciliationDifference] = []
    checked = 0
    for payment in db.session.scalars(
        select(Payment).where(Payment.backend == STRIPE).order_by(Payment.id)
    ):
        _check_payment(payment, gateway, found, today=today, now=now)
        checked += 1
    for payout in db.session.scalars(
        select(Payout).where(Payout.status == PayoutStatus.PAID, Payout.backend == STRIPE)
    ):
        _check_payout(payout, gateway, found, today=today, now=now)
        checked += 1
    db.session.commit()
    return {"checked": checked, "differences": len(found)}


def open_differences(*, council_id: int | None) -> list[ReconciliationDifference]:
    query = select(ReconciliationDifference).where(ReconciliationDifference.resolved_at.is_(None))
    if council_id is not None:
        query = query.where(ReconciliationDifference.council_id == council_id)
    return list(
        db.session.scalars(
            query.order_by(ReconciliationDifference.found_on.desc(), ReconciliationDifference.id)
        )
    )
