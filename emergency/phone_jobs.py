"""Scheduled work of the phone line: cascade calls and the yearly contact check."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app

from app.scheduler import job
from emergency import phone_services


@job(
    "phone_cascade_calls",
    trigger="interval",
    minutes=1,
    description="Queue automated calls to the contact each running cascade is waiting on",
)
def phone_cascade_calls(now: datetime) -> dict[str, Any]:
    """CASCADE_CALL_ATTEMPTS calls to each contact, CASCADE_CALL_RETRY_MINUTES apart."""
    queued = phone_services.place_cascade_calls(
        now=now,
        max_attempts=int(current_app.config["CASCADE_CALL_ATTEMPTS"]),
        retry_minutes=int(current_app.config["CASCADE_CALL_RETRY_MINUTES"]),
    )
    return {"queued": queued}


@job(
    "phone_contact_checks",
    trigger="cron",
    hour=10,
    minute=0,
    description="Ask contacts once a year if they are still willing; flag plans with no reply",
)
def phone_contact_checks(now: datetime) -> dict[str, Any]:
    sent = phone_services.send_contact_checks(now=now)
    flagged = phone_services.flag_unanswered_checks(now=now)
    return {"sent": sent, "flagged": flagged}
