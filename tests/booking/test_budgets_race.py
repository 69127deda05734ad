"""On PostgreSQL, two overlapping budgets saved at once: the exclusion constraint
`budgets_one_period_at_a_time` refuses the second, and people get the same clear overlap
message as the service's own check (409 budget_overlaps in the API, a message on the
import page and from the CLI), never a 500."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.extensions import db
from app.models import User
from booking.models.budgets import Budget, BudgetKind, LedgerEntry, TrancheSchedule
from booking.services import budgets as service
from tests.booking.factories_budgets import make_budget, make_carer, make_officer
from tests.factories import CouncilFactory
from tests.helpers import bearer, error_of, sign_in

pytestmark = pytest.mark.committing

START, END = date(2026, 4, 1), date(2027, 3, 31)


def _count(model: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def _commit_competing_budget(carer: User) -> None:
    """Another officer's budget for the same period, committed on its own connection
    (so after our check looked and before our insert)."""
    with Session(db.engine) as other:
        other.add(
            Budget(
                council_id=carer.council_id,
                carer_id=carer.id,
                kind=BudgetKind.MIXED,
                period_start=START,
                period_end=END,
                award_pence=1_000,
                tranche_schedule=TrancheSchedule.WHOLE,
                created_at=utcnow(),
            )
        )
        other.commit()


def _race_after_preview(monkeypatch: pytest.MonkeyPatch, carer: User, *, on_call: int = 1) -> None:
    """Make the `on_call`-th preview (the one inside the import's own transaction) find
    the file fine, then let a competing budget be committed before the rows are written."""
    real: Callable[..., service.ImportPreview] = service.preview_import
    calls = []

    def preview_then_race(*args: Any, **kwargs: Any) -> service.ImportPreview:
        preview = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == on_call:
            assert preview.ok
            _commit_competing_budget(carer)
        return preview

    monkeypatch.setattr(service, "preview_import", preview_then_race)


def _csv(carer: User) -> str:
    return (
        "carer_reference,period_start,period_end,amount,kind\n"
        f"{carer.reference},{START.isoformat()},{END.isoformat()},800,mixed\n"
    )


def test_import_confirm_racing_another_budget_shows_the_overlap_on_the_page(
    postgres_only: None, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    council = CouncilFactory()
    carer = make_carer(council)
    sign_in(client, make_officer(council))
    _race_after_preview(monkeypatch, carer)
    response = client.post("/budgets/import/confirm", data={"content": _csv(carer)})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "There is a problem" in page or "problem" in page
    assert "Line 2: Another budget for this carer was saved at the same time" in page
    assert "Nothing was saved" in page
    assert _count(Budget) == 1  # only the competitor's
    assert _count(LedgerEntry) == 0  # the import wrote nothing, not even its allocation


def test_cli_import_racing_another_budget_names_the_line_and_writes_nothing(
    postgres_only: None, app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    council = CouncilFactory()
    carer = make_carer(council)
    file = tmp_path / "alloc.csv"
    file.write_text(_csv(carer))
    _race_after_preview(monkeypatch, carer, on_call=2)  # after "Checking rows"
    result = app.test_cli_runner().invoke(
        args=["budgets", "import", str(file), "--council", council.slug]
    )
    assert result.exit_code == 1, result.output
    assert "line 2: Another budget for this carer was saved at the same time" in result.output
    assert "Traceback" not in result.output
    assert _count(Budget) == 1
    assert _count(LedgerEntry) == 0


def test_api_allocation_missing_an_overlap_gets_409_from_the_constraint(
    postgres_only: None, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """allocate_budget locks the carer's row, which also blocks other inserts for that
    carer (their foreign-key check), so the race is forced by a check that reads stale
    data: the constraint must still answer with the overlap error."""
    carer = make_carer()
    make_budget(carer, start=START, end=END)
    monkeypatch.setattr(service, "_overlapping", lambda carer_ids: defaultdict(list))
    response = client.post(
        "/api/v1/budgets",
        json={
            "carer_id": carer.id,
            "period_start": "2027-01-01",
            "period_end": "2027-12-31",
            "allocated_pence": 150_000,
            "kind": "direct_payment",
        },
        headers={**bearer(make_officer(carer.council)), "Idempotency-Key": "race-1"},
    )
    assert response.status_code == 409, response.get_data(as_text=True)
    error = error_of(response)
    assert error["code"] == "budget_overlaps"
    assert error["message"] == service.OVERLAP_RACE_MESSAGE
    assert _count(Budget) == 1
