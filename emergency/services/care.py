"""Replacement care: find a vetted worker available now near the cared-for person and
book them on the scheme's emergency budget (never the carer's); the free-care window
and its warning; SMS updates to the carer. Drills contact nobody real."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app import audit, outbox
from app.clock import to_london
from app.errors import DomainError
from app.extensions import db
from app.models import Council, User
from app.money import format_pence
from booking.models.bookings import LIVE_STATUSES, Booking, FundedBy
from booking.models.workers import VettingStatus, WorkerProfile
from booking.services import postcodes, vetting
from booking.services.bookings import make_emergency_booking
from booking.services.search import search_workers
from emergency.models import Incident, IncidentEvent, IncidentStatus
from emergency.services.common import first_name, scheme_for
from emergency.services.errors import EmergencyError
from emergency.services.incidents import _require_open, add_incident_event

log = logging.getLogger("emergency.care")

EXPECTED_ARRIVAL = timedelta(hours=1)
# Search for someone free now for the first hours (Crossroads: "a carer support worker
# … within one hour"); the booking itself covers the plan's replacement-care hours.
FIRST_SHIFT = timedelta(hours=4)


@dataclass
class CareOption:
    worker_id: int
    name: str
    distance_km: float | None = None
    price_pence: int | None = None
    free_now: bool = True  # published as free for the first hours under their own rules


@dataclass
class CareSearch:
    """Who could come now, and notes for the operator on how the list was made."""

    options: list[CareOption]
    notes: list[str] = field(default_factory=list)


def find_replacement_care(incident: Incident, *, now: datetime) -> CareSearch:
    """Vetted workers free from now for the first hours, near the cared-for person's
    postcode (the marketplace search, under each worker's own rules). When nobody has
    said they are free, the council's other approved, in-date workers, nearest first, for
    the operator to phone: in an emergency a worker may agree to come anyway."""
    starts_at = _next_quarter_hour(now)
    postcode = incident.plan_version.cared_for_postcode or ""
    notes: list[str] = []
    options: list[CareOption] = []
    try:
        results = search_workers(
            carer=incident.plan.carer,
            starts_at=starts_at,
            ends_at=starts_at + FIRST_SHIFT,
            postcode=postcode,
            now=now,
            emergency=True,
        )
        options = [
            CareOption(
                worker_id=r.worker_id,
                name=r.display_name,
                distance_km=r.distance_km,
                price_pence=r.price_pence,
            )
            for r in results
        ]
    except DomainError as exc:  # e.g. no postcode in the plan, or one we cannot place
        notes.append(f"The search could not use the plan's postcode: {exc.message}")
    if options:
        return CareSearch(options=options, notes=notes)
    notes.append(
        "No worker has said they are free now. Phone one of these approved workers and "
        "book them once they agree to go."
    )
    return CareSearch(options=_approved_workers(incident, postcode, now=now), notes=notes)


def _approved_workers(incident: Incident, postcode: str, *, now: datetime) -> list[CareOption]:
    """The council's approved, in-date workers, nearest to the postcode first."""
    profiles = db.session.scalars(
        select(WorkerProfile)
        .where(
            WorkerProfile.council_id == incident.council_id,
            WorkerProfile.status == VettingStatus.APPROVED,
        )
        .order_by(WorkerProfile.display_name)
    ).all()
    try:
        place = postcodes.locate(postcode)
    except DomainError:
        place = None
    options = []
    for profile in profiles:
        if not vetting.is_bookable(profile, now):
            continue
        distance = None
        if place is not None:
            distance = round(
                postcodes.haversine_km(
                    place.latitude, place.longitude, profile.latitude, profile.longitude
                ),
                1,
            )
        options.append(
            CareOption(
                worker_id=profile.user_id,
                name=profile.display_name,
                distance_km=distance,
                free_now=False,
            )
        )
    return sorted(options, key=lambda o: (o.distance_km is None, o.distance_km or 0.0))


def emergency_spend_pence(council_id: int) -> int:
    """What the scheme's emergency bookings have cost so far (cancelled ones cost nothing)."""
    spent = db.session.scalar(
        select(func.coalesce(func.sum(Booking.price_pence), 0)).where(
            Booking.council_id == council_id,
            Booking.funded_by == FundedBy.SCHEME,
            Booking.status.in_(LIVE_STATUSES),
        )
    )
    return int(spent or 0)


def _next_quarter_hour(now: datetime) -> datetime:
    """The marketplace books on the quarter hour: the next one from now."""
    base = now.replace(second=0, microsecond=0)
    return base + timedelta(minutes=15 - base.minute % 15)


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
    """Book replacement care on the scheme's emergency budget. Only flushes.

    The operator may choose any worker on the list (having phoned them); the automatic
    path after the cascade books only someone who has said they are free now, trying the
    next one if the first has just been booked by someone else."""
    if incident.care_arranged_at is not None:
        return incident
    scheme = scheme_for(incident.council_id)
    hours = min(incident.plan_version.replacement_care_hours, scheme.free_care_hours)
    found = find_replacement_care(incident, now=now)
    if worker_id is not None:
        chosen = [o for o in found.options if o.worker_id == worker_id]
        if not chosen:
            raise EmergencyError(
                "That worker is not available now. Choose another.",
                code="worker_not_bookable",
                fields={"worker_id": "Choose a worker from the list"},
            )
    else:
        chosen = [o for o in found.options if o.free_now]
    starts_at = _next_quarter_hour(now)
    ends_at = starts_at + timedelta(hours=hours)
    booked: tuple[CareOption, Booking | None] | None = None
    refusals: list[str] = []
    for option in chosen:
        if incident.is_drill:  # a drill books nobody
            booked = (option, None)
            break
        try:
            booking = make_emergency_booking(
                worker_id=option.worker_id,
                council_id=incident.council_id,
                starts_at=starts_at,
                ends_at=ends_at,
                postcode=incident.plan_version.cared_for_postcode,
                address=None,  # the operator gives the address by phone, with the plan
                notes=None,  # health details stay in the plan, never in the booking
                incident_ref=f"incident-{incident.id}",
                actor=by,
                now=now,
                carer_id=incident.plan.carer_id,
                commit=False,
            )
        except DomainError as exc:
            if worker_id is not None:
                raise EmergencyError(
                    f"{option.name} cannot be booked: {exc.message}",
                    code=exc.code,
                    fields={"worker_id": "Choose another worker"},
                ) from exc
            refusals.append(f"{option.name}: {exc.message}")
            continue
        booked = (option, booking)
        break
    if booked is None:
        _record_fallback(incident, by=by, now=now, notes=found.notes + refusals)
        return incident
    option, booking = booked
    booking_id = booking.id if booking is not None else None
    price = booking.price_pence if booking is not None else 0
    incident.booking_id = booking_id
    incident.care_arranged_at = now
    incident.care_arrives_at = now + EXPECTED_ARRIVAL
    incident.care_window_ends_at = now + timedelta(hours=hours)
    how = f"Emergency booking {booking_id} made" if booking_id else "Drill: nobody was booked"
    add_incident_event(
        incident,
        kind="care_arranged",
        text=f"{how}: {option.name}, funded by the scheme's emergency budget for up to "
        f"{hours} hours ({format_pence(price)}).",
        actor=by,
        now=now,
        details={
            "worker_id": option.worker_id,
            "worker_name": option.name,
            "booking_id": booking_id,
            "price_pence": price,
            "funded_by": "scheme_emergency_budget",
            "hours": hours,
            "drill": incident.is_drill,
        },
        commit=False,
    )
    if booking is not None:
        _warn_if_over_budget(incident, scheme.emergency_budget_pence, by=by, now=now)
    audit.record(
        "emergency.care_arranged",
        actor=by,
        council_id=incident.council_id,
        subject=incident,
        details={"worker_id": option.worker_id, "booking_id": booking_id, "hours": hours},
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


def _record_fallback(
    incident: Incident, *, by: User | None, now: datetime, notes: list[str]
) -> None:
    council = db.session.get(Council, incident.council_id)
    duty = council.duty_team_phone if council else None
    add_incident_event(
        incident,
        kind="fallback",
        text=f"No replacement care could be booked. Call the council's emergency duty team"
        f"{' on ' + duty if duty else ''}.",
        actor=by,
        now=now,
        details={"duty_team_phone": duty, "notes": notes},
        commit=False,
    )


def _warn_if_over_budget(
    incident: Incident, budget: int, *, by: User | None, now: datetime
) -> None:
    """Care is never refused for want of budget in an emergency; the council is told."""
    spent = emergency_spend_pence(incident.council_id)
    if spent <= budget:
        return
    add_incident_event(
        incident,
        kind="budget_warning",
        text=f"The scheme's emergency budget of {format_pence(budget)} is now overspent: "
        f"{format_pence(spent)} booked. Tell the council.",
        actor=by,
        now=now,
        details={"budget_pence": budget, "spent_pence": spent},
        commit=False,
    )


def arrange_replacement_care(
    incident: Incident, *, by: User | None, now: datetime, worker_id: int | None = None
) -> Incident:
    """The operator's one click: book the nearest free vetted worker (or the one chosen)."""
    _require_open(incident)
    try:
        _arrange(incident, by=by, now=now, worker_id=worker_id)
    except DomainError:
        db.session.rollback()  # nothing half-made: no booking without its incident entry
        raise
    db.session.commit()
    return incident


def care_arrived_at(incident: Incident) -> datetime | None:
    """When the care worker's arrival was recorded (the first record), or None."""
    return db.session.scalar(
        select(func.min(IncidentEvent.created_at)).where(
            IncidentEvent.incident_id == incident.id, IncidentEvent.kind == "care_arrived"
        )
    )


def record_care_arrived(incident: Incident, *, by: User, now: datetime) -> Incident:
    """The worker has arrived: the figure 'time to replacement care arriving' ends here.
    Recorded once per incident: a second click (or a second operator) is refused, so
    the figure and the carer's SMS are not repeated."""
    _require_open(incident)
    # Two operators clicking at once: the second waits here, then sees the first record.
    db.session.execute(select(Incident.id).where(Incident.id == incident.id).with_for_update())
    arrived = care_arrived_at(incident)
    if arrived is not None:
        raise EmergencyError(
            f"The care worker's arrival was already recorded at "
            f"{to_london(arrived).strftime('%-I:%M%p').lower()}. Nothing has changed.",
            code="already_recorded",
            status=409,
        )
    if incident.care_arranged_at is None:
        raise EmergencyError(
            "No replacement care has been arranged for this incident yet, so no arrival "
            "can be recorded.",
            code="care_not_arranged",
            status=409,
        )
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
