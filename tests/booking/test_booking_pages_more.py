"""More booking pages through the test client: the worker declining, the carer disputing a
completed break and the officer settling it, the carer approving extra time, and a regular
booking that could not book every week. Each checks the page and the rows behind it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage, Role
from booking.models.bookings import Booking, BookingStatus
from booking.models.budgets import LedgerEntry, LedgerKind
from booking.services import bookings as service
from booking.services import ledger
from tests.booking.factories_bookings import (
    NOW,
    RATE,
    budget_of,
    council,
    make_carer,
    make_worker,
)
from tests.factories import make_user
from tests.helpers import sign_in

START = NOW + timedelta(days=2, hours=1)  # Wednesday 25 November 2026, 10:00 UK time
END = START + timedelta(hours=3)
PRICE = 3 * RATE


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def setup():
    c = council()
    return c, make_carer(c), make_worker(c, name="Priya Worker")


def _request(carer, worker, *, starts=START, ends=END) -> Booking:  # type: ignore[no-untyped-def]
    return service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=starts,
        ends_at=ends,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=carer,
        now=NOW,
    )


def _entries(booking: Booking) -> list[tuple[LedgerKind, int]]:
    return [
        (e.kind, e.amount_pence)
        for e in db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.booking_id == booking.id).order_by(LedgerEntry.id)
        )
    ]


def _sms_to(user) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        m.payload["body"]
        for m in db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == user.phone)
        )
    ]


def test_worker_declines_a_request(client, setup) -> None:  # type: ignore[no-untyped-def]
    _c, carer, worker = setup
    booking = _request(carer, worker)
    assert ledger.balance(budget_of(carer)).held_pence == PRICE
    sign_in(client, worker)
    page = client.post(f"/bookings/{booking.id}/decline", follow_redirects=True)
    assert page.status_code == 200
    assert "You have said no to this break. The carer has been told." in page.get_data(as_text=True)
    db.session.expire_all()
    booking = db.session.get(Booking, booking.id)
    assert booking.status is BookingStatus.DECLINED
    assert _entries(booking) == [(LedgerKind.HOLD, -PRICE), (LedgerKind.RELEASE, PRICE)]
    balance = ledger.balance(budget_of(carer))
    assert balance.held_pence == 0
    assert balance.spent_pence == 0
    assert any("cannot do" in body and "returned" in body for body in _sms_to(carer))
    # Saying no twice changes nothing.
    again = client.post(f"/bookings/{booking.id}/decline", follow_redirects=True)
    assert again.status_code in (200, 409)
    assert _entries(booking) == [(LedgerKind.HOLD, -PRICE), (LedgerKind.RELEASE, PRICE)]


def _completed(carer, worker, *, actual_end=END) -> Booking:  # type: ignore[no-untyped-def]
    booking = _request(carer, worker)
    service.accept_booking(booking.id, worker=worker, now=NOW)
    return service.complete_booking(
        booking.id, worker=worker, actual_starts_at=START, actual_ends_at=actual_end, now=actual_end
    )


def test_carer_disputes_within_48_hours_and_officer_refunds(client, setup) -> None:  # type: ignore[no-untyped-def]
    c, carer, worker = setup
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    booking = _completed(carer, worker)
    assert ledger.balance(budget_of(carer)).spent_pence == PRICE
    with time_machine.travel(END + timedelta(hours=47), tick=False):
        sign_in(client, carer)
        form = client.get(f"/bookings/{booking.id}/dispute")
        assert form.status_code == 200
        empty = client.post(f"/bookings/{booking.id}/dispute", data={"reason": ""})
        assert "govuk-error-summary" in empty.get_data(as_text=True)
        sent = client.post(
            f"/bookings/{booking.id}/dispute",
            data={"reason": "They left an hour early"},
            follow_redirects=True,
        )
        assert sent.status_code == 200
        assert "A council officer will look at this" in sent.get_data(as_text=True)
    db.session.expire_all()
    booking = db.session.get(Booking, booking.id)
    assert booking.disputed_at is not None
    assert any("disputed" in body for body in _sms_to(officer))

    with time_machine.travel(END + timedelta(days=3), tick=False):
        sign_in(client, officer)
        page = client.get(f"/bookings/{booking.id}/resolve")
        assert page.status_code == 200
        assert "They left an hour early" in page.get_data(as_text=True)
        bad = client.post(f"/bookings/{booking.id}/resolve", data={"refund": "lots"})
        assert "govuk-error-summary" in bad.get_data(as_text=True)
        assert not any(k is LedgerKind.REFUND for k, _ in _entries(booking))
        done = client.post(
            f"/bookings/{booking.id}/resolve",
            data={"refund": "20.00", "note": "Left early"},
            follow_redirects=True,
        )
        assert done.status_code == 200
        assert "The dispute is settled and the carer has been told." in done.get_data(as_text=True)
    db.session.expire_all()
    booking = db.session.get(Booking, booking.id)
    assert (LedgerKind.REFUND, 2000) in _entries(booking)
    assert ledger.balance(budget_of(carer)).spent_pence == PRICE - 2000
    assert booking.final_at is not None


def test_dispute_after_48_hours_is_refused(client, setup) -> None:  # type: ignore[no-untyped-def]
    _c, carer, worker = setup
    booking = _completed(carer, worker)
    with time_machine.travel(END + timedelta(hours=49), tick=False):
        sign_in(client, carer)
        late = client.post(f"/bookings/{booking.id}/dispute", data={"reason": "Late"})
        assert "The 48 hours to dispute this break have passed" in late.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).disputed_at is None


def test_carer_approves_extra_time(client, setup) -> None:  # type: ignore[no-untyped-def]
    _c, carer, worker = setup
    booking = _completed(carer, worker, actual_end=END + timedelta(hours=1))
    assert (booking.charged_pence, booking.extra_pence) == (PRICE, RATE)
    assert ledger.balance(budget_of(carer)).spent_pence == PRICE
    with time_machine.travel(END + timedelta(hours=2), tick=False):
        sign_in(client, carer)
        detail = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
        assert "£20.00" in detail  # the extra hour waiting for approval
        page = client.post(f"/bookings/{booking.id}/approve-extra", follow_redirects=True)
        assert page.status_code == 200
        assert "The extra time has been paid from your budget." in page.get_data(as_text=True)
    db.session.expire_all()
    booking = db.session.get(Booking, booking.id)
    assert booking.extra_approved_at is not None
    assert booking.charged_pence == PRICE + RATE
    captures = [amount for kind, amount in _entries(booking) if kind is LedgerKind.CAPTURE]
    assert captures == [-PRICE, -RATE]
    assert ledger.balance(budget_of(carer)).spent_pence == PRICE + RATE


def test_regular_booking_shows_the_weeks_it_could_not_book(client, setup) -> None:  # type: ignore[no-untyped-def]
    c, carer, worker = setup
    other = make_carer(c)
    taken = _request(
        other, worker, starts=START + timedelta(weeks=1), ends=END + timedelta(weeks=1)
    )
    sign_in(client, carer)
    data = {
        "step": "check",
        "worker_id": worker.id,
        "carer_id": carer.id,
        "day": ["25", "11", "2026"],
        "start": "10:00",
        "end": "13:00",
        "weeks": "3",
        "postcode": "LS6 2AB",
        "address": "1 Test Street",
        "support_kind": "",
        "notes": "",
    }
    checked = client.post("/bookings/new", data=data)
    assert checked.status_code == 200
    token = re.search(r'name="form_token" value="([^"]+)"', checked.get_data(as_text=True))
    assert token is not None
    done = client.post(
        "/bookings/new", data={**data, "step": "confirm", "form_token": token.group(1)}
    )
    assert done.status_code == 200
    html = done.get_data(as_text=True)
    assert "Your regular breaks" in html
    assert html.count("Not booked") == 1
    assert "25 November 2026" in html
    assert "2 December 2026" in html
    assert "9 December 2026" in html

    mine = list(
        db.session.scalars(
            select(Booking).where(Booking.carer_id == carer.id).order_by(Booking.starts_at)
        )
    )
    assert [b.starts_at for b in mine] == [START, START + timedelta(weeks=2)]
    assert all(b.status is BookingStatus.REQUESTED for b in mine)
    held = [amount for b in mine for kind, amount in _entries(b) if kind is LedgerKind.HOLD]
    assert held == [-PRICE, -PRICE]
    assert ledger.balance(budget_of(carer)).held_pence == 2 * PRICE
    assert taken.carer_id == other.id
    row = re.search(r"Not booked</td>\s*<td[^>]*>([^<]+)</td>", html)
    assert row is not None, html
    assert "someone has just booked this worker for that time" in row.group(1)


def test_the_check_page_shows_the_balance_after_all_the_weeks(client, setup) -> None:  # type: ignore[no-untyped-def]
    _c, carer, worker = setup
    sign_in(client, carer)
    data = {
        "step": "check",
        "worker_id": worker.id,
        "carer_id": carer.id,
        "day": ["25", "11", "2026"],
        "start": "10:00",
        "end": "13:00",
        "weeks": "3",
        "postcode": "LS6 2AB",
        "address": "1 Test Street",
        "support_kind": "",
        "notes": "",
    }
    html = client.post("/bookings/new", data=data).get_data(as_text=True)
    rows = dict(
        re.findall(
            r'<dt class="govuk-summary-list__key">\s*(.*?)\s*</dt>\s*'
            r'<dd class="govuk-summary-list__value">\s*(.*?)\s*</dd>',
            html,
            re.S,
        )
    )
    assert rows["Left in the budget now"] == "£1,000.00"
    assert rows["Left after all 3 breaks"] == "£820.00"  # 3 × £60.00, not one week's
    assert rows["Price"] == "£60.00 for the first week, £180.00 for all 3 weeks"
    assert "Left after this break" not in html


def test_the_worker_cannot_accept_until_the_card_part_is_paid(client, setup) -> None:  # type: ignore[no-untyped-def]
    from booking.models.payments import PaymentStatus
    from booking.services import payments

    c, _carer, worker = setup
    poor = make_carer(c, award=2000)
    booking = service.request_booking(
        carer=poor,
        worker_id=worker.id,
        starts_at=START,
        ends_at=END,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=poor,
        now=NOW,
        top_up=True,
        payment_backend=payments.STRIPE,
    )
    sign_in(client, worker)
    accept_form = f'action="/bookings/{booking.id}/accept"'
    listed = client.get("/bookings/requests").get_data(as_text=True)
    assert "that payment has not gone through yet" in listed
    assert accept_form not in listed
    detail = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert "The carer is still paying part of this break by card" in detail
    page = client.post(f"/bookings/{booking.id}/accept", follow_redirects=True)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "so you cannot accept it yet" in text
    assert "You have accepted this break" not in text
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).status is BookingStatus.REQUESTED

    payment = payments.payment_for_booking(booking.id)
    assert payment is not None
    payment.status = PaymentStatus.AUTHORISED
    db.session.commit()
    assert "still paying part" not in client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    listed = client.get("/bookings/requests").get_data(as_text=True)
    assert accept_form in listed
    assert "that payment has not gone through yet" not in listed
    accepted = client.post(f"/bookings/{booking.id}/accept", follow_redirects=True)
    assert "You have accepted this break" in accepted.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).status is BookingStatus.CONFIRMED


def test_the_carer_says_the_worker_did_not_come(client, setup) -> None:  # type: ignore[no-untyped-def]
    c, carer, worker = setup
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    booking = _request(carer, worker)
    service.accept_booking(booking.id, worker=worker, now=NOW)
    sign_in(client, carer)
    before = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert "The worker did not come" not in before  # not until the break is over
    early = client.post(f"/bookings/{booking.id}/no-show", data={})
    assert "once the break&#39;s time is over" in early.get_data(as_text=True)
    with time_machine.travel(END + timedelta(hours=2), tick=False):
        sign_in(client, worker)
        assert "The worker did not come" not in client.get(f"/bookings/{booking.id}").get_data(
            as_text=True
        )
        assert client.get(f"/bookings/{booking.id}/no-show").status_code == 403
        sign_in(client, carer)
        detail = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
        assert f'href="/bookings/{booking.id}/no-show"' in detail
        form = client.get(f"/bookings/{booking.id}/no-show").get_data(as_text=True)
        assert "Did Priya Worker not come" in form
        done = client.post(
            f"/bookings/{booking.id}/no-show",
            data={"reason": "Waited all morning"},
            follow_redirects=True,
        )
        text = done.get_data(as_text=True)
        assert "We have recorded that the worker did not come" in text
        assert "No show" in text
    db.session.expire_all()
    booking = db.session.get(Booking, booking.id)
    assert booking.status is BookingStatus.NO_SHOW
    assert booking.cancel_reason == "Waited all morning"
    assert _entries(booking) == [(LedgerKind.HOLD, -PRICE), (LedgerKind.RELEASE, PRICE)]
    assert ledger.balance(budget_of(carer)).held_pence == 0
    assert any("did not come" in body for body in _sms_to(officer))
    # The officer can see it; an officer can also record it for another break.
    with time_machine.travel(END + timedelta(hours=3), tick=False):
        sign_in(client, officer)
        assert "No show" in client.get(f"/bookings/{booking.id}").get_data(as_text=True)
