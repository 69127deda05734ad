"""Finding a worker for a break, and the check a booking makes before it is placed.

`search_workers` runs a fixed number of SQL queries however many workers match:
candidates (approved, in the carer's council, inside a lat/long box, with the skills,
languages and gender asked for) and then, for all candidates at once, their checks,
weekly rules, exceptions, live bookings near the slot and the carer's favourites.
Everything else (exact distance against each worker's own travel radius, in-date checks,
availability, notice, session length, weekly hours, travel buffer, price) is worked out in
Python on those rows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, literal, or_, select

from app.clock import start_of_london_day, to_london
from app.errors import DomainError
from app.extensions import db
from app.models import User
from booking.models.bookings import LIVE_STATUSES, Booking
from booking.models.workers import (
    AvailabilityException,
    AvailabilityRule,
    Favourite,
    VettingStatus,
    WorkerCheck,
    WorkerLanguage,
    WorkerProfile,
    WorkerSkill,
)
from booking.services import availability, postcodes, pricing, vetting
from booking.services.workers import (
    MAX_TRAVEL_RADIUS_KM,
    OutsideAvailability,
    WorkerNotBookable,
    profile_of,
)

STEP = timedelta(minutes=15)
KM_PER_DEGREE_LAT = 111.32


class SearchError(DomainError):
    code = "validation_failed"
    status = 422


@dataclass(frozen=True)
class SearchResult:
    worker_id: int
    display_name: str
    skills: list[str]
    languages: list[str]
    gender: str | None
    distance_km: float
    price_pence: int
    hourly_rate_pence: int
    is_favourite: bool
    can_instant_book: bool
    has_photo: bool
    bio: str = ""


@dataclass
class _WorkerData:
    checks: list[WorkerCheck] = field(default_factory=list)
    rules: list[AvailabilityRule] = field(default_factory=list)
    exceptions: list[AvailabilityException] = field(default_factory=list)
    bookings: list[Booking] = field(default_factory=list)


def week_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00, UK time, around `moment` (as UTC)."""
    day = to_london(moment).date()
    monday = day - timedelta(days=day.weekday())
    return start_of_london_day(monday), start_of_london_day(monday + timedelta(days=7))


def validate_window(starts_at: datetime, ends_at: datetime) -> None:
    """A slot must end after it starts, in 15-minute steps, at least an hour long."""
    fields: dict[str, str] = {}
    if ends_at <= starts_at:
        fields["ends_at"] = "The end time must be after the start time"
    elif ends_at - starts_at < timedelta(hours=1):
        fields["ends_at"] = "A break must be at least 1 hour long"
    elif ends_at - starts_at > timedelta(hours=24):
        fields["ends_at"] = "A break can be at most 24 hours long"
    if to_london(starts_at).minute % 15 or to_london(ends_at).minute % 15:
        fields.setdefault("starts_at", "Use times on the quarter hour, like 10:15")
    if fields:
        raise SearchError("The date and time need changing.", fields=fields)


def _check_bookable_window(starts_at: datetime, ends_at: datetime, *, now: datetime) -> None:
    """The booking's own rules for any slot (notice, how far ahead, length, steps): the
    same function the booking runs, so the two can never disagree."""
    from booking.services import bookings  # bookings imports this module

    bookings.check_times(starts_at, ends_at, now=now, profile=None)


def too_far_ahead_message() -> str:
    """What to say about a date beyond the booking limit (one too far to even work out)."""
    from booking.services import bookings  # bookings imports this module

    return f"Choose a date within the next {bookings.MAX_AHEAD.days} days"


def rule_problem(
    profile: WorkerProfile,
    data: _WorkerData,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    *,
    ignore_overlapping: bool = False,
) -> str | None:
    """Why this worker cannot take the slot under their own rules (None: they can)."""
    if starts_at - now < timedelta(minutes=profile.min_notice_minutes):
        hours = profile.min_notice_minutes / 60
        return f"{profile.display_name} needs at least {hours:g} hours' notice."
    if ends_at - starts_at < timedelta(minutes=profile.min_session_minutes):
        return (
            f"{profile.display_name} takes sessions of at least "
            f"{profile.min_session_minutes} minutes."
        )
    free = availability.expand(data.rules, data.exceptions, starts_at, ends_at)
    if not availability.covers(free, starts_at, ends_at):
        return f"{profile.display_name} is not available for the whole of that time."
    buffer = timedelta(minutes=profile.buffer_minutes)
    for booking in data.bookings:
        overlaps = booking.starts_at < ends_at and booking.ends_at > starts_at
        if overlaps and ignore_overlapping:
            continue  # the booking itself reports a clash as slot_taken
        if booking.starts_at < ends_at + buffer and booking.ends_at > starts_at - buffer:
            return f"{profile.display_name} already has a booking close to that time."
    week_start, week_end = week_bounds(starts_at)
    booked = sum(
        (
            min(b.ends_at, week_end) - max(b.starts_at, week_start)
            for b in data.bookings
            if b.starts_at < week_end and b.ends_at > week_start
        ),
        timedelta(),
    )
    if booked + (ends_at - starts_at) > timedelta(hours=profile.max_hours_per_week):
        return f"{profile.display_name} is fully booked that week."
    return None


def _load(
    council_id: int,
    profile_ids: Sequence[int],
    worker_ids: Sequence[int],
    starts_at: datetime,
    ends_at: datetime,
) -> dict[int, _WorkerData]:
    """Checks, rules, exceptions and nearby live bookings of many workers of one council:
    four queries."""
    data: dict[int, _WorkerData] = defaultdict(_WorkerData)
    if not profile_ids:
        return data
    for check in db.session.scalars(
        select(WorkerCheck).where(
            WorkerCheck.council_id == council_id, WorkerCheck.profile_id.in_(profile_ids)
        )
    ):
        data[check.profile_id].checks.append(check)
    for rule in db.session.scalars(
        select(AvailabilityRule).where(
            AvailabilityRule.council_id == council_id,
            AvailabilityRule.profile_id.in_(profile_ids),
        )
    ):
        data[rule.profile_id].rules.append(rule)
    for item in db.session.scalars(
        select(AvailabilityException).where(
            AvailabilityException.council_id == council_id,
            AvailabilityException.profile_id.in_(profile_ids),
            AvailabilityException.starts_at < ends_at + timedelta(days=1),
            AvailabilityException.ends_at > starts_at - timedelta(days=1),
        )
    ):
        data[item.profile_id].exceptions.append(item)
    week_start, week_end = week_bounds(starts_at)
    # Wide enough for the week's hours and the largest buffer around the slot.
    since = min(week_start, starts_at - timedelta(hours=5))
    until = max(week_end, ends_at + timedelta(hours=5))
    profile_by_worker = dict(zip(worker_ids, profile_ids, strict=True))
    for booking in db.session.scalars(
        # Every live booking of the worker, whichever council it is in: their time is
        # theirs, not a council's.
        select(Booking).where(
            Booking.worker_id.in_(worker_ids),
            Booking.status.in_(LIVE_STATUSES),
            Booking.starts_at < until,
            Booking.ends_at > since,
        )
    ):
        data[profile_by_worker[booking.worker_id]].bookings.append(booking)
    return data


def search_workers(
    *,
    carer: User,
    starts_at: datetime,
    ends_at: datetime,
    postcode: str,
    skills: Sequence[str] = (),
    languages: Sequence[str] = (),
    gender: str | None = None,
    now: datetime,
    emergency: bool = False,
) -> list[SearchResult]:
    """Approved, in-date workers near the postcode who are free for the whole slot under
    their own rules, with the price of the slot; favourites first, then nearest.

    A slot no booking could take is refused with the booking's own error (too_late inside
    the platform's minimum notice, too_far_ahead beyond its limit), so search never lists
    a worker the booking would then turn down. An emergency search (care needed now) skips
    the platform's notice, as the emergency booking does; each worker's own rules still
    apply."""
    validate_window(starts_at, ends_at)
    if starts_at <= now:
        raise SearchError(
            "Choose a time in the future.", fields={"starts_at": "Choose a time in the future"}
        )
    if not emergency:
        _check_bookable_window(starts_at, ends_at, now=now)
    place = postcodes.locate(postcode)
    skills = sorted({s.strip().lower() for s in skills if s.strip()})
    languages = sorted({x.strip().lower() for x in languages if x.strip()})
    min_lat, max_lat, min_lon, max_lon = postcodes.bounding_box(
        place.latitude, place.longitude, MAX_TRAVEL_RADIUS_KM
    )
    radius_deg = WorkerProfile.travel_radius_km / literal(KM_PER_DEGREE_LAT)
    # A degree of longitude is shorter away from the equator: take the narrowest one in
    # the box (the widest span in degrees), with 1% to spare, so nobody in range is lost.
    widest_lat = math.radians(max(abs(min_lat), abs(max_lat)))
    km_per_degree_lon = KM_PER_DEGREE_LAT * max(math.cos(widest_lat), 0.01) * 0.99
    radius_deg_lon = WorkerProfile.travel_radius_km / literal(km_per_degree_lon)
    query = (
        select(WorkerProfile)
        .where(
            WorkerProfile.council_id == carer.council_id,
            WorkerProfile.status == VettingStatus.APPROVED,
            or_(
                WorkerProfile.reapproval_due.is_(None),
                WorkerProfile.reapproval_due > to_london(starts_at).date(),
            ),
            WorkerProfile.hourly_rate_pence > 0,
            # A fixed box (index-friendly), then each worker's own radius as a box, so
            # only workers who might reach the postcode are loaded at all.
            WorkerProfile.latitude.between(min_lat, max_lat),
            WorkerProfile.longitude.between(min_lon, max_lon),
            and_(
                WorkerProfile.latitude >= literal(place.latitude) - radius_deg,
                WorkerProfile.latitude <= literal(place.latitude) + radius_deg,
                WorkerProfile.longitude >= literal(place.longitude) - radius_deg_lon,
                WorkerProfile.longitude <= literal(place.longitude) + radius_deg_lon,
            ),
        )
        .order_by(WorkerProfile.id)
    )
    if gender:
        query = query.where(WorkerProfile.gender == gender)
    if skills:
        query = query.where(
            WorkerProfile.id.in_(
                select(WorkerSkill.profile_id)
                .where(WorkerSkill.skill.in_(skills))
                .group_by(WorkerSkill.profile_id)
                .having(func.count(WorkerSkill.id) == len(skills))
            )
        )
    if languages:
        query = query.where(
            WorkerProfile.id.in_(
                select(WorkerLanguage.profile_id)
                .where(WorkerLanguage.language.in_(languages))
                .group_by(WorkerLanguage.profile_id)
                .having(func.count(WorkerLanguage.id) == len(languages))
            )
        )
    nearby: list[tuple[WorkerProfile, float]] = []
    for profile in db.session.scalars(query):
        assert profile.latitude is not None
        assert profile.longitude is not None
        distance = postcodes.haversine_km(
            place.latitude, place.longitude, profile.latitude, profile.longitude
        )
        if distance <= profile.travel_radius_km:
            nearby.append((profile, distance))
    if not nearby:
        return []
    council_id = carer.council_id
    assert council_id is not None  # workers were found in the carer's council
    data = _load(
        council_id,
        [p.id for p, _ in nearby],
        [p.user_id for p, _ in nearby],
        starts_at,
        ends_at,
    )
    favourites = set(
        db.session.scalars(
            select(Favourite.worker_id).where(
                Favourite.council_id == council_id,
                Favourite.carer_id == carer.id,
                Favourite.worker_id.in_([p.user_id for p, _ in nearby]),
            )
        )
    )
    results: list[SearchResult] = []
    for profile, distance in nearby:
        worker = data[profile.id]
        if not vetting.is_bookable_with(profile, worker.checks, starts_at):
            continue
        if not vetting.is_bookable_with(profile, worker.checks, now):
            continue
        if rule_problem(profile, worker, starts_at, ends_at, now) is not None:
            continue
        favourite = profile.user_id in favourites
        results.append(
            SearchResult(
                worker_id=profile.user_id,
                display_name=profile.display_name,
                skills=profile.skills,
                languages=profile.languages,
                gender=profile.gender,
                distance_km=round(distance, 1),
                price_pence=pricing.quote_price(profile, starts_at, ends_at),
                hourly_rate_pence=profile.hourly_rate_pence,
                is_favourite=favourite,
                can_instant_book=favourite and profile.favourites_instant_book,
                has_photo=profile.photo_content_type is not None,
                bio=profile.bio,
            )
        )
    results.sort(key=lambda r: (not r.is_favourite, r.distance_km, r.price_pence, r.worker_id))
    return results


def check_bookable(
    *, worker_id: int, starts_at: datetime, ends_at: datetime, now: datetime
) -> WorkerProfile:
    """For bookings: raise WorkerNotBookable or OutsideAvailability, else return the profile.

    A clash with another live booking of the worker is left to the booking itself
    (409 slot_taken); the travel buffer, weekly hours, notice and session length the worker
    set are checked here.
    """
    profile = profile_of(worker_id)
    if profile is None or not vetting.is_bookable(profile, now):
        raise WorkerNotBookable("This worker cannot take bookings at the moment.")
    data = _load(profile.council_id, [profile.id], [profile.user_id], starts_at, ends_at)[
        profile.id
    ]
    if not vetting.is_bookable_with(profile, data.checks, starts_at):
        raise WorkerNotBookable("This worker's checks run out before that date.")
    problem = rule_problem(profile, data, starts_at, ends_at, now, ignore_overlapping=True)
    if problem is not None:
        raise OutsideAvailability(problem)
    return profile
