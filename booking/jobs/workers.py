"""Daily vetting job: suspend workers whose checks lapsed, warn 30 days ahead."""

from __future__ import annotations

from datetime import datetime

from app.scheduler import job
from booking.services.vetting import run_vetting_expiry


@job(
    "vetting_expiry",
    trigger="cron",
    hour=6,
    minute=15,
    description="Suspend workers whose vetting checks have lapsed; warn 30 days ahead",
)
def vetting_expiry(now: datetime) -> dict[str, int]:
    return run_vetting_expiry(now=now)
