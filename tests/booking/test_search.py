"""Search: only approved, in-date workers near enough and free under their own rules,
favourites first, priced, in a constant number of queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from flask import Flask

from app.extensions import db
from app.models import Council, Role
from booking.models.bookings import BookingStatus
from booking.models.workers import Favourite, VettingStatus, WorkerCheck
from booking.services import search
from booking.services.postcodes import UnknownPostcode
from booking.services.workers import OutsideAvailability, WorkerNotBookable
from tests.booking.factories_workers import make_booking, make_worker, profile_for
from tests.factories import CouncilFactory, make_user
from tests.helpers import bearer, error_of, sign_in

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # Monday
TODAY = date(2027, 3, 1)
START = datetime(2027, 3, 3, 10, 0, tzinfo=UTC)  # Wednesday 10:00 (GMT)
END = datetime(2027, 3, 3, 13, 0, tzinfo=UTC)


@pytest.fixture
def council() -> Council:
    return CouncilFactory()


def _search(carer, **kwargs):  # type: ignore[no-untyped-def]
    args = {"starts_at": START, "ends_at": END, "postcode": "LS6 2AB", "now": NOW}
    args.update(kwargs)
    return search.search_workers(carer=carer, **args)


def test_approved_nearby_free_worker_is_found_with_price(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    worker = make_worker(council, today=TODAY, rate=2000)
    results = _search(carer)
    assert [r.worker_id for r in results] == [worker.id]
    assert results[0].price_pence == 6000  # 3 weekday daytime hours at £20
    assert results[0].distance_km < 5


def test_worker_with_any_lapsed_check_disappears(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    worker = make_worker(council, today=TODAY)
    assert [r.worker_id for r in _search(carer)] == [worker.id]
    insurance = db.session.scalars(
        db.select(WorkerCheck).where(
            WorkerCheck.profile_id == profile_for(worker).id, WorkerCheck.kind == "insurance"
        )
    ).one()
    insurance.expires_on = date(2027, 2, 28)  # lapsed the day before the search
    db.session.commit()
    assert _search(carer) == []


def test_check_lapsing_before_the_slot_hides_the_worker(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    make_worker(council, today=TODAY, checks_expire=date(2027, 3, 2))
    assert _search(carer) == []


def test_pending_suspended_and_other_council_workers_are_hidden(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    make_worker(council, today=TODAY, approved=False)
    suspended = make_worker(council, today=TODAY)
    profile_for(suspended).status = VettingStatus.SUSPENDED
    make_worker(CouncilFactory(), today=TODAY)
    db.session.commit()
    assert _search(carer) == []


def test_travel_radius_is_the_workers_own(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    # LS11 to LS8 is about 5 km
    near = make_worker(council, today=TODAY, postcode="LS8 1AA", radius=8)
    make_worker(council, today=TODAY, postcode="LS8 1AB", radius=2)
    results = _search(carer, postcode="LS11 5DH")
    assert [r.worker_id for r in results] == [near.id]


def test_the_sql_prefilter_never_drops_a_worker_in_range(council: Council) -> None:
    """Workers scattered around the postcode in every direction, with their own radii:
    exactly those whose radius reaches it (by great-circle distance) are found."""
    import random

    from booking.services import postcodes

    carer = make_user(Role.CARER, council=council)
    centre = postcodes.locate("LS6 2AB")
    rng = random.Random(20261122)
    expected = set()
    for _ in range(40):
        worker = make_worker(council, today=TODAY, radius=rng.randint(1, 25))
        profile = profile_for(worker)
        profile.latitude = centre.latitude + rng.uniform(-0.3, 0.3)
        profile.longitude = centre.longitude + rng.uniform(-0.5, 0.5)
        distance = postcodes.haversine_km(
            centre.latitude, centre.longitude, profile.latitude, profile.longitude
        )
        if distance <= profile.travel_radius_km:
            expected.add(worker.id)
    db.session.commit()
    assert 5 < len(expected) < 40  # some in range and some out, in both directions
    assert {r.worker_id for r in _search(carer)} == expected


def test_filters_skills_languages_gender(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    a = make_worker(council, today=TODAY, skills=("dementia", "autism"), languages=("urdu",))
    b = make_worker(council, today=TODAY, skills=("autism",), gender="male")
    assert {r.worker_id for r in _search(carer, skills=["autism"])} == {a.id, b.id}
    assert [r.worker_id for r in _search(carer, skills=["autism", "dementia"])] == [a.id]
    assert [r.worker_id for r in _search(carer, languages=["Urdu"])] == [a.id]
    assert [r.worker_id for r in _search(carer, gender="male")] == [b.id]


def test_must_be_free_for_the_whole_window(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    make_worker(council, today=TODAY, weekly=[(2, time(11, 0), time(17, 0))])
    assert _search(carer) == []  # 10:00 is before they start
    assert len(_search(carer, starts_at=START + timedelta(hours=1), ends_at=END)) == 1


def test_minimum_notice_and_minimum_session(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    make_worker(council, today=TODAY, min_notice_minutes=3 * 24 * 60, min_session_minutes=240)
    assert _search(carer) == []  # 2 days' notice, 3 hours: both too little
    later = START + timedelta(days=7)
    assert _search(carer, starts_at=later, ends_at=later + timedelta(hours=3)) == []
    assert len(_search(carer, starts_at=later, ends_at=later + timedelta(hours=4))) == 1


def test_buffer_around_existing_live_bookings(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    worker = make_worker(council, today=TODAY, buffer_minutes=30)
    make_booking(worker, carer, END + timedelta(minutes=15), END + timedelta(hours=2))
    assert _search(carer) == []
    cancelled = make_worker(council, today=TODAY, buffer_minutes=30)
    make_booking(cancelled, carer, START, END, status=BookingStatus.CANCELLED)
    assert [r.worker_id for r in _search(carer)] == [cancelled.id]


def test_max_hours_a_week(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    worker = make_worker(council, today=TODAY, max_hours_per_week=10)
    monday = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # same week, already booked 8 hours
    make_booking(worker, carer, monday, monday + timedelta(hours=8))
    assert _search(carer) == []  # 8 + 3 > 10
    assert len(_search(carer, ends_at=START + timedelta(hours=2))) == 1  # 8 + 2 = 10


def test_favourites_first_then_distance(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    near = make_worker(council, today=TODAY, postcode="LS6 1AA")
    far = make_worker(council, today=TODAY, postcode="LS1 1AA")
    assert [r.worker_id for r in _search(carer)] == [near.id, far.id]
    db.session.add(Favourite(council_id=carer.council_id, carer_id=carer.id, worker_id=far.id))
    db.session.commit()
    results = _search(carer)
    assert [r.worker_id for r in results] == [far.id, near.id]
    assert results[0].is_favourite
    assert not results[1].is_favourite


def test_unknown_postcode_is_a_clear_error(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    with pytest.raises(UnknownPostcode) as caught:
        _search(carer, postcode="ZZ99 9ZZ")
    assert "cannot find the postcode ZZ99 9ZZ" in caught.value.message


def _count_search(council: Council, n: int, sql_count: list[str]) -> int:
    carer = make_user(Role.CARER, council=council)
    for i in range(n):
        worker = make_worker(council, today=TODAY, postcode="LS6 1AA")
        if i % 3 == 0:
            make_booking(worker, carer, START - timedelta(days=1), END - timedelta(days=1))
        if i % 4 == 0:
            db.session.add(
                Favourite(council_id=carer.council_id, carer_id=carer.id, worker_id=worker.id)
            )
    db.session.commit()
    db.session.expire_all()
    sql_count.clear()
    results = _search(carer)
    assert len(results) == n
    return len(sql_count)


def test_query_count_is_constant(sql_count: list[str]) -> None:
    few = _count_search(CouncilFactory(), 3, sql_count)
    many = _count_search(CouncilFactory(), 30, sql_count)
    assert few == many
    assert many <= 10


def test_check_bookable_errors(council: Council) -> None:
    worker = make_worker(council, today=TODAY, weekly=[(2, time(9, 0), time(12, 0))])
    with pytest.raises(OutsideAvailability):
        search.check_bookable(worker_id=worker.id, starts_at=START, ends_at=END, now=NOW)
    assert (
        search.check_bookable(
            worker_id=worker.id, starts_at=START, ends_at=START + timedelta(hours=2), now=NOW
        ).user_id
        == worker.id
    )
    pending = make_worker(council, today=TODAY, approved=False)
    with pytest.raises(WorkerNotBookable) as caught:
        search.check_bookable(worker_id=pending.id, starts_at=START, ends_at=END, now=NOW)
    assert caught.value.code == "worker_not_bookable"
    assert caught.value.status == 422
    assert OutsideAvailability.code == "outside_availability"


def test_check_bookable_leaves_a_direct_clash_to_the_booking(council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    worker = make_worker(council, today=TODAY, buffer_minutes=30)
    make_booking(worker, carer, START, END)
    # the overlap itself is slot_taken (409) in bookings; a near miss breaks the buffer here
    search.check_bookable(worker_id=worker.id, starts_at=START, ends_at=END, now=NOW)
    with pytest.raises(OutsideAvailability):
        search.check_bookable(
            worker_id=worker.id,
            starts_at=END + timedelta(minutes=15),
            ends_at=END + timedelta(hours=2),
            now=NOW,
        )


def test_api_search(app: Flask, council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    future = datetime.now(UTC).date() + timedelta(days=7)
    worker = make_worker(council, today=datetime.now(UTC).date())
    client = app.test_client()
    query = {
        "starts_at": f"{future.isoformat()}T10:00:00+00:00",
        "ends_at": f"{future.isoformat()}T12:00:00+00:00",
        "postcode": "LS6 2AB",
        "skills": "dementia",
    }
    response = client.get("/api/v1/workers/search", query_string=query, headers=bearer(carer))
    assert response.status_code == 200, response.get_json()
    [result] = response.get_json()["results"]
    assert result["worker_id"] == worker.id
    assert result["price_pence"] > 0
    assert result["distance_km"] >= 0
    assert set(result) >= {"worker_id", "display_name", "skills", "distance_km", "price_pence"}

    bad = client.get(
        "/api/v1/workers/search",
        query_string={**query, "postcode": "ZZ99 9ZZ"},
        headers=bearer(carer),
    )
    assert bad.status_code == 422
    assert error_of(bad)["code"] == "unknown_postcode"
    assert "ZZ99 9ZZ" in error_of(bad)["message"]

    no_offset = client.get(
        "/api/v1/workers/search",
        query_string={**query, "starts_at": f"{future.isoformat()}T10:00:00"},
        headers=bearer(carer),
    )
    assert no_offset.status_code == 422
    assert error_of(no_offset)["code"] == "validation_failed"


def test_search_page_shows_price_and_distance(app: Flask, council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    future = datetime.now(UTC).date() + timedelta(days=7)
    make_worker(council, today=datetime.now(UTC).date(), rate=1800)
    client = sign_in(app.test_client(), carer)
    args = {
        "day": [str(future.day), str(future.month), str(future.year)],
        "start": "10:00",
        "end": "12:00",
        "postcode": "LS6 2AB",
        "gender": "",
    }
    page = client.get("/workers/find", query_string=args)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "1 worker free at that time" in html
    assert "km away" in html
    assert "£" in html

    missing = client.get("/workers/find", query_string={**args, "postcode": "ZZ99 9ZZ"})
    html = missing.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert "We cannot find the postcode ZZ99 9ZZ" in html


def test_overlapping_live_bookings_are_refused_by_postgresql(
    council: Council, postgres_only: None
) -> None:
    from sqlalchemy.exc import IntegrityError

    carer = make_user(Role.CARER, council=council)
    worker = make_worker(council, today=TODAY)
    make_booking(worker, carer, START, END)
    make_booking(worker, carer, START, END, status=BookingStatus.CANCELLED)  # not live: fine
    with pytest.raises(IntegrityError, match="ex_bookings_no_overlap"):
        make_booking(worker, carer, START + timedelta(hours=1), END + timedelta(hours=1))
    db.session.rollback()


# --- search lists only what the booking would accept ---------------------------------------


def test_slots_inside_the_platform_notice_or_beyond_90_days_are_refused(council: Council) -> None:
    from booking.services import bookings

    carer = make_user(Role.CARER, council=council)
    make_worker(council, today=TODAY, min_notice_minutes=0)
    soon = NOW + timedelta(minutes=30)
    with pytest.raises(bookings.TooLate) as late:
        _search(carer, starts_at=soon, ends_at=soon + timedelta(hours=2))
    assert (late.value.code, late.value.status) == ("too_late", 422)
    assert "starts_at" in late.value.fields
    notice = NOW + bookings.DEFAULT_NOTICE
    assert len(_search(carer, starts_at=notice, ends_at=notice + timedelta(hours=2))) == 1
    far = NOW + bookings.MAX_AHEAD + timedelta(days=1)
    with pytest.raises(bookings.TooFarAhead) as ahead:
        _search(carer, starts_at=far, ends_at=far + timedelta(hours=2))
    assert (ahead.value.code, ahead.value.status) == ("too_far_ahead", 422)
    last = NOW + bookings.MAX_AHEAD - timedelta(hours=3)
    assert len(_search(carer, starts_at=last, ends_at=last + timedelta(hours=2))) == 1


def test_every_worker_search_lists_passes_the_booking_check(council: Council) -> None:
    """Workers with all kinds of rules, slots from too soon to too far ahead: whatever
    search lists, the booking's own check (quote_booking, which writes nothing) accepts,
    and a slot search refuses (too late, too far ahead), the booking refuses too."""
    from booking.services import bookings

    carer = make_user(Role.CARER, council=council)
    workers = [
        make_worker(council, today=TODAY, min_notice_minutes=0),
        make_worker(council, today=TODAY, min_notice_minutes=24 * 60),
        make_worker(council, today=TODAY, min_session_minutes=180),
        make_worker(council, today=TODAY, buffer_minutes=60, min_notice_minutes=30),
        make_worker(council, today=TODAY, max_hours_per_week=6),
        make_worker(council, today=TODAY, weekly=[(d, time(9), time(13)) for d in range(7)]),
        make_worker(council, today=TODAY, checks_expire=date(2027, 3, 20)),
    ]
    make_booking(workers[3], carer, NOW + timedelta(hours=5), NOW + timedelta(hours=7))
    make_booking(workers[4], carer, START, START + timedelta(hours=4))
    listed = refused = 0
    for offset in [
        timedelta(minutes=15),
        timedelta(hours=1, minutes=45),
        timedelta(hours=2),
        timedelta(hours=3),
        timedelta(hours=8),
        timedelta(days=1),
        timedelta(days=2, hours=1),
        timedelta(days=21),
        timedelta(days=89, hours=20),
        timedelta(days=90, hours=1),
        timedelta(days=120),
    ]:
        for length in (timedelta(hours=1), timedelta(hours=2), timedelta(hours=3)):
            starts_at, ends_at = NOW + offset, NOW + offset + length
            try:
                results = _search(carer, starts_at=starts_at, ends_at=ends_at)
            except (bookings.TooLate, bookings.TooFarAhead):
                refused += 1
                for worker in workers:
                    with pytest.raises(bookings.BookingError):
                        bookings.quote_booking(
                            carer=carer,
                            worker_id=worker.id,
                            starts_at=starts_at,
                            ends_at=ends_at,
                            postcode="LS6 2AB",
                            now=NOW,
                        )
                continue
            for result in results:
                listed += 1
                quote = bookings.quote_booking(
                    carer=carer,
                    worker_id=result.worker_id,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    postcode="LS6 2AB",
                    now=NOW,
                )
                assert quote.price_pence == result.price_pence
    assert listed > 50
    assert refused >= 12


def test_api_search_refuses_too_late_and_too_far_ahead(app: Flask, council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    make_worker(council, today=datetime.now(UTC).date(), min_notice_minutes=0)
    client = app.test_client()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    soon = now.replace(minute=now.minute - now.minute % 15) + timedelta(minutes=30)
    far = soon + timedelta(days=100)
    for starts_at, code in ((soon, "too_late"), (far, "too_far_ahead")):
        response = client.get(
            "/api/v1/workers/search",
            query_string={
                "starts_at": starts_at.isoformat(),
                "ends_at": (starts_at + timedelta(hours=2)).isoformat(),
                "postcode": "LS6 2AB",
            },
            headers=bearer(carer),
        )
        assert response.status_code == 422, response.get_json()
        assert error_of(response)["code"] == code
        assert "starts_at" in error_of(response)["fields"]
    year_9999 = client.get(
        "/api/v1/workers/search",
        query_string={
            "starts_at": "9999-12-31T23:00:00-05:00",
            "ends_at": "9999-12-31T23:45:00-05:00",
            "postcode": "LS6 2AB",
        },
        headers=bearer(carer),
    )
    assert year_9999.status_code == 422
    assert error_of(year_9999)["code"] == "validation_failed"


def _find_args(day: date, start: str, end: str) -> dict[str, object]:
    return {
        "day": [str(day.day), str(day.month), str(day.year)],
        "start": start,
        "end": end,
        "postcode": "LS6 2AB",
        "gender": "",
    }


def test_find_page_explains_slots_that_cannot_be_booked(app: Flask, council: Council) -> None:
    carer = make_user(Role.CARER, council=council)
    make_worker(council, today=datetime.now(UTC).date(), min_notice_minutes=0)
    client = sign_in(app.test_client(), carer)
    far = datetime.now(UTC).date() + timedelta(days=120)
    cases = [
        (_find_args(far, "10:00", "12:00"), "Choose a date within the next 90 days", "#day"),
        (_find_args(date(9999, 12, 31), "22:00", "01:00"), "within the next 90 days", "#day"),
        (_find_args(date(9999, 12, 31), "10:00", "12:00"), "within the next 90 days", "#day"),
        (_find_args(date(2000, 1, 1), "10:00", "12:00"), "Choose a time in the future", "#start"),
        (_find_args(far, "10:00", "10:30"), "A break must be at least 1 hour long", "#end"),
    ]
    for args, message, href in cases:
        page = client.get("/workers/find", query_string=args)
        html = page.get_data(as_text=True)
        assert page.status_code == 200, args
        assert "govuk-error-summary" in html, args
        assert message in html, args
        assert f'href="{href}"' in html, args
        assert "free at that time" not in html


def test_find_page_refuses_a_start_inside_the_notice(app: Flask, council: Council) -> None:
    import time_machine

    carer = make_user(Role.CARER, council=council)
    make_worker(council, today=TODAY, min_notice_minutes=0)
    with time_machine.travel(NOW, tick=False):
        client = sign_in(app.test_client(), carer)
        page = client.get("/workers/find", query_string=_find_args(TODAY, "10:00", "12:00"))
    html = page.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert "Choose a time at least 2 hours from now" in html
    assert 'href="#start"' in html
