"""Figures alarm-receiving centres are held to, per week, and the searchable audit log.

The TSA standard: 97.5% of calls answered within 60 seconds and 99% within 180 seconds.
Drills are left out of every figure."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from app.clock import london_today, start_of_london_day, to_london
from app.extensions import db
from app.models import AuditEntry, User
from emergency.crypto import FieldCipher
from emergency.models import Incident, IncidentEvent, PlanDraft, PlanVersion

TSA_60S_TARGET = 97.5
TSA_180S_TARGET = 99.0


@dataclass
class WeekFigures:
    week_start: date
    incidents: int
    calls: int
    answered_60s_percent: float | None
    answered_180s_percent: float | None
    median_minutes_to_contact: float | None
    median_minutes_to_care: float | None

    @property
    def meets_60s(self) -> bool | None:
        if self.answered_60s_percent is None:
            return None
        return self.answered_60s_percent >= TSA_60S_TARGET

    @property
    def meets_180s(self) -> bool | None:
        if self.answered_180s_percent is None:
            return None
        return self.answered_180s_percent >= TSA_180S_TARGET


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _median_minutes(values: list[timedelta]) -> float | None:
    if not values:
        return None
    return round(statistics.median(v.total_seconds() for v in values) / 60, 1)


def weekly_figures(council_id: int | None, *, now: datetime, weeks: int = 8) -> list[WeekFigures]:
    """One row per UK week (Monday to Sunday), newest first: one council's, or every
    council's together (`council_id=None`, for admins)."""
    today = london_today(now)
    this_monday = today - timedelta(days=today.weekday())
    first_monday = this_monday - timedelta(weeks=weeks - 1)
    query = select(Incident).where(
        Incident.is_drill.is_(False),
        Incident.opened_at >= start_of_london_day(first_monday),
    )
    if council_id is not None:
        query = query.where(Incident.council_id == council_id)
    incidents = db.session.scalars(query).all()
    # The first recorded arrival counts (a repeated record must not move the figure).
    arrivals: dict[int, datetime] = {
        incident_id: first
        for incident_id, first in db.session.execute(
            select(IncidentEvent.incident_id, func.min(IncidentEvent.created_at))
            .where(
                IncidentEvent.kind == "care_arrived",
                # These incidents are already the council's, so their events are too.
                IncidentEvent.incident_id.in_([i.id for i in incidents] or [0]),
            )
            .group_by(IncidentEvent.incident_id)
        )
    }
    rows = []
    for offset in range(weeks):
        monday = this_monday - timedelta(weeks=offset)
        week = [i for i in incidents if _monday_of(i.opened_at) == monday]
        calls = [i for i in week if i.call_started_at is not None]
        waits = [
            (i.call_answered_at - i.call_started_at).total_seconds()
            for i in calls
            if i.call_answered_at is not None and i.call_started_at is not None
        ]
        rows.append(
            WeekFigures(
                week_start=monday,
                incidents=len(week),
                calls=len(calls),
                answered_60s_percent=_percent(sum(1 for w in waits if w <= 60), len(calls)),
                answered_180s_percent=_percent(sum(1 for w in waits if w <= 180), len(calls)),
                median_minutes_to_contact=_median_minutes(
                    [i.contact_confirmed_at - i.opened_at for i in week if i.contact_confirmed_at]
                ),
                median_minutes_to_care=_median_minutes(
                    [arrivals[i.id] - i.opened_at for i in week if i.id in arrivals]
                ),
            )
        )
    return rows


def _monday_of(moment: datetime) -> date:
    day = to_london(moment).date()
    return day - timedelta(days=day.weekday())


def figures_csv(rows: list[WeekFigures]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "week_start",
            "incidents",
            "calls",
            "answered_within_60s_percent",
            "answered_within_180s_percent",
            "median_minutes_lookup_to_contact_confirming",
            "median_minutes_lookup_to_care_arriving",
        ]
    )
    for row in rows:
        writer.writerow(
            [
                row.week_start.isoformat(),
                row.incidents,
                row.calls,
                "" if row.answered_60s_percent is None else row.answered_60s_percent,
                "" if row.answered_180s_percent is None else row.answered_180s_percent,
                "" if row.median_minutes_to_contact is None else row.median_minutes_to_contact,
                "" if row.median_minutes_to_care is None else row.median_minutes_to_care,
            ]
        )
    return out.getvalue()


def search_audit(
    *,
    council_id: int | None,
    action: str | None = None,
    person: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """Audit entries of a council, newest first, filtered by action (prefix), by the
    person who acted (name or email contains) and by UK date range."""
    query = (
        select(AuditEntry)
        .options(selectinload(AuditEntry.actor))  # the page names each actor
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
    )
    if council_id is not None:
        query = query.where(AuditEntry.council_id == council_id)
    if action:
        query = query.where(AuditEntry.action.startswith(action.strip()))
    if person:
        like = f"%{person.strip().lower()}%"
        query = query.join(User, User.id == AuditEntry.actor_id).where(
            or_(User.name.ilike(like), User.email.ilike(like))
        )
    if date_from:
        query = query.where(AuditEntry.created_at >= start_of_london_day(date_from))
    if date_to:
        query = query.where(
            AuditEntry.created_at < start_of_london_day(date_to + timedelta(days=1))
        )
    return list(db.session.scalars(query.limit(limit)))


def rotate_encryption_keys(cipher: FieldCipher) -> int:
    """Re-encrypt every sensitive field with the newest key. Returns the fields changed."""
    changed = 0
    for version in db.session.scalars(select(PlanVersion)):
        version.details_encrypted = cipher.rotate(version.details_encrypted)
        changed += 1
        if version.key_safe_encrypted:
            version.key_safe_encrypted = cipher.rotate(version.key_safe_encrypted)
            changed += 1
    for draft in db.session.scalars(select(PlanDraft)):
        draft.answers_encrypted = cipher.rotate(draft.answers_encrypted)
        changed += 1
    db.session.commit()
    return changed
