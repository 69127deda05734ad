"""Published availability: weekly wall-clock rules plus one-off exceptions, expanded into
UTC intervals per date.

Rules are UK wall-clock times ("Mondays 09:00 to 17:00"), turned into UTC separately for
each date with zoneinfo, so the March and October clock changes need no special case:
09:00 on the Sunday the clocks go forward is 08:00 UTC, a week earlier it is 09:00 UTC.
A time inside the missing spring hour moves forward, as a person reading a clock expects.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select

from app import audit
from app.clock import london_wall_clock, start_of_london_day, to_london
from app.errors import DomainError, NotFound
from app.extensions import db
from app.models import User
from booking.models.workers import (
    AvailabilityException,
    AvailabilityRule,
    ExceptionKind,
    WorkerProfile,
)

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class WeeklySlot:
    weekday: int  # 0 = Monday
    start: time
    end: time


@dataclass(frozen=True)
class ExceptionSlot:
    starts_at: datetime  # aware UTC
    ends_at: datetime
    kind: ExceptionKind = ExceptionKind.UNAVAILABLE
    note: str | None = None


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_WEEKLY_SLOTS = 50
# A weekly slot that runs to midnight ends at "24:00". A time of day cannot say that, so
# it is stored as the last moment of the day (which keeps end > start in the database)
# and expanded to midnight at the start of the next UK date.
END_OF_DAY = time.max
# Time off and extra time is refused once it is over, and more than two years ahead.
EXCEPTION_HORIZON = timedelta(days=2 * 365)
HORIZON_MESSAGE = "Choose a date within the next 2 years"


def format_end(end: time) -> str:
    """An end time as HH:MM, midnight at the end of the day as 24:00."""
    return "24:00" if end == END_OF_DAY else end.strftime("%H:%M")


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and join overlapping or touching intervals."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(intervals: Sequence[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """The parts of `intervals` not covered by any hole."""
    result = list(intervals)
    for hole_start, hole_end in holes:
        next_result: list[Interval] = []
        for start, end in result:
            if hole_end <= start or hole_start >= end:
                next_result.append((start, end))
                continue
            if start < hole_start:
                next_result.append((start, hole_start))
            if hole_end < end:
                next_result.append((hole_end, end))
        result = next_result
    return result


def rule_intervals_on(rules: Iterable[AvailabilityRule | WeeklySlot], day: date) -> list[Interval]:
    """The weekly rules for `day`'s weekday, as UTC intervals on that date."""
    out: list[Interval] = []
    for rule in rules:
        weekday = rule.weekday
        start = rule.start_time if isinstance(rule, AvailabilityRule) else rule.start
        end = rule.end_time if isinstance(rule, AvailabilityRule) else rule.end
        if weekday == day.weekday():
            ends_at = (
                start_of_london_day(day + timedelta(days=1))
                if end == END_OF_DAY
                else london_wall_clock(day, end)
            )
            out.append((london_wall_clock(day, start), ends_at))
    return out


def expand(
    rules: Sequence[AvailabilityRule | WeeklySlot],
    exceptions: Sequence[AvailabilityException | ExceptionSlot],
    window_start: datetime,
    window_end: datetime,
) -> list[Interval]:
    """Free time between two UTC moments: rules per UK date, plus extras, minus time off."""
    first = to_london(window_start).date() - timedelta(days=1)
    last = to_london(window_end).date() + timedelta(days=1)
    intervals: list[Interval] = []
    day = first
    while day <= last:
        intervals.extend(rule_intervals_on(rules, day))
        day += timedelta(days=1)
    intervals.extend((e.starts_at, e.ends_at) for e in exceptions if e.kind == ExceptionKind.EXTRA)
    free = merge(intervals)
    free = subtract(
        free,
        [(e.starts_at, e.ends_at) for e in exceptions if e.kind == ExceptionKind.UNAVAILABLE],
    )
    clipped = [(max(s, window_start), min(e, window_end)) for s, e in free]
    return [(s, e) for s, e in clipped if s < e]


def covers(free: Sequence[Interval], starts_at: datetime, ends_at: datetime) -> bool:
    """True when one free interval holds the whole slot."""
    return any(s <= starts_at and ends_at <= e for s, e in merge(free))


def load_rules(profile: WorkerProfile) -> list[AvailabilityRule]:
    return list(
        db.session.scalars(
            select(AvailabilityRule)
            .where(AvailabilityRule.profile_id == profile.id)
            .order_by(AvailabilityRule.weekday, AvailabilityRule.start_time)
        )
    )


def load_exceptions(
    profile: WorkerProfile, since: datetime | None = None
) -> list[AvailabilityException]:
    query = select(AvailabilityException).where(AvailabilityException.profile_id == profile.id)
    if since is not None:
        query = query.where(AvailabilityException.ends_at > since)
    return list(db.session.scalars(query.order_by(AvailabilityException.starts_at)))


def free_intervals(profile: WorkerProfile, start: datetime, end: datetime) -> list[Interval]:
    """A worker's published free time between two moments (bookings not taken off)."""
    exceptions = [
        e for e in load_exceptions(profile, since=start) if e.starts_at < end and e.ends_at > start
    ]
    return expand(load_rules(profile), exceptions, start, end)


def is_available(profile: WorkerProfile, starts_at: datetime, ends_at: datetime) -> bool:
    """Whether the whole slot lies inside the worker's published availability."""
    return covers(free_intervals(profile, starts_at, ends_at), starts_at, ends_at)


def _on_quarter_hour(moment: time) -> bool:
    return moment == END_OF_DAY or not (moment.minute % 15 or moment.second or moment.microsecond)


def _validate(
    weekly: Sequence[WeeklySlot],
    exceptions: Sequence[ExceptionSlot],
    *,
    now: datetime | None = None,
) -> None:
    """Refuse the lot if any time is wrong. With `now`, exceptions that are over or more
    than two years ahead are refused too (an API client sending year 1 or 9999)."""
    fields: dict[str, str] = {}
    if len(weekly) > MAX_WEEKLY_SLOTS:
        fields["weekly"] = f"Give at most {MAX_WEEKLY_SLOTS} weekly times"
    for index, slot in enumerate(weekly):
        if not 0 <= slot.weekday <= 6:
            fields[f"weekly.{index}.weekday"] = "Weekday must be 0 (Monday) to 6 (Sunday)"
        elif slot.start == END_OF_DAY:
            fields[f"weekly.{index}.start"] = "A time cannot start at midnight at the end of a day"
        elif slot.end <= slot.start:
            fields[f"weekly.{index}.end"] = (
                f"On {WEEKDAYS[slot.weekday]}, the end time must be after the start time"
            )
        elif not (_on_quarter_hour(slot.start) and _on_quarter_hour(slot.end)):
            fields[f"weekly.{index}.start"] = "Use times on the quarter hour, like 09:15"
    by_day: dict[int, list[WeeklySlot]] = {}
    for slot in weekly:
        by_day.setdefault(slot.weekday, []).append(slot)
    for day, slots in by_day.items():
        ordered = sorted(slots, key=lambda s: s.start)
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end and 0 <= day <= 6:
                fields.setdefault(
                    f"weekly.{day}", f"The times on {WEEKDAYS[day]} overlap. Join them into one"
                )
    for index, item in enumerate(exceptions):
        if item.ends_at <= item.starts_at:
            fields[f"exceptions.{index}.ends_at"] = "The end must be after the start"
        elif now is not None and item.ends_at <= now:
            fields[f"exceptions.{index}.ends_at"] = "That time has already passed"
        elif now is not None and item.ends_at > now + EXCEPTION_HORIZON:
            fields[f"exceptions.{index}.starts_at"] = HORIZON_MESSAGE
    if fields:
        raise DomainError(
            "Some of the times are not right. Check them and try again.", fields=fields
        )


def _add_rules(profile: WorkerProfile, weekly: Sequence[WeeklySlot]) -> None:
    db.session.execute(delete(AvailabilityRule).where(AvailabilityRule.profile_id == profile.id))
    for slot in weekly:
        db.session.add(
            AvailabilityRule(
                profile_id=profile.id,
                council_id=profile.council_id,
                weekday=slot.weekday,
                start_time=slot.start,
                end_time=slot.end,
            )
        )


def replace_availability(
    profile: WorkerProfile,
    *,
    weekly: Sequence[WeeklySlot],
    exceptions: Sequence[ExceptionSlot],
    actor: User,
    now: datetime,
) -> WorkerProfile:
    """Swap the worker's whole weekly pattern and exception list for new ones (the API).
    Exceptions must not be over already, nor more than two years ahead."""
    _validate(weekly, exceptions, now=now)
    _add_rules(profile, weekly)
    db.session.execute(
        delete(AvailabilityException).where(AvailabilityException.profile_id == profile.id)
    )
    for item in exceptions:
        db.session.add(
            AvailabilityException(
                profile_id=profile.id,
                council_id=profile.council_id,
                starts_at=item.starts_at,
                ends_at=item.ends_at,
                kind=item.kind,
                note=item.note,
            )
        )
    profile.updated_at = now
    audit.record(
        "worker.availability_replaced",
        actor=actor,
        council_id=profile.council_id,
        subject=profile,
        on_behalf_of=profile.user if actor.id != profile.user_id else None,
        details={"weekly": len(weekly), "exceptions": len(exceptions)},
    )
    db.session.commit()
    return profile


def set_weekly(
    profile: WorkerProfile, *, weekly: Sequence[WeeklySlot], actor: User, now: datetime
) -> WorkerProfile:
    """Replace only the weekly pattern (the phone page's form), leaving time off and
    extra time as they are. The page sends every time of every day, several a day."""
    _validate(weekly, [])
    _add_rules(profile, weekly)
    profile.updated_at = now
    audit.record(
        "worker.availability_replaced",
        actor=actor,
        council_id=profile.council_id,
        subject=profile,
        on_behalf_of=profile.user if actor.id != profile.user_id else None,
        details={"weekly": len(weekly)},
    )
    db.session.commit()
    return profile


def add_exception(
    profile: WorkerProfile, item: ExceptionSlot, *, actor: User, now: datetime
) -> AvailabilityException:
    """Add one piece of time off or extra time (not over already, at most 2 years ahead)."""
    _validate([], [item])
    if item.ends_at <= now:
        raise DomainError(
            "That time has already passed.", fields={"day": "Choose a date in the future"}
        )
    if item.ends_at > now + EXCEPTION_HORIZON:
        raise DomainError(HORIZON_MESSAGE + ".", fields={"day": HORIZON_MESSAGE})
    row = AvailabilityException(
        profile_id=profile.id,
        council_id=profile.council_id,
        starts_at=item.starts_at,
        ends_at=item.ends_at,
        kind=item.kind,
        note=item.note,
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        "worker.availability_exception_added",
        actor=actor,
        council_id=profile.council_id,
        subject=profile,
        on_behalf_of=profile.user if actor.id != profile.user_id else None,
        details={"exception_id": row.id, "kind": item.kind.value},
    )
    db.session.commit()
    return row


def remove_exception(
    profile: WorkerProfile, exception_id: int, *, actor: User, now: datetime
) -> None:
    row = db.session.get(AvailabilityException, exception_id)
    if row is None or row.profile_id != profile.id:
        raise NotFound("We cannot find that change to your availability.")
    db.session.delete(row)
    audit.record(
        "worker.availability_exception_removed",
        actor=actor,
        council_id=profile.council_id,
        subject=profile,
        on_behalf_of=profile.user if actor.id != profile.user_id else None,
        details={"exception_id": exception_id},
    )
    db.session.commit()


@dataclass
class CalendarDay:
    day: date
    free: list[Interval]
    bookings: list[Any]


def week_calendar(profile: WorkerProfile, monday: date) -> list[CalendarDay]:
    """A worker's week (Monday to Sunday, UK dates): published free time and live
    bookings side by side, for the calendar page."""
    from booking.models.bookings import LIVE_STATUSES, Booking

    start = start_of_london_day(monday)
    end = start_of_london_day(monday + timedelta(days=7))
    free = free_intervals(profile, start, end)
    bookings = list(
        db.session.scalars(
            select(Booking)
            .where(
                Booking.worker_id == profile.user_id,
                Booking.status.in_(LIVE_STATUSES),
                Booking.starts_at < end,
                Booking.ends_at > start,
            )
            .order_by(Booking.starts_at)
        )
    )
    days: list[CalendarDay] = []
    for offset in range(7):
        day = monday + timedelta(days=offset)
        day_start, day_end = start_of_london_day(day), start_of_london_day(day + timedelta(days=1))
        days.append(
            CalendarDay(
                day=day,
                free=[
                    (max(s, day_start), min(e, day_end))
                    for s, e in free
                    if s < day_end and e > day_start
                ],
                bookings=[b for b in bookings if b.starts_at < day_end and b.ends_at > day_start],
            )
        )
    return days
