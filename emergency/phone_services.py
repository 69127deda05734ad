"""The rules of the 24-hour phone line: the rota, the PIN by keypad, the cascade by phone
(automated calls and SMS replies), Twilio's status callbacks and the yearly contact check.

Everything here answers from the database alone: calls and SMS are only ever enqueued in
the outbox (kind "call" and "sms") and sent afterwards by the `deliver_outbox` job, so a
webhook never waits on Twilio. Emergency plans, cards, incidents and the cascade itself
belong to `emergency.services`; this module calls its public functions.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from app import audit, outbox
from app.clock import london_today
from app.errors import DomainError
from app.extensions import db
from app.models import (
    Council,
    OutboxMessage,
    OutboxStatus,
    ProcessedWebhook,
    Role,
    User,
    UserRole,
)
from app.notify import Sent, status_callback_url
from app.phone_numbers import normalise_uk_phone
from emergency import services as emergency_services
from emergency.models import (
    CascadeStatus,
    Contact,
    EmergencyScheme,
    Incident,
    IncidentStatus,
    Plan,
    PlanStatus,
    PlanVersion,
)
from emergency.phone_models import CascadeCall, ContactCheck, MissedCall, RotaEntry
from emergency.pins import pin_hmac
from emergency.services.cascade import (
    cascade_sms_key,
    contact_declined,
    contact_unreachable,
    waiting_contact,
)

log = logging.getLogger("emergency.phone")

CONTACT_CHECK_INTERVAL = timedelta(days=365)
CONTACT_CHECK_REPLY_DAYS = 14
# How long a placed call may take to ring out and report back before the cascade moves on.
CALL_GRACE = timedelta(minutes=2)

# Twilio status words, ranked so a late "sent" never overwrites "delivered".
_STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "initiated": 1,
    "sending": 2,
    "ringing": 2,
    "sent": 3,
    "in-progress": 3,
    "answered": 3,
    "delivered": 4,
    "read": 5,
    "undelivered": 5,
    "failed": 5,
    "completed": 5,
    "busy": 5,
    "no-answer": 5,
    "canceled": 5,
}
_CALL_ENDED = {"completed", "busy", "no-answer", "failed", "canceled"}
# Twilio accepted the message or call but then could not deliver it.
_FAILED = {"undelivered", "failed"}
_YES = {"yes", "y", "yes please", "yeah", "yep", "ok", "okay"}
_NO = {"no", "n", "nope", "stop calling", "no sorry", "sorry no", "cant", "i cant", "cannot"}


class PhoneError(DomainError):
    """A rule of the phone line said no."""


# --- the rota -----------------------------------------------------------------------


def _in_council(column: Any, council_id: int | None) -> ColumnElement[bool]:
    """`column` names `council_id` (staff without a council see only the like of them)."""
    return column.is_(None) if council_id is None else column == council_id


def rota_entries(council_id: int | None) -> list[RotaEntry]:
    """The rota rows of one council's operators, on duty first, each with its operator
    loaded by the same query."""
    return list(
        db.session.scalars(
            select(RotaEntry)
            .join(RotaEntry.user)
            .options(contains_eager(RotaEntry.user))
            .where(_in_council(User.council_id, council_id))
            .order_by(RotaEntry.on_duty.desc(), RotaEntry.is_backup, User.name)
        )
    )


def operators(council_id: int | None) -> list[User]:
    """The council's operators: the people who can be put on its rota."""
    return list(
        db.session.scalars(
            select(User)
            .join(UserRole, UserRole.user_id == User.id)
            .where(UserRole.role == Role.OPERATOR, _in_council(User.council_id, council_id))
            .order_by(User.name, User.id)
        )
    )


def set_rota_entry(
    operator: User,
    *,
    phone_text: str,
    on_duty: bool,
    is_backup: bool,
    by: User,
    now: datetime,
) -> RotaEntry:
    """Put an operator on (or off) duty with the number the line should ring.

    Only the actor's own council's operators: another council's person is "not found"
    (404), so the rota never reveals or changes who works elsewhere. The number is
    validated as a UK number and stored in E.164."""
    if operator.council_id != by.council_id:
        raise PhoneError("That operator was not found.", code="not_found", status=404)
    if not operator.has_role(Role.OPERATOR):
        raise PhoneError(
            "Only operators can be put on the rota.", fields={"operator": "Choose an operator"}
        )
    phone = normalise_uk_phone(phone_text, field="phone")
    entry = db.session.scalar(select(RotaEntry).where(RotaEntry.user_id == operator.id))
    if entry is None:
        entry = RotaEntry(user_id=operator.id, council_id=operator.council_id, phone=phone)
        db.session.add(entry)
    entry.council_id = operator.council_id
    entry.phone = phone
    entry.on_duty = on_duty
    entry.is_backup = is_backup
    entry.updated_at = now
    entry.updated_by_id = by.id
    db.session.flush()
    audit.record(
        "phone.rota.updated",
        actor=by,
        council_id=operator.council_id,
        subject=entry,
        details={"operator_id": operator.id, "on_duty": on_duty, "backup": is_backup},
    )
    db.session.commit()
    return entry


@dataclass(frozen=True)
class DutyNumbers:
    """Who the line rings: the on-duty operator, then a fallback."""

    primary: str | None
    fallback: str | None


def duty_numbers(council_id: int | None) -> DutyNumbers:
    """The on-duty operator's number and the fallback (an on-duty backup operator, else
    the council's duty team). Operators without a council cover every council."""
    query = select(RotaEntry).where(RotaEntry.on_duty.is_(True))
    if council_id is not None:
        query = query.where(or_(RotaEntry.council_id == council_id, RotaEntry.council_id.is_(None)))
    entries = list(db.session.scalars(query.order_by(RotaEntry.updated_at.desc())))
    main = [e.phone for e in entries if not e.is_backup]
    backups = [e.phone for e in entries if e.is_backup]
    primary = main[0] if main else None
    fallback_pool = [p for p in backups + main[1:] if p != primary]
    fallback = fallback_pool[0] if fallback_pool else None
    if fallback is None and council_id is not None:
        council = db.session.get(Council, council_id)
        if council is not None and council.duty_team_phone and council.duty_team_phone != primary:
            fallback = council.duty_team_phone
    if primary is None:
        primary, fallback = fallback, None
    return DutyNumbers(primary=primary, fallback=fallback)


def council_for_line(called_number: str | None) -> int | None:
    """Which council's line was dialled (Twilio's `To`), when we can tell."""
    if not called_number:
        return None
    scheme = db.session.scalar(
        select(EmergencyScheme).where(EmergencyScheme.line_phone == called_number)
    )
    if scheme is not None:
        return scheme.council_id
    council = db.session.scalar(select(Council).where(Council.emergency_phone == called_number))
    return council.id if council is not None else None


def council_duty_phone(council_id: int | None) -> str | None:
    """The council's emergency duty team number, told to a caller no operator answered."""
    council = db.session.get(Council, council_id) if council_id is not None else None
    return council.duty_team_phone if council is not None else None


# --- the PIN by keypad --------------------------------------------------------------


class PinOutcome(enum.StrEnum):
    FOUND = "found"
    MISTYPED = "mistyped"
    NOT_FOUND = "not_found"
    REFUSED = "refused"  # revoked card or too many attempts: straight to an operator


@dataclass(frozen=True)
class PinResult:
    outcome: PinOutcome
    incident: Incident | None = None


def caller_key(from_number: str | None) -> str:
    """The caller's number as given by Twilio; withheld numbers all share one counter."""
    text = (from_number or "").strip()
    return text if text.startswith("+") and text[1:].isdigit() else "withheld"


def check_phone_pin(
    digits: str,
    *,
    call_sid: str,
    caller_number: str | None,
    pin_key: str,
    now: datetime,
    attempt: int | None = None,
) -> PinResult:
    """Check a PIN typed on the keypad and open an incident when it is found.

    The check digit is checked first, so a slip of the finger gets a retry and never
    another card. Misses and lockout are counted per caller number by
    `emergency.services.lookup_pin`, shared with the operators' console. A replay of the
    same signed request (same call, same digits) returns the incident it opened; a
    replayed miss (same call, same try, same digits) returns its outcome without counting
    a second miss towards the caller's lockout."""
    # Replays are recognised by the PIN's HMAC: a plain PIN is never stored.
    typed = pin_hmac(digits, pin_key)
    event_id = f"voice-pin:{call_sid}:{typed}"[:255]
    done = db.session.scalar(
        select(ProcessedWebhook).where(
            ProcessedWebhook.provider == "twilio", ProcessedWebhook.event_id == event_id
        )
    )
    if done is not None and done.event_type.startswith("incident:"):
        incident = db.session.get(Incident, int(done.event_type.split(":", 1)[1]))
        if incident is not None:
            return PinResult(PinOutcome.FOUND, incident)
    miss_id = f"voice-pin-miss:{call_sid}:{attempt}:{typed}"[:255] if call_sid else None
    if miss_id is not None:
        missed = db.session.scalar(
            select(ProcessedWebhook.event_type).where(
                ProcessedWebhook.provider == "twilio", ProcessedWebhook.event_id == miss_id
            )
        )
        if missed is not None and missed.startswith("outcome:"):
            return PinResult(PinOutcome(missed.split(":", 1)[1]))
    try:
        result = emergency_services.lookup_pin(
            digits,
            channel="phone",
            operator=None,
            caller_number=caller_key(caller_number),
            ip_address=None,
            pin_key=pin_key,
            now=now,
        )
    except emergency_services.TooManyAttempts:
        return _pin_miss(miss_id, PinOutcome.REFUSED)
    except emergency_services.InvalidPin:
        return _pin_miss(miss_id, PinOutcome.MISTYPED)
    except emergency_services.UnknownPin:
        return _pin_miss(miss_id, PinOutcome.NOT_FOUND)
    except emergency_services.CardRevoked:
        return _pin_miss(miss_id, PinOutcome.REFUSED)
    incident = result.incident
    incident.call_started_at = incident.call_started_at or call_arrived_at(call_sid) or now
    db.session.add(
        ProcessedWebhook(provider="twilio", event_id=event_id, event_type=f"incident:{incident.id}")
    )
    emergency_services.add_incident_event(
        incident,
        kind="call",
        text="Plan found from a call to the 24-hour line. Putting the caller through "
        "to the operator on duty.",
        actor=None,
        now=now,
        details={"call_sid": call_sid},
        commit=False,
    )
    db.session.commit()
    return PinResult(PinOutcome.FOUND, incident)


def note_call_arrived(call_sid: str, *, now: datetime) -> None:
    """Remember when a call first reached the line, by Twilio's CallSid. The TSA figures
    count the wait for an operator from here, not from the moment the PIN was typed.
    Later steps of the same call, and replays, keep the first time."""
    if call_sid and _first_delivery(f"call-arrived:{call_sid}", "call-arrived", received_at=now):
        db.session.commit()


def call_arrived_at(call_sid: str | None) -> datetime | None:
    """When the call first reached the line, if `note_call_arrived` saw it."""
    if not call_sid:
        return None
    return db.session.scalar(
        select(ProcessedWebhook.received_at).where(
            ProcessedWebhook.provider == "twilio",
            ProcessedWebhook.event_id == f"call-arrived:{call_sid}"[:255],
        )
    )


def _pin_miss(miss_id: str | None, outcome: PinOutcome) -> PinResult:
    """Remember how a PIN try ended, so a replay of it is answered the same way."""
    if miss_id is not None and _first_delivery(miss_id, f"outcome:{outcome.value}"):
        db.session.commit()
    return PinResult(outcome)


def _first_delivery(event_id: str, event_type: str, *, received_at: datetime | None = None) -> bool:
    """Note a Twilio webhook as handled; False when it was handled before (a replay).

    Only flushed: the note is committed together with the webhook's effects, so a
    request that failed half-way is not mistaken for a replay when Twilio retries it."""
    note = ProcessedWebhook(provider="twilio", event_id=event_id[:255], event_type=event_type[:64])
    if received_at is not None:
        note.received_at = received_at
    try:
        with db.session.begin_nested():
            db.session.add(note)
    except IntegrityError:
        return False
    return True


def record_screen_answer(
    parent_call_sid: str | None, *, stage: int, digits: str, now: datetime
) -> bool:
    """The operator's phone picked up the transfer and heard the whisper ("press 1 to
    take the call"). Only a 1 counts: a voicemail greeting never presses it, so the
    transfer is then not counted as answered (see `record_dial_result`). Returns True
    when the caller should be put through. A replay changes nothing."""
    if digits != "1" or not parent_call_sid:
        return False
    if _first_delivery(_screen_key(parent_call_sid, stage), "screen-accepted", received_at=now):
        db.session.commit()
    return True  # the first time, or a replay of it


def _screen_key(call_sid: str, stage: int) -> str:
    return f"screen-accepted:{call_sid}:{stage}"[:255]


def _screen_accepted(call_sid: str | None, stage: int) -> bool:
    if not call_sid:
        return False
    return (
        db.session.scalar(
            select(ProcessedWebhook.id).where(
                ProcessedWebhook.provider == "twilio",
                ProcessedWebhook.event_id == _screen_key(call_sid, stage),
            )
        )
        is not None
    )


def record_dial_result(
    incident_id: int | None,
    *,
    dial_status: str,
    stage: int,
    now: datetime,
    call_sid: str | None = None,
    talked_seconds: int | None = None,
    caller_number: str | None = None,
) -> bool:
    """Note how the transfer to an operator ended. Returns True when an operator took
    the call.

    The operator's number is rung with a whisper that asks them to press 1. Twilio's
    own call-screening guide moves on whenever `DialCallStatus` is not `completed`, so a
    whisper that hangs up (no key pressed) comes back as `no-answer`; but `completed`
    only means the operator's leg carried audio, which a voicemail greeting does too. So
    the transfer counts as answered only when it is `completed` and the operator's 1 is
    on record for this call and stage; otherwise nobody took the call.

    Twilio reports the transfer when it ends, with how long the operator talked
    (`DialCallDuration`), so the operator answered that long before `now`. When nobody
    answers the first transfer, the contact cascade starts at once, and the timeline
    keeps the caller's number so an operator can call back. With the call's `call_sid`,
    a replay of the same report changes nothing."""
    connected = dial_status in {"completed", "answered"}
    answered = connected and _screen_accepted(call_sid, stage)
    incident = db.session.get(Incident, incident_id) if incident_id else None
    if incident is None:
        return answered
    if call_sid and not _first_delivery(f"dial:{call_sid}:{incident.id}:{stage}", "dial"):
        return answered
    if answered:
        talked = timedelta(seconds=max(talked_seconds or 0, 0))
        answered_at = now - talked
        if incident.call_started_at is not None:
            answered_at = max(answered_at, incident.call_started_at)
        incident.call_answered_at = incident.call_answered_at or answered_at
        minutes = round(talked.total_seconds() / 60)
        emergency_services.add_incident_event(
            incident,
            kind="call",
            text="An operator answered the call"
            + (f" and talked with the caller for {minutes} min." if minutes else "."),
            actor=None,
            now=answered_at,
            commit=False,
        )
        db.session.commit()
        return True
    if connected:
        why = (
            "The operator's phone picked up, but nobody pressed 1 to take the call "
            "(perhaps a voicemail)."
        )
    else:
        why = f"No operator answered the transfer ({dial_status})."
    caller = caller_key(caller_number)
    emergency_services.add_incident_event(
        incident,
        kind="call",
        text=why
        + (
            " The caller's number was withheld."
            if caller == "withheld"
            else f" The caller's number is {caller}."
        ),
        actor=None,
        now=now,
        details={"stage": stage, "dial_status": dial_status[:32], "caller_number": caller},
        commit=False,
    )
    db.session.commit()
    if (
        incident.status is IncidentStatus.OPEN
        and incident.cascade_status is CascadeStatus.NOT_STARTED
    ):
        emergency_services.start_cascade(incident, now=now)
    return False


# --- callers nobody answered, whose plan was not found ------------------------------------


def record_missed_call(
    call_sid: str,
    *,
    caller_number: str | None,
    line_number: str | None,
    reason: str,
    now: datetime,
) -> MissedCall | None:
    """Put a caller whose plan was not found, and whom no operator answered, on the
    operators' missed-calls list. Nothing else would ever tell staff about them.
    One row per call: a replay (or a later step of the same call) changes nothing."""
    if not call_sid:
        return None
    existing = db.session.scalar(select(MissedCall).where(MissedCall.call_sid == call_sid))
    if existing is not None:
        return existing
    caller = caller_key(caller_number)
    missed = MissedCall(
        council_id=council_for_line(line_number),
        call_sid=call_sid[:64],
        caller_number=None if caller == "withheld" else caller[:32],
        line_number=line_number[:32] if line_number else None,
        reason=reason[:64],
        called_at=call_arrived_at(call_sid) or now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(missed)
    except IntegrityError:  # the same call, recorded at the same moment by a retry
        return db.session.scalar(select(MissedCall).where(MissedCall.call_sid == call_sid))
    db.session.commit()
    return missed


def missed_calls(council_id: int | None, *, limit: int = 200) -> list[MissedCall]:
    """The council's missed calls nobody has dealt with yet, newest first."""
    return list(
        db.session.scalars(
            select(MissedCall)
            .where(
                _in_council(MissedCall.council_id, council_id),
                MissedCall.dealt_with_at.is_(None),
            )
            .order_by(MissedCall.called_at.desc(), MissedCall.id.desc())
            .limit(limit)
        )
    )


def mark_missed_call_dealt_with(missed_call_id: int, *, by: User, now: datetime) -> MissedCall:
    """An operator has called back (or could not): the call leaves the list. Audited;
    another council's call is "not found"."""
    missed = db.session.get(MissedCall, missed_call_id)
    if missed is None or missed.council_id != by.council_id:
        raise PhoneError("That missed call was not found.", code="not_found", status=404)
    if missed.dealt_with_at is None:
        missed.dealt_with_at = now
        missed.dealt_with_by_id = by.id
        audit.record(
            "phone.missed_call.dealt_with",
            actor=by,
            council_id=missed.council_id,
            subject=missed,
            details={"call_sid": missed.call_sid},
        )
        db.session.commit()
    return missed


# --- the cascade by phone -------------------------------------------------------------


def cascade_call_path(call: CascadeCall) -> str:
    return (
        f"/twilio/voice/cascade?incident={call.incident_id}"
        f"&contact={call.contact_id}&call={call.id}"
    )


def place_cascade_calls(*, now: datetime, max_attempts: int, retry_minutes: int) -> int:
    """Queue the automated calls the running cascades need now. Idempotent.

    Each contact the cascade is waiting on gets a call at once and, while nobody has
    pressed 1, up to `max_attempts` calls `retry_minutes` after the last one ended."""
    queued = 0
    incidents = db.session.scalars(
        select(Incident).where(
            Incident.status == IncidentStatus.OPEN,
            Incident.cascade_status == CascadeStatus.RUNNING,
        )
    )
    for incident in list(incidents):
        contact = waiting_contact(incident)
        if contact is None:
            continue
        calls = _calls_to(incident, contact)
        if _unreachable(incident, contact, calls, max_attempts):
            # Their SMS was not delivered and no call got a 1: nobody can answer, so
            # the next contact is asked now rather than after the timeout.
            contact_unreachable(
                incident,
                contact,
                reason=f"their SMS was not delivered and {len(calls)} "
                + ("call" if len(calls) == 1 else "calls")
                + " did not reach them",
                now=now,
                commit=False,
            )
            contact = waiting_contact(incident)
            if contact is None:
                continue
            calls = _calls_to(incident, contact)
        if calls:
            last = calls[-1]
            if last.outcome != "not_reached" or len(calls) >= max_attempts:
                continue
            assert last.ended_at is not None
            retry_at = last.ended_at + timedelta(minutes=retry_minutes)
            _hold_cascade_step(incident, until=retry_at + CALL_GRACE)
            if retry_at > now:
                continue
        if incident.is_drill:
            if not calls:
                db.session.add(
                    CascadeCall(
                        incident_id=incident.id,
                        council_id=incident.council_id,
                        contact_id=contact.id,
                        attempt_number=1,
                        outcome="not_reached",
                        call_status="drill",
                        created_at=now,
                        ended_at=now,
                    )
                )
                emergency_services.add_incident_event(
                    incident,
                    kind="drill_message",
                    text=f"Drill: would have called {contact.name}.",
                    actor=None,
                    now=now,
                    details={"contact_id": contact.id},
                    commit=False,
                )
            continue
        _queue_call_at(incident, contact, len(calls) + 1, max_attempts, now)
        _hold_cascade_step(incident, until=now + CALL_GRACE)
        queued += 1
    db.session.commit()
    return queued


def _calls_to(incident: Incident, contact: Contact) -> list[CascadeCall]:
    return list(
        db.session.scalars(
            select(CascadeCall)
            .where(CascadeCall.incident_id == incident.id, CascadeCall.contact_id == contact.id)
            .order_by(CascadeCall.attempt_number)
        )
    )


def _unreachable(
    incident: Incident, contact: Contact, calls: list[CascadeCall], max_attempts: int
) -> bool:
    """Every way of reaching the contact has failed: the cascade SMS is dead (Twilio
    could not deliver it) and every configured call ended without a keypress."""
    if incident.is_drill or len(calls) < max_attempts:
        return False
    if any(call.outcome != "not_reached" for call in calls):
        return False
    sms_status = db.session.scalar(
        select(OutboxMessage.status).where(
            OutboxMessage.dedupe_key == cascade_sms_key(incident, contact)
        )
    )
    return sms_status is OutboxStatus.DEAD


def _hold_cascade_step(incident: Incident, *, until: datetime) -> None:
    """Keep the cascade on this contact until their next call has had time to ring: the
    contact gets every configured try before the cascade moves on."""
    from emergency.models import CascadeAttempt

    if incident.cascade_step_due_at is not None and incident.cascade_step_due_at < until:
        incident.cascade_step_due_at = until
        for attempt in db.session.scalars(
            select(CascadeAttempt).where(
                CascadeAttempt.incident_id == incident.id, CascadeAttempt.outcome == "waiting"
            )
        ):
            attempt.due_at = max(attempt.due_at, until)


def _queue_call_at(
    incident: Incident, contact: Contact, attempt: int, max_attempts: int, now: datetime
) -> None:
    call = CascadeCall(
        incident_id=incident.id,
        council_id=incident.council_id,
        contact_id=contact.id,
        attempt_number=attempt,
        created_at=now,
    )
    db.session.add(call)
    db.session.flush()
    message = outbox.enqueue(
        "call",
        recipient=contact.phone,
        payload={"path": cascade_call_path(call), "cascade_call_id": call.id},
        council_id=incident.council_id,
        dedupe_key=f"cascade-call:{incident.id}:{contact.id}:{attempt}",
        not_before=now,
    )
    call.outbox_message_id = message.id if message is not None else None
    emergency_services.add_incident_event(
        incident,
        kind="cascade_contact_tried",
        text=f"Calling {contact.name} (try {attempt} of {max_attempts}).",
        actor=None,
        now=now,
        details={"contact_id": contact.id, "attempt": attempt, "cascade_call_id": call.id},
        commit=False,
    )


@outbox.handler("call")
def _deliver_call(message: OutboxMessage, ctx: outbox.DeliveryContext) -> Sent:
    """Place an automated call whose TwiML comes from our own webhook."""
    base = str(ctx.config["PUBLIC_BASE_URL"]).rstrip("/")
    return ctx.notifier.place_call(
        message.recipient or "",
        twiml_url=base + str(message.payload["path"]),
        status_callback=status_callback_url(ctx.config, outbox_id=message.id),
        machine_detection=True,
    )


@outbox.on_failure
def _cascade_message_failed(message: OutboxMessage, now: datetime) -> None:
    """A cascade SMS or call went dead (Twilio refused it, every try failed, or Twilio
    reported it undelivered): say so on the incident's timeline. A call that was never
    placed counts as not reached, so the contact is called again as configured."""
    if message.kind == "call":
        call = db.session.scalar(
            select(CascadeCall).where(CascadeCall.outbox_message_id == message.id)
        )
        if call is None or call.outcome != "pending":
            return
        incident = db.session.get(Incident, call.incident_id)
        contact = db.session.get(Contact, call.contact_id)
        if incident is None or contact is None:
            return
        call.outcome = "not_reached"
        call.ended_at = call.ended_at or now
        what = f"The call to {contact.name} could not be made"
        details: dict[str, Any] = {"cascade_call_id": call.id}
    elif message.kind == "sms" and {"incident_id", "contact_id"} <= message.payload.keys():
        incident = db.session.get(Incident, message.payload["incident_id"])
        contact = db.session.get(Contact, message.payload["contact_id"])
        if incident is None or contact is None:
            return
        what = f"The SMS to {contact.name} could not be delivered"
        details = {"contact_id": contact.id}
    else:
        return
    emergency_services.add_incident_event(
        incident,
        kind="cascade_contact_tried",
        text=f"{what} ({(message.last_error or 'no reason given')[:200]}).",
        actor=None,
        now=now,
        details={**details, "outbox_message_id": message.id},
        commit=False,
    )


def _cascade_call(call_id: int | None, incident_id: int | None) -> CascadeCall | None:
    call = db.session.get(CascadeCall, call_id) if call_id else None
    if call is None or call.incident_id != incident_id:
        return None
    return call


def cascade_call_answered(
    call_id: int | None, incident_id: int | None, *, answered_by: str | None, now: datetime
) -> bool:
    """Twilio asks what to say when a cascade call connects. Returns True when we should
    ask for the keypress; an answering machine (or fax) never counts as reached."""
    call = _cascade_call(call_id, incident_id)
    if call is None:
        return False
    incident = db.session.get(Incident, call.incident_id)
    contact = db.session.get(Contact, call.contact_id)
    assert incident is not None
    assert contact is not None
    who = (answered_by or "unknown")[:32]
    machine = who.startswith("machine") or who == "fax"
    if not _first_delivery(f"cascade-answered:{call.id}", "cascade"):
        return not machine and incident.status is IncidentStatus.OPEN  # a replay
    call.answered_by = who
    if machine:
        call.outcome = "not_reached"
        call.ended_at = call.ended_at or now
        emergency_services.add_incident_event(
            incident,
            kind="cascade_contact_tried",
            text=f"The call to {contact.name} reached an answering machine. "
            "Not counted as reached.",
            actor=None,
            now=now,
            details={"cascade_call_id": call.id, "answered_by": call.answered_by},
            commit=False,
        )
        db.session.commit()
        return False
    emergency_services.add_incident_event(
        incident,
        kind="cascade_contact_tried",
        text=f"The call to {contact.name} was answered. Waiting for them to press 1.",
        actor=None,
        now=now,
        details={"cascade_call_id": call.id, "answered_by": call.answered_by},
        commit=False,
    )
    db.session.commit()
    return incident.status is IncidentStatus.OPEN


def cascade_call_keypress(
    call_id: int | None, incident_id: int | None, *, digits: str, now: datetime
) -> str:
    """A contact pressed a key on the automated call. 1: they can step in (the cascade
    stops). 2: they cannot, and the cascade asks the next contact at once. Any other
    key is not understood; the call counts as not reached and is tried again as
    configured. Returns "confirmed", "declined" or "unclear"."""
    call = _cascade_call(call_id, incident_id)
    if call is None:
        return "unknown"
    incident = db.session.get(Incident, call.incident_id)
    contact = db.session.get(Contact, call.contact_id)
    assert incident is not None
    assert contact is not None
    if not _first_delivery(f"cascade-key:{call.id}", "cascade"):
        return {"confirmed": "confirmed", "declined": "declined"}.get(call.outcome, "unclear")
    call.digits = digits[:8]
    call.ended_at = call.ended_at or now
    if digits == "1":
        call.outcome = "confirmed"
        db.session.flush()
        emergency_services.confirm_contact(incident, contact, via="call", now=now)
        db.session.commit()
        return "confirmed"
    if digits == "2":
        call.outcome = "declined"
        db.session.flush()
        contact_declined(
            incident,
            contact,
            said="pressed 2 on the automated call",
            now=now,
            details={"cascade_call_id": call.id, "digits": digits[:8]},
        )
        return "declined"
    call.outcome = "not_reached"
    emergency_services.add_incident_event(
        incident,
        kind="cascade_contact_tried",
        text=f"{contact.name} pressed {digits[:8] or 'no key'} on the automated call, "
        "not 1 or 2: not counted as an answer.",
        actor=None,
        now=now,
        details={"cascade_call_id": call.id, "digits": digits[:8]},
        commit=False,
    )
    db.session.commit()
    return "unclear"


# --- Twilio status callbacks ----------------------------------------------------------


def record_status_callback(
    params: Mapping[str, str], *, now: datetime, outbox_id: int | None = None
) -> OutboxMessage | None:
    """Record a delivery status on the outbox row Twilio reports on, and on the incident
    timeline for cascade calls. A replay changes nothing.

    The row is found by `outbox_id` (our status-callback URL names it) or else by
    Twilio's MessageSid/CallSid. Twilio may report before the sending job has committed
    the SID: the row is then still locked by that job, and the report waits for it
    rather than missing it. `undelivered` or `failed` makes the row dead, shown to staff
    under "failed" with Twilio's error code; a failed cascade SMS or call also goes on
    the incident's timeline (see `_cascade_message_failed`)."""
    sid = params.get("MessageSid") or params.get("SmsSid") or params.get("CallSid") or ""
    status = (
        params.get("MessageStatus") or params.get("SmsStatus") or params.get("CallStatus") or ""
    ).lower()
    if not sid or not status:
        return None
    if not _first_delivery(f"status:{sid}:{status}", "status"):
        return None  # already recorded
    message = _reported_message(sid, outbox_id)
    if message is None:
        db.session.commit()
        return None
    current = message.delivery_status or ""
    if _STATUS_RANK.get(status, 0) >= _STATUS_RANK.get(current, 0):
        message.delivery_status = status[:32]
    code = (params.get("ErrorCode") or "")[:16]
    if code:
        message.last_error = f"Twilio reported error {code} ({status})"
    call = db.session.scalar(select(CascadeCall).where(CascadeCall.outbox_message_id == message.id))
    if call is not None:
        _record_call_progress(call, status, params.get("AnsweredBy"), now=now)
    if status in _FAILED and message.status is OutboxStatus.SENT:
        outbox.mark_failed(
            message,
            error=f"Twilio reported error {code} ({status})"
            if code
            else f"Twilio reported it {status}",
            now=now,
        )
    db.session.commit()
    return message


def _reported_message(sid: str, outbox_id: int | None) -> OutboxMessage | None:
    """The outbox row a status report is about, or None when it is about no send we
    know (a send before a staff retry: that row now waits for, or has, another SID)."""
    if outbox_id is None:
        return db.session.scalar(select(OutboxMessage).where(OutboxMessage.provider_ref == sid))
    # FOR UPDATE waits for a delivery job still holding the row (PostgreSQL); SQLite
    # already serialises writers (BEGIN IMMEDIATE).
    message = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.id == outbox_id).with_for_update()
    )
    if message is None or message.status is OutboxStatus.PENDING:
        return None
    if message.provider_ref is not None and message.provider_ref != sid:
        return None
    return message


def _record_call_progress(
    call: CascadeCall, status: str, answered_by: str | None, *, now: datetime
) -> None:
    incident = db.session.get(Incident, call.incident_id)
    contact = db.session.get(Contact, call.contact_id)
    assert incident is not None
    assert contact is not None
    if _STATUS_RANK.get(status, 0) >= _STATUS_RANK.get(call.call_status, 0):
        call.call_status = status
    if answered_by and not call.answered_by:
        call.answered_by = answered_by[:32]
    if status not in _CALL_ENDED:
        return
    call.ended_at = call.ended_at or now
    if call.outcome != "pending":
        return
    # Twilio reports a call that only reached voicemail as `completed`, like a person:
    # without the keypress it never counts.
    call.outcome = "not_reached"
    reason = {
        "completed": "the call ended without anyone pressing 1",
        "busy": "the line was busy",
        "no-answer": "nobody answered",
        "failed": "the call could not be connected",
        "canceled": "the call was cancelled",
    }[status]
    emergency_services.add_incident_event(
        incident,
        kind="cascade_contact_tried",
        text=f"{contact.name} was not reached: {reason}.",
        actor=None,
        now=now,
        details={"cascade_call_id": call.id, "status": status, "answered_by": answered_by},
        commit=False,
    )


# --- SMS replies and the yearly contact check -----------------------------------------


def _e164(text: str) -> str:
    """Twilio sends E.164 already; a national form is turned into it, anything else kept."""
    try:
        number = phonenumbers.parse(text, "GB")
    except phonenumbers.NumberParseException:
        return text.strip()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _words(body: str) -> str:
    return re.sub(r"[^a-z ]", "", body.strip().lower()).strip()


def handle_sms_reply(
    from_number: str, body: str, *, message_sid: str, now: datetime, line_phone: str
) -> str | None:
    """A text to our number. Returns the short reply to send (or None for a replay).

    From a contact a running cascade has asked: YES confirms them; NO means they cannot
    step in, and the next contact is asked at once; anything else goes on the incident's
    timeline for the operator and gets a short plain reply. Otherwise YES or NO answers
    the yearly check, for every plan that number is a contact on (the check's SMS names
    no carer, so the answer is about the person, not one plan)."""
    phone = _e164(from_number)
    if message_sid and not _first_delivery(f"sms:{message_sid}", "sms"):
        return None  # a replay: answered already
    words = _words(body)
    found = emergency_services.find_active_cascade_contact_by_phone(phone, now=now)
    if found is not None:
        incident, contact = _incident_and_contact(found)
        if words in _YES:
            emergency_services.confirm_contact(incident, contact, via="sms", now=now)
            db.session.commit()
            return "Thank you. An operator will call you very soon with the details."
        if words in _NO:
            contact_declined(
                incident,
                contact,
                said="replied NO by SMS",
                now=now,
                details={"message_sid": message_sid[:64]},
            )
            return "Thank you for letting us know. We will ask someone else."
        emergency_services.add_incident_event(
            incident,
            kind="sms",
            text=f'{contact.name} replied by SMS: "{" ".join(body.split())[:300]}"',
            actor=None,
            now=now,
            details={"contact_id": contact.id, "message_sid": message_sid[:64]},
            commit=False,
        )
        db.session.commit()
        help_line = f" or call {line_phone}" if line_phone else ""
        return f"Thank you. Reply YES if you can help now, NO if you cannot{help_line}."
    checks = _open_checks(phone)
    if checks and words in _YES | _NO:
        reply = "yes" if words in _YES else "no"
        for check in checks:
            check.reply = reply
            check.replied_at = now
            if reply == "no":
                _flag_plan(check, now=now, reason="A contact said they can no longer be called.")
        db.session.commit()
        if reply == "yes":
            return "Thank you for staying on the emergency plan. We will ask again in a year."
        return "Thank you for letting us know. We will ask the carer to choose someone else."
    db.session.commit()
    help_line = f" If this is about an emergency, call {line_phone}." if line_phone else ""
    return f"Sorry, we could not understand that. Reply YES if you can help.{help_line}"


def _incident_and_contact(found: Any) -> tuple[Incident, Contact]:
    if isinstance(found, tuple):
        return found[0], found[1]
    return found.incident, found.contact


def _open_checks(phone: str) -> list[ContactCheck]:
    """Every unanswered yearly check sent to this number (one per plan it is on)."""
    return list(
        db.session.scalars(
            select(ContactCheck)
            .where(ContactCheck.phone == phone, ContactCheck.replied_at.is_(None))
            .order_by(ContactCheck.sent_at, ContactCheck.id)
        )
    )


def _flag_plan(check: ContactCheck, *, now: datetime, reason: str) -> None:
    """Bring the plan's review forward to today (the UK date) so plan writers see it."""
    check.flagged_at = check.flagged_at or now
    plan = db.session.get(Plan, check.plan_id)
    if plan is None:
        return
    today = london_today(now)
    if plan.review_due > today:
        plan.review_due = today
    audit.record(
        "emergency.plan.flagged_for_review",
        actor=None,
        council_id=plan.council_id,
        subject=plan,
        reason=reason,
        details={"contact_id": check.contact_id, "contact_check_id": check.id},
    )


CONTACT_CHECK_BODY = (
    "You are named as an emergency contact on a carer's emergency plan. Are you still "
    "happy for us to call you if they need help? Please reply YES or NO."
)


def send_contact_checks(*, now: datetime) -> int:
    """Ask every contact of every active plan, once a year, whether they are still willing
    to be called. Idempotent: a contact asked in the last year is not asked again.

    Each plan gets its own check (a no-reply flags that plan), but a number that is a
    contact on several plans gets one SMS a day, not one per plan. Two queries find
    everything: the contacts of every active plan, and when each was last asked."""
    rows = db.session.execute(
        select(Plan, Contact)
        .join(
            PlanVersion,
            and_(PlanVersion.plan_id == Plan.id, PlanVersion.number == Plan.current_version),
        )
        .join(Contact, Contact.plan_version_id == PlanVersion.id)
        .where(Plan.status == PlanStatus.ACTIVE)
        .order_by(Plan.id, Contact.position, Contact.id)
    ).all()
    last_asked: dict[tuple[int, str], datetime] = {
        (plan_id, phone): sent_at
        for plan_id, phone, sent_at in db.session.execute(
            select(ContactCheck.plan_id, ContactCheck.phone, func.max(ContactCheck.sent_at))
            .join(Plan, Plan.id == ContactCheck.plan_id)
            .where(Plan.status == PlanStatus.ACTIVE)
            .group_by(ContactCheck.plan_id, ContactCheck.phone)
        )
    }
    sent = 0
    texted: set[str] = set()
    for plan, contact in rows:
        # Never asked: a year after the plan was approved (they agreed then).
        since = last_asked.get((plan.id, contact.phone), plan.approved_at)
        if now - since < CONTACT_CHECK_INTERVAL:
            continue
        last_asked[(plan.id, contact.phone)] = now  # the same number twice in one plan
        db.session.add(
            ContactCheck(
                council_id=plan.council_id,
                plan_id=plan.id,
                contact_id=contact.id,
                phone=contact.phone,
                sent_at=now,
                reply_due_at=now + timedelta(days=CONTACT_CHECK_REPLY_DAYS),
            )
        )
        sent += 1
        if contact.phone in texted:
            continue
        texted.add(contact.phone)
        outbox.enqueue(
            "sms",
            recipient=contact.phone,
            payload={"body": CONTACT_CHECK_BODY},
            council_id=plan.council_id,
            dedupe_key=f"contact-check:{contact.phone}:{london_today(now).isoformat()}",
        )
    db.session.commit()
    return sent


def flag_unanswered_checks(*, now: datetime) -> int:
    """A contact who has not replied by the deadline flags the plan for review."""
    checks = db.session.scalars(
        select(ContactCheck).where(
            ContactCheck.replied_at.is_(None),
            ContactCheck.flagged_at.is_(None),
            ContactCheck.reply_due_at <= now,
        )
    )
    flagged = 0
    for check in list(checks):
        _flag_plan(check, now=now, reason="A contact did not reply to the yearly check.")
        flagged += 1
    db.session.commit()
    return flagged
