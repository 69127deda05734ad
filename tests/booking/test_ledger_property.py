"""Property: for any sequence of ledger operations, the statement adds up to the balance
and `available` never goes below zero."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.clock import london_today
from app.extensions import db
from booking.models.budgets import LedgerKind
from booking.services import budgets as service
from booking.services import ledger
from booking.services.ledger import InsufficientBudget, LedgerMismatch
from tests.booking.factories_budgets import make_budget

operations = st.lists(
    st.tuples(
        st.sampled_from(["hold", "release", "capture", "refund", "top_up", "adjust"]),
        st.integers(min_value=1, max_value=40_000),
        st.booleans(),
    ),
    max_size=25,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations, award=st.integers(min_value=1, max_value=100_000))
def test_statement_sums_equal_the_balance(
    now: Any, ops: list[tuple[str, int, bool]], award: int
) -> None:
    budget = make_budget(award_pence=award, now=now)
    for step, (name, amount, negative) in enumerate(ops):
        moment = now + timedelta(minutes=step)
        key = f"{budget.id}-{step}"
        try:
            if name == "adjust":
                ledger.adjust(
                    budget,
                    -amount if negative else amount,
                    actor=None,
                    reason="r",
                    idempotency_key=key,
                    now=moment,
                )
            else:
                getattr(ledger, name)(
                    budget,
                    amount,
                    booking_id=None,
                    actor=None,
                    reason=None,
                    idempotency_key=key,
                    now=moment,
                )
        except (InsufficientBudget, LedgerMismatch):
            db.session.rollback()
        assert ledger.balance(budget).available_pence >= 0

    figures = ledger.balance(budget)
    today = london_today(now)
    stmt = service.statement(budget, start=date(today.year, 1, 1), end=today + timedelta(days=1))
    assert stmt.opening_pence == 0
    assert stmt.closing_pence == figures.available_pence
    assert sum(row.amount_pence for row in stmt.rows) == figures.available_pence
    assert stmt.totals[LedgerKind.ALLOCATION] == figures.allocated_pence
    assert -(stmt.totals[LedgerKind.HOLD] + stmt.totals[LedgerKind.RELEASE]) == figures.held_pence
    assert (
        -(stmt.totals[LedgerKind.CAPTURE] + stmt.totals[LedgerKind.REFUND]) == figures.spent_pence
    )
    assert figures.held_pence >= 0
    assert figures.spent_pence >= 0
    assert all(row.available_after_pence >= 0 for row in stmt.rows)
