"""On PostgreSQL, many threads holding against one budget at once: the row lock keeps
`available >= 0` and the successful holds never add up to more than the budget."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask

from app.clock import utcnow
from app.extensions import db
from booking.models.budgets import Budget
from booking.services import ledger
from booking.services.ledger import InsufficientBudget
from tests.booking.factories_budgets import make_budget

THREADS = 12  # under the connection pool's 15, so every thread gets a connection
HOLD_PENCE = 3_000
BUDGET_PENCE = 20_000  # room for 6 holds, not 7


@pytest.mark.committing
def test_concurrent_holds_never_overspend(postgres_only: None, app: Flask) -> None:
    budget_id = make_budget(award_pence=BUDGET_PENCE).id
    db.session.remove()
    barrier = threading.Barrier(THREADS, timeout=30)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        with app.app_context():
            budget = db.session.get(Budget, budget_id)
            assert budget is not None
            barrier.wait()
            try:
                ledger.hold(
                    budget,
                    HOLD_PENCE,
                    booking_id=None,
                    actor=None,
                    reason=None,
                    idempotency_key=f"thread-{n}",
                    now=utcnow(),
                )
                result = "held"
            except InsufficientBudget:
                db.session.rollback()
                result = "refused"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    figures = ledger.balance(budget_id)
    held = outcomes.count("held")
    assert len(outcomes) == THREADS
    assert held == BUDGET_PENCE // HOLD_PENCE
    assert held * HOLD_PENCE <= BUDGET_PENCE
    assert figures.held_pence == held * HOLD_PENCE
    assert figures.available_pence == BUDGET_PENCE - held * HOLD_PENCE
    assert figures.available_pence >= 0


@pytest.mark.committing
def test_concurrent_replays_of_one_key_hold_once(postgres_only: None, app: Flask) -> None:
    budget_id = make_budget(award_pence=BUDGET_PENCE).id
    db.session.remove()
    barrier = threading.Barrier(8, timeout=30)
    errors: list[Any] = []

    def attempt() -> None:
        with app.app_context():
            budget = db.session.get(Budget, budget_id)
            barrier.wait()
            try:
                ledger.hold(
                    budget,
                    HOLD_PENCE,
                    booking_id=None,
                    actor=None,
                    reason=None,  # type: ignore[arg-type]
                    idempotency_key="same-request",
                    now=utcnow(),
                )
            except Exception as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ledger.balance(budget_id).held_pence == HOLD_PENCE
