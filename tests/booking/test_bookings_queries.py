"""Lists of breaks run a fixed number of SQL statements however many rows they show: the
carer's breaks, the officer's reviews and concerns pages, and the calendar feed (no query per row for a worker's name or the person who raised a concern)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine

from app.extensions import db
from app.models import Council, Role, User
from booking.models.bookings import Booking
from booking.services import bookings as service
from tests.booking.factories_bookings import (
    NOW,
    council,
    make_carer,
    make_worker,
)
from tests.factories import make_user
from tests.helpers import sign_in

START = NOW + timedelta(days=2, hours=1)  # Wednesday 25 November 2026, 10:00 UK time


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _breaks(c: Council, carer: User, n: int, *, complete: bool = False) -> list[Booking]:
    """`n` breaks for the carer, each with a different worker, on different days."""
    made = []
    for day in range(n):
        worker = make_worker(c, name=f"Worker {day}")
        booking = service.request_booking(
            carer=carer,
            worker_id=worker.id,
            starts_at=START + timedelta(days=day),
            ends_at=START + timedelta(days=day, hours=2),
            postcode="LS6 2AB",
            address="1 Test Street",
            notes=None,
            actor=carer,
            now=NOW,
        )
        service.accept_booking(booking.id, worker=worker, now=NOW)
        if complete:
            service.complete_booking(
                booking.id,
                worker=worker,
                actual_starts_at=booking.starts_at,
                actual_ends_at=booking.ends_at,
                now=booking.ends_at,
            )
        made.append(booking)
    return made


def _count(client, sql_count: list[str], url: str, **kw) -> tuple[int, str]:
    assert client.get(url, **kw).status_code == 200  # warm up (session, user, roles)
    # A real request starts with an empty session: nothing the test made is at hand.
    db.session.expunge_all()
    sql_count.clear()
    response = client.get(url, **kw)
    assert response.status_code == 200
    return len(sql_count), response.get_data(as_text=True)


def test_your_breaks_page_names_workers_in_a_fixed_number_of_queries(client, sql_count) -> None:
    counts = []
    for n in (2, 6):
        c = council()
        carer = make_carer(c)
        _breaks(c, carer, n)
        sign_in(client, carer)
        count, page = _count(client, sql_count, "/bookings/")
        assert all(f"Worker {i}" in page for i in range(n))
        counts.append(count)
    assert counts[0] == counts[1], counts


def test_the_reviews_page_names_workers_in_a_fixed_number_of_queries(client, sql_count) -> None:
    counts = []
    for n in (2, 6):
        c = council()
        carer = make_carer(c)
        for booking in _breaks(c, carer, n, complete=True):
            service.review_booking(
                booking.id, actor=carer, rating=5, text="Kind", now=booking.ends_at
            )
        sign_in(client, make_user(Role.COUNCIL_OFFICER, council=c))
        count, page = _count(client, sql_count, "/bookings/reviews")
        assert all(f"Worker {i}" in page for i in range(n))
        counts.append(count)
    assert counts[0] == counts[1], counts


def test_the_concerns_page_names_who_raised_them_in_a_fixed_number_of_queries(
    client, sql_count
) -> None:
    counts = []
    for n in (2, 6):
        c = council()
        raisers = []
        for _ in range(n):
            carer = make_carer(c)
            (booking,) = _breaks(c, carer, 1)
            raisers.append(carer.name)
            service.report_concern(booking.id, actor=carer, text="Worried", now=NOW)
        sign_in(client, make_user(Role.COUNCIL_OFFICER, council=c))
        count, page = _count(client, sql_count, "/bookings/concerns")
        assert all(name in page for name in raisers)
        counts.append(count)
    assert counts[0] == counts[1], counts


def _feed_url(client, user: User) -> str:
    sign_in(client, user)
    page = client.post("/bookings/calendar-feed", data={"action": "create"}).get_data(as_text=True)
    found = re.search(r"https://carers\.example\.org(/bookings/calendar/[^<\s]+\.ics)", page)
    assert found is not None, page
    client.get("/auth/sign-out")
    return found.group(1)


def test_the_calendar_feed_is_a_fixed_number_of_queries(client, sql_count) -> None:
    counts = []
    for n in (2, 6):
        c = council()
        carer = make_carer(c)
        _breaks(c, carer, n)
        count, body = _count(client, sql_count, _feed_url(client, carer))
        assert body.count("BEGIN:VEVENT") == n
        assert all(f"SUMMARY:Break with Worker {i}" in body for i in range(n))
        counts.append(count)
    assert counts[0] == counts[1], counts
