"""Daily reconciliation: compare our ledger and payment records with Stripe's objects.

For every Stripe card payment we compare three figures that must agree:
* the ledger: the card money still counted in the budget for the booking
  (its `top_up` minus our `card_top_up` adjustments),
* our payment record: `captured − refunded` (0 when cancelled),
* Stripe: the charge's `amount − amount_refunded` once captured (0 otherwise),
and Stripe's status with the status we expect. For every paid payout we compare the
Transfer's amount. Each disagreement is one open `ReconciliationDifference` row for staff
to look into: found again the next night, the same row's `last_seen_on` moves on, so the
list does not grow; staff mark it resolved once they have dealt with it (audited).

Only what can still change is checked: payments and payouts that are not final yet, or
became final within `FINAL_FOR` (a refund or a late capture moves `updated_at` on), plus
anything with an open difference. Each object is checked on its own: a Stripe error on
one (a 404 is itself listed as a difference) does not stop the others.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import stripe
from sqlalchemy import func, or_, select

from app import audit
from app.clock import to_london
from app.errors import NotFound
from app.extensions import db
from app.models import Role, User
from booking.models.budgets import LedgerEntry
from booking.models.payments import (
    Payment,
    PaymentStatus,
    Payout,
    PayoutStatus,
    ReconciliationDifference,
)
from booking.services.payments import STRIPE, authorisation_queued, not_collected
from booking.services.stripe_backend import GatewayError, PaymentGateway, StripeObjectMissing

log = logging.getLogger(__name__)

# A payment or payout final for longer than this is no longer read back from Stripe.
FINAL_FOR = timedelta(days=35)
FINAL_PAYMENT_STATUSES = (PaymentStatus.CAPTURED, PaymentStatus.CANCELLED)

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
    """Record a disagreement: update the open row for this object and kind, or start one."""
    row = db.session.scalar(
        select(ReconciliationDifference).where(
            ReconciliationDifference.object_ref == ref,
            ReconciliationDifference.kind == kind,
            ReconciliationDifference.resolved_at.is_(None),
        )
    )
    if row is not None:
        if row.last_seen_on != today:
            row.last_seen_on = today
            found.append(row)
        row.ours, row.theirs, row.message = ours[:255], theirs[:255], message
        return
    row = ReconciliationDifference(
        council_id=payment.council_id if payment else (payout.council_id if payout else None),
        found_on=today,
        last_seen_on=today,
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
    db.session.flush()
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
    uncollected = not_collected(payment) or (
        payment.stripe_payment_intent_id is None
        and payment.status is PaymentStatus.CAPTURED
        and payment.captured_pence > 0
        and not authorisation_queued(payment)
    )
    if uncollected:
        _add(
            found,
            today=today,
            kind="not_collected",
            ref=ref,
            ours=f"captured {payment.captured_pence}p",
            theirs=payment.stripe_status or "no PaymentIntent",
            message="The break was completed but no card was ever authorised for its top-up.",
            payment=payment,
            now=now,
        )
        return
    if payment.stripe_payment_intent_id is None:
        return
    try:
        intent = gateway.retrieve_intent(payment.stripe_payment_intent_id)
    except StripeObjectMissing:
        _add(
            found,
            today=today,
            kind="missing",
            ref=ref,
            ours=str(payment.status),
            theirs="not found",
            message="Stripe has no PaymentIntent with the id we stored for this payment.",
            payment=payment,
            now=now,
        )
        return
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
    try:
        transfer = gateway.retrieve_transfer(payout.stripe_transfer_id)
    except StripeObjectMissing:
        _add(
            found,
            today=today,
            kind="missing",
            ref=payout.stripe_transfer_id,
            ours=f"{payout.amount_pence}p paid",
            theirs="not found",
            message="Stripe has no Transfer with the id we stored for this payout.",
            payout=payout,
            now=now,
        )
        return
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


def reconcile(
    *, gateway: PaymentGateway, now: datetime, final_for: timedelta = FINAL_FOR
) -> dict[str, int]:
    """Compare what can still change with Stripe; each object in its own savepoint.

    Returns how many objects were checked, how many differences were found or seen
    again today, and how many objects could not be checked (Stripe down or slow: they
    are tried again on the next run).
    """
    today = to_london(now).date()
    since = now - final_for
    found: list[ReconciliationDifference] = []
    counts = {"checked": 0, "differences": 0, "errors": 0}
    still_open = ReconciliationDifference.resolved_at.is_(None)
    payment_ids = db.session.scalars(
        select(Payment.id)
        .where(
            Payment.backend == STRIPE,
            or_(
                Payment.status.not_in(FINAL_PAYMENT_STATUSES),
                Payment.updated_at >= since,
                Payment.id.in_(
                    select(ReconciliationDifference.payment_id).where(
                        still_open, ReconciliationDifference.payment_id.is_not(None)
                    )
                ),
            ),
        )
        .order_by(Payment.id)
    ).all()
    payout_ids = db.session.scalars(
        select(Payout.id)
        .where(
            Payout.status == PayoutStatus.PAID,
            Payout.backend == STRIPE,
            or_(
                Payout.paid_at >= since,
                Payout.id.in_(
                    select(ReconciliationDifference.payout_id).where(
                        still_open, ReconciliationDifference.payout_id.is_not(None)
                    )
                ),
            ),
        )
        .order_by(Payout.id)
    ).all()
    checks = [(Payment, i) for i in payment_ids] + [(Payout, i) for i in payout_ids]
    for model, object_id in checks:
        these: list[ReconciliationDifference] = []
        try:
            with db.session.begin_nested():
                if model is Payment:
                    payment = db.session.get(Payment, object_id)
                    assert payment is not None
                    _check_payment(payment, gateway, these, today=today, now=now)
                else:
                    payout = db.session.get(Payout, object_id)
                    assert payout is not None
                    _check_payout(payout, gateway, these, today=today, now=now)
        except (stripe.StripeError, GatewayError) as exc:
            # An outage or an answer we did not expect: this object waits for the next
            # run; the others are still checked.
            log.warning("reconciliation: %s %s not checked: %s", model.__name__, object_id, exc)
            counts["errors"] += 1
            continue
        found.extend(these)
        counts["checked"] += 1
    db.session.commit()
    counts["differences"] = len(found)
    return counts


def resolve_difference(
    difference_id: int, *, actor: User, note: str | None, now: datetime
) -> ReconciliationDifference:
    """Staff have looked into a difference and dealt with it: it leaves the open list.
    Officers only resolve their own council's; the decision is audited. Idempotent."""
    row = db.session.scalar(
        select(ReconciliationDifference)
        .where(ReconciliationDifference.id == difference_id)
        .with_for_update()
    )
    if row is None or not _may_see(actor, row):
        raise NotFound("We could not find that payment difference.")
    if row.resolved_at is not None:
        return row
    row.resolved_at = now
    row.resolved_by_id = actor.id
    row.resolution_note = (note or "").strip()[:2000] or None
    audit.record(
        "reconciliation.difference_resolved",
        actor=actor,
        council_id=row.council_id,
        subject=row,
        reason=row.resolution_note,
        details={"kind": row.kind, "object_ref": row.object_ref},
    )
    db.session.commit()
    return row


def _may_see(actor: User, row: ReconciliationDifference) -> bool:
    if actor.has_role(Role.ADMIN):
        return True
    return actor.has_role(Role.COUNCIL_OFFICER) and row.council_id == actor.council_id


def open_differences(*, council_id: int | None) -> list[ReconciliationDifference]:
    """Differences staff still have to look into (all councils' when `council_id` is
    None, which is for admins)."""
    query = select(ReconciliationDifference).where(ReconciliationDifference.resolved_at.is_(None))
    if council_id is not None:
        query = query.where(ReconciliationDifference.council_id == council_id)
    return list(
        db.session.scalars(
            query.order_by(ReconciliationDifference.found_on.desc(), ReconciliationDifference.id)
        )
    )
