"""Scheduled work for bookings. Each job is idempotent: it only touches rows still in
the state it looks for, and messages carry outbox dedupe keys."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from app.scheduler import job
from booking.services import bookings as service


def _backend() -> str:
    return str(current_app.config.get("PAYMENT_BACKEND", "ledger"))


@job(
    "expire_booking_requests",
    trigger="interval",
    minutes=5,
    description="Expire requests the worker did not answer in time and release the hold",
)
def expire_booking_requests(now: datetime) -> str:
    return f"expired {service.expire_requests(now=now, payment_backend=_backend())} requests"


@job(
    "booking_reminders",
    trigger="cron",
    minute=0,
    description="Remind carers and workers of a confirmed break, from 17:00 UK time the day "
    "before (hourly, so a missed run is caught up; each break once)",
)
def booking_reminders(now: datetime) -> str:
    return f"reminded about {service.send_reminders(now=now)} breaks"


@job(
    "record_break_reminders",
    trigger="interval",
    hours=1,
    description="Remind the worker, once, to record a confirmed break still not recorded "
    "24 hours after it ended",
)
def record_break_reminders(now: datetime) -> str:
    return f"reminded workers to record {service.remind_to_record(now=now)} breaks"


@job(
    "close_dispute_windows",
    trigger="interval",
    minutes=15,
    description="Make completed breaks final once their 48 hours to dispute have passed",
)
def close_dispute_windows(now: datetime) -> str:
    return f"{service.close_dispute_windows(now=now)} breaks are now final"


@job(
    "waiting_list_offers",
    trigger="interval",
    minutes=10,
    description="Offer waited-for slots that have freed up",
)
def waiting_list_offers(now: datetime) -> str:
    return f"offered {service.offer_waiting_list(now=now)} slots"
