"""Budgets for tests, made through the real service so tranches and ledger are right."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from typing import Any

from app.clock import london_today, utcnow
from app.models import Council, Role, User
from booking.models.budgets import Budget, BudgetKind, TrancheSchedule
from booking.services.budgets import allocate_budget
from tests.factories import CouncilFactory, make_user

_references = itertools.count(1)


def make_carer(council: Council | None = None, **kwargs: Any) -> User:
    kwargs.setdefault("reference", f"CR-{next(_references):05d}")
    return make_user(Role.CARER, council=council or CouncilFactory(), **kwargs)


def make_officer(council: Council) -> User:
    return make_user(Role.COUNCIL_OFFICER, council=council)


def make_budget(
    carer: User | None = None,
    *,
    award_pence: int = 100_000,
    kind: BudgetKind = BudgetKind.DIRECT_PAYMENT,
    start: date | None = None,
    end: date | None = None,
    schedule: TrancheSchedule = TrancheSchedule.WHOLE,
    now: datetime | None = None,
) -> Budget:
    """A current budget (this year, by default) for `carer` (a new one by default)."""
    now = now or utcnow()
    carer = carer or make_carer()
    today = london_today(now)
    assert carer.council_id is not None
    return allocate_budget(
        council_id=carer.council_id,
        carer_id=carer.id,
        kind=kind,
        period_start=start or date(today.year, 1, 1),
        period_end=end or date(today.year, 12, 31),
        award_pence=award_pence,
        schedule=schedule,
        actor=None,
        reason="test allocation",
        now=now,
    )
