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


# --- several times a day on the page, and midnight ------------------------------------------


def _week_form_as_shown(html: str) -> dict[str, str]:
    """Every time box of the week form with the value the page shows, as a browser sends it."""
    import re

    week = html.split("Your usual week", 1)[1].split("Time off and extra time", 1)[0]
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", week):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name is not None and name.group(1).startswith("day"):
            fields[name.group(1)] = value.group(1) if value else ""
    return fields


def _rules_of(worker) -> list[tuple[int, time, time]]:  # type: ignore[no-untyped-def]
    db.session.expire_all()
    rows = db.session.scalars(
        db.select(AvailabilityRule).filter_by(profile_id=profile_for(worker).id)
    ).all()
    return sorted((r.weekday, r.start_time, r.end_time) for r in rows)


def test_times_set_through_the_api_survive_saving_the_page(app: Flask) -> None:
    worker = make_worker(CouncilFactory(), weekly=[])
    client = app.test_client()
    body = {
        "weekly": [
            {"weekday": 0, "start": "09:00", "end": "12:00"},
            {"weekday": 0, "start": "14:00", "end": "18:00"},
            {"weekday": 0, "start": "19:00", "end": "24:00"},
            {"weekday": 3, "start": "08:00", "end": "10:00"},
        ]
    }
    put = client.put(f"/api/v1/workers/{worker.id}/availability", json=body, headers=bearer(worker))
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["weekly"][2] == {"weekday": 0, "start": "19:00", "end": "24:00"}
    stored = _rules_of(worker)
    assert len(stored) == 4

    sign_in(client, worker)
    shown = _week_form_as_shown(
        client.get(f"/workers/{worker.id}/availability").get_data(as_text=True)
    )
    assert (shown["day0_start"], shown["day0_end"]) == ("09:00", "12:00")
    assert (shown["day0_start_2"], shown["day0_end_2"]) == ("14:00", "18:00")
    assert (shown["day0_start_3"], shown["day0_end_3"]) == ("19:00", "24:00")
    assert (shown["day0_start_4"], shown["day0_end_4"]) == ("", "")  # a row to add one more
    assert (shown["day3_start"], shown["day3_end"]) == ("08:00", "10:00")
    assert (shown["day1_start"], shown["day1_end"]) == ("", "")

    saved = client.post(f"/workers/{worker.id}/availability", data=shown)
    assert saved.status_code == 302
    assert _rules_of(worker) == stored


def test_the_page_adds_and_removes_a_second_time_on_a_day(app: Flask) -> None:
    worker = make_worker(CouncilFactory(), weekly=[(1, time(9), time(12))])
    client = sign_in(app.test_client(), worker)
    url = f"/workers/{worker.id}/availability"
    shown = _week_form_as_shown(client.get(url).get_data(as_text=True))
    added = {**shown, "day1_start_2": "14:00", "day1_end_2": "18:00"}
    assert client.post(url, data=added).status_code == 302
    assert _rules_of(worker) == [(1, time(9), time(12)), (1, time(14), time(18))]

    shown = _week_form_as_shown(client.get(url).get_data(as_text=True))
    assert shown["day1_start_2"] == "14:00"
    assert client.post(url, data={**shown, "day1_start": "", "day1_end": ""}).status_code == 302
    assert _rules_of(worker) == [(1, time(14), time(18))]


def test_overlapping_times_on_a_day_are_refused_on_the_field(app: Flask) -> None:
    worker = make_worker(CouncilFactory(), weekly=[(2, time(9), time(17))])
    client = sign_in(app.test_client(), worker)
    url = f"/workers/{worker.id}/availability"
    data = {
        "day2_start": "09:00",
        "day2_end": "13:00",
        "day2_start_2": "12:00",
        "day2_end_2": "18:00",
        "day2_start_3": "19:00",
        "day2_end_3": "18:00",
    }
    page = client.post(url, data=data)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "The times on Wednesday overlap" in html
    assert 'href="#day2_start"' in html
    assert "On Wednesday, the end time must be after the start time" in html
    assert 'href="#day2_end_3"' in html
    assert 'id="day2_start_3"' in html  # every posted row is shown again
    assert _rules_of(worker) == [(2, time(9), time(17))]
    half = client.post(url, data={"day4_start_2": "10:00"})
    assert "Enter both a start and an end time on Friday, or neither" in half.get_data(as_text=True)


def test_a_weekly_time_can_run_to_midnight(app: Flask) -> None:
    worker = make_worker(CouncilFactory(), weekly=[])
    client = sign_in(app.test_client(), worker)
    url = f"/workers/{worker.id}/availability"
    saved = client.post(
        url,
        data={
            "day0_start": "18:00",
            "day0_end": "24:00",
            "day1_start": "00:00",
            "day1_end": "06:00",
        },
    )
    assert saved.status_code == 302
    assert _rules_of(worker) == [
        (0, time(18), availability.END_OF_DAY),
        (1, time(0), time(6)),
    ]
    shown = _week_form_as_shown(client.get(url).get_data(as_text=True))
    assert shown["day0_end"] == "24:00"
    # 00:00 as an end is midnight too
    assert client.post(url, data={"day2_start": "20:00", "day2_end": "00:00"}).status_code == 302
    assert _rules_of(worker) == [(2, time(20), availability.END_OF_DAY)]

    # Monday 22:00 to Tuesday 02:00 (GMT) is covered by 18:00-24:00 and 00:00-06:00
    profile = profile_for(worker)
    rules = [WeeklySlot(0, time(18), availability.END_OF_DAY), WeeklySlot(1, time(0), time(6))]
    free = availability.expand(rules, [], _utc(2027, 1, 4, 12), _utc(2027, 1, 5, 12))
    assert free == [(_utc(2027, 1, 4, 18), _utc(2027, 1, 5, 6))]
    assert availability.covers(free, _utc(2027, 1, 4, 22), _utc(2027, 1, 5, 2))
    # in summer (BST) midnight is 23:00 UTC
    summer = availability.expand(rules[:1], [], _utc(2027, 7, 5), _utc(2027, 7, 6, 12))
    assert summer == [(_utc(2027, 7, 5, 17), _utc(2027, 7, 5, 23))]
    assert profile.user_id == worker.id


def test_a_time_cannot_start_at_midnight_at_the_end_of_the_day(app: Flask) -> None:
    worker = make_worker(CouncilFactory(), weekly=[])
    client = app.test_client()
    bad = client.put(
        f"/api/v1/workers/{worker.id}/availability",
        json={"weekly": [{"weekday": 0, "start": "24:00", "end": "24:00"}]},
        headers=bearer(worker),
    )
    assert bad.status_code == 422
    page = sign_in(client, worker).post(
        f"/workers/{worker.id}/availability", data={"day0_start": "24:00", "day0_end": "01:00"}
    )
    assert "govuk-error-summary" in page.get_data(as_text=True)
    assert _rules_of(worker) == []


# --- dates at the edge of the calendar: an error, never a 500 ------------------------------


def test_calendar_weeks_far_away_show_this_week_with_an_error(app: Flask) -> None:
    worker = make_worker(CouncilFactory())
    client = sign_in(app.test_client(), worker)
    this_week = client.get(f"/workers/{worker.id}/calendar").get_data(as_text=True)
    heading = this_week.split("<h1", 1)[1].split("</h1>", 1)[0]
    for week in ("9999-12-31", "0001-01-01", "2099-01-01", "not-a-date"):
        page = client.get(f"/workers/{worker.id}/calendar?week={week}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200, week
        assert "govuk-error-summary" in html, week
        assert "This is the current week." in html
        assert html.split("<h1", 1)[1].split("</h1>", 1)[0] == heading
    assert "govuk-error-summary" not in this_week


def _exception_form(day: date, start: str, end: str) -> dict[str, object]:
    return {
        "kind": "unavailable",
        "day": [str(day.day), str(day.month), f"{day.year:04d}"],
        "start": start,
        "end": end,
    }


def test_exception_form_refuses_dates_at_the_edge_of_the_calendar(app: Flask) -> None:
    worker = make_worker(CouncilFactory())
    client = sign_in(app.test_client(), worker)
    url = f"/workers/{worker.id}/availability/exceptions"
    cases = [
        (date(9999, 12, 31), "18:00", "09:00", "within the next 2 years"),  # overnight: 10000
        (date(9999, 12, 31), "09:00", "12:00", "within the next 2 years"),
        (london_today(utcnow()) + timedelta(days=3 * 365), "09:00", "12:00", "next 2 years"),
        (date(1, 1, 1), "18:00", "09:00", "Choose a date in the future"),
        (date(2000, 1, 1), "09:00", "12:00", "Choose a date in the future"),
    ]
    for day, start, end, message in cases:
        page = client.post(url, data=_exception_form(day, start, end))
        html = page.get_data(as_text=True)
        assert page.status_code == 200, day
        assert "govuk-error-summary" in html, day
        assert message in html, day
        assert 'href="#day"' in html, day
    assert (
        db.session.scalars(
            db.select(AvailabilityException).filter_by(profile_id=profile_for(worker).id)
        ).all()
        == []
    )


def test_api_refuses_exceptions_in_the_past_or_absurd_years(app: Flask) -> None:
    worker = make_worker(CouncilFactory())
    client = app.test_client()
    url = f"/api/v1/workers/{worker.id}/availability"
    now = utcnow()
    soon = (now + timedelta(days=10)).replace(microsecond=0)
    cases = [
        ((now - timedelta(days=2)).isoformat(), (now - timedelta(days=1)).isoformat()),
        ("0001-01-01T00:00:00+01:00", "0001-01-01T02:00:00+01:00"),
        ("0001-01-01T09:00:00", "0001-01-01T12:00:00"),
        ("9999-12-31T09:00:00", "9999-12-31T12:00:00"),
        ("9999-12-31T23:00:00-05:00", "9999-12-31T23:30:00-05:00"),
        ((now + timedelta(days=800)).isoformat(), (now + timedelta(days=801)).isoformat()),
    ]
    for starts_at, ends_at in cases:
        response = client.put(
            url,
            json={"weekly": [], "exceptions": [{"starts_at": starts_at, "ends_at": ends_at}]},
            headers=bearer(worker),
        )
        assert response.status_code == 422, (starts_at, response.get_json())
        assert error_of(response)["fields"], starts_at
    assert len(_rules_of(worker)) == 7  # nothing replaced
    ok = client.put(
        url,
        json={
            "weekly": [],
            "exceptions": [
                {"starts_at": soon.isoformat(), "ends_at": (soon + timedelta(hours=2)).isoformat()}
            ],
        },
        headers=bearer(worker),
    )
    assert ok.status_code == 200, ok.get_json()
    assert len(ok.get_json()["exceptions"]) == 1


def test_saving_the_week_keeps_time_off_as_it_is(app: Flask) -> None:
    worker = make_worker(CouncilFactory())
    profile = profile_for(worker)
    now = utcnow()
    kept = availability.add_exception(
        profile,
        ExceptionSlot(now + timedelta(days=5), now + timedelta(days=6)),
        actor=worker,
        now=now,
    )
    client = sign_in(app.test_client(), worker)
    assert (
        client.post(
            f"/workers/{worker.id}/availability", data={"day0_start": "09:00", "day0_end": "17:00"}
        ).status_code
        == 302
    )
    db.session.expire_all()
    [row] = db.session.scalars(
        db.select(AvailabilityException).filter_by(profile_id=profile.id)
    ).all()
    assert row.id == kept.id
