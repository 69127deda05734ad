"""The whole journey through the bookings service with the Stripe backend, against
localstripe: request with a card top-up → accept → complete for less time → capture the
card's part only; a cancelled, declined or expired request releases the card; a dispute
settled by an officer pays the card's part back to the card."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import requests

from app.clock import london_wall_clock
from app.extensions import db
from app.models import Role
from booking.models.bookings import BookingStatus
from booking.models.payments import PaymentStatus
from booking.services import bookings, ledger, payments
from booking.services.reconciliation import ledger_card_pence
from tests.booking.conftest import STRIPE_TEST_KEY
from tests.booking.factories_budgets import make_budget, make_carer
from tests.booking.factories_payments import deliver_outbox, make_card, remote_intent
from tests.booking.factories_workers import make_worker
from tests.factories import make_user

STRIPE = payments.STRIPE


def _slot(now: datetime) -> tuple[datetime, datetime]:
    day = (now + timedelta(days=7)).date()
    day = day + timedelta(days=(1 - day.weekday()) % 7)  # a Tuesday
    return london_wall_clock(day, time(10, 0)), london_wall_clock(day, time(12, 0))


def _request(localstripe: str, now: datetime) -> Any:
    carer = make_carer()
    assert carer.council is not None
    worker = make_worker(carer.council, rate=2000, today=now.date())
    make_budget(carer, award_pence=1500, now=now)
    starts_at, ends_at = _slot(now)
    booking = bookings.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=starts_at,
        ends_at=ends_at,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=carer,
        now=now,
        top_up=True,
        payment_method_id=make_card(localstripe),
        payment_backend=STRIPE,
    )
    return booking, worker


def test_book_with_a_top_up_then_complete_captures_the_card_part(
    localstripe: str, now: datetime
) -> None:
    booking, worker = _request(localstripe, now)
    assert booking.status is BookingStatus.REQUESTED
    assert booking.top_up_pence == booking.price_pence - 1500
    deliver_outbox(now)
    payment = payments.payment_for_booking(booking.id)
    assert payment is not None
    assert payment.status is PaymentStatus.AUTHORISED

    bookings.accept_booking(booking.id, worker=worker, now=now)
    # The break ran 30 minutes short: three quarters of the price.
    charged_expected = booking.price_pence * 3 // 4
    bookings.complete_booking(
        booking.id,
        worker=worker,
        actual_starts_at=booking.starts_at,
        actual_ends_at=booking.ends_at - timedelta(minutes=30),
        now=booking.ends_at,
        payment_backend=STRIPE,
    )
    db.session.refresh(booking)
    assert booking.charged_pence == charged_expected
    deliver_outbox(booking.ends_at)

    db.session.refresh(payment)
    card_part = max(0, charged_expected - 1500)
    assert payment.status is PaymentStatus.CAPTURED
    assert payment.captured_pence == card_part
    assert payment.stripe_payment_intent_id
    remote = requests.get(
        f"{localstripe}/v1/payment_intents/{payment.stripe_payment_intent_id}",
        auth=(STRIPE_TEST_KEY, ""),
        params={"expand[]": "latest_charge"},
        timeout=5,
    ).json()
    assert remote["status"] == "succeeded"
    assert (
        remote["latest_charge"]["amount"] - remote["latest_charge"]["amount_refunded"] == card_part
    )
    assert ledger_card_pence(payment) == card_part
    assert booking.budget_id is not None
    assert ledger.balance(booking.budget_id).available_pence == 0  # the budget paid its 1500


def test_cancelling_a_request_releases_the_card(localstripe: str, now: datetime) -> None:
    booking, _worker = _request(localstripe, now)
    deliver_outbox(now)
    payment = payments.payment_for_booking(booking.id)
    assert payment is not None
    assert payment.status is PaymentStatus.AUTHORISED

    bookings.cancel_booking(booking.id, actor=booking.carer, now=now, payment_backend=STRIPE)
    deliver_outbox(now)

    db.session.refresh(payment)
    assert payment.status is PaymentStatus.CANCELLED
    assert payment.stripe_status == "canceled"
    assert ledger.balance(booking.budget_id).available_pence == 1500


def _authorised(localstripe: str, now: datetime) -> tuple[Any, Any, Any]:
    booking, worker = _request(localstripe, now)
    deliver_outbox(now)
    payment = payments.payment_for_booking(booking.id)
    assert payment is not None
    assert payment.status is PaymentStatus.AUTHORISED
    assert payment.stripe_payment_intent_id
    assert remote_intent(localstripe, payment.stripe_payment_intent_id)["status"] == (
        "requires_capture"
    )
    return booking, worker, payment


def test_declining_a_request_releases_the_card(localstripe: str, now: datetime) -> None:
    booking, worker, payment = _authorised(localstripe, now)

    bookings.decline_booking(booking.id, worker=worker, now=now, payment_backend=STRIPE)
    deliver_outbox(now)

    db.session.refresh(payment)
    assert payment.status is PaymentStatus.CANCELLED
    assert remote_intent(localstripe, payment.stripe_payment_intent_id)["status"] == "canceled"
    assert payment.stripe_status == "canceled"
    assert ledger.balance(booking.budget_id).available_pence == 1500
    assert ledger_card_pence(payment) == 0


def test_an_unanswered_request_expires_and_releases_the_card(
    localstripe: str, now: datetime
) -> None:
    booking, _worker, payment = _authorised(localstripe, now)
    assert booking.respond_by is not None

    assert bookings.expire_requests(now=booking.respond_by, payment_backend=STRIPE) == 1
    deliver_outbox(booking.respond_by)

    db.session.refresh(booking)
    db.session.refresh(payment)
    assert booking.status is BookingStatus.EXPIRED
    assert payment.status is PaymentStatus.CANCELLED
    assert remote_intent(localstripe, payment.stripe_payment_intent_id)["status"] == "canceled"
    assert ledger.balance(booking.budget_id).available_pence == 1500


def test_a_dispute_settled_by_the_officer_pays_the_card_back_first(
    localstripe: str, now: datetime
) -> None:
    booking, worker, payment = _authorised(localstripe, now)
    bookings.accept_booking(booking.id, worker=worker, now=now)
    bookings.complete_booking(
        booking.id,
        worker=worker,
        actual_starts_at=booking.starts_at,
        actual_ends_at=booking.ends_at,
        now=booking.ends_at,
        payment_backend=STRIPE,
    )
    deliver_outbox(booking.ends_at)
    db.session.refresh(payment)
    card_part = booking.price_pence - 1500
    assert (payment.status, payment.captured_pence) == (PaymentStatus.CAPTURED, card_part)

    later = booking.ends_at + timedelta(hours=2)
    bookings.dispute_booking(
        booking.id,
        actor=booking.carer,
        reason="The worker left an hour early.",
        now=later,
        payment_backend=STRIPE,
    )
    officer = make_user(Role.COUNCIL_OFFICER, council=booking.carer.council)
    refund = card_part + 500  # more than the card paid: the rest goes back to the budget
    bookings.resolve_dispute(
        booking.id,
        officer=officer,
        refund_pence=refund,
        note="Agreed with the carer.",
        now=later,
        payment_backend=STRIPE,
    )
    assert deliver_outbox(later)["sent"] >= 1

    db.session.refresh(payment)
    assert payment.refunded_pence == card_part
    charge = remote_intent(localstripe, payment.stripe_payment_intent_id)["latest_charge"]
    assert (charge["amount"], charge["amount_refunded"]) == (card_part, card_part)
    assert ledger_card_pence(payment) == 0
    # The budget paid 1500 and gets 500 of it back; the card got back all it paid.
    assert ledger.balance(booking.budget_id).available_pence == 500
