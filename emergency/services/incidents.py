"""Incidents: opening one, the timeline, handover notes, revealing the key-safe code,
call timings, closing with an outcome, and the list of open incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import audit
from app.extensions import db
from app.models import User
from emergency.crypto import FieldCipher
from emergency.models import (
    Card,
    CascadeAttempt,
    CascadeStatus,
    Contact,
    Incident,
    IncidentEvent,
    IncidentStatus,
    Plan,
)
from emergency.services.errors import EmergencyError, IncidentClosed, RecordNotFound
from emergency.services.plans import current_version

EVENT_KINDS = frozenset(
    {
        # what operators (and the phone line) record
        "note",
        "call",
        "sms",
        "contact_confirmed",
        "care_arranged",
        "handover",
        # what the service records itself
        "opened",
        "lookup",
        "key_safe_revealed",
        "cascade_started",
        "cascade_contact_tried",
        "cascade_timeout",
        "cascade_skipped",
        "cascade_exhausted",
        "drill_message",
        "care_arrived",
        "care_window_warning",
        "carer_update",
        "fallback",
        "budget_warning",
        "closed",
    }
)
OPERATOR_EVENT_KINDS = ("note", "call", "sms", "contact_confirmed", "care_arranged")


def add_incident_event(
    incident: Incident,
    *,
    kind: str,
    text: str,
    actor: User | None,
    now: datetime,
    details: dict[str, Any] | None = None,
    commit: bool = True,
) -> IncidentEvent:
    """Add a line to the incident's timeline."""
    if kind not in EVENT_KINDS:
        raise EmergencyError(
            "That kind of event is not known.",
            code="validation_failed",
            fields={"kind": f"Choose one of: {', '.join(OPERATOR_EVENT_KINDS)}"},
        )
    event = IncidentEvent(
        incident_id=incident.id,
        council_id=incident.council_id,
        kind=kind,
        text=text.strip(),
        actor_id=actor.id if actor else None,
        details=details or {},
        created_at=now,
    )
    db.session.add(event)
    if kind == "contact_confirmed" and incident.contact_confirmed_at is None:
        incident.contact_confirmed_at = now
    if kind == "care_arranged" and incident.care_arranged_at is None:
        incident.care_arranged_at = now
    db.session.flush()
    if commit:
        db.session.commit()
    return event


def open_incident_for_card(
    card: Card, *, source: str, operator: User | None, now: datetime
) -> Incident:
    """Open an incident for the card's plan, or return the one already open (a second
    call about the same emergency must not start a second cascade). Only flushes."""
    existing = db.session.scalar(
        select(Incident)
        .where(Incident.plan_id == card.plan_id, Incident.status == IncidentStatus.OPEN)
        .order_by(Incident.id.desc())
    )
    if existing is not None:
        return existing
    plan = db.session.get(Plan, card.plan_id)
    assert plan is not None
    incident = Incident(
        council_id=card.council_id,
        plan_id=plan.id,
        plan_version_id=current_version(plan).id,
        card_id=card.id,
        source=source,
        is_drill=card.is_test or plan.is_test,
        opened_by_id=operator.id if operator else None,
        opened_at=now,
    )
    db.session.add(incident)
    db.session.flush()
    add_incident_event(
        incident,
        kind="opened",
        text="Drill started on a test card." if incident.is_drill else "Incident opened.",
        actor=operator,
        now=now,
        details={"source": source},
        commit=False,
    )
    audit.record(
        "emergency.incident_opened",
        actor=operator,
        council_id=incident.council_id,
        subject=incident,
        details={"plan_id": plan.id, "card_id": card.id, "source": source},
    )
    return incident


def get_incident(incident_id: int, *, council_id: int | None) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None or (council_id is not None and incident.council_id != council_id):
        raise RecordNotFound("There is no incident with that number.")
    return incident


def _require_open(incident: Incident) -> None:
    if incident.status is not IncidentStatus.OPEN:
        raise IncidentClosed("This incident is closed.")


def record_operator_event(
    incident: Incident,
    *,
    kind: str,
    text: str,
    operator: User,
    now: datetime,
    contact_id: int | None = None,
) -> IncidentEvent:
    """An operator's note, call, SMS, confirmation or care arrangement.

    A confirmation stops the contact cascade exactly as a YES by SMS or the console's
    button does: nobody else is messaged and no care is booked automatically."""
    _require_open(incident)
    if contact_id is not None and kind != "contact_confirmed":
        raise EmergencyError(
            "A contact can only be named when a contact confirmed.",
            code="validation_failed",
            fields={"contact_id": "Leave this out unless the kind is contact_confirmed"},
        )
    if kind not in OPERATOR_EVENT_KINDS and kind != "handover":
        raise EmergencyError(
            "That kind of event cannot be added by hand.",
            code="validation_failed",
            fields={"kind": f"Choose one of: {', '.join(OPERATOR_EVENT_KINDS)}"},
        )
    if not text.strip():
        raise EmergencyError(
            "Write what happened.", code="validation_failed", fields={"text": "Enter some text"}
        )
    if kind == "contact_confirmed":
        return _operator_confirmation(
            incident, text=text, operator=operator, now=now, contact_id=contact_id
        )
    return add_incident_event(incident, kind=kind, text=text, actor=operator, now=now)


def _named_contact(incident: Incident, contact_id: int) -> Contact:
    """The plan contact the operator named as confirming."""
    contact = db.session.get(Contact, contact_id)
    if contact is None or contact.plan_version_id != incident.plan_version_id:
        raise EmergencyError(
            "That person is not a contact in this plan.",
            code="validation_failed",
            fields={"contact_id": "Give the id of one of this plan's contacts"},
        )
    return contact


def _operator_confirmation(
    incident: Incident, *, text: str, operator: User, now: datetime, contact_id: int | None
) -> IncidentEvent:
    from emergency.services import cascade  # cascade builds on this module

    # The contact named, or else the one the cascade is waiting on now (if any).
    contact = (
        _named_contact(incident, contact_id)
        if contact_id is not None
        else cascade.waiting_contact(incident)
    )
    event = add_incident_event(
        incident,
        kind="contact_confirmed",
        text=text,
        actor=operator,
        now=now,
        details={"contact_id": contact.id if contact else None, "via": "operator"},
        commit=False,
    )
    if contact is not None:
        # The console button's path: stops the cascade, tells the carer, commits.
        cascade.confirm_contact(incident, contact, via="console", now=now)
        db.session.commit()  # a second confirmation returns early, without committing
        return event
    # Someone confirmed who is not (or not yet) being asked: stop the cascade anyway,
    # so nobody else is messaged and no care is booked behind the operator's back.
    if incident.cascade_status in (CascadeStatus.NOT_STARTED, CascadeStatus.RUNNING):
        incident.cascade_status = CascadeStatus.CONFIRMED
        incident.cascade_step_due_at = None
        for attempt in db.session.scalars(
            select(CascadeAttempt).where(
                CascadeAttempt.incident_id == incident.id, CascadeAttempt.outcome == "waiting"
            )
        ):
            attempt.outcome = "stopped"
            attempt.ended_at = now
    db.session.commit()
    return event


def add_handover_note(incident: Incident, *, operator: User, text: str, now: datetime) -> None:
    """A note for the next shift, shown at the top of the incident page."""
    record_operator_event(incident, kind="handover", text=text, operator=operator, now=now)


def reveal_key_safe(
    incident: Incident,
    *,
    operator: User,
    cipher: FieldCipher,
    now: datetime,
    ip_address: str | None = None,
) -> str | None:
    """The key-safe code, only while the incident is open. Each reveal is audited."""
    _require_open(incident)
    version = incident.plan_version
    audit.record(
        "emergency.key_safe_revealed",
        actor=operator,
        council_id=incident.council_id,
        subject=incident.plan,
        reason=f"incident {incident.id}",
        ip_address=ip_address,
        details={"incident_id": incident.id, "version": version.number},
    )
    add_incident_event(
        incident,
        kind="key_safe_revealed",
        text=f"{operator.name} looked at the key-safe code.",
        actor=operator,
        now=now,
        commit=False,
    )
    db.session.commit()
    if version.key_safe_encrypted is None:
        return None
    return cipher.decrypt(version.key_safe_encrypted)


def record_call_timing(
    incident: Incident, *, started_at: datetime, answered_at: datetime | None
) -> Incident:
    """When the call that led to this incident rang and was answered (for the figures)."""
    incident.call_started_at = started_at
    incident.call_answered_at = answered_at
    db.session.commit()
    return incident


def close_incident(incident: Incident, *, operator: User, outcome: str, now: datetime) -> Incident:
    """Close with an outcome. The cascade stops; nothing more is sent."""
    _require_open(incident)
    outcome = outcome.strip()
    if not outcome:
        raise EmergencyError(
            "Say how the incident ended.",
            code="validation_failed",
            fields={"outcome": "Enter the outcome"},
        )
    incident.status = IncidentStatus.CLOSED
    incident.closed_at = now
    incident.closed_by_id = operator.id
    incident.outcome = outcome[:2000]
    incident.cascade_step_due_at = None
    add_incident_event(
        incident, kind="closed", text=f"Closed: {outcome}", actor=operator, now=now, commit=False
    )
    audit.record(
        "emergency.incident_closed",
        actor=operator,
        council_id=incident.council_id,
        subject=incident,
        details={"outcome": outcome[:200]},
    )
    db.session.commit()
    return incident


def open_incidents(council_id: int | None) -> list[Incident]:
    query = (
        select(Incident).where(Incident.status == IncidentStatus.OPEN).order_by(Incident.opened_at)
    )
    if council_id is not None:
        query = query.where(Incident.council_id == council_id)
    return list(db.session.scalars(query))


def events_of(incident: Incident) -> list[IncidentEvent]:
    """The timeline, oldest first, with each line's actor loaded in one go."""
    return list(
        db.session.scalars(
            select(IncidentEvent)
            .options(selectinload(IncidentEvent.actor))
            .where(IncidentEvent.incident_id == incident.id)
            .order_by(IncidentEvent.created_at, IncidentEvent.id)
        )
    )
