"""Demo budgets for the demo carers, including the young carer. Idempotent."""

from __future__ import annotations

from datetime import date

from app.clock import london_today
from app.demo import DemoContext, demo_seeder
from booking.models.budgets import BudgetKind, TrancheSchedule
from booking.services import ledger
from booking.services.budgets import allocate_budget

DEMO_BUDGETS = [
    ("carer", BudgetKind.DIRECT_PAYMENT, 150_000, TrancheSchedule.WHOLE),
    ("carer2", BudgetKind.COUNCIL_MANAGED, 120_000, TrancheSchedule.MONTHLY),
    ("young_carer", BudgetKind.MIXED, 60_000, TrancheSchedule.FOUR_WEEKLY),
]


def _financial_year(today: date) -> tuple[date, date]:
    """UK council budgets run April to March."""
    first = today.year if today.month >= 4 else today.year - 1
    return date(first, 4, 1), date(first + 1, 3, 31)


@demo_seeder
def seed_budgets(ctx: DemoContext) -> None:
    today = london_today(ctx.now)
    start, end = _financial_year(today)
    officer = ctx.people["officer"]
    for key, kind, award, schedule in DEMO_BUDGETS:
        carer = ctx.people[key]
        budget = ledger.current_budget(carer.id, today=today)
        if budget is None:
            budget = allocate_budget(
                council_id=ctx.council.id,
                carer_id=carer.id,
                kind=kind,
                period_start=start,
                period_end=end,
                award_pence=award,
                schedule=schedule,
                actor=officer,
                reason="Demo allocation after the carer's assessment",
                now=ctx.now,
            )
        available = ledger.balance(budget).available_pence
        ctx.lines.append(f"  budget for {carer.name}: {available / 100:,.2f} pounds available")
