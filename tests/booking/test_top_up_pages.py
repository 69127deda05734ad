"""Paying the difference by card from the booking pages: the check page offers it when the
budget is short and card payments are on, the confirmed booking goes to the card page,
and nothing is written when the carer has not chosen it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import Council, Role
from booking.models.bookings import Booking
from booking.models.budgets import LedgerEntry, LedgerKind
from booking.models.payments import Payment, PaymentStatus
from booking.services import ledger
from tests.booking.factories_bookings import NOW, budget_of, council, make_carer, make_worker
from tests.factories import make_user
from tests.helpers import sign_in

FORM = {
    "step": "check",
    "day": ["25", "11", "2026"],  # Wednesday, 10:00 to 13:00 UK time: £60.00 at £20 an hour
    "start": "10:00",
    "end": "13:00",
    "weeks": "1",
    "postcode": "LS6 2AB",
    "address": "1 Test Street",
    "support_kind": "",
    "notes": "",
}
OFFER = "I will pay £20.00 by card"


@pytest.fixture(autouse=True)
def _frozen() -> Any:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def short_of_money() -> tuple[Any, Any]:
    """A carer with £40.00 left and a worker whose 3-hour break costs £60.00."""
    place = council()
    return make_carer(place, award=4_000), make_worker(place, name="Priya Worker")


def _check(client: FlaskClient, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    page = client.post("/bookings/new", data=data)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    token = re.search(r'name="form_token" value="([^"]+)"', html)
    assert token is not None, html
    return html, {**data, "step": "confirm", "form_token": token.group(1)}


def _count(model: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_short_budget_is_topped_up_by_card_from_the_pages(
    client: FlaskClient, stripe_config: dict[str, Any], short_of_money: tuple[Any, Any]
) -> None:
    carer, worker = short_of_money
    sign_in(client, carer)
    page, confirm = _check(client, {**FORM, "worker_id": worker.id, "carer_id": carer.id})
    assert "Paying the difference by card" in page
    assert OFFER in page
    assert "charged after the break, and only for the time the worker actually stays" in page

    booked = client.post("/bookings/new", data={**confirm, "top_up": "y"})

    booking = db.session.scalar(select(Booking))
    assert booking is not None
    assert booked.status_code == 302
    assert booked.headers["Location"].endswith(f"/payments/bookings/{booking.id}/card")
    assert booking.top_up_pence == 2_000
    payment = db.session.scalar(select(Payment).where(Payment.booking_id == booking.id))
    assert payment is not None
    assert payment.status is PaymentStatus.AWAITING_CARD
    assert payment.amount_pence == 2_000
    top_up = db.session.scalar(
        select(LedgerEntry).where(
            LedgerEntry.booking_id == booking.id, LedgerEntry.kind == LedgerKind.TOP_UP
        )
    )
    assert top_up is not None
    assert top_up.amount_pence == 2_000
    balance = ledger.balance(budget_of(carer))
    assert balance.held_pence == 6_000
    assert balance.available_pence == 0

    card_page = client.get(booked.headers["Location"]).get_data(as_text=True)
    assert "Now enter your card details to pay £20.00" in card_page
    detail = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert "We still need your card details" in detail
    assert f'href="/payments/bookings/{booking.id}/card"' in detail
    assert "Pay £20.00 by card" in detail

    # Once the card is in, the detail page stops asking for it.
    payment.status = PaymentStatus.AUTHORISED
    db.session.commit()
    assert "Pay £20.00 by card" not in client.get(f"/bookings/{booking.id}").get_data(as_text=True)


def test_confirming_without_choosing_the_card_writes_nothing(
    client: FlaskClient, stripe_config: dict[str, Any], short_of_money: tuple[Any, Any]
) -> None:
    carer, worker = short_of_money
    sign_in(client, carer)
    _page, confirm = _check(client, {**FORM, "worker_id": worker.id, "carer_id": carer.id})

    refused = client.post("/bookings/new", data=confirm)

    html = refused.get_data(as_text=True)
    assert refused.status_code == 200
    assert "There is a problem" in html
    assert "only £40.00 is left in your budget" in html
    assert _count(Booking) == 0
    assert _count(Payment) == 0
    assert ledger.balance(budget_of(carer)).available_pence == 4_000


def test_without_card_payments_the_page_does_not_offer_them(
    client: FlaskClient, short_of_money: tuple[Any, Any]
) -> None:
    """The offline `ledger` backend has no card entry: the carer is told to shorten the
    break, and a hand-made top_up field books nothing."""
    carer, worker = short_of_money
    sign_in(client, carer)
    page, confirm = _check(client, {**FORM, "worker_id": worker.id, "carer_id": carer.id})
    assert OFFER not in page
    assert "Choose a shorter break, or ask the council for help" in page

    refused = client.post("/bookings/new", data={**confirm, "top_up": "y"})

    assert refused.status_code == 200
    assert "There is a problem" in refused.get_data(as_text=True)
    assert _count(Booking) == 0
    assert _count(Payment) == 0


def test_regular_breaks_cannot_be_part_paid_by_card(
    client: FlaskClient, stripe_config: dict[str, Any], short_of_money: tuple[Any, Any]
) -> None:
    carer, worker = short_of_money
    sign_in(client, carer)
    data = {**FORM, "weeks": "2", "worker_id": worker.id, "carer_id": carer.id}
    page, confirm = _check(client, data)
    assert OFFER not in page
    assert "which works for one break at a time" in page

    refused = client.post("/bookings/new", data={**confirm, "top_up": "y"})

    html = refused.get_data(as_text=True)
    assert refused.status_code == 200
    assert "Choose just this once to pay part by card" in html
    assert _count(Booking) == 0
    assert _count(Payment) == 0


def test_a_covered_break_offers_no_card(client: FlaskClient, stripe_config: dict[str, Any]) -> None:
    place = council()
    carer, worker = make_carer(place), make_worker(place)
    sign_in(client, carer)
    page, confirm = _check(client, {**FORM, "worker_id": worker.id, "carer_id": carer.id})
    assert "Paying the difference by card" not in page

    booked = client.post("/bookings/new", data={**confirm, "top_up": "y"})

    booking = db.session.scalar(select(Booking))
    assert booking is not None
    assert booked.headers["Location"].endswith(f"/bookings/{booking.id}")
    assert booking.top_up_pence == 0
    assert _count(Payment) == 0
    assert NOW + timedelta(days=1) < booking.starts_at


def test_council_staff_booking_by_phone_are_not_offered_the_card(
    client: FlaskClient, stripe_config: dict[str, Any], short_of_money: tuple[Any, Any]
) -> None:
    """Card details are typed by the carer on the card page, which staff cannot open, so
    a booking taken by phone never asks for a card (and a hand-made field books nothing)."""
    carer, worker = short_of_money
    carer.reference = "CR-88"
    db.session.commit()
    officer = make_user(Role.COUNCIL_OFFICER, council=db.session.get(Council, carer.council_id))
    sign_in(client, officer)
    data = {**FORM, "worker_id": worker.id, "carer_reference": "CR-88", "carer_id": "0"}
    page = client.post("/bookings/by-phone", data=data).get_data(as_text=True)
    token = re.search(r'name="form_token" value="([^"]+)"', page)
    assert token is not None, page
    assert OFFER not in page
    assert "£20.00 would need to be paid by card" in page

    refused = client.post(
        "/bookings/by-phone",
        data={**data, "step": "confirm", "form_token": token.group(1), "top_up": "y"},
    )

    assert refused.status_code == 200
    assert "There is a problem" in refused.get_data(as_text=True)
    assert _count(Booking) == 0
    assert _count(Payment) == 0


def test_a_declined_card_is_asked_for_again_on_the_break_page(
    client: FlaskClient, stripe_config: dict[str, Any], short_of_money: tuple[Any, Any]
) -> None:
    carer, worker = short_of_money
    sign_in(client, carer)
    _page, confirm = _check(client, {**FORM, "worker_id": worker.id, "carer_id": carer.id})
    client.post("/bookings/new", data={**confirm, "top_up": "y"})
    payment = db.session.scalar(select(Payment))
    assert payment is not None
    payment.status = PaymentStatus.FAILED
    db.session.commit()

    detail = client.get(f"/bookings/{payment.booking_id}").get_data(as_text=True)

    assert "Your bank did not accept the card" in detail
    assert f'href="/payments/bookings/{payment.booking_id}/card"' in detail
    assert "Pay £20.00 by card" in detail


def test_a_carer_a_few_pence_short_is_offered_stripes_smallest_charge(
    client: FlaskClient, stripe_config: dict[str, Any]
) -> None:
    place = council()
    carer = make_carer(place, award=5_990)  # 10p short of the £60.00 break
    worker = make_worker(place, name="Priya Worker")
    sign_in(client, carer)
    page, _ = _check(client, {**FORM, "worker_id": worker.id, "carer_id": carer.id})
    assert "I will pay £0.30 by card" in page
    assert "A card payment cannot be less than £0.30, so your budget pays a little less." in page
