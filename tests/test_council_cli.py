"""`flask councils create --cancellation-fee` and `flask councils set-fee`."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Council


def _cli(app: Flask, *args: str):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def _council(slug: str) -> Council | None:
    db.session.expire_all()
    return db.session.scalar(select(Council).where(Council.slug == slug))


def _audits() -> list[AuditEntry]:
    return list(
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "council.cancellation_fee_set")
        )
    )


def test_create_with_a_cancellation_fee(app: Flask) -> None:
    result = _cli(
        app,
        "councils",
        "create",
        "--slug",
        "york",
        "--name",
        "York",
        "--cancellation-fee",
        "£15.50",
    )
    assert result.exit_code == 0, result.output
    council = _council("york")
    assert council is not None
    assert council.cancellation_fee_pence == 1550
    [entry] = _audits()
    assert entry.council_id == council.id
    assert entry.details == {"old_pence": 0, "new_pence": 1550, "via": "cli"}


def test_create_without_a_fee_leaves_it_at_zero(app: Flask) -> None:
    result = _cli(app, "councils", "create", "--slug", "hull", "--name", "Hull")
    assert result.exit_code == 0, result.output
    assert _council("hull").cancellation_fee_pence == 0  # type: ignore[union-attr]
    assert _audits() == []


@pytest.mark.parametrize("bad", ["abc", "12.345", "-5", ""])
def test_create_with_a_bad_fee_writes_nothing(app: Flask, bad: str) -> None:
    result = _cli(
        app, "councils", "create", "--slug", "bath", "--name", "Bath", "--cancellation-fee", bad
    )
    assert result.exit_code != 0
    assert "Cancellation fee" in result.output or "cancellation fee" in result.output
    assert _council("bath") is None
    assert db.session.scalar(select(func.count()).select_from(Council)) == 0
    assert _audits() == []


def test_set_fee_changes_it_and_audits(app: Flask) -> None:
    assert _cli(app, "councils", "create", "--slug", "york", "--name", "York").exit_code == 0
    result = _cli(app, "councils", "set-fee", "--council", "york", "--fee", "20")
    assert result.exit_code == 0, result.output
    assert "£0.00 -> £20.00" in result.output
    assert _council("york").cancellation_fee_pence == 2000  # type: ignore[union-attr]
    result = _cli(app, "councils", "set-fee", "--council", "york", "--fee", "0")
    assert result.exit_code == 0, result.output
    assert _council("york").cancellation_fee_pence == 0  # type: ignore[union-attr]
    assert [(e.details["old_pence"], e.details["new_pence"]) for e in _audits()] == [
        (0, 2000),
        (2000, 0),
    ]


@pytest.mark.parametrize("bad", ["twelve", "1.999", "-1"])
def test_set_fee_with_a_bad_amount_writes_nothing(app: Flask, bad: str) -> None:
    assert _cli(app, "councils", "create", "--slug", "york", "--name", "York").exit_code == 0
    _cli(app, "councils", "set-fee", "--council", "york", "--fee", "10")
    result = _cli(app, "councils", "set-fee", "--council", "york", "--fee", bad)
    assert result.exit_code != 0
    assert "Error: Cancellation fee" in result.output or "less than £0.00" in result.output
    assert _council("york").cancellation_fee_pence == 1000  # type: ignore[union-attr]
    assert len(_audits()) == 1


def test_set_fee_for_an_unknown_council(app: Flask) -> None:
    result = _cli(app, "councils", "set-fee", "--council", "nowhere", "--fee", "10")
    assert result.exit_code != 0
    assert "No council with slug 'nowhere'" in result.output
    assert _audits() == []
