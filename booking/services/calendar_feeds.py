"""iCalendar (RFC 5545) feeds of a person's breaks at a secret URL.

The URL carries a random token; only its SHA-256 is stored, so a database leak does not
reveal working feed URLs. One live feed per person: making a new one revokes the old,
and a revoked token stops working at once. The feed shows times, the worker's or carer's
first name and the postcode only, never notes about the person cared for.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import selectinload

from app import audit
from app.extensions import db
from app.models import Role, User
from booking.models.bookings import Booking, BookingStatus, CalendarFeed
from booking.services.bookings import carers_for, worker_names

SHOWN_STATUSES = (BookingStatus.REQUESTED, BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
PAST_DAYS = 60
PRODID = "-//Carers Breaks//Bookings//EN"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def live_feed(user: User) -> CalendarFeed | None:
    return db.session.scalar(
        select(CalendarFeed)
        .where(CalendarFeed.user_id == user.id, CalendarFeed.revoked_at.is_(None))
        .order_by(CalendarFeed.id.desc())
        .limit(1)
    )


def _revoke_all(user: User, now: datetime) -> int:
    feeds = db.session.scalars(
        select(CalendarFeed).where(
            CalendarFeed.user_id == user.id, CalendarFeed.revoked_at.is_(None)
        )
    ).all()
    for feed in feeds:
        feed.revoked_at = now
    return len(feeds)


def create_feed(user: User, *, now: datetime) -> str:
    """Make a new secret feed token (revoking any old one) and return it, once."""
    _revoke_all(user, now)
    token = secrets.token_urlsafe(32)
    db.session.add(CalendarFeed(user_id=user.id, token_hash=_hash(token), created_at=now))
    audit.record("calendar_feed.created", actor=user, council_id=user.council_id, subject=user)
    db.session.commit()
    return token


def revoke_feed(user: User, *, now: datetime) -> bool:
    revoked = _revoke_all(user, now)
    if revoked:
        audit.record("calendar_feed.revoked", actor=user, council_id=user.council_id, subject=user)
    db.session.commit()
    return bool(revoked)


def user_for_token(token: str) -> User | None:
    if not token or len(token) > 200:
        return None
    feed = db.session.scalar(select(CalendarFeed).where(CalendarFeed.token_hash == _hash(token)))
    if feed is None or feed.revoked_at is not None or not feed.user.is_active:
        return None
    return feed.user


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """Lines longer than 75 octets are folded (CRLF then a space), never inside a character."""
    out: list[str] = []
    current = ""
    for char in line:
        limit = 75 if not out else 74
        if len((current + char).encode()) > limit:
            out.append(current)
            current = char
        else:
            current += char
    out.append(current)
    return "\r\n ".join(out)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def feed_bookings(user: User, *, now: datetime) -> list[Booking]:
    conditions: list[ColumnElement[bool]] = []
    carer_ids = [carer.id for carer in carers_for(user)]
    if carer_ids:
        conditions.append(Booking.carer_id.in_(carer_ids))
    if user.has_role(Role.WORKER):
        conditions.append(Booking.worker_id == user.id)
    if not conditions:
        return []
    return list(
        db.session.scalars(
            select(Booking)
            .where(
                or_(*conditions),
                Booking.status.in_(SHOWN_STATUSES),
                Booking.ends_at >= now - timedelta(days=PAST_DAYS),
            )
            .options(selectinload(Booking.carer))
            .order_by(Booking.starts_at)
        )
    )


def render_feed(user: User, *, now: datetime, host: str) -> str:
    """The person's breaks as a VCALENDAR (UTC times, CRLF line ends, folded lines)."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALNAME:Breaks",
    ]
    bookings = feed_bookings(user, now=now)
    # One query for every worker's name, however many breaks the feed has.
    names = worker_names({b.worker_id for b in bookings if b.worker_id != user.id})
    for booking in bookings:
        if booking.worker_id == user.id:
            carer = booking.carer
            summary = f"Break with {carer.name.split()[0]}" if carer else "Emergency break"
        else:
            summary = f"Break with {names[booking.worker_id]}"
        status = "CONFIRMED" if booking.status is not BookingStatus.REQUESTED else "TENTATIVE"
        if booking.status is BookingStatus.REQUESTED:
            summary += " (waiting for an answer)"
        lines += [
            "BEGIN:VEVENT",
            f"UID:booking-{booking.id}@{host}",
            f"DTSTAMP:{_stamp(now)}",
            f"DTSTART:{_stamp(booking.starts_at)}",
            f"DTEND:{_stamp(booking.ends_at)}",
            f"SUMMARY:{_escape(summary)}",
            f"STATUS:{status}",
        ]
        if booking.postcode:
            lines.append(f"LOCATION:{_escape(booking.postcode)}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) + "\r\n" for line in lines)
