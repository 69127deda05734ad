"""Card top-ups with the default `ledger` backend: the money rules, no Stripe at all."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, OutboxMessage
from booking.models.payments import PaymentStatus, Payout, PayoutStatus
from booking.services import ledger, payments
from booking.services.payments import PaymentError, card_share
from tests.booking.factories_payments import cancel, complete, make_top_up_booking, refund

LEDGER = payments.LEDGER


def _stripe_messages() -> int:
    return int(
        db.session.scalar(
            select(func.count(OutboxMessage.id)).where(OutboxMessage.kind.like("stripe.%"))
        )
        or 0
    )


def test_top_up_is_recorded_outside_stripe_and_lets_the_hold_cover_the_price(now: datetime) -> None:
    made = make_top_up_booking(now=now, award_pence=3000, price_pence=5000)

    assert made.payment.status is PaymentStatus.RECORDED
    assert made.payment.amount_pence == 2000
    figures = ledger.balance(made.budget)
    assert figures.top_ups_pence == 2000
    assert figures.held_pence == 5000
    assert figures.available_pence == 0
    assert _stripe_messages() == 0
    assert db.session.scalar(
        select(AuditEntry.id).where(AuditEntry.action == "payment.top_up_requested")
    )


@pytest.mark.parametrize(
    ("price", "top_up", "charged", "expected"),
    [
        (5000, 2000, 5000, 2000),  # full time: card pays its whole part
        (5000, 2000, 4000, 1000),  # shorter: budget pays its 3000 first
        (5000, 2000, 3000, 0),  # no more than the budget's part: card pays nothing
        (5000, 2000, 1000, 0),
        (5000, 4999, 2500, 2499),  # nearly all by card
        (5000, 2000, 9000, 2000),  # never more than was authorised
        (5000, 2000, 3010, 30),  # a card part is never under Stripe's 30p minimum
        (5000, 20, 5000, 20),  # ... nor more than was authorised
    ],
)
def test_the_budget_pays_first_and_the_card_the_rest(
    now: datetime, price: int, top_up: int, charged: int, expected: int
) -> None:
    made = make_top_up_booking(now=now, award_pence=price - top_up, price_pence=price)
    assert card_share(made.payment, price_pence=price, charged_pence=charged) == expected


def test_completion_for_less_time_leaves_the_budget_paying_only_its_part(now: datetime) -> None:
    made = make_top_up_booking(now=now, award_pence=3000, price_pence=5000)

    complete(made, charged_pence=4000, now=now + timedelta(days=3), backend=LEDGER)

    payment = payments.payment_for_booking(made.booking.id)
    assert payment is not None
    assert payment.status is PaymentStatus.CAPTURED
    assert payment.captured_pence == 1000
    figures = ledger.balance(made.budget)
    # The budget paid its 3000 in full; nothing is held; the unused 1000 top-up is gone.
    assert figures.held_pence == 0
    assert figures.available_pence == 0
    assert figures.top_ups_pence + figures.adjustments_pence == 1000
    assert _stripe_messages() == 0


def test_completion_is_idempotent(now: datetime) -> None:
    made = make_top_up_booking(now=now, award_pence=3000, price_pence=5000)
    complete(made, charged_pence=4000, now=now, backend=LEDGER)
    before = ledger.balance(made.budget)

    payments.on_booking_completed(booking=made.booking, charged_pence=4000, now=now, backend=LEDGER)
    db.session.commit()

    assert ledger.balance(made.budget) == before
    assert db.session.scalar(select(func.count(Payout.id))) == 1


def test_cancelling_reverses_the_top_up(now: datetime) -> None:
    made = make_top_up_booking(now=now, award_pence=3000, price_pence=5000)

    cancel(made, now=now, backend=LEDGER)
    cancel_again = payments.on_booking_ended_unpaid(booking=made.booking, now=now, backend=LEDGER)
    db.session.commit()

    assert cancel_again is not None
    assert cancel_again.status is PaymentStatus.CANCELLED
    figures = ledger.balance(made.budget)
    assert figures.available_pence == 3000  # exactly the award: nothing of the card is left
    assert figures.held_pence == 0


def test_a_refund_goes_to_the_card_first_and_reduces_the_payout(now: datetime) -> None:
    made = make_top_up_booking(now=now, award_pence=3000, price_pence=5000)
    complete(made, charged_pence=5000, now=now, backend=LEDGER)
    payments.on_booking_disputed(booking=made.booking, now=now, backend=LEDGER)
    db.session.commit()
    payout = db.session.scalar(select(Payout))
    assert payout is not None
    assert payout.status is PayoutStatus.HELD

    refund(made, refund_pence=2500, now=now + timedelta(days=1), backend=LEDGER)

    payment = payments.payment_for_booking(made.booking.id)
    assert payment is not None
    assert payment.refunded_pence == 2000  # the card's whole part
    # The other 500 went back to the budget.
    assert ledger.balance(made.budget).available_pence == 500
    db.session.refresh(payout)
    assert payout.amount_pence == 2500
    assert payout.status is PayoutStatus.PENDING


def test_a_dispute_turned_down_releases_the_payout_unchanged(now: datetime) -> None:
    made = make_top_up_booking(now=now, award_pence=3000, price_pence=5000)
    complete(made, charged_pence=5000, now=now, backend=LEDGER)
    payments.on_booking_disputed(booking=made.booking, now=now, backend=LEDGER)
    payments.on_booking_refunded(booking=made.booking, refund_pence=0, now=now, backend=LEDGER)
    db.session.commit()

    payout = db.session.scalar(select(Payout))
    assert payout is not None
    assert (payout.status, payout.amount_pence) == (PayoutStatus.PENDING, 5000)


def test_bad_top_up_amounts_and_backends_are_refused(now: datetime) -> None:
    made = make_top_up_booking(now=now, award_pence=3000, price_pence=5000)
    with pytest.raises(PaymentError):
        payments.prepare_top_up(
            booking=made.booking,
            budget=made.budget,
            top_up_pence=0,
            payment_method_id=None,
            actor=None,
            now=now,
        )
    with pytest.raises(ValueError, match="unknown payment backend"):
        payments.on_booking_completed(
            booking=made.booking, charged_pence=1, now=now, backend="paypal"
        )
