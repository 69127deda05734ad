"""The contact cascade: message the plan's contacts in order through the outbox, move
to the next after the scheme's timeout unless one confirms, and arrange replacement
care when nobody is left. Each step's due time is in the database, so a restarted
scheduler carries on where it stopped."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import outbox
from app.extensions import db
from emergency.models import (
    CascadeAttempt,
    CascadeStatus,
    Contact,
    Incident,
    IncidentStatus,
)
from emergency.services.care import _arrange, _notify_carer
from emergency.services.common import first_name, scheme_for
from emergency.services.errors import EmergencyError
from emergency.services.incidents import add_incident_event

CONFIRM_VIA = ("sms", "call", "console")


def _cascade_contacts(incident: Incident) -> list[Contact]:
    return list(incident.plan_version.contacts)


def _message_for(incident: Incident, contact: Contact) -> str:
    """Plain words, no health details: who is asking, why, and how to answer."""
    scheme = scheme_for(incident.council_id)
    carer = first_name(incident.plan.carer.name)
    return (
        f"{scheme.name}: {carer} has had an emergency and cannot care for the person they "
        f"look after. You are named in their emergency plan. Reply YES if you can go and "
        f"help now, or call us on {scheme.line_phone}."
    )


def cascade_sms_key(incident: Incident, contact: Contact) -> str:
    """The outbox dedupe key of the cascade's SMS to one contact: one SMS each."""
    return f"cascade-{incident.id}-{contact.id}-sms"


def _try_from(incident: Incident, position: int, *, now: datetime) -> None:
    """Contact the first contact at or after `position` who can step in. Only flushes."""
    scheme = scheme_for(incident.council_id)
    for contact in _cascade_contacts(incident):
        if contact.position < position:
            continue
        if not contact.can_step_in or not contact.consent:
            add_incident_event(
                incident,
                kind="cascade_skipped",
                text=f"Skipped {contact.name}: "
                + ("cannot step in." if not contact.can_step_in else "no consent recorded."),
                actor=None,
                now=now,
                details={"contact_id": contact.id},
                commit=False,
            )
            continue
        due = now + timedelta(minutes=scheme.cascade_timeout_minutes)
        db.session.add(
            CascadeAttempt(
                incident_id=incident.id,
                council_id=incident.council_id,
                contact_id=contact.id,
                position=contact.position,
                started_at=now,
                due_at=due,
            )
        )
        incident.cascade_position = contact.position
        incident.cascade_step_due_at = due
        body = _message_for(incident, contact)
        if incident.is_drill:
            add_incident_event(
                incident,
                kind="drill_message",
                text=f"Drill: would have sent an SMS to {contact.name}.",
                actor=None,
                now=now,
                details={"contact_id": contact.id, "body": body},
                commit=False,
            )
        else:
            outbox.enqueue(
                "sms",
                recipient=contact.phone,
                payload={"body": body, "incident_id": incident.id, "contact_id": contact.id},
                council_id=incident.council_id,
                dedupe_key=cascade_sms_key(incident, contact),
            )
        add_incident_event(
            incident,
            kind="cascade_contact_tried",
            text=f"Asked {contact.name} ({contact.relationship_to_carer}) by SMS; waiting "
            f"{scheme.cascade_timeout_minutes} minutes for a reply.",
            actor=None,
            now=now,
            details={"contact_id": contact.id, "position": contact.position},
            commit=False,
        )
        db.session.flush()
        return
    incident.cascade_status = CascadeStatus.EXHAUSTED
    incident.cascade_step_due_at = None
    add_incident_event(
        incident,
        kind="cascade_exhausted",
        text="No contact could step in. Arranging replacement care.",
        actor=None,
        now=now,
        commit=False,
    )
    _arrange(incident, by=None, now=now, worker_id=None)


def start_cascade(incident: Incident, *, now: datetime, commit: bool = True) -> Incident:
    """Start contacting the plan's contacts in order. Idempotent."""
    if incident.status is not IncidentStatus.OPEN:
        raise EmergencyError("This incident is closed.", code="incident_closed", status=409)
    if incident.cascade_status is not CascadeStatus.NOT_STARTED:
        return incident
    incident.cascade_status = CascadeStatus.RUNNING
    add_incident_event(
        incident,
        kind="cascade_started",
        text="Started contacting the plan's contacts in order.",
        actor=None,
        now=now,
        commit=False,
    )
    _try_from(incident, 1, now=now)
    if commit:
        db.session.commit()
    return incident


def advance_cascades(now: datetime) -> int:
    """The job: for each running cascade whose step has timed out, move to the next
    contact (or arrange care when none is left). Safe to run again at any time."""
    moved = 0
    due = db.session.scalars(
        select(Incident).where(
            Incident.status == IncidentStatus.OPEN,
            Incident.cascade_status == CascadeStatus.RUNNING,
            Incident.cascade_step_due_at <= now,
        )
    ).all()
    for incident in due:
        attempt = db.session.scalar(
            select(CascadeAttempt).where(
                CascadeAttempt.incident_id == incident.id,
                CascadeAttempt.outcome == "waiting",
            )
        )
        next_position = (incident.cascade_position or 0) + 1
        if attempt is not None:
            attempt.outcome = "timed_out"
            attempt.ended_at = now
            add_incident_event(
                incident,
                kind="cascade_timeout",
                text=f"No reply from {attempt.contact.name}; moving on.",
                actor=None,
                now=now,
                details={"contact_id": attempt.contact_id},
                commit=False,
            )
        _try_from(incident, next_position, now=now)
        db.session.commit()
        moved += 1
    return moved


def waiting_contact(incident: Incident) -> Contact | None:
    """The contact the cascade is waiting on now, if it is running."""
    if incident.status is not IncidentStatus.OPEN:
        return None
    if incident.cascade_status is not CascadeStatus.RUNNING:
        return None
    attempt = db.session.scalar(
        select(CascadeAttempt)
        .where(CascadeAttempt.incident_id == incident.id, CascadeAttempt.outcome == "waiting")
        .order_by(CascadeAttempt.position.desc())
        .limit(1)
    )
    return attempt.contact if attempt is not None else None


def _waiting_attempt(incident: Incident, contact: Contact) -> CascadeAttempt | None:
    """The cascade's try of this contact, if the cascade is still waiting on them."""
    if incident.status is not IncidentStatus.OPEN:
        return None
    if incident.cascade_status is not CascadeStatus.RUNNING:
        return None
    return db.session.scalar(
        select(CascadeAttempt).where(
            CascadeAttempt.incident_id == incident.id,
            CascadeAttempt.contact_id == contact.id,
            CascadeAttempt.outcome == "waiting",
        )
    )


def _move_on_from(
    incident: Incident,
    contact: Contact,
    *,
    outcome: str,
    text: str,
    now: datetime,
    details: dict[str, Any] | None,
) -> bool:
    """Record why `contact` will not step in and, when the cascade is waiting on them,
    ask the next contact now instead of after the timeout. Only flushes."""
    attempt = _waiting_attempt(incident, contact)
    add_incident_event(
        incident,
        kind="cascade_contact_tried",
        text=text + (" Asking the next contact now." if attempt is not None else ""),
        actor=None,
        now=now,
        details={"contact_id": contact.id, **(details or {})},
        commit=False,
    )
    if attempt is None:
        return False
    attempt.outcome = outcome
    attempt.ended_at = now
    _try_from(incident, contact.position + 1, now=now)
    return True


def contact_declined(
    incident: Incident,
    contact: Contact,
    *,
    said: str,
    now: datetime,
    details: dict[str, Any] | None = None,
    commit: bool = True,
) -> bool:
    """A contact said they cannot step in (NO by SMS, 2 on the automated call): the
    timeline says so and, if the cascade is waiting on them, the next contact is asked
    at once. `said` is how they said it ("replied NO by SMS"). Returns True when the
    cascade moved on."""
    if contact.plan_version_id != incident.plan_version_id:
        raise EmergencyError(
            "That person is not a contact in this plan.", code="not_found", status=404
        )
    moved = _move_on_from(
        incident,
        contact,
        outcome="declined",
        text=f"{contact.name} {said}: they cannot step in now.",
        now=now,
        details=details,
    )
    if commit:
        db.session.commit()
    return moved


def contact_unreachable(
    incident: Incident,
    contact: Contact,
    *,
    reason: str,
    now: datetime,
    commit: bool = True,
) -> bool:
    """Every way of reaching the contact the cascade waits on has failed (`reason`
    says how): treat them as not reached and ask the next contact at once."""
    moved = _move_on_from(
        incident,
        contact,
        outcome="unreachable",
        text=f"{contact.name} could not be reached: {reason}.",
        now=now,
        details=None,
    )
    if commit:
        db.session.commit()
    return moved


def confirm_contact(incident: Incident, contact: Contact, *, via: str, now: datetime) -> Incident:
    """A contact said yes (SMS reply, keypress or the operator's click): the cascade
    stops and the carer is told. A second confirmation changes nothing."""
    if via not in CONFIRM_VIA:
        raise ValueError(f"unknown confirmation channel {via!r}")
    if contact.plan_version_id != incident.plan_version_id:
        raise EmergencyError(
            "That person is not a contact in this plan.", code="not_found", status=404
        )
    if incident.confirmed_contact_id is not None:
        return incident
    incident.cascade_status = CascadeStatus.CONFIRMED
    incident.cascade_step_due_at = None
    incident.confirmed_contact_id = contact.id
    for attempt in db.session.scalars(
        select(CascadeAttempt).where(
            CascadeAttempt.incident_id == incident.id, CascadeAttempt.outcome == "waiting"
        )
    ):
        attempt.outcome = "confirmed" if attempt.contact_id == contact.id else "stopped"
        attempt.ended_at = now
    add_incident_event(
        incident,
        kind="contact_confirmed",
        text=f"{contact.name} ({contact.relationship_to_carer}) can step in (by {via}).",
        actor=None,
        now=now,
        details={"contact_id": contact.id, "via": via},
        commit=False,
    )
    _notify_carer(
        incident,
        f"{contact.name} has agreed to step in and look after the person you care for.",
        now=now,
        key="contact-confirmed",
    )
    db.session.commit()
    return incident


def find_active_cascade_contact_by_phone(
    phone_e164: str, *, now: datetime
) -> tuple[Incident, Contact] | None:
    """Whose reply is this? The newest open incident whose cascade has asked the contact
    with this number (a late YES still counts while nobody else has confirmed)."""
    row = db.session.execute(
        select(Incident, Contact)
        .join(CascadeAttempt, CascadeAttempt.incident_id == Incident.id)
        .join(Contact, Contact.id == CascadeAttempt.contact_id)
        .where(
            Contact.phone == phone_e164,
            Incident.status == IncidentStatus.OPEN,
            Incident.cascade_status.in_([CascadeStatus.RUNNING, CascadeStatus.EXHAUSTED]),
            CascadeAttempt.started_at <= now,
        )
        .order_by(CascadeAttempt.started_at.desc(), CascadeAttempt.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return row[0], row[1]


def cascade_attempts(incident: Incident) -> list[CascadeAttempt]:
    """The cascade's tries in order, each with its contact loaded in the same go."""
    return list(
        db.session.scalars(
            select(CascadeAttempt)
            .options(selectinload(CascadeAttempt.contact))
            .where(CascadeAttempt.incident_id == incident.id)
            .order_by(CascadeAttempt.id)
        )
    )
