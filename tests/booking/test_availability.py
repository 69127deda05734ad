"""Availability: weekly wall-clock rules expanded per date across the clock changes, the
API to replace them, and the phone-friendly page."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import time_machine
from flask import Flask

from app.clock import london_today, to_london, utcnow
from app.extensions import db
from app.models import Role
from booking.models.workers import AvailabilityException, AvailabilityRule, ExceptionKind
from booking.services import availability
from booking.services.availability import ExceptionSlot, WeeklySlot
from tests.booking.factories_workers import make_booking, make_worker, profile_for
from tests.factories import CouncilFactory, make_user
from tests.helpers import bearer, error_of, sign_in

SUNDAY = 6


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _sunday_intervals(day: date) -> list[tuple[datetime, datetime]]:
    rules = [WeeklySlot(SUNDAY, time(9, 0), time(17, 0))]
    start = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(hours=2)
    return availability.expand(rules, [], start, start + timedelta(hours=28))


@time_machine.travel(_utc(2027, 3, 20, 12, 0), tick=False)
def test_march_clock_change_keeps_wall_clock_times() -> None:
    before = _sunday_intervals(date(2027, 3, 21))
    change_day = _sunday_intervals(date(2027, 3, 28))
    assert before == [(_utc(2027, 3, 21, 9), _utc(2027, 3, 21, 17))]  # GMT
    assert change_day == [(_utc(2027, 3, 28, 8), _utc(2027, 3, 28, 16))]  # BST
    start, end = change_day[0]
    assert (to_london(start).time(), to_london(end).time()) == (time(9), time(17))


@time_machine.travel(_utc(2027, 10, 20, 12, 0), tick=False)
def test_october_clock_change_keeps_wall_clock_times() -> None:
    before = _sunday_intervals(date(2027, 10, 24))
    change_day = _sunday_intervals(date(2027, 10, 31))
    assert before == [(_utc(2027, 10, 24, 8), _utc(2027, 10, 24, 16))]  # BST
    assert change_day == [(_utc(2027, 10, 31, 9), _utc(2027, 10, 31, 17))]  # GMT
    start, end = change_day[0]
    assert (to_london(start).time(), to_london(end).time()) == (time(9), time(17))


def test_night_across_the_change_is_an_hour_shorter_or_longer() -> None:
    rules = [WeeklySlot(SUNDAY, time(0, 0), time(6, 0))]
    spring = availability.expand(rules, [], _utc(2027, 3, 27, 20), _utc(2027, 3, 28, 12))
    autumn = availability.expand(rules, [], _utc(2027, 10, 30, 20), _utc(2027, 10, 31, 12))
    assert spring == [(_utc(2027, 3, 28, 0), _utc(2027, 3, 28, 5))]  # 5 real hours
    assert autumn == [(_utc(2027, 10, 30, 23), _utc(2027, 10, 31, 6))]  # 7 real hours


def test_exceptions_add_and_remove_time() -> None:
    rules = [WeeklySlot(0, time(9, 0), time(17, 0))]  # Mondays
    monday = date(2027, 6, 7)
    off = ExceptionSlot(_utc(2027, 6, 7, 11), _utc(2027, 6, 7, 12), ExceptionKind.UNAVAILABLE)
    extra = ExceptionSlot(_utc(2027, 6, 8, 18), _utc(2027, 6, 8, 20), ExceptionKind.EXTRA)
    free = availability.expand(rules, [off, extra], _utc(2027, 6, 7), _utc(2027, 6, 9))
    assert free == [
        (_utc(2027, 6, 7, 8), _utc(2027, 6, 7, 11)),  # 09:00 BST until the time off
        (_utc(2027, 6, 7, 12), _utc(2027, 6, 7, 16)),
        (_utc(2027, 6, 8, 18), _utc(2027, 6, 8, 20)),
    ]
    assert monday.weekday() == 0


def test_is_available_uses_stored_rules() -> None:
    council = CouncilFactory()
    worker = make_worker(council, weekly=[(2, time(10, 0), time(14, 0))])
    profile = profile_for(worker)
    wednesday = _utc(2027, 1, 6, 10)
    assert availability.is_available(profile, wednesday, wednesday + timedelta(hours=4))
    assert not availability.is_available(profile, wednesday, wednesday + timedelta(hours=5))


def test_api_replaces_availability(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council)
    body = {
        "weekly": [
            {"weekday": 0, "start": "09:00", "end": "17:00"},
            {"weekday": 6, "start": "10:00", "end": "12:30"},
        ],
        "exceptions": [{"starts_at": "2027-03-28T09:00:00", "ends_at": "2027-03-28T12:00:00"}],
    }
    response = app.test_client().put(
        f"/api/v1/workers/{worker.id}/availability", json=body, headers=bearer(worker)
    )
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["weekly"] == [
        {"weekday": 0, "start": "09:00", "end": "17:00"},
        {"weekday": 6, "start": "10:00", "end": "12:30"},
    ]
    # wall-clock 09:00 on the day the clocks go forward is 08:00 UTC
    assert data["exceptions"][0]["starts_at"] == "2027-03-28T08:00:00Z"
    assert data["exceptions"][0]["kind"] == "unavailable"
    profile = profile_for(worker)
    assert (
        len(db.session.scalars(db.select(AvailabilityRule).filter_by(profile_id=profile.id)).all())
        == 2
    )


def test_api_availability_errors(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council)
    other = make_worker(council)
    client = app.test_client()
    bad = client.put(
        f"/api/v1/workers/{worker.id}/availability",
        json={"weekly": [{"weekday": 1, "start": "17:00", "end": "09:00"}], "exceptions": []},
        headers=bearer(worker),
    )
    assert bad.status_code == 422
    assert "weekly.0.end" in error_of(bad)["fields"]
    assert (
        len(
            db.session.scalars(
                db.select(AvailabilityRule).filter_by(profile_id=profile_for(worker).id)
            ).all()
        )
        == 7
    )
    invalid = client.put(
        f"/api/v1/workers/{worker.id}/availability",
        json={"weekly": [{"weekday": 9, "start": "09:00", "end": "10:00"}]},
        headers=bearer(worker),
    )
    assert invalid.status_code == 422
    assert error_of(invalid)["code"] == "validation_failed"
    forbidden = client.put(
        f"/api/v1/workers/{other.id}/availability", json={"weekly": []}, headers=bearer(worker)
    )
    assert forbidden.status_code == 403


def test_availability_page_saves_week_and_shows_errors(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council, weekly=[])
    client = sign_in(app.test_client(), worker)
    page = client.get(f"/workers/{worker.id}/availability")
    assert page.status_code == 200
    assert "Your usual week" in page.get_data(as_text=True)

    bad = client.post(
        f"/workers/{worker.id}/availability", data={"day0_start": "9am", "day0_end": "17:00"}
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 200
    assert "govuk-error-summary" in html
    assert "24-hour format" in html
    profile = profile_for(worker)
    assert (
        db.session.scalars(db.select(AvailabilityRule).filter_by(profile_id=profile.id)).all() == []
    )

    backwards = client.post(
        f"/workers/{worker.id}/availability", data={"day0_start": "17:00", "day0_end": "09:00"}
    )
    assert "govuk-error-summary" in backwards.get_data(as_text=True)
    assert "end time must be after the start time" in backwards.get_data(as_text=True)

    good = client.post(
        f"/workers/{worker.id}/availability",
        data={
            "day0_start": "09:00",
            "day0_end": "17:00",
            "day5_start": "10:00",
            "day5_end": "14:00",
        },
    )
    assert good.status_code == 302
    rules = db.session.scalars(db.select(AvailabilityRule).filter_by(profile_id=profile.id)).all()
    assert sorted((r.weekday, r.start_time, r.end_time) for r in rules) == [
        (0, time(9), time(17)),
        (5, time(10), time(14)),
    ]


def test_exception_form_adds_time_off(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council)
    client = sign_in(app.test_client(), worker)
    url = f"/workers/{worker.id}/availability/exceptions"
    bad = client.post(url, data={"kind": "unavailable", "start": "09:00", "end": "12:00"})
    assert "govuk-error-summary" in bad.get_data(as_text=True)
    assert "Enter the date" in bad.get_data(as_text=True)
    profile = profile_for(worker)
    assert (
        db.session.scalars(db.select(AvailabilityException).filter_by(profile_id=profile.id)).all()
        == []
    )
    future = london_today(utcnow()) + timedelta(days=30)
    ok = client.post(
        url,
        data={
            "kind": "unavailable",
            "day": [str(future.day), str(future.month), str(future.year)],
            "start": "09:00",
            "end": "12:00",
        },
    )
    assert ok.status_code == 302
    [row] = db.session.scalars(
        db.select(AvailabilityException).filter_by(profile_id=profile.id)
    ).all()
    assert to_london(row.starts_at).time() == time(9)


def test_calendar_shows_availability_and_bookings(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council, weekly=[(2, time(9, 0), time(17, 0))])
    carer = make_user(Role.CARER, council=council)
    make_booking(worker, carer, _utc(2027, 1, 6, 10), _utc(2027, 1, 6, 12))
    client = sign_in(app.test_client(), worker)
    page = client.get(f"/workers/{worker.id}/calendar?week=2027-01-06")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Week starting 4 January 2027" in html
    assert "9:00am to 5:00pm" in html
    assert "10:00am to 12:00pm (confirmed)" in html
    assert client.get("/workers/me/calendar").status_code == 302
