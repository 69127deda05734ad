"""`flask budgets import FILE` and the demo budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from app.clock import utcnow
from app.demo import DemoContext
from app.extensions import db
from app.models import Role
from booking.demo.budgets import seed_budgets
from booking.models.budgets import Budget
from booking.services import budgets as service
from booking.services import ledger
from tests.booking.factories_budgets import make_carer
from tests.factories import CouncilFactory, make_user


def _budgets() -> int:
    return int(db.session.scalar(select(func.count()).select_from(Budget)) or 0)


def test_cli_import_shows_progress_and_imports(app: Flask, tmp_path: Path) -> None:
    council = CouncilFactory()
    carers = [make_carer(council) for _ in range(3)]
    file = tmp_path / "alloc.csv"
    file.write_text(
        "carer_reference,period_start,period_end,amount,kind\n"
        + "".join(f"{c.reference},2026-04-01,2027-03-31,100,mixed\n" for c in carers)
    )
    result = app.test_cli_runner().invoke(
        args=["budgets", "import", str(file), "--council", council.slug]
    )
    assert result.exit_code == 0, result.output
    assert "Checking rows" in result.output
    assert "Imported 3 budgets." in result.output
    assert _budgets() == 3


def test_cli_import_of_a_bad_file_writes_nothing(app: Flask, tmp_path: Path) -> None:
    council = CouncilFactory()
    file = tmp_path / "alloc.csv"
    file.write_text(
        "carer_reference,period_start,period_end,amount,kind\nNOPE,2026-04-01,2027-03-31,100,mixed\n"
    )
    result = app.test_cli_runner().invoke(
        args=["budgets", "import", str(file), "--council", council.slug]
    )
    assert result.exit_code != 0
    assert "line 2" in result.output
    assert "Nothing was imported" in result.output
    assert _budgets() == 0


def test_demo_seeder_gives_the_demo_carers_budgets_once(now: Any) -> None:
    from datetime import date

    council = CouncilFactory()
    people = {
        "carer": make_carer(council),
        "carer2": make_carer(council),
        "young_carer": make_carer(council, date_of_birth=date(2010, 2, 20)),
        "officer": make_user(Role.COUNCIL_OFFICER, council=council),
    }
    ctx = DemoContext(council=council, people=people, now=utcnow(), password_method="x")
    seed_budgets(ctx)
    seed_budgets(ctx)
    assert _budgets() == 3
    young = ledger.current_budget(people["young_carer"].id, today=utcnow().date())
    assert young is not None
    assert service.is_young_carer(people["young_carer"], today=utcnow().date())
    assert ledger.balance(young).available_pence > 0
