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
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from app import audit, outbox
from app.errors import DomainError
from app.extensions import db
from app.models import Council, OutboxMessage, ProcessedWebhook, Role, User
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
from emergency.phone_models import CascadeCall, ContactCheck, RotaEntry

log = logging.getLogger("emergency.phone")

DEFAULT_CALL_ATTEMPTS = 2
DEFAULT_CALL_RETRY_MINUTES = 3
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
_YES = {"yes", "y", "yes please", "yeah", "yep", "ok", "okay"}
_NO = {"no", "n", "nope", "stop calling"}


class PhoneError(DomainError):
    """A rule of the phone line said no."""


# --- the rota -----------------------------------------------------------------------


def rota_entries() -> list[RotaEntry]:
    """Every operator's rota row, on duty first."""
    return list(
        db.session.scalars(
            select(RotaEntry)
            .join(RotaEntry.user)
            .order_by(RotaEntry.on_duty.desc(), RotaEntry.is_backup, User.name)
        )
    )


def operators() -> list[User]:
    """People who can be put on the rota."""
    return [
        user
        for user in db.session.scalars(select(User).order_by(User.name))
        if user.has_role(Role.OPERATOR)
    ]


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

    The number is validated as a UK number and stored in E.164."""
    if not operator.has_role(Role.OPERATOR):
        raise PhoneError(
            "Only operators can be put on the rota.", fields={"operator": "Choose an operator"}
        )
    phone = normalise_uk_phone(phone_text, field="phone")
    entry = db.session.scalar(select(RotaEntry).where(RotaEntry.user_id == operator.id))
    if entry is None:
        entry = RotaEntry(user_id=operator.id, council_id=operator.council_id, phone=phone)
        db.session.add(entry)
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
    event_id = f"voice-pin:{call_sid}:{digits}"[:255]
    done = db.session.scalar(
        select(ProcessedWebhook).where(
            ProcessedWebhook.provider == "twilio", ProcessedWebhook.event_id == event_id
        )
    )
    if done is not None and done.event_type.startswith("incident:"):
        incident = db.session.get(Incident, int(done.event_type.split(":", 1)[1]))
        if incident is not None:
            return PinResult(PinOutcome.FOUND, incident)
    miss_id = f"voice-pin-miss:{call_sid}:{attempt}:{digits}"[:255] if call_sid else None
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
    if not call_sid:
        return
    try:
        with db.session.begin_nested():
            db.session.add(
                ProcessedWebhook(
                    provider="twilio",
                    event_id=f"call-arrived:{call_sid}"[:255],
                    event_type="call-arrived",
                    received_at=now,
                )
            )
    except IntegrityError:
        return
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


def _first_delivery(event_id: str, event_type: str) -> bool:
    """Note a Twilio webhook as handled; False when it was handled before (a replay).

    Only flushed: the note is committed together with the webhook's effects, so a
    request that failed half-way is not mistaken for a replay when Twilio retries it."""
    try:
        with db.session.begin_nested():
            db.session.add(
                ProcessedWebhook(
                    provider="twilio", event_id=event_id[:255], event_type=event_type[:64]
                )
            )
    except IntegrityError:
        return False
    return True


def record_dial_result(
    incident_id: int | None,
    *,
    dial_status: str,
    stage: int,
    now: datetime,
    call_sid: str | None = None,
    talked_seconds: int | None = None,
) -> bool:
    """Note how the transfer to an operator ended. Returns True when somebody answered.

    Twilio reports the transfer when it ends, with how long the operator talked
    (`DialCallDuration`), so the operator answered that long before `now`. When nobody
    answers the first transfer, the contact cascade starts at once. With the call's
    `call_sid`, a replay of the same report changes nothing."""
    answered = dial_status in {"completed", "answered"}
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
    emergency_services.add_incident_event(
        incident,
        kind="call",
        text=f"No operator answered the transfer ({dial_status}).",
        actor=None,
        now=now,
        details={"stage": stage},
        commit=False,
    )
    db.session.commit()
    if (
        incident.status is IncidentStatus.OPEN
        and incident.cascade_status is CascadeStatus.NOT_STARTED
    ):
        emergency_services.start_cascade(incident, now=now)
    return False


# --- the cascade by phone -------------------------------------------------------------


def cascade_call_path(call: CascadeCall) -> str:
    return (
        f"/twilio/voice/cascade?incident={call.incident_id}"
        f"&contact={call.contact_id}&call={call.id}"
    )


def _waiting_contact(incident: Incident) -> Contact | None:
    """The contact the cascade is waiting on now, if it is running."""
    if incident.status is not IncidentStatus.OPEN:
        return None
    if incident.cascade_status is not CascadeStatus.RUNNING:
        return None
    from emergency.models import CascadeAttempt

    attempt = db.session.scalar(
        select(CascadeAttempt)
        .where(CascadeAttempt.incident_id == incident.id, CascadeAttempt.outcome == "waiting")
        .order_by(CascadeAttempt.position.desc())
        .limit(1)
    )
    return attempt.contact if attempt is not None else None


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
        contact = _waiting_contact(incident)
        if contact is None:
            continue
        calls = list(
            db.session.scalars(
                select(CascadeCall)
                .where(
                    CascadeCall.incident_id == incident.id,
                    CascadeCall.contact_id == contact.id,
                )
                .order_by(CascadeCall.attempt_number)
            )
        )
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
        incident_id=incident.id, contact_id=contact.id, attempt_number=attempt, created_at=now
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
        status_callback=status_callback_url(ctx.config),
        machine_detection=True,
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
    """A contact pressed a key on the automated call: 1 confirms they can step in."""
    call = _cascade_call(call_id, incident_id)
    if call is None:
        return "unknown"
    incident = db.session.get(Incident, call.incident_id)
    contact = db.session.get(Contact, call.contact_id)
    assert incident is not None
    assert contact is not None
    if not _first_delivery(f"cascade-key:{call.id}", "cascade"):
        return "confirmed" if call.outcome == "confirmed" else "declined"  # a replay
    call.digits = digits[:8]
    if digits == "1":
        call.outcome = "confirmed"
        call.ended_at = call.ended_at or now
        db.session.flush()
        emergency_services.confirm_contact(incident, contact, via="call", now=now)
        db.session.commit()
        return "confirmed"
    call.outcome = "declined"
    call.ended_at = call.ended_at or now
    emergency_services.add_incident_event(
        incident,
        kind="cascade_contact_tried",
        text=f"{contact.name} pressed {digits or 'no key'}: they cannot step in now.",
        actor=None,
        now=now,
        details={"cascade_call_id": call.id, "digits": digits},
        commit=False,
    )
    db.session.commit()
    return "declined"


# --- Twilio status callbacks ----------------------------------------------------------


def record_status_callback(params: Mapping[str, str], *, now: datetime) -> OutboxMessage | None:
    """Record a delivery status on the outbox row Twilio reports on (by MessageSid or
    CallSid), and on the incident timeline for cascade calls. A replay changes nothing."""
    sid = params.get("MessageSid") or params.get("SmsSid") or params.get("CallSid") or ""
    status = (
        params.get("MessageStatus") or params.get("SmsStatus") or params.get("CallStatus") or ""
    ).lower()
    if not sid or not status:
        return None
    event_id = f"status:{sid}:{status}"[:255]
    try:
        with db.session.begin_nested():
            db.session.add(
                ProcessedWebhook(provider="twilio", event_id=event_id, event_type="status")
            )
    except IntegrityError:
        return None  # already recorded
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.provider_ref == sid))
    if message is None:
        db.session.commit()
        return None
    current = message.delivery_status or ""
    if _STATUS_RANK.get(status, 0) >= _STATUS_RANK.get(current, 0):
        message.delivery_status = status[:32]
    if params.get("ErrorCode"):
        message.last_error = f"Twilio reported error {params['ErrorCode']} ({status})"
    call = db.session.scalar(select(CascadeCall).where(CascadeCall.outbox_message_id == message.id))
    if call is not None:
        _record_call_progress(call, status, params.get("AnsweredBy"), now=now)
    db.session.commit()
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
    """A text to our number. YES from a contact the cascade is waiting on confirms them;
    YES or NO answers the yearly check. Returns the short reply to send (or None)."""
    phone = _e164(from_number)
    if message_sid:
        try:
            with db.session.begin_nested():
                db.session.add(
                    ProcessedWebhook(
                        provider="twilio", event_id=f"sms:{message_sid}"[:255], event_type="sms"
                    )
                )
        except IntegrityError:
            return None  # a replay: answered already
    words = _words(body)
    if words in _YES:
        found = emergency_services.find_active_cascade_contact_by_phone(phone, now=now)
        if found is not None:
            incident, contact = _incident_and_contact(found)
            emergency_services.confirm_contact(incident, contact, via="sms", now=now)
            db.session.commit()
            return "Thank you. An operator will call you very soon with the details."
    check = _open_check(phone)
    if check is not None and words in _YES | _NO:
        check.reply = "yes" if words in _YES else "no"
        check.replied_at = now
        if check.reply == "no":
            _flag_plan(check, now=now, reason="A contact said they can no longer be called.")
        db.session.commit()
        if check.reply == "yes":
            return "Thank you for staying on the emergency plan. We will ask again in a year."
        return "Thank you for letting us know. We will ask the carer to choose someone else."
    db.session.commit()
    help_line = f" If this is about an emergency, call {line_phone}." if line_phone else ""
    return f"Sorry, we could not understand that. Reply YES if you can help.{help_line}"


def _incident_and_contact(found: Any) -> tuple[Incident, Contact]:
    if isinstance(found, tuple):
        return found[0], found[1]
    return found.incident, found.contact


def _open_check(phone: str) -> ContactCheck | None:
    return db.session.scalar(
        select(ContactCheck)
        .where(ContactCheck.phone == phone, ContactCheck.replied_at.is_(None))
        .order_by(ContactCheck.sent_at.desc())
        .limit(1)
    )


def _flag_plan(check: ContactCheck, *, now: datetime, reason: str) -> None:
    """Bring the plan's review forward to today so plan writers see it now."""
    check.flagged_at = check.flagged_at or now
    plan = db.session.get(Plan, check.plan_id)
    if plan is None:
        return
    today = now.date()
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


def send_contact_checks(*, now: datetime, scheme_name_for: Any = None) -> int:
    """Ask every contact of every active plan, once a year, whether they are still willing
    to be called. Idempotent: a contact asked in the last year is not asked again."""
    sent = 0
    plans = db.session.scalars(select(Plan).where(Plan.status == PlanStatus.ACTIVE))
    for plan in list(plans):
        version = db.session.scalar(
            select(PlanVersion).where(
                PlanVersion.plan_id == plan.id, PlanVersion.number == plan.current_version
            )
        )
        if version is None:
            continue
        for contact in version.contacts:
            if not _check_due(plan, contact, now):
                continue
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
            outbox.enqueue(
                "sms",
                recipient=contact.phone,
                payload={
                    "body": (
                        "You are named as an emergency contact on a carer's emergency "
                        "plan. Are you still happy for us to call you if they need help? "
                        "Please reply YES or NO."
                    )
                },
                council_id=plan.council_id,
                dedupe_key=f"contact-check:{plan.id}:{contact.phone}:{now.date().isoformat()}",
            )
            sent += 1
    db.session.commit()
    return sent


def _check_due(plan: Plan, contact: Contact, now: datetime) -> bool:
    last = db.session.scalar(
        select(func.max(ContactCheck.sent_at)).where(
            ContactCheck.plan_id == plan.id, ContactCheck.phone == contact.phone
        )
    )
    if last is not None:
        return bool(now - last >= CONTACT_CHECK_INTERVAL)
    # Never asked: a year after the plan was approved (they agreed then).
    return bool(now - plan.approved_at >= CONTACT_CHECK_INTERVAL)


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
