"""The outbox: side effects written in the caller's transaction, delivered afterwards.

`enqueue` only adds a row; `deliver_due` (a scheduled job) claims due rows with
`FOR UPDATE SKIP LOCKED` on PostgreSQL, runs the handler for each row's kind, and on
failure schedules a retry with exponential backoff until the last attempt, after which
the row is `dead` and shows on the staff outbox page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage, OutboxStatus
from app.notify import DeliveryError, Notifier, Sent, status_callback_url

log = logging.getLogger("outbox")


@dataclass
class DeliveryContext:
    """What a handler may use: the notifier, the app config, and the time."""

    notifier: Notifier
    config: dict[str, Any]
    now: datetime


Handler = Callable[[OutboxMessage, DeliveryContext], Sent | None]
_HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that delivers outbox rows of `kind`."""

    def decorator(func: Handler) -> Handler:
        _HANDLERS[kind] = func
        return func

    return decorator


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
        status_callback=status_callback_url(ctx.config),
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
        message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if permanent or message.attempts >= max_attempts:
            message.status = OutboxStatus.DEAD
            counts["dead"] += 1
            log.error("outbox message %s is dead: %s", message.id, message.last_error)
        else:
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


def retry_dead(message: OutboxMessage, *, now: datetime) -> OutboxMessage:
    """Staff action: give a dead message a fresh set of attempts."""
    message.status = OutboxStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = now
    db.session.commit()
    return message
