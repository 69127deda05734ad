"""`flask emergency scheme`: a council's emergency card scheme is set up and changed from
the CLI, validated all or nothing, audited, and the settings are what incidents use."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Council
from emergency import services
from emergency.models import EmergencyScheme
from tests.factories import CouncilFactory


def _cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["emergency", "scheme", *args])


def _scheme(council: Council) -> EmergencyScheme | None:
    db.session.expire_all()
    return db.session.scalar(
        select(EmergencyScheme).where(EmergencyScheme.council_id == council.id)
    )


def test_an_admin_sets_up_and_changes_a_scheme(app: Flask) -> None:
    council: Council = CouncilFactory()
    made = _cli(
        app,
        "--council",
        council.slug,
        "--name",
        "  Leeds  Carers' Emergency Card ",
        "--line-phone",
        "0800 098 8234",
        "--free-hours",
        "72",
        "--cascade-timeout",
        "15",
        "--warning",
        "90",
        "--budget",
        "5,000.00",
    )
    assert made.exit_code == 0, made.output
    scheme = _scheme(council)
    assert scheme is not None
    assert scheme.name == "Leeds Carers' Emergency Card"
    assert scheme.line_phone == "+448000988234"
    assert scheme.free_care_hours == 72
    assert scheme.cascade_timeout_minutes == 15
    assert scheme.window_warning_minutes == 90
    assert scheme.emergency_budget_pence == 500_000
    assert "72 hours" in made.output
    assert "£5,000.00" in made.output
    assert services.scheme_for(council.id).id == scheme.id

    changed = _cli(app, "--council", council.slug, "--free-hours", "24")
    assert changed.exit_code == 0, changed.output
    scheme = _scheme(council)
    assert scheme is not None
    assert scheme.free_care_hours == 24
    assert scheme.cascade_timeout_minutes == 15  # untouched settings stay
    entries = list(
        db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.council_id == council.id, AuditEntry.action.like("emergency.scheme%"))
            .order_by(AuditEntry.id)
        )
    )
    assert [e.action for e in entries] == ["emergency.scheme_created", "emergency.scheme_updated"]
    assert entries[1].details["settings"] == ["free_care_hours"]

    again = _cli(app, "--council", council.slug, "--free-hours", "24")
    assert again.exit_code == 0
    updates = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "emergency.scheme_updated")
    ).all()
    assert len(updates) == 1  # nothing changed, nothing recorded


def test_bad_settings_change_nothing_and_say_why(app: Flask) -> None:
    council: Council = CouncilFactory()
    assert _cli(app, "--council", council.slug, "--line-phone", "0800 098 8234").exit_code == 0
    before = _scheme(council)
    assert before is not None
    settings = (
        before.free_care_hours,
        before.cascade_timeout_minutes,
        before.emergency_budget_pence,
    )
    cases = [
        (["--free-hours", "36", "--budget", "100"], "24, 48 or 72 hours"),
        (["--cascade-timeout", "0"], "between 1 and 1440 minutes"),
        (["--warning", "99999"], "between 1 and 1440 minutes"),
        (["--budget", "lots"], "in pounds"),
        (["--budget", "-5"], "between £0 and £1,000,000"),
        (["--line-phone", "12345"], "phone number"),
        (["--name", "   "], "scheme's name"),
    ]
    for args, message in cases:
        result = _cli(app, "--council", council.slug, *args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
    after = _scheme(council)
    assert after is not None
    assert (after.free_care_hours, after.cascade_timeout_minutes, after.emergency_budget_pence) == (
        settings
    )
    assert _cli(app, "--council", "nowhere", "--free-hours", "24").exit_code != 0


def test_a_new_scheme_needs_its_24_hour_number(app: Flask) -> None:
    council: Council = CouncilFactory(emergency_phone=None)
    result = _cli(app, "--council", council.slug, "--free-hours", "48")
    assert result.exit_code != 0
    assert "24-hour number" in result.output
    assert _scheme(council) is None


def test_a_new_scheme_takes_the_councils_number_in_e164(app: Flask) -> None:
    """The line is matched against Twilio's `To`, so a number the council typed with
    spaces is stored as +44...; one that is not a real number stops the set-up."""
    council: Council = CouncilFactory(emergency_phone="0800 098 8234")
    result = _cli(app, "--council", council.slug, "--free-hours", "72")
    assert result.exit_code == 0, result.output
    scheme = _scheme(council)
    assert scheme is not None
    assert scheme.line_phone == "+448000988234"

    bad: Council = CouncilFactory(emergency_phone="12345")
    refused = _cli(app, "--council", bad.slug, "--free-hours", "72")
    assert refused.exit_code != 0
    assert "council's emergency number (12345)" in refused.output
    assert "--line-phone" in refused.output
    assert _scheme(bad) is None
