"""Small helpers the emergency services share (private to the package)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from app.extensions import db
from app.models import Council
from emergency.models import EmergencyScheme

DEFAULT_FREE_CARE_HOURS = 48
DEFAULT_CASCADE_TIMEOUT_MINUTES = 10


def scheme_for(council_id: int) -> EmergencyScheme:
    """The council's scheme settings; a default (not saved) when none has been set up."""
    scheme = db.session.scalar(
        select(EmergencyScheme).where(EmergencyScheme.council_id == council_id)
    )
    if scheme is not None:
        return scheme
    council = db.session.get(Council, council_id)
    return EmergencyScheme(
        council_id=council_id,
        name=f"{council.name if council else 'Council'} carers' emergency card",
        line_phone=(council.emergency_phone if council else None) or "",
        free_care_hours=DEFAULT_FREE_CARE_HOURS,
        cascade_timeout_minutes=DEFAULT_CASCADE_TIMEOUT_MINUTES,
        window_warning_minutes=120,
        emergency_budget_pence=0,
    )


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months, clamped to the month's last day (29 Feb → 28 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (31, 30, 29, 28):
        if day.day >= candidate or candidate == 28:
            try:
                return date(year, month, min(day.day, candidate))
            except ValueError:
                continue
    return date(year, month, 28)


def first_name(full_name: str) -> str:
    return full_name.split()[0] if full_name.strip() else full_name
