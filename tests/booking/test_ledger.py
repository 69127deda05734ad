"""The ledger primitives: signs, balances as sums, idempotency, the available >= 0 rule,
append-only storage and one-transaction use by callers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.extensions import db
from app.models import Council, Role
from booking.models.bookings import Booking
from booking.models.budgets import Budget, LedgerEntry, LedgerKind
from booking.services import ledger
from booking.services.ledger import Balance, InsufficientBudget, LedgerMismatch
from tests.booking.factories_budgets import make_budget, make_carer
from tests.factories import make_user


def bare_bookings(budget: Budget, count: int, *, now: datetime) -> list[int]:
    """`count` booking rows on the budget's carer (one worker, a day apart), for ledger
    entries that name the break they belong to."""
    worker = make_user(Role.WORKER, council=db.session.get(Council, budget.council_id))
    bookings = [
        Booking(
            council_id=budget.council_id,
            carer_id=budget.carer_id,
            worker_id=worker.id,
            budget_id=budget.id,
            starts_at=now + timedelta(days=n + 1),
            ends_at=now + timedelta(days=n + 1, hours=2),
            price_pence=4_000,
        )
        for n in range(count)
    ]
    db.session.add_all(bookings)
    db.session.commit()
    return [booking.id for booking in bookings]


def _entries(budget_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.budget_id == budget_id)
        )
        or 0
    )


def test_every_kind_moves_available_by_its_signed_amount(now: Any) -> None:
    budget = make_budget(award_pence=10_000)
    ledger.hold(
        budget, 3_000, booking_id=None, actor=None, reason="r", idempotency_key="h", now=now
    )
    ledger.release(
        budget, 3_000, booking_id=None, actor=None, reason=None, idempotency_key="r", now=now
    )
    ledger.capture(
        budget, 2_500, booking_id=None, actor=None, reason=None, idempotency_key="c", now=now
    )
    ledger.refund(
        budget, 500, booking_id=None, actor=None, reason=None, idempotency_key="f", now=now
    )
    ledger.top_up(
        budget, 1_000, booking_id=None, actor=None, reason=None, idempotency_key="t", now=now
    )
    ledger.adjust(budget, -200, actor=None, reason="fix", idempotency_key="a", now=now)
    ledger.hold(
        budget, 1_200, booking_id=None, actor=None, reason=None, idempotency_key="h2", now=now
    )

    assert ledger.balance(budget) == Balance(
        allocated_pence=10_000,
        held_pence=1_200,
        spent_pence=2_000,
        top_ups_pence=1_000,
        adjustments_pence=-200,
        available_pence=10_000 + 1_000 - 200 - 1_200 - 2_000,
    )
    signs = {
        entry.kind: entry.amount_pence
        for entry in db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.budget_id == budget.id)
        )
    }
    assert signs[LedgerKind.HOLD] < 0
    assert signs[LedgerKind.CAPTURE] < 0
    assert signs[LedgerKind.RELEASE] > 0
    assert signs[LedgerKind.REFUND] > 0


def test_a_hold_larger_than_available_is_refused_and_writes_nothing(now: Any) -> None:
    budget = make_budget(award_pence=5_000)
    before = _entries(budget.id)
    with pytest.raises(InsufficientBudget) as caught:
        ledger.hold(
            budget, 5_001, booking_id=None, actor=None, reason=None, idempotency_key="x", now=now
        )
    db.session.rollback()
    assert caught.value.status == 402
    assert caught.value.code == "insufficient_budget"
    assert "£50.00" in caught.value.message
    assert _entries(budget.id) == before
    ledger.hold(
        budget, 5_000, booking_id=None, actor=None, reason=None, idempotency_key="y", now=now
    )
    assert ledger.balance(budget).available_pence == 0


def test_negative_adjustment_and_capture_cannot_take_available_below_zero(now: Any) -> None:
    budget = make_budget(award_pence=1_000)
    with pytest.raises(InsufficientBudget):
        ledger.adjust(budget, -1_001, actor=None, reason="r", idempotency_key="a", now=now)
    db.session.rollback()
    with pytest.raises(InsufficientBudget):
        ledger.capture(
            budget, 1_001, booking_id=None, actor=None, reason=None, idempotency_key="c", now=now
        )
    db.session.rollback()
    assert ledger.balance(budget).available_pence == 1_000


def test_replaying_an_idempotency_key_moves_no_money_twice(now: Any) -> None:
    budget = make_budget(award_pence=10_000)
    first = ledger.hold(
        budget, 4_000, booking_id=None, actor=None, reason=None, idempotency_key="book-3", now=now
    )
    again = ledger.hold(
        budget,
        4_000,
        booking_id=None,
        actor=None,
        reason=None,
        idempotency_key="book-3",
        now=now + timedelta(minutes=1),
    )
    assert again.id == first.id
    assert again.created_at == first.created_at
    assert ledger.balance(budget).held_pence == 4_000
    assert ledger.balance(budget).available_pence == 6_000


def test_a_key_reused_for_different_money_is_refused(now: Any) -> None:
    budget = make_budget(award_pence=10_000)
    ledger.hold(
        budget, 4_000, booking_id=None, actor=None, reason=None, idempotency_key="k", now=now
    )
    with pytest.raises(ledger.IdempotencyKeyReused):
        ledger.hold(
            budget, 5_000, booking_id=None, actor=None, reason=None, idempotency_key="k", now=now
        )
    db.session.rollback()
    assert ledger.balance(budget).held_pence == 4_000


def test_a_replay_with_commit_ends_its_transaction(now: Any) -> None:
    """A replay writes nothing, but must still end the transaction it began by locking
    the budget row, or the lock stays held until the caller's session ends."""
    budget = make_budget(award_pence=10_000)
    [booking_id] = bare_bookings(budget, 1, now=now)
    first = ledger.hold(
        budget, 4_000, booking_id=booking_id, actor=None, reason=None, idempotency_key="k", now=now
    )
    assert not db.session().in_transaction()
    first_id = first.id  # (reading it back begins a new transaction)
    again = ledger.hold(
        budget, 4_000, booking_id=booking_id, actor=None, reason=None, idempotency_key="k", now=now
    )
    assert not db.session().in_transaction()  # committed: the row lock is released
    assert again.id == first_id
    # With commit=False the caller's transaction (and the lock) stay theirs to end.
    ledger.hold(
        budget,
        4_000,
        booking_id=booking_id,
        actor=None,
        reason=None,
        idempotency_key="k",
        now=now,
        commit=False,
    )
    assert db.session().in_transaction()
    db.session.rollback()
    assert ledger.balance(budget).held_pence == 4_000


def test_a_key_reused_for_a_different_booking_is_refused(now: Any) -> None:
    budget = make_budget(award_pence=10_000)
    first, second = bare_bookings(budget, 2, now=now)
    ledger.hold(
        budget, 4_000, booking_id=first, actor=None, reason=None, idempotency_key="k", now=now
    )
    for other in (second, None):
        with pytest.raises(ledger.IdempotencyKeyReused):
            ledger.hold(
                budget,
                4_000,
                booking_id=other,
                actor=None,
                reason=None,
                idempotency_key="k",
                now=now,
            )
        db.session.rollback()
    entries = db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.budget_id == budget.id, LedgerEntry.kind == "hold")
    ).all()
    assert [(e.booking_id, e.amount_pence) for e in entries] == [(first, -4_000)]


@pytest.mark.committing
def test_a_replay_releases_the_budget_row_lock_on_postgresql(
    postgres_only: None, app: Any, now: Any
) -> None:
    """After a replayed hold (commit=True), another connection can lock the budget row
    at once (NOWAIT), so a replay never blocks other bookings on the same budget."""
    budget = make_budget(award_pence=10_000)
    budget_id = budget.id
    ledger.hold(
        budget, 1_000, booking_id=None, actor=None, reason=None, idempotency_key="k", now=now
    )
    ledger.hold(
        budget, 1_000, booking_id=None, actor=None, reason=None, idempotency_key="k", now=now
    )
    with db.engine.connect() as other:
        locked = other.execute(
            text("SELECT id FROM budgets WHERE id = :id FOR UPDATE NOWAIT"), {"id": budget_id}
        ).scalar()
        other.rollback()
    assert locked == budget_id
    db.session.remove()
    assert ledger.balance(budget_id).held_pence == 1_000


def test_release_and_refund_never_exceed_what_the_booking_holds_or_spent(now: Any) -> None:
    budget = make_budget(award_pence=10_000)
    ledger.hold(
        budget, 2_000, booking_id=None, actor=None, reason=None, idempotency_key="h", now=now
    )
    with pytest.raises(LedgerMismatch):
        ledger.release(
            budget, 2_001, booking_id=None, actor=None, reason=None, idempotency_key="r", now=now
        )
    db.session.rollback()
    with pytest.raises(LedgerMismatch):
        ledger.refund(
            budget, 1, booking_id=None, actor=None, reason=None, idempotency_key="f", now=now
        )
    db.session.rollback()
    # Completion: release the hold, then capture the actual cost, in one transaction.
    ledger.release(
        budget,
        2_000,
        booking_id=None,
        actor=None,
        reason=None,
        idempotency_key="r2",
        now=now,
        commit=False,
    )
    ledger.capture(
        budget,
        2_300,
        booking_id=None,
        actor=None,
        reason=None,
        idempotency_key="c2",
        now=now,
        commit=False,
    )
    db.session.commit()
    figures = ledger.balance(budget)
    assert (figures.held_pence, figures.spent_pence, figures.available_pence) == (0, 2_300, 7_700)


def test_commit_false_leaves_the_entry_in_the_callers_transaction(now: Any) -> None:
    budget = make_budget(award_pence=10_000)
    ledger.hold(
        budget,
        1_000,
        booking_id=None,
        actor=None,
        reason=None,
        idempotency_key="h",
        now=now,
        commit=False,
    )
    assert ledger.balance(budget).held_pence == 1_000  # flushed: visible to the caller
    db.session.rollback()  # the caller's booking failed: the hold goes with it
    assert ledger.balance(budget).held_pence == 0


def test_balances_for_sums_many_budgets_in_one_query(now: Any, sql_count: list[str]) -> None:
    budgets = [make_budget(award_pence=1_000 * (n + 1)) for n in range(4)]
    ledger.hold(
        budgets[1], 500, booking_id=None, actor=None, reason=None, idempotency_key="h", now=now
    )
    ids = [b.id for b in budgets]
    sql_count.clear()
    figures = ledger.balances_for([*ids, 999_999])
    assert len(sql_count) == 1
    assert [figures[budget_id].available_pence for budget_id in ids] == [1_000, 1_500, 3_000, 4_000]
    assert figures[999_999] == Balance()
    assert figures[budgets[1].id] == ledger.balance(budgets[1])


def test_current_budget_is_the_one_whose_period_covers_today(now: Any) -> None:
    from datetime import date

    carer = make_carer()
    old = make_budget(carer, start=date(2025, 1, 1), end=date(2025, 12, 31))
    this = make_budget(carer, start=date(2026, 1, 1), end=date(2026, 12, 31))
    assert ledger.current_budget(carer.id, today=date(2026, 11, 22)).id == this.id  # type: ignore[union-attr]
    assert ledger.current_budget(carer.id, today=date(2025, 6, 1)).id == old.id  # type: ignore[union-attr]
    assert ledger.current_budget(carer.id, today=date(2027, 1, 1)) is None


def test_ledger_entries_are_append_only_on_postgresql(postgres_only: None, now: Any) -> None:
    budget = make_budget(award_pence=1_000)
    for statement in (
        "UPDATE ledger_entries SET amount_pence = 999999 WHERE budget_id = :id",
        "DELETE FROM ledger_entries WHERE budget_id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
            db.session.execute(text(statement), {"id": budget.id})
    assert ledger.balance(budget).available_pence == 1_000


def test_the_database_refuses_an_entry_whose_sign_does_not_match_its_kind(now: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    budget = make_budget(award_pence=1_000)
    savepoint = db.session.begin_nested()
    db.session.add(
        LedgerEntry(
            council_id=budget.council_id,
            budget_id=budget.id,
            kind=LedgerKind.HOLD,
            amount_pence=500,
            idempotency_key="wrong-sign",
            created_at=now,
        )
    )
    with pytest.raises(IntegrityError):
        db.session.flush()
    savepoint.rollback()
    assert ledger.balance(budget).available_pence == 1_000
