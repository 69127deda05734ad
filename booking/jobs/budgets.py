"""Scheduled work for budgets: release each tranche of an award once, on its day."""

from __future__ import annotations

from datetime import datetime

from app.scheduler import job
from booking.services.budgets import release_due_tranches


@job("release_tranches", trigger="cron", hour=0, minute=30)
def release_tranches(now: datetime) -> str:
    """Release every budget tranche due by today. Idempotent: each tranche's allocation
    has the key `tranche:<id>`, and released tranches are marked."""
    released = release_due_tranches(now=now)
    return f"released {released} tranches"
