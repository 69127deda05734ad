"""The rules a worker sets, as the booking itself applies them (search has its own tests):
a longer minimum session, the weekly-hours cap, who may book instantly, and the worker's
own time to answer, which sets when the request expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Council, User
from app.scheduler import run_job
from booking.models.bookings import Booking, BookingStatus
from booking.models.workers import Favourite
from booking.services import bookings as service
from booking.services.workers import OutsideAvailability
from tests.booking.factories_bookings import NOW, council, make_carer, make_worker

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Wednesday 10:00 UK time (GMT)


@pytest.fixture
def place() -> tuple[Council, User]:
    c = council()
    return c, make_carer(c)


def _book(
    carer: User, worker: User, starts_at: datetime = START, hours: float = 2, **kw: object
) -> Booking:
    return service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=hours),
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=carer,
        now=kw.pop("now", NOW),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def _favourite(carer: User, worker: User) -> None:
    db.session.add(
        Favourite(
            council_id=carer.council_id, carer_id=carer.id, worker_id=worker.id, created_at=NOW
        )
    )
    db.session.commit()


def test_a_minimum_session_above_an_hour_refuses_a_shorter_booking(place) -> None:  # type: ignore[no-untyped-def]
    c, carer = place
    worker = make_worker(c, min_session_minutes=150)
    with pytest.raises(service.TooShort) as caught:
        _book(carer, worker, hours=2)
    assert caught.value.code == "too_short"
    assert "150 minutes" in caught.value.message
    assert db.session.scalars(select(Booking).where(Booking.worker_id == worker.id)).all() == []
    assert _book(carer, worker, hours=2.5).status is BookingStatus.REQUESTED


def test_the_weekly_hours_cap_refuses_a_booking_that_goes_over_it(place) -> None:  # type: ignore[no-untyped-def]
    c, carer = place
    worker = make_worker(c, max_hours_per_week=6)
    monday = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # the same Monday-to-Sunday week
    _book(carer, worker, starts_at=monday, hours=4)
    with pytest.raises(OutsideAvailability) as caught:
        _book(carer, worker, hours=3)  # 4 + 3 > 6
    assert caught.value.code == "outside_availability"
    assert "fully booked that week" in caught.value.message
    assert _book(carer, worker, hours=2).status is BookingStatus.REQUESTED  # 4 + 2 = 6
    next_week = START + timedelta(days=7)
    assert _book(carer, worker, starts_at=next_week, hours=3).status is BookingStatus.REQUESTED


def test_only_a_favourite_of_a_worker_who_allows_it_books_instantly(place) -> None:  # type: ignore[no-untyped-def]
    c, carer = place
    allows = make_worker(c, instant=True)
    stranger = _book(carer, allows)  # not a favourite
    assert stranger.status is BookingStatus.REQUESTED
    assert not stranger.instant
    assert stranger.respond_by is not None

    does_not_allow = make_worker(c, instant=False)
    _favourite(carer, does_not_allow)
    favourite_no_instant = _book(carer, does_not_allow)
    assert favourite_no_instant.status is BookingStatus.REQUESTED
    assert not favourite_no_instant.instant
    assert favourite_no_instant.confirmed_at is None

    _favourite(carer, allows)
    instant = _book(carer, allows, starts_at=START + timedelta(days=1))
    assert instant.status is BookingStatus.CONFIRMED
    assert instant.instant


def test_the_workers_own_time_to_answer_sets_when_the_request_expires(app: Flask, place) -> None:  # type: ignore[no-untyped-def]
    c, carer = place
    worker = make_worker(c, response_deadline_hours=6)
    booking = _book(carer, worker)
    assert booking.respond_by == NOW + timedelta(hours=6)
    run_job("expire_booking_requests", now=NOW + timedelta(hours=5, minutes=59))
    db.session.refresh(booking)
    assert booking.status is BookingStatus.REQUESTED
    run_job("expire_booking_requests", now=NOW + timedelta(hours=6))
    db.session.refresh(booking)
    assert booking.status is BookingStatus.EXPIRED
    with pytest.raises(service.WrongStatus):
        service.accept_booking(booking.id, worker=worker, now=NOW + timedelta(hours=6))

    # a slot that starts before the deadline: the worker must answer by the start
    slow = make_worker(c, response_deadline_hours=72)
    soon = NOW + timedelta(hours=27)
    early = _book(carer, slow, starts_at=soon)
    assert early.respond_by == soon
    late = _book(carer, slow, starts_at=START + timedelta(days=7))
    assert late.respond_by == NOW + timedelta(hours=72)
