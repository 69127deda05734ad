"""Replacement care: find a vetted worker available now near the cared-for person and
book them on the scheme's emergency budget (never the carer's); the free-care window
and its warning; SMS updates to the carer. Drills contact nobody real."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from app import audit, outbox
from app.clock import to_london
from app.errors import DomainError
from app.extensions import db
from app.models import Council, Role, User, UserRole
from emergency.models import Incident, IncidentStatus
from emergency.services.common import first_name, scheme_for
from emergency.services.errors import EmergencyError
from emergency.services.incidents import _require_open, add_incident_event

log = logging.getLogger("emergency.care")

EXPECTED_ARRIVAL = timedelta(hours=1)
FIRST_SHIFT = timedelta(
    hours=4
)  # search for someone free now for the first hours  # Crossroads: "a carer support worker … within one hour"


@dataclass
class CareOption:
    worker_id: int
    name: str
    distance_km: float | None = None
    price_pence: int | None = None


@dataclass
class CareSearch:
    """Who could come now, and what the marketplace could not yet do."""

    options: list[CareOption]
    marketplace_ready: bool
    missing: list[str] = field(default_factory=list)


def _marketplace() -> tuple[Any, Any, list[str]]:
    """The marketplace's search and emergency-booking functions, if they exist yet."""
    missing: list[str] = []
    search = create = None
    try:
        from booking.services import search as search_module

        search = getattr(search_module, "search_workers", None)
    except ImportError:
        search = None
    if search is None:
        missing.append("booking.services.search.search_workers")
    try:
        from booking.services import bookings as bookings_module  # type: ignore[attr-defined]

        create = getattr(bookings_module, "create_emergency_booking", None)
    except ImportError:
        create = None
    if create is None:
        missing.append(
            "booking.services.bookings.create_emergency_booking (a booking funded by the "
            "scheme's emergency budget, not the carer's)"
        )
    return search, create, missing


def find_replacement_care(incident: Incident, *, now: datetime) -> CareSearch:
    """Vetted workers free from now for the plan's replacement-care hours, near the
    cared-for person's postcode. Falls back to the council's workers (for the operator
    to phone) while the marketplace search is not available."""
    version = incident.plan_version
    search, create, missing = _marketplace()
    if search is not None:
        starts_at = _next_quarter_hour(now)
        try:
            results = search(
                carer=incident.plan.carer,
                starts_at=starts_at,
                ends_at=starts_at + FIRST_SHIFT,
                postcode=version.cared_for_postcode or "",
                now=now,
            )
            options = [
                CareOption(
                    worker_id=int(_get(r, "worker_id")),
                    name=str(_get(r, "display_name")),
                    distance_km=_get(r, "distance_km"),
                    price_pence=_get(r, "price_pence"),
                )
                for r in results
            ]
            if options or create is not None:
                return CareSearch(
                    options=options, marketplace_ready=create is not None, missing=missing
                )
            missing.append("marketplace search found no worker free now")
        except DomainError as exc:  # e.g. an unknown postcode: fall back to the list
            missing.append(f"marketplace search refused: {exc.message}")
    workers = db.session.scalars(
        select(User)
        .join(UserRole)
        .where(
            User.council_id == incident.council_id,
            UserRole.role == Role.WORKER,
            User.is_active.is_(True),
        )
        .order_by(User.name)
    )
    options = [CareOption(worker_id=w.id, name=w.name) for w in workers]
    return CareSearch(options=options, marketplace_ready=False, missing=missing)


def _next_quarter_hour(now: datetime) -> datetime:
    """The marketplace books on the quarter hour: the next one from now."""
    base = now.replace(second=0, microsecond=0)
    return base + timedelta(minutes=15 - base.minute % 15)


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


def _notify_carer(incident: Incident, text: str, *, now: datetime, key: str) -> None:
    """An SMS update to the carer (no health details). In a drill, only a timeline note."""
    carer = incident.plan.carer
    if incident.is_drill or not carer.phone:
        add_incident_event(
            incident,
            kind="drill_message" if incident.is_drill else "carer_update",
            text=f"Carer update not sent ({'drill' if incident.is_drill else 'no phone'}): {text}",
            actor=None,
            now=now,
            commit=False,
        )
        return
    outbox.enqueue(
        "sms",
        recipient=carer.phone,
        payload={"body": text},
        council_id=incident.council_id,
        dedupe_key=f"incident-{incident.id}-carer-{key}",
    )
    add_incident_event(
        incident,
        kind="carer_update",
        text=f"SMS to the carer: {text}",
        actor=None,
        now=now,
        commit=False,
    )


def _arrange(
    incident: Incident, *, by: User | None, now: datetime, worker_id: int | None
) -> Incident:
    """Book (or record) replacement care. Only flushes."""
    if incident.care_arranged_at is not None:
        return incident
    scheme = scheme_for(incident.council_id)
    hours = min(incident.plan_version.replacement_care_hours, scheme.free_care_hours)
    found = find_replacement_care(incident, now=now)
    chosen = None
    if worker_id is not None:
        chosen = next((o for o in found.options if o.worker_id == worker_id), None)
        if chosen is None:
            raise EmergencyError(
                "That worker is not available now. Choose another.",
                code="worker_not_bookable",
                fields={"worker_id": "Choose a worker from the list"},
            )
    elif found.options:
        chosen = found.options[0]
    council = db.session.get(Council, incident.council_id)
    duty = council.duty_team_phone if council else None
    if chosen is None:
        add_incident_event(
            incident,
            kind="fallback",
            text=f"No replacement care could be found. Call the council's emergency duty team"
            f"{' on ' + duty if duty else ''}.",
            actor=by,
            now=now,
            details={"duty_team_phone": duty, "missing": found.missing},
            commit=False,
        )
        return incident
    booking_id = None
    if found.marketplace_ready and not incident.is_drill:
        _search, create, _missing = _marketplace()
        starts_at = _next_quarter_hour(now)
        booking = create(
            worker_id=chosen.worker_id,
            carer=incident.plan.carer,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=hours),
            postcode=incident.plan_version.cared_for_postcode or "",
            council_id=incident.council_id,
            incident_id=incident.id,
            now=now,
        )
        booking_id = int(_get(booking, "id"))
    incident.booking_id = booking_id
    incident.care_arranged_at = now
    incident.care_arrives_at = now + EXPECTED_ARRIVAL
    incident.care_window_ends_at = now + timedelta(hours=hours)
    how = (
        f"Emergency booking {booking_id} made"
        if booking_id
        else "Replacement care arranged (recorded; the booking itself is made by phone "
        "until the marketplace's emergency booking is available)"
    )
    add_incident_event(
        incident,
        kind="care_arranged",
        text=f"{how}: {chosen.name}, funded by the scheme's emergency budget for up to "
        f"{hours} hours.",
        actor=by,
        now=now,
        details={
            "worker_id": chosen.worker_id,
            "worker_name": chosen.name,
            "booking_id": booking_id,
            "funded_by": "scheme_emergency_budget",
            "hours": hours,
            "drill": incident.is_drill,
            "marketplace_missing": found.missing,
        },
        commit=False,
    )
    audit.record(
        "emergency.care_arranged",
        actor=by,
        council_id=incident.council_id,
        subject=incident,
        details={"worker_id": chosen.worker_id, "booking_id": booking_id, "hours": hours},
    )
    arrival = to_london(incident.care_arrives_at).strftime("%-I:%M%p").lower()
    _notify_carer(
        incident,
        f"Hello {first_name(incident.plan.carer.name)}, this is {scheme.name}. A care worker "
        f"is on their way to the person you care for and should be there by about {arrival}. "
        f"We will keep you updated.",
        now=now,
        key="care-arranged",
    )
    return incident


def arrange_replacement_care(
    incident: Incident, *, by: User | None, now: datetime, worker_id: int | None = None
) -> Incident:
    """The operator's one click: book the nearest free vetted worker (or the one chosen)."""
    _require_open(incident)
    _arrange(incident, by=by, now=now, worker_id=worker_id)
    db.session.commit()
    return incident


def record_care_arrived(incident: Incident, *, by: User, now: datetime) -> Incident:
    """The worker has arrived: the figure 'time to replacement care arriving' ends here."""
    _require_open(incident)
    add_incident_event(
        incident,
        kind="care_arrived",
        text="The care worker has arrived.",
        actor=by,
        now=now,
        commit=False,
    )
    incident.care_arrives_at = now  # the estimate is replaced by the real arrival
    audit.record(
        "emergency.care_arrived",
        actor=by,
        council_id=incident.council_id,
        subject=incident,
        details={"arrived_at": now.isoformat()},
    )
    _notify_carer(
        incident,
        "The care worker has arrived and is with the person you care for.",
        now=now,
        key="care-arrived",
    )
    db.session.commit()
    return incident


def send_care_window_warnings(now: datetime) -> int:
    """Warn before the free replacement-care window ends, once per incident: a timeline
    entry for the operators and an SMS to the carer."""
    count = 0
    incidents = db.session.scalars(
        select(Incident).where(
            Incident.status == IncidentStatus.OPEN,
            Incident.care_window_ends_at.is_not(None),
            Incident.window_warning_sent_at.is_(None),
        )
    )
    for incident in incidents:
        scheme = scheme_for(incident.council_id)
        assert incident.care_window_ends_at is not None
        if incident.care_window_ends_at - timedelta(minutes=scheme.window_warning_minutes) > now:
            continue
        incident.window_warning_sent_at = now
        ends = to_london(incident.care_window_ends_at).strftime("%-I:%M%p on %-d %B").lower()
        add_incident_event(
            incident,
            kind="care_window_warning",
            text=f"The free replacement-care window ends at {ends}. Agree what happens next "
            f"with the family or the council's duty team.",
            actor=None,
            now=now,
            commit=False,
        )
        _notify_carer(
            incident,
            f"The free replacement care arranged by {scheme.name} ends at {ends}. We will "
            f"call you to agree what happens next.",
            now=now,
            key="window-warning",
        )
        count += 1
    db.session.commit()
    return count
