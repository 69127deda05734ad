"""Scheduled work of the emergency service. Each job is idempotent and also runs as
`flask jobs run NAME`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.scheduler import job
from emergency import services


@job(
    "emergency_cascade",
    trigger="interval",
    seconds=30,
    description="Move contact cascades on after their timeout; arrange care when none is left",
)
def emergency_cascade(now: datetime) -> dict[str, Any]:
    return {"advanced": services.advance_cascades(now)}


@job(
    "care_window_warnings",
    trigger="interval",
    minutes=5,
    description="Warn before an incident's free replacement-care window ends",
)
def care_window_warnings(now: datetime) -> dict[str, Any]:
    return {"warned": services.send_care_window_warnings(now)}


@job(
    "plan_review_reminders",
    trigger="cron",
    hour=7,
    minute=0,
    description="Remind carers and plan writers 30 days before a review; flag overdue plans",
)
def plan_review_reminders(now: datetime) -> dict[str, Any]:
    return services.send_plan_review_reminders(now)
