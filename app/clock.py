"""The one clock. Everything stores aware UTC; Europe/London only at the edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def utcnow() -> datetime:
    """Now, as an aware UTC datetime. Pass it into services as `now=`."""
    return datetime.now(UTC)


def to_london(moment: datetime) -> datetime:
    """Show a stored UTC moment in UK wall-clock time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LONDON)


def london_wall_clock(day: date, at: time) -> datetime:
    """The UTC moment a UK wall-clock time falls on, for one date.

    On the spring-forward day a time in the missing hour is moved forward (fold=0),
    which is what a person reading a clock would expect.
    """
    return datetime.combine(day, at, tzinfo=LONDON).astimezone(UTC)


def parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 moment that must carry an offset; return it in UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(
            "Give the time with its UTC offset, for example 2027-03-28T09:00:00+01:00."
        )
    return moment.astimezone(UTC)


def iso_z(moment: datetime | None) -> str | None:
    """Format a moment for the API: UTC with a trailing Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def start_of_london_day(day: date) -> datetime:
    """Midnight UK time on `day`, in UTC."""
    return datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)


def london_today(now: datetime) -> date:
    return to_london(now).date()


__all__ = [
    "LONDON",
    "iso_z",
    "london_today",
    "london_wall_clock",
    "parse_iso",
    "start_of_london_day",
    "timedelta",
    "to_london",
    "utcnow",
]
