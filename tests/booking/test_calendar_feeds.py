"""The iCalendar feeds: the carer's own feed (the worker's is in test_bookings_pages), what
each side sees in it, and a worker's feed costing a fixed number of queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine

from app.extensions import db
from app.models import User
from booking.services import bookings as service
from tests.booking.factories_bookings import NOW, council, make_carer, make_worker
from tests.helpers import sign_in

START = NOW + timedelta(days=2, hours=1)  # Wednesday 25 November 2026, 10:00 UK time


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _book(carer: User, worker: User, day: int = 0, *, notes: str | None = None):
    return service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=START + timedelta(days=day),
        ends_at=START + timedelta(days=day, hours=2),
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=notes,
        share_notes=bool(notes),
        actor=carer,
        now=NOW,
    )


def _feed_url(client, user: User) -> str:
    sign_in(client, user)
    page = client.post("/bookings/calendar-feed", data={"action": "create"}).get_data(as_text=True)
    found = re.search(r"https://carers\.example\.org(/bookings/calendar/[^<\s]+\.ics)", page)
    assert found is not None, page
    client.get("/auth/sign-out")
    return found.group(1)


def test_the_carers_feed_shows_their_breaks_and_never_notes(client) -> None:
    c = council()
    carer = make_carer(c)
    worker = make_worker(c, name="Priya Worker")
    requested = _book(carer, worker, notes="Has diabetes")
    confirmed = _book(carer, worker, day=1)
    service.accept_booking(confirmed.id, worker=worker, now=NOW)
    cancelled = _book(carer, worker, day=2)
    service.cancel_booking(cancelled.id, actor=carer, now=NOW)
    _book(make_carer(c), worker, day=3)  # someone else's break

    url = _feed_url(client, carer)
    body = client.get(url).get_data(as_text=True)
    assert body.count("BEGIN:VEVENT") == 2
    assert f"UID:booking-{requested.id}@carers.example.org" in body
    assert "SUMMARY:Break with Priya Worker (waiting for an answer)" in body
    assert "STATUS:TENTATIVE" in body
    assert f"UID:booking-{confirmed.id}@" in body
    assert "STATUS:CONFIRMED" in body
    assert f"UID:booking-{cancelled.id}@" not in body
    assert "LOCATION:LS6 2AB" in body
    assert "diabetes" not in body
    assert "Test Street" not in body

    # A new link switches the old one off.
    newer = _feed_url(client, carer)
    assert client.get(url).status_code == 404
    assert client.get(newer).status_code == 200


def test_a_workers_feed_shows_first_names_in_a_fixed_number_of_queries(client, sql_count) -> None:
    counts = []
    for n in (2, 6):
        c = council()
        worker = make_worker(c)
        first_names = []
        for day in range(n):
            carer = make_carer(c, name=f"Carer{day} Surname")
            first_names.append(f"Carer{day}")
            _book(carer, worker, day)
        url = _feed_url(client, worker)
        assert client.get(url).status_code == 200
        db.session.expunge_all()  # a real request starts with an empty session
        sql_count.clear()
        body = client.get(url).get_data(as_text=True)
        counts.append(len(sql_count))
        assert all(f"SUMMARY:Break with {name} (waiting" in body for name in first_names)
        assert "Surname" not in body
    assert counts[0] == counts[1], counts
