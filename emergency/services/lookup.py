"""PIN lookup: the check digit first (no card is looked up for a mistyped PIN), then
rate limits kept in the database (per operator, per caller number, and for the whole
service, the phone keypad counted apart from staff), then the card; a hit opens (or returns) the incident. Every attempt, hit or
miss, is audited: who, when, from where, and the incident it led to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app import audit, outbox
from app.clock import to_london
from app.extensions import db
from app.models import Council, Role, User, UserRole
from emergency.models import Card, CardStatus, Incident, PinAttempt, PlanVersion
from emergency.pins import check_pin_format, pin_hmac
from emergency.services.errors import CardRevoked, InvalidPin, TooManyAttempts, UnknownPin
from emergency.services.incidents import add_incident_event, open_incident_for_card
from emergency.services.plans import current_version

CHANNELS = ("console", "api", "phone")
MISS_OUTCOMES = ("invalid", "unknown", "revoked")
OPERATOR_MISS_LIMIT = 20  # misses in a row (since the operator's last hit) …
CALLER_MISS_LIMIT = 5  # … or from one caller number …
LOCKOUT = timedelta(minutes=15)  # … within this window lock that person out for it
GLOBAL_MISS_LIMIT = 200  # misses across the whole service …
GLOBAL_WINDOW = timedelta(minutes=10)  # … in this window suggest guessing: pause lookups
# The service-wide guard counts the public phone line's keypad apart from staff (console
# and API), so a flood of wrong PINs from anonymous callers pauses the keypad (callers are
# put through to an operator) but never the operators' own lookups, in any council.
PHONE_SCOPE = "phone"
STAFF_SCOPE = "staff"


@dataclass(frozen=True)
class LookupResult:
    card: Card
    plan_version: PlanVersion
    incident: Incident


def _nth_newest_miss(where: list[object], since: datetime, n: int) -> datetime | None:
    """When the n-th newest miss matching `where` since `since` happened, or None when
    there are fewer: n misses in a window is what locks out or pauses."""
    return db.session.scalar(
        select(PinAttempt.created_at)
        .where(*where, PinAttempt.outcome.in_(MISS_OUTCOMES), PinAttempt.created_at > since)  # type: ignore[arg-type]
        .order_by(PinAttempt.created_at.desc())
        .offset(n - 1)
        .limit(1)
    )


def _last_hit(where: list[object]) -> datetime | None:
    return db.session.scalar(
        select(func.max(PinAttempt.created_at)).where(*where, PinAttempt.outcome == "hit")  # type: ignore[arg-type]
    )


def _lock_remaining(where: list[object], limit: int, now: datetime) -> int | None:
    """Seconds left of a lockout for this filter, or None when not locked."""
    since = now - LOCKOUT
    last_hit = _last_hit(where)
    if last_hit is not None and last_hit > since:
        since = last_hit
    nth = _nth_newest_miss(where, since, limit)
    if nth is None:
        return None
    unlocks_at = nth + LOCKOUT
    return max(int((unlocks_at - now).total_seconds()) + 1, 1)


def _scope_of(channel: str) -> str:
    return PHONE_SCOPE if channel == "phone" else STAFF_SCOPE


def _scope_filter(scope: str) -> object:
    if scope == PHONE_SCOPE:
        return PinAttempt.channel == "phone"
    return PinAttempt.channel != "phone"


def _global_pause_ends(now: datetime, scope: str) -> datetime | None:
    """When the service-wide pause of this scope ends, or None when it is not paused.
    No miss is recorded while paused, so the end does not move."""
    nth = _nth_newest_miss([_scope_filter(scope)], now - GLOBAL_WINDOW, GLOBAL_MISS_LIMIT)
    return None if nth is None else nth + GLOBAL_WINDOW


def _wait_words(seconds: int, now: datetime) -> str:
    """'about 7 minutes (until 3:42pm)' in UK time, for a person who must wait."""
    minutes = max(1, -(-seconds // 60))
    until = to_london(now + timedelta(seconds=seconds)).strftime("%-I:%M%p").lower()
    return f"about {minutes} minute{'s' if minutes != 1 else ''} (until {until})"


def _duty_team_words(operator: User | None) -> str:
    council = db.session.get(Council, operator.council_id) if operator else None
    phone = council.duty_team_phone if council else None
    return f"the council's emergency duty team on {phone}" if phone else "your duty manager"


def _check_limits(
    *, channel: str, operator: User | None, caller_number: str | None, now: datetime
) -> None:
    ends = _global_pause_ends(now, _scope_of(channel))
    if ends is not None:
        seconds = max(int((ends - now).total_seconds()) + 1, 1)
        raise TooManyAttempts(
            f"PIN lookups are paused across the service for {_wait_words(seconds, now)}, "
            "because many wrong PINs were tried. Try the PIN again then. If someone needs "
            "help now, take the carer's name and address and call "
            f"{_duty_team_words(operator)}.",
            retry_after=seconds,
        )
    checks: list[tuple[list[object], int, str]] = []
    if operator is not None:
        checks.append(([PinAttempt.operator_id == operator.id], OPERATOR_MISS_LIMIT, "operator"))
    if caller_number:
        checks.append(([PinAttempt.caller_number == caller_number], CALLER_MISS_LIMIT, "caller"))
    for where, limit, _who in checks:
        remaining = _lock_remaining(where, limit, now)
        if remaining is not None:
            raise TooManyAttempts(
                f"Too many wrong PINs in a row: your lookups are paused for "
                f"{_wait_words(remaining, now)}. Ask another operator to look the PIN up, "
                f"or call {_duty_team_words(operator)} if someone needs help now.",
                retry_after=remaining,
            )


def _alert_lockout(
    *, operator: User | None, caller_number: str | None, council_id: int | None, now: datetime
) -> None:
    """Tell the council's officers and admins that someone was locked out."""
    who = operator.name if operator else f"caller {caller_number}"
    audit.record(
        "emergency.lookup_lockout",
        actor=operator,
        council_id=council_id,
        details={"caller_number": caller_number},
    )
    if council_id is None:
        return
    staff = db.session.scalars(
        select(User)
        .join(UserRole)
        .where(
            User.council_id == council_id,
            UserRole.role.in_([Role.COUNCIL_OFFICER, Role.ADMIN]),
        )
        .distinct()
    )
    stamp = now.strftime("%Y%m%d%H%M")
    for person in staff:
        outbox.enqueue(
            "email",
            recipient=person.email,
            payload={
                "subject": "Emergency line: PIN lookups locked after repeated wrong PINs",
                "body": f"{who} entered too many wrong PINs in a row and is locked out for "
                f"{int(LOCKOUT.total_seconds() // 60)} minutes. Check the audit log.",
            },
            council_id=council_id,
            dedupe_key=f"pin-lockout-{operator.id if operator else caller_number}-{person.id}-{stamp}",
        )


def _alert_global_pause(now: datetime, scope: str) -> None:
    """Guessing across the service pauses lookups of that scope (the phone keypad, or the
    staff's console and API): tell every council's officers and the admins at once
    (once per window, however many misses follow)."""
    where = "on the phone line's keypad" if scope == PHONE_SCOPE else "by operators"
    paused = (
        "Keypad lookups are paused (callers are put through to an operator); operators' "
        "lookups carry on."
        if scope == PHONE_SCOPE
        else "Operators' lookups are paused; they are told to call the duty team meanwhile."
    )
    audit.record(
        "emergency.lookup_global_pause",
        actor=None,
        council_id=None,
        details={
            "misses": GLOBAL_MISS_LIMIT,
            "window_minutes": GLOBAL_WINDOW.seconds // 60,
            "scope": scope,
        },
    )
    staff = db.session.scalars(
        select(User)
        .join(UserRole)
        .where(UserRole.role.in_([Role.COUNCIL_OFFICER, Role.ADMIN]), User.is_active.is_(True))
        .distinct()
    )
    window = int(now.timestamp() // GLOBAL_WINDOW.total_seconds())
    for person in staff:
        outbox.enqueue(
            "email",
            recipient=person.email,
            payload={
                "subject": f"Emergency line: PIN lookups {where} paused after many wrong PINs",
                "body": f"{GLOBAL_MISS_LIMIT} wrong PINs were tried {where} within "
                f"{GLOBAL_WINDOW.seconds // 60} minutes, which looks like guessing. "
                f"{paused} The pause ends by itself within "
                f"{GLOBAL_WINDOW.seconds // 60} minutes. Check the audit log.",
            },
            council_id=person.council_id,
            dedupe_key=f"pin-global-pause-{scope}-{person.id}-{window}",
        )


def _record_miss(
    outcome: str,
    *,
    channel: str,
    operator: User | None,
    caller_number: str | None,
    ip_address: str | None,
    council_id: int | None,
    card: Card | None,
    now: datetime,
) -> None:
    db.session.add(
        PinAttempt(
            council_id=council_id,
            operator_id=operator.id if operator else None,
            caller_number=caller_number,
            ip_address=ip_address,
            channel=channel,
            outcome=outcome,
            created_at=now,
        )
    )
    audit.record(
        "emergency.pin_lookup_miss",
        actor=operator,
        council_id=council_id,
        subject=card,
        subject_type="Card" if card else None,
        ip_address=ip_address,
        reason=outcome,
        details={"channel": channel, "caller_number": caller_number, "outcome": outcome},
    )
    db.session.flush()
    locked_now = False
    if operator is not None and _lock_remaining(
        [PinAttempt.operator_id == operator.id], OPERATOR_MISS_LIMIT, now
    ):
        locked_now = True
    if caller_number and _lock_remaining(
        [PinAttempt.caller_number == caller_number], CALLER_MISS_LIMIT, now
    ):
        locked_now = True
    if locked_now:
        _alert_lockout(
            operator=operator, caller_number=caller_number, council_id=council_id, now=now
        )
    scope = _scope_of(channel)
    if _global_pause_ends(now, scope) is not None:
        _alert_global_pause(now, scope)
    db.session.commit()


def lookup_pin(
    pin: str,
    *,
    channel: str,
    operator: User | None,
    caller_number: str | None,
    ip_address: str | None,
    pin_key: str,
    now: datetime,
) -> LookupResult:
    """Find the plan behind a PIN and open (or return) its incident.

    Raises TooManyAttempts (429) while locked out, InvalidPin (422) when the check digit
    fails — before any card is looked up —, UnknownPin (404), CardRevoked (410)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    council_id = operator.council_id if operator else None
    try:
        _check_limits(channel=channel, operator=operator, caller_number=caller_number, now=now)
    except TooManyAttempts:
        # Refused unchecked, but still a lookup: audited. No PinAttempt row, so the
        # pause does not grow while it lasts.
        audit.record(
            "emergency.pin_lookup_miss",
            actor=operator,
            council_id=council_id,
            ip_address=ip_address,
            reason="refused",
            details={"channel": channel, "caller_number": caller_number, "outcome": "refused"},
        )
        db.session.commit()
        raise
    miss = {
        "channel": channel,
        "operator": operator,
        "caller_number": caller_number,
        "ip_address": ip_address,
        "now": now,
    }
    if not check_pin_format(pin):
        _record_miss("invalid", council_id=council_id, card=None, **miss)  # type: ignore[arg-type]
        raise InvalidPin(
            "That PIN does not look right: a digit may be mistyped or two swapped. "
            "Ask the caller to read it again, slowly."
        )
    card = db.session.scalar(select(Card).where(Card.pin_hmac == pin_hmac(pin, pin_key)))
    if card is None:
        _record_miss("unknown", council_id=council_id, card=None, **miss)  # type: ignore[arg-type]
        raise UnknownPin("No card has that PIN. Check it with the caller.")
    if operator is not None and operator.council_id not in (None, card.council_id):
        # Another council's card: treat as unknown so PINs of other schemes don't leak
        # (checked before revocation, so a cancelled card elsewhere says nothing either).
        _record_miss("unknown", council_id=council_id, card=None, **miss)  # type: ignore[arg-type]
        raise UnknownPin("No card has that PIN. Check it with the caller.")
    if card.status is not CardStatus.LIVE:
        _record_miss("revoked", council_id=card.council_id, card=card, **miss)  # type: ignore[arg-type]
        raise CardRevoked(
            "This card has been cancelled. Ask the caller for the carer's name and address, "
            "and call the council's duty team."
        )
    incident = open_incident_for_card(card, source=channel, operator=operator, now=now)
    db.session.add(
        PinAttempt(
            council_id=card.council_id,
            operator_id=operator.id if operator else None,
            caller_number=caller_number,
            ip_address=ip_address,
            channel=channel,
            outcome="hit",
            created_at=now,
        )
    )
    audit.record(
        "emergency.pin_lookup_hit",
        actor=operator,
        council_id=card.council_id,
        subject=card,
        ip_address=ip_address,
        reason=f"incident {incident.id}",
        details={"channel": channel, "caller_number": caller_number, "incident_id": incident.id},
    )
    add_incident_event(
        incident,
        kind="lookup",
        text=f"Plan found by PIN ({channel}).",
        actor=operator,
        now=now,
        details={"caller_number": caller_number},
        commit=False,
    )
    version = current_version(incident.plan)
    db.session.commit()
    return LookupResult(card=card, plan_version=version, incident=incident)
