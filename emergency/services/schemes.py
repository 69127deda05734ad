"""A council's emergency card scheme settings: the name and 24-hour number printed on its
cards, the free replacement-care window (24, 48 or 72 hours), how long the cascade waits
for each contact, when the window's end is warned about, and the emergency budget that
pays for emergency bookings. Set by an admin with `flask emergency scheme`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app import audit
from app.errors import DomainError
from app.extensions import db
from app.models import Council
from app.money import parse_pounds
from app.phone_numbers import normalise_uk_phone
from emergency.models import EmergencyScheme
from emergency.services.common import scheme_for

FREE_CARE_HOURS = (24, 48, 72)
MAX_TIMEOUT_MINUTES = 24 * 60
MAX_BUDGET_PENCE = 100_000_000


@dataclass(frozen=True)
class SchemeChanges:
    """What to change; None leaves a setting as it is. Text as a person typed it."""

    name: str | None = None
    line_phone: str | None = None
    free_care_hours: int | None = None
    cascade_timeout_minutes: int | None = None
    window_warning_minutes: int | None = None
    budget_pounds: str | None = None


def _minutes(value: int, *, field: str, what: str) -> int:
    if not 1 <= value <= MAX_TIMEOUT_MINUTES:
        raise DomainError(
            f"{what} must be between 1 and {MAX_TIMEOUT_MINUTES} minutes.",
            fields={field: f"Enter a whole number of minutes from 1 to {MAX_TIMEOUT_MINUTES}"},
        )
    return value


def _budget_pence(text: str) -> int:
    try:
        pence = parse_pounds(text)
    except (ValueError, ArithmeticError) as exc:
        raise DomainError(
            "Enter the emergency budget in pounds, like 5000 or 5,000.00.",
            fields={"budget": "Enter an amount in pounds"},
        ) from exc
    if not 0 <= pence <= MAX_BUDGET_PENCE:
        raise DomainError(
            "The emergency budget must be between £0 and £1,000,000.",
            fields={"budget": "Enter an amount from £0 to £1,000,000"},
        )
    return pence


def _inherited_line_phone(council_phone: str) -> str:
    """A new scheme without --line-phone takes the council's emergency number. That number
    was stored as typed, but the line is printed on cards and matched against Twilio's
    `To`, so it must be a real number in E.164 like one given here."""
    if not council_phone:
        raise DomainError(
            "A new scheme needs its 24-hour number: give --line-phone.",
            fields={"line_phone": "Enter the 24-hour number"},
        )
    try:
        return normalise_uk_phone(council_phone, field="line_phone")
    except DomainError as exc:
        raise DomainError(
            f"The council's emergency number ({council_phone}) is not a real phone number: "
            "give --line-phone.",
            fields={"line_phone": "Enter the 24-hour number"},
        ) from exc


def update_scheme(council: Council, changes: SchemeChanges) -> EmergencyScheme:
    """Create or change the council's scheme, all or nothing, with an audit entry naming
    the settings changed. A new scheme starts from the defaults `scheme_for` shows."""
    scheme = db.session.scalar(
        select(EmergencyScheme).where(EmergencyScheme.council_id == council.id)
    )
    is_new = scheme is None
    if scheme is None:
        scheme = scheme_for(council.id)
    wanted: dict[str, object] = {}
    if changes.name is not None:
        name = " ".join(changes.name.split())
        if not name or len(name) > 200:
            raise DomainError(
                "Enter the scheme's name as printed on its cards (up to 200 characters).",
                fields={"name": "Enter the scheme's name"},
            )
        wanted["name"] = name
    if changes.line_phone is not None:
        wanted["line_phone"] = normalise_uk_phone(changes.line_phone, field="line_phone")
    if changes.free_care_hours is not None:
        if changes.free_care_hours not in FREE_CARE_HOURS:
            raise DomainError(
                "The free replacement-care window is 24, 48 or 72 hours.",
                fields={"free_care_hours": "Choose 24, 48 or 72"},
            )
        wanted["free_care_hours"] = changes.free_care_hours
    if changes.cascade_timeout_minutes is not None:
        wanted["cascade_timeout_minutes"] = _minutes(
            changes.cascade_timeout_minutes,
            field="cascade_timeout_minutes",
            what="The wait for each contact",
        )
    if changes.window_warning_minutes is not None:
        wanted["window_warning_minutes"] = _minutes(
            changes.window_warning_minutes,
            field="window_warning_minutes",
            what="The warning before free care ends",
        )
    if changes.budget_pounds is not None:
        wanted["emergency_budget_pence"] = _budget_pence(changes.budget_pounds)
    if is_new and "line_phone" not in wanted:
        wanted["line_phone"] = _inherited_line_phone(scheme.line_phone)
    changed = sorted(name for name, value in wanted.items() if getattr(scheme, name) != value)
    for name in changed:
        setattr(scheme, name, wanted[name])
    if is_new:
        db.session.add(scheme)
    if changed or is_new:
        db.session.flush()
        audit.record(
            "emergency.scheme_created" if is_new else "emergency.scheme_updated",
            actor=None,
            council_id=council.id,
            subject=scheme,
            details={"settings": changed},
        )
    db.session.commit()
    return scheme
