"""Property: for any sequence of ledger operations (on breaks or not, with idempotency
keys replayed or reused), the statement adds up to the balance, a replay moves nothing,
and `available` never goes below zero."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.clock import london_today
from app.extensions import db
from booking.models.budgets import LedgerEntry, LedgerKind
from booking.services import budgets as service
from booking.services import ledger
from booking.services.ledger import IdempotencyKeyReused, InsufficientBudget, LedgerMismatch
from tests.booking.factories_budgets import make_budget
from tests.booking.test_ledger import bare_bookings

BOOKINGS = 3
MONEY = ["hold", "release", "capture", "refund", "top_up", "adjust"]
ON_A_BREAK = {"hold", "release", "capture", "refund", "top_up"}

# (operation, amount, negative adjustment?, which break (None: not a break), which
# earlier step a replay or reuse repeats)
operations = st.lists(
    st.tuples(
        st.sampled_from([*MONEY, "replay", "reuse"]),
        st.integers(min_value=1, max_value=40_000),
        st.booleans(),
        st.one_of(st.none(), st.integers(min_value=0, max_value=BOOKINGS - 1)),
        st.integers(min_value=0, max_value=1_000),
    ),
    max_size=25,
)


def _entries(budget_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.budget_id == budget_id)
        )
        or 0
    )


def _move(budget: Any, name: str, amount: int, booking_id: int | None, key: str, now: Any) -> Any:
    if name == "adjust":
        return ledger.adjust(budget, amount, actor=None, reason="r", idempotency_key=key, now=now)
    return getattr(ledger, name)(
        budget, amount, booking_id=booking_id, actor=None, reason=None, idempotency_key=key, now=now
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations, award=st.integers(min_value=1, max_value=100_000))
def test_statement_sums_equal_the_balance(
    now: Any, ops: list[tuple[str, int, bool, int | None, int]], award: int
) -> None:
    budget = make_budget(award_pence=award, now=now)
    booking_ids = bare_bookings(budget, BOOKINGS, now=now)
    # Steps that moved money: (operation, signed or positive amount, break, key, entry id).
    done: list[tuple[str, int, int | None, str, int]] = []
    for step, (name, amount, negative, which, earlier) in enumerate(ops):
        moment = now + timedelta(minutes=step)
        before, entries_before = ledger.balance(budget), _entries(budget.id)
        if name in ("replay", "reuse"):
            if not done:
                continue
            op, money, booking_id, key, entry_id = done[earlier % len(done)]
            if name == "replay":
                # The same request again, later: the first entry comes back, nothing moves.
                entry = _move(budget, op, money, booking_id, key, moment)
                assert entry.id == entry_id
            else:
                # The key again for other money or another break: refused, nothing moves.
                if op == "adjust":  # no break: other money (never zero)
                    changed = (money * 2, None)
                elif booking_id is None:  # the same money, now for a break
                    changed = (money, booking_ids[0])
                else:  # the same money for another break
                    changed = (money, booking_ids[(booking_ids.index(booking_id) + 1) % BOOKINGS])
                try:
                    _move(budget, op, changed[0], changed[1], key, moment)
                except IdempotencyKeyReused:
                    db.session.rollback()
                else:
                    raise AssertionError(f"key {key} reused for {changed} was accepted")
            assert ledger.balance(budget) == before
            assert _entries(budget.id) == entries_before
            continue
        booking_id = booking_ids[which] if which is not None and name in ON_A_BREAK else None
        money = -amount if name == "adjust" and negative else amount
        key = f"{budget.id}-{step}"
        try:
            entry = _move(budget, name, money, booking_id, key, moment)
        except (InsufficientBudget, LedgerMismatch):
            db.session.rollback()
            assert ledger.balance(budget) == before
        else:
            done.append((name, money, booking_id, key, entry.id))
        assert ledger.balance(budget).available_pence >= 0

    figures = ledger.balance(budget)
    today = london_today(now)
    stmt = service.statement(budget, start=date(today.year, 1, 1), end=today + timedelta(days=1))
    assert stmt.opening_pence == 0
    assert stmt.closing_pence == figures.available_pence
    assert sum(row.amount_pence for row in stmt.rows) == figures.available_pence
    assert len(stmt.rows) == 1 + len(done)  # the allocation, then one row per movement
    assert stmt.totals[LedgerKind.ALLOCATION] == figures.allocated_pence
    assert -(stmt.totals[LedgerKind.HOLD] + stmt.totals[LedgerKind.RELEASE]) == figures.held_pence
    assert (
        -(stmt.totals[LedgerKind.CAPTURE] + stmt.totals[LedgerKind.REFUND]) == figures.spent_pence
    )
    assert stmt.totals[LedgerKind.TOP_UP] == figures.top_ups_pence
    assert stmt.totals[LedgerKind.ADJUSTMENT] == figures.adjustments_pence
    assert figures.held_pence >= 0
    assert figures.spent_pence >= 0
    assert all(row.available_after_pence >= 0 for row in stmt.rows)
    # Per break: never more released than held, nor refunded than spent, and every row
    # names the break its movement belonged to.
    for booking_id in [*booking_ids, None]:
        rows = [row for row in stmt.rows if row.booking_id == booking_id]
        held = -sum(r.amount_pence for r in rows if r.kind in (LedgerKind.HOLD, LedgerKind.RELEASE))
        spent = -sum(
            r.amount_pence for r in rows if r.kind in (LedgerKind.CAPTURE, LedgerKind.REFUND)
        )
        assert held >= 0
        assert spent >= 0
    assert sorted((row.booking_id or 0) for row in stmt.rows[1:]) == sorted(
        (booking_id or 0) for _op, _money, booking_id, _key, _id in done
    )
