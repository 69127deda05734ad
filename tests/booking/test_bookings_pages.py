"""The booking pages: the full journey in a test client, double-submitting the form, GOV.UK
error summaries with nothing written, cancelling with the policy shown, the calendar feed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from flask import Flask, url_for
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Role
from booking.models.bookings import Booking, BookingConcern, BookingStatus
from booking.services import bookings as service
from booking.services import ledger
from tests.booking.factories_bookings import (
    NOW,
    RATE,
    budget_of,
    council,
    make_carer,
    make_representative,
    make_worker,
)
from tests.factories import make_user
from tests.helpers import sign_in

START = NOW + timedelta(days=2, hours=1)  # Wednesday 25 November 2026, 10:00 UK time
END = START + timedelta(hours=3)
FORM = {
    "step": "check",
    "day": ["25", "11", "2026"],
    "start": "10:00",
    "end": "13:00",
    "weeks": "1",
    "postcode": "LS6 2AB",
    "address": "1 Test Street",
    "support_kind": "",
    "notes": "Likes tea",
}


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def setup():
    c = council()
    return c, make_carer(c), make_worker(c, name="Priya Worker")


def _url(app: Flask, endpoint: str, **values) -> str:
    with app.test_request_context():
        return url_for(endpoint, **values)


def _check_then_confirm(client, data):
    checked = client.post("/bookings/new", data=data)
    assert checked.status_code == 200
    page = checked.get_data(as_text=True)
    token = re.search(r'name="form_token" value="([^"]+)"', page)
    assert token is not None, page
    return page, {**data, "step": "confirm", "form_token": token.group(1)}


def test_full_journey_through_the_pages(app, client, setup) -> None:
    _c, carer, worker = setup
    sign_in(client, carer)
    found = client.get(
        "/workers/find",
        query_string={
            "day": ["25", "11", "2026"],
            "start": "10:00",
            "end": "13:00",
            "postcode": "LS6 2AB",
        },
    )
    found_html = found.get_data(as_text=True)
    assert "Priya Worker" in found_html
    # The carer follows the result's "Book" link: the booking form starts from that slot.
    link = re.search(r'href="(/bookings/new\?[^"]+)"[^>]*>Book Priya Worker', found_html)
    assert link is not None, found_html
    form = client.get(link.group(1).replace("&amp;", "&"))
    assert form.status_code == 200
    form_html = form.get_data(as_text=True)
    assert f'name="worker_id" type="text" value="{worker.id}"' in form_html
    for value in ('value="10:00"', 'value="13:00"', 'value="25"', 'value="11"', 'value="2026"'):
        assert value in form_html
    assert 'value="LS6 2AB"' in form_html
    page, confirm = _check_then_confirm(
        client, {**FORM, "worker_id": worker.id, "carer_id": carer.id}
    )
    assert "£60.00" in page  # the price
    assert "£940.00" in page  # the balance after it
    assert "Cancelling is free until" in page
    assert "£15.00" in page
    booked = client.post("/bookings/new", data=confirm)
    assert booked.status_code == 302
    booking = db.session.scalar(select(Booking))
    assert booking.status is BookingStatus.REQUESTED

    sign_in(client, worker)
    assert "Waiting for your answer" in client.get("/bookings/requests").get_data(as_text=True)
    assert client.post(f"/bookings/{booking.id}/accept").status_code == 302
    db.session.refresh(booking)
    assert booking.status is BookingStatus.CONFIRMED
    with time_machine.travel(END + timedelta(minutes=5), tick=False):
        sign_in(client, worker)  # a fresh session on the day of the break
        done = client.post(
            f"/bookings/{booking.id}/complete",
            data={"actual_start": "10:00", "actual_end": "13:00"},
        )
        assert done.status_code == 302
        db.session.refresh(booking)
        assert booking.status is BookingStatus.COMPLETED
        assert booking.charged_pence == 3 * RATE

        sign_in(client, carer)
        statement = client.get(_url(app, "budgets.statement")).get_data(as_text=True)
    assert "Paid for a break" in statement
    assert "-£60.00" in statement or "−£60.00" in statement


def test_double_submitting_the_form_books_once(client, setup) -> None:
    _c, carer, worker = setup
    sign_in(client, carer)
    _page, confirm = _check_then_confirm(
        client, {**FORM, "worker_id": worker.id, "carer_id": carer.id}
    )
    first = client.post("/bookings/new", data=confirm)
    second = client.post("/bookings/new", data=confirm)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert db.session.scalar(select(func.count(Booking.id))) == 1
    assert ledger.balance(budget_of(carer)).held_pence == 3 * RATE


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": "25:00"}, "Enter a time in 24-hour format"),
        ({"day": ["31", "2", "2026"]}, "Date of the break"),
        ({"end": "10:30"}, "at least 1 hour"),
        ({"postcode": ""}, "Enter the postcode"),
        ({"day": ["23", "11", "2026"]}, "at least 2 hours"),
    ],
)
def test_bad_input_shows_error_summary_and_writes_nothing(client, setup, changes, message) -> None:
    _c, carer, worker = setup
    sign_in(client, carer)
    for step in ("check", "confirm"):
        response = client.post(
            "/bookings/new",
            data={
                **FORM,
                "worker_id": worker.id,
                "carer_id": carer.id,
                **changes,
                "step": step,
                "form_token": "t" * 20,
            },
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "govuk-error-summary" in page
        assert "There is a problem" in page
        assert message in page
    assert db.session.scalar(select(func.count(Booking.id))) == 0
    assert ledger.balance(budget_of(carer)).held_pence == 0


def test_representative_books_on_behalf(client, setup) -> None:
    _c, carer, worker = setup
    rep = make_representative(carer)
    sign_in(client, rep)
    assert carer.name in client.get("/bookings/new").get_data(as_text=True)
    _page, confirm = _check_then_confirm(
        client, {**FORM, "worker_id": worker.id, "carer_id": carer.id}
    )
    assert client.post("/bookings/new", data=confirm).status_code == 302
    booking = db.session.scalar(select(Booking))
    assert booking.carer_id == carer.id
    assert booking.requested_by_id == rep.id
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "booking.requested"))
    assert entry.on_behalf_of_id == carer.id


def test_council_staff_take_a_booking_by_phone(client, setup) -> None:
    c, carer, worker = setup
    carer.reference = "CR-77"
    db.session.commit()
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    sign_in(client, officer)
    data = {**FORM, "worker_id": worker.id, "carer_reference": "CR-77", "carer_id": "0"}
    checked = client.post("/bookings/by-phone", data=data)
    token = re.search(r'name="form_token" value="([^"]+)"', checked.get_data(as_text=True)).group(1)
    assert (
        client.post(
            "/bookings/by-phone", data={**data, "step": "confirm", "form_token": token}
        ).status_code
        == 302
    )
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "booking.requested"))
    assert (entry.actor_id, entry.on_behalf_of_id, entry.details["by_role"]) == (
        officer.id,
        carer.id,
        "council_by_phone",
    )
    unknown = client.post("/bookings/by-phone", data={**data, "carer_reference": "NOPE"})
    assert "There is no carer with that reference" in unknown.get_data(as_text=True)


def _booking(carer, worker, *, confirm=True):
    booking = service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=START,
        ends_at=END,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=carer,
        now=NOW,
    )
    if confirm:
        service.accept_booking(booking.id, worker=worker, now=NOW)
    return booking


def test_cancel_page_shows_fee_then_cancels(client, setup) -> None:
    _c, carer, worker = setup
    booking = _booking(carer, worker)
    with time_machine.travel(START - timedelta(hours=3), tick=False):
        sign_in(client, carer)
        page = client.get(f"/bookings/{booking.id}/cancel").get_data(as_text=True)
        assert "less than 24 hours" in page
        assert "£15.00" in page
        assert client.post(f"/bookings/{booking.id}/cancel", data={"reason": ""}).status_code == 302
    db.session.refresh(booking)
    assert booking.status is BookingStatus.CANCELLED
    assert booking.fee_pence == 1500


def test_worker_cancel_shows_carer_other_workers(client, setup) -> None:
    c, carer, worker = setup
    spare = make_worker(c, name="Tom Spare")
    booking = _booking(carer, worker)
    sign_in(client, worker)
    cancelled = client.post(f"/bookings/{booking.id}/cancel", data={}, follow_redirects=True)
    told = cancelled.get_data(as_text=True)
    # The worker is told what happened, not promised a list only the carer sees.
    assert "The carer has been told and offered 1 other workers who are free then" in told
    assert "shown below" not in told
    assert "Book Tom Spare" not in told
    sign_in(client, carer)
    page = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert "Other workers free at this time" in page
    link = re.search(r'href="(/bookings/new\?[^"]+)">Book Tom Spare', page)
    assert link is not None, page
    # The link fills in the same slot: date, times, place and who it is for.
    form = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert f'name="worker_id" type="text" value="{spare.id}"' in form
    for value in ('value="25"', 'value="11"', 'value="2026"', 'value="10:00"', 'value="13:00"'):
        assert value in form
    assert 'value="LS6 2AB"' in form
    assert "1 Test Street" in form
    assert f'name="carer_id" value="{carer.id}"' in form


def test_carer_cancelling_is_just_told_it_is_cancelled(client, setup) -> None:
    _c, carer, worker = setup
    booking = _booking(carer, worker)
    sign_in(client, carer)
    page = client.post(f"/bookings/{booking.id}/cancel", data={}, follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "The break is cancelled." in text
    assert "other workers" not in text


def test_review_concern_and_officer_pages(client, setup) -> None:
    c, carer, worker = setup
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    booking = _booking(carer, worker)
    service.complete_booking(
        booking.id, worker=worker, actual_starts_at=START, actual_ends_at=END, now=END
    )
    sign_in(client, carer)
    empty = client.post(f"/bookings/{booking.id}/review", data={})
    assert "Choose a rating" in empty.get_data(as_text=True)
    assert (
        client.post(
            f"/bookings/{booking.id}/review", data={"rating": "5", "text": "Kind and calm"}
        ).status_code
        == 302
    )
    assert (
        client.post(
            f"/bookings/{booking.id}/concern", data={"text": "Worried about bruising"}
        ).status_code
        == 302
    )
    assert db.session.scalar(select(func.count(BookingConcern.id))) == 1
    sign_in(client, officer)
    assert "Kind and calm" in client.get("/bookings/reviews").get_data(as_text=True)
    assert "Worried about bruising" in client.get("/bookings/concerns").get_data(as_text=True)
    sign_in(client, make_carer(c))
    assert client.get(f"/bookings/{booking.id}").status_code == 404


def test_book_again_link_from_past_breaks(client, setup) -> None:
    _c, carer, worker = setup
    booking = _booking(carer, worker)
    service.complete_booking(
        booking.id, worker=worker, actual_starts_at=START, actual_ends_at=END, now=END
    )
    sign_in(client, carer)
    page = client.get("/bookings/").get_data(as_text=True)
    link = re.search(r'href="(/bookings/new\?[^"]+)">Book again', page)
    assert link is not None
    again = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert f'value="{worker.id}"' in again
    assert 'value="10:00"' in again
    assert "1 Test Street" in again


def test_calendar_feed_secret_url_valid_ics_and_revocable(client, setup) -> None:
    _c, carer, worker = setup
    _booking(carer, worker)
    sign_in(client, worker)
    page = client.post("/bookings/calendar-feed", data={"action": "create"}).get_data(as_text=True)
    url = re.search(r"https://carers\.example\.org(/bookings/calendar/[^<\s]+\.ics)", page).group(1)
    client.get("/auth/sign-out")
    feed = client.get(url)
    assert feed.status_code == 200
    assert feed.headers["Content-Type"].startswith("text/calendar")
    body = feed.get_data(as_text=True)
    assert body.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:")
    assert body.endswith("END:VCALENDAR\r\n")
    assert all(len(line.encode()) <= 75 for line in body.split("\r\n"))
    assert "DTSTART:20261125T100000Z" in body
    assert "DTEND:20261125T130000Z" in body
    assert body.count("BEGIN:VEVENT") == 1
    assert "DTSTAMP:" in body
    assert "UID:booking-" in body
    sign_in(client, worker)
    client.post("/bookings/calendar-feed", data={"action": "revoke"})
    assert client.get(url).status_code == 404
    assert client.get("/bookings/calendar/not-a-token.ics").status_code == 404


def test_taken_favourite_slot_offers_the_waiting_list(client, setup) -> None:
    from booking.models.bookings import WaitingListEntry
    from booking.models.workers import Favourite

    c, carer, worker = setup
    _booking(make_carer(c), worker)
    db.session.add(
        Favourite(
            council_id=carer.council_id, carer_id=carer.id, worker_id=worker.id, created_at=NOW
        )
    )
    db.session.commit()
    sign_in(client, carer)
    page = client.post("/bookings/new", data={**FORM, "worker_id": worker.id, "carer_id": carer.id})
    text = page.get_data(as_text=True)
    assert "someone has just booked" in text
    assert "Tell me if it frees up" in text
    # The offer goes by e-mail to a carer with no mobile, so a text is not promised.
    assert "We can text you" not in text
    assert "by e-mail if we have no mobile number for you" in text
    data = {
        "worker_id": worker.id,
        "carer_id": carer.id,
        "day": ["25", "11", "2026"],
        "start": "10:00",
        "end": "13:00",
    }
    assert client.post("/bookings/waiting-list", data=data).status_code == 302
    entry = db.session.scalar(select(WaitingListEntry))
    assert (entry.carer_id, entry.starts_at, entry.ends_at) == (carer.id, START, END)


@pytest.mark.parametrize("number", ["99999999999999999999", "2147483648", "0", "-5"])
def test_an_impossible_worker_number_is_an_error_on_the_page_not_a_500(
    client, setup, number
) -> None:
    _c, carer, _worker = setup
    sign_in(client, carer)
    for step in ("check", "confirm"):
        response = client.post(
            "/bookings/new",
            data={**FORM, "worker_id": number, "carer_id": carer.id, "step": step},
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "There is a problem" in page
        assert "Enter the worker number shown on the worker&#39;s page" in page
        assert 'href="#worker_id"' in page
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_an_impossible_number_on_the_waiting_list_is_refused_kindly(client, setup) -> None:
    from booking.models.bookings import WaitingListEntry

    _c, carer, worker = setup
    sign_in(client, carer)
    data = {
        "worker_id": worker.id,
        "carer_id": carer.id,
        "day": ["25", "11", "2026"],
        "start": "10:00",
        "end": "13:00",
    }
    for changes in ({"worker_id": "99999999999999999999"}, {"carer_id": "99999999999999999999"}):
        response = client.post("/bookings/waiting-list", data={**data, **changes})
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "We could not add you to the waiting list" in page
    # A carer this person does not act for is refused, never swapped for another.
    other = make_carer(_c)
    response = client.post("/bookings/waiting-list", data={**data, "carer_id": other.id})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Choose who the break is for" in page
    assert db.session.scalar(select(func.count(WaitingListEntry.id))) == 0


def test_a_place_beyond_the_workers_travel_radius_is_shown_on_the_postcode(client, setup) -> None:
    _c, carer, worker = setup
    sign_in(client, carer)
    response = client.post(
        "/bookings/new",
        data={**FORM, "worker_id": worker.id, "carer_id": carer.id, "postcode": "TR1 1AA"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "There is a problem" in page
    assert "TR1 1AA is further away than Priya Worker travels" in page
    assert 'href="#postcode"' in page
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_the_worker_sees_notes_about_the_person_only_when_shared(client, setup) -> None:
    from tests.helpers import bearer

    _c, carer, worker = setup
    private = service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=START,
        ends_at=END,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes="Has diabetes",
        actor=carer,
        now=NOW,
    )
    shared = service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=START + timedelta(days=1),
        ends_at=END + timedelta(days=1),
        postcode="LS6 2AB",
        address="1 Test Street",
        notes="Loves gardening",
        share_notes=True,
        actor=carer,
        now=NOW,
    )
    sign_in(client, worker)
    hidden = client.get(f"/bookings/{private.id}").get_data(as_text=True)
    assert "Has diabetes" not in hidden
    assert "About the person cared for" not in hidden
    shown = client.get(f"/bookings/{shared.id}").get_data(as_text=True)
    assert "Loves gardening" in shown
    assert "About the person cared for" in shown
    worker_h = bearer(worker)
    assert (
        client.get(f"/api/v1/bookings/{private.id}", headers=worker_h).get_json()["notes"] is None
    )
    assert (
        client.get(f"/api/v1/bookings/{shared.id}", headers=worker_h).get_json()["notes"]
        == "Loves gardening"
    )
    listed = client.get("/api/v1/bookings", headers=worker_h).get_json()["bookings"]
    assert {b["id"]: b["notes"] for b in listed} == {
        private.id: None,
        shared.id: "Loves gardening",
    }
    # The carer always sees their own notes, and whether they are shared.
    sign_in(client, carer)
    own = client.get(f"/bookings/{private.id}").get_data(as_text=True)
    assert "Has diabetes" in own
    assert client.get(f"/api/v1/bookings/{private.id}", headers=bearer(carer)).get_json()[
        "notes"
    ] == ("Has diabetes")


def test_the_waiting_list_offer_link_fills_in_the_form(client, setup) -> None:
    from booking.models.bookings import WaitingListEntry
    from booking.models.workers import Favourite

    c, carer, worker = setup
    other = make_carer(c)
    taken = _booking(other, worker, confirm=False)
    db.session.add(
        Favourite(
            council_id=carer.council_id, carer_id=carer.id, worker_id=worker.id, created_at=NOW
        )
    )
    db.session.commit()
    sign_in(client, carer)
    data = {**FORM, "worker_id": worker.id, "carer_id": carer.id, "address": "7 Wait Road"}
    refused = client.post("/bookings/new", data=data).get_data(as_text=True)
    # The "Tell me if it frees up" form carries the place as well as the slot.
    wait_form = refused[refused.index('action="/bookings/waiting-list"') :]
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', wait_form))
    fields.pop("csrf_token", None)
    days = re.findall(r'name="day" value="(\d+)"', wait_form)
    assert (
        client.post("/bookings/waiting-list", data={**fields, "day": days})
        .headers["Location"]
        .endswith("/bookings/")
    )
    entry = db.session.scalar(select(WaitingListEntry))
    assert (entry.postcode, entry.address) == ("LS6 2AB", "7 Wait Road")

    service.cancel_booking(taken.id, actor=other, now=NOW)
    page = client.get("/bookings/").get_data(as_text=True)
    link = re.search(r'href="(/bookings/new\?[^"]+)">book it', page)
    assert link is not None, page
    form = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert f'name="worker_id" type="text" value="{worker.id}"' in form
    for value in ('value="25"', 'value="11"', 'value="2026"', 'value="10:00"', 'value="13:00"'):
        assert value in form
    assert 'value="LS6 2AB"' in form
    assert "7 Wait Road" in form
    assert f'name="carer_id" value="{carer.id}"' in form
