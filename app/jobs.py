"""Jobs of the shared kernel: delivering the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app

from app import outbox
from app.notify import make_notifier
from app.scheduler import job


@job(
    "deliver_outbox",
    trigger="interval",
    seconds=15,
    description="Send queued SMS, calls, e-mails and payment calls",
)
def deliver_outbox(now: datetime) -> dict[str, Any]:
    config = dict(current_app.config)
    return outbox.deliver_due(notifier=make_notifier(config), config=config, now=now)
