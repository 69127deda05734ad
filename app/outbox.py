"""The outbox: side effects written in the caller's transaction, delivered afterwards.

`enqueue` only adds a row; `deliver_due` (a scheduled job) claims due rows with
`FOR UPDATE SKIP LOCKED` on PostgreSQL, runs the handler for each row's kind, and on
failure schedules a retry with exponential backoff until the last attempt, after which
the row is `dead` and shows on the staff outbox page. A message the provider accepted
but later reports it could not deliver (Twilio's `undelivered`/`failed`) is made `dead`
too, through `mark_failed`. Packages hear about dead messages through `on_failure`
(the cascade puts a failed SMS or call on the incident's timeline).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from app import audit
from app.errors import DomainError
from app.extensions import db
from app.models import OutboxMessage, OutboxStatus, User
from app.notify import DeliveryError, Notifier, Sent, status_callback_url

log = logging.getLogger("outbox")


@dataclass
class DeliveryContext:
    """What a handler may use: the notifier, the app config, and the time."""

    notifier: Notifier
    config: dict[str, Any]
    now: datetime


class OutboxError(DomainError):
    """A staff action on the outbox was refused."""


Handler = Callable[[OutboxMessage, DeliveryContext], Sent | None]
FailureListener = Callable[[OutboxMessage, datetime], None]
_HANDLERS: dict[str, Handler] = {}
_FAILURE_LISTENERS: list[FailureListener] = []


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that delivers outbox rows of `kind`."""

    def decorator(func: Handler) -> Handler:
        _HANDLERS[kind] = func
        return func

    return decorator


def on_failure(func: FailureListener) -> FailureListener:
    """Register a function told about every message that has just gone `dead` (after
    the last try, a permanent error, or a failure the provider reported later). It runs
    in the caller's transaction and only flushes."""
    if func not in _FAILURE_LISTENERS:
        _FAILURE_LISTENERS.append(func)
    return func


def mark_failed(message: OutboxMessage, *, error: str, now: datetime) -> None:
    """Make a message `dead` (shown to staff under "failed", who may try it again) and
    tell the listeners. Only flushes. A listener's own failure is logged, never lets the
    message slip back to unnoticed."""
    message.status = OutboxStatus.DEAD
    message.last_error = error[:2000]
    log.error("outbox message %s is dead: %s", message.id, message.last_error)
    for listener in _FAILURE_LISTENERS:
        try:
            with db.session.begin_nested():
                listener(message, now)
        except Exception:
            log.exception("outbox failure listener %s failed for %s", listener, message.id)


def enqueue(
    kind: str,
    *,
    recipient: str | None = None,
    payload: dict[str, Any] | None = None,
    council_id: int | None = None,
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> OutboxMessage | None:
    """Add a message in the current transaction. With `dedupe_key`, a second enqueue of the
    same key is ignored (returns None)."""
    if dedupe_key is not None:
        existing = db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key)
        )
        if existing is not None:
            return None
    message = OutboxMessage(
        kind=kind,
        recipient=recipient,
        payload=payload or {},
        council_id=council_id,
        dedupe_key=dedupe_key,
    )
    if not_before is not None:
        message.next_attempt_at = not_before
    db.session.add(message)
    db.session.flush()
    return message


@handler("sms")
def _deliver_sms(message: OutboxMessage, ctx: DeliveryContext) -> Sent:
    return ctx.notifier.send_sms(
        message.recipient or "",
        message.payload["body"],
        status_callback=status_callback_url(ctx.config, outbox_id=message.id),
    )


@handler("email")
def _deliver_email(message: OutboxMessage, ctx: DeliveryContext) -> Sent:
    return ctx.notifier.send_email(
        message.recipient or "", message.payload["subject"], message.payload["body"]
    )


def backoff(attempts: int, base_seconds: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min … capped at 6 hours."""
    return timedelta(seconds=min(base_seconds * (2 ** max(attempts - 1, 0)), 6 * 3600))


def deliver_due(
    *, notifier: Notifier, config: dict[str, Any], now: datetime, batch: int = 50
) -> dict[str, int]:
    """Deliver due messages once each. Safe to run from several processes at once."""
    max_attempts = int(config.get("OUTBOX_MAX_ATTEMPTS", 8))
    base = int(config.get("OUTBOX_BASE_DELAY_SECONDS", 30))
    counts = {"sent": 0, "retry": 0, "dead": 0}
    ctx = DeliveryContext(notifier=notifier, config=config, now=now)
    for _ in range(batch):
        # One message per transaction: the row lock is held while the provider is called,
        # and the result is committed before the next message is touched.
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(1)
        )
        if db.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        message = db.session.scalar(query)
        if message is None:
            break
        deliver_one(message, ctx, max_attempts=max_attempts, base_seconds=base, counts=counts)
        db.session.commit()
    return counts


def deliver_one(
    message: OutboxMessage,
    ctx: DeliveryContext,
    *,
    max_attempts: int,
    base_seconds: int,
    counts: dict[str, int],
) -> None:
    func = _HANDLERS.get(message.kind)
    message.attempts += 1
    try:
        if func is None:
            raise DeliveryError(f"no handler for outbox kind {message.kind!r}", permanent=True)
        with db.session.begin_nested():
            sent = func(message, ctx)
    except Exception as exc:  # any provider failure is retried, never lost
        permanent = isinstance(exc, DeliveryError) and exc.permanent
        error = f"{type(exc).__name__}: {exc}"
        if permanent or message.attempts >= max_attempts:
            mark_failed(message, error=error, now=ctx.now)
            counts["dead"] += 1
        else:
            message.last_error = error[:2000]
            message.next_attempt_at = ctx.now + backoff(message.attempts, base_seconds)
            counts["retry"] += 1
        return
    message.status = OutboxStatus.SENT
    message.sent_at = ctx.now
    message.last_error = None
    if sent is not None:
        message.provider_ref = sent.provider_ref or message.provider_ref
        message.delivery_status = sent.status
    counts["sent"] += 1


def retry_dead(message: OutboxMessage, *, by: User, now: datetime) -> OutboxMessage:
    """Staff action: give a dead message a fresh set of attempts.

    Only a dead message is sent again: a message waiting or already sent (perhaps
    delivered) is refused, so a second click or a forged POST never texts anyone twice.
    Each retry is audited."""
    db.session.refresh(message, with_for_update=True)  # two clicks at once: one retry
    if message.status is not OutboxStatus.DEAD:
        raise OutboxError(
            "Only a message that failed can be tried again. This one "
            + (
                "is still waiting to be sent."
                if message.status is OutboxStatus.PENDING
                else "has already been sent."
            ),
            code="not_failed",
            status=409,
        )
    audit.record(
        "outbox.message.retried",
        actor=by,
        council_id=message.council_id,
        subject=message,
        details={
            "kind": message.kind,
            "attempts": message.attempts,
            "delivery_status": message.delivery_status,
            "last_error": message.last_error,
        },
    )
    message.status = OutboxStatus.PENDING
    message.attempts = 0
    message.delivery_status = None
    message.next_attempt_at = now
    db.session.commit()
    return message
