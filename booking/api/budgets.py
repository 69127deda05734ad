"""JSON API for budgets: `POST /budgets`, `GET /budget`, `GET /budgets/{id}/ledger`."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from app.api.core import ApiBlueprint
from app.api.schemas import ApiModel
from app.clock import iso_z, london_today, utcnow
from app.errors import NotFound
from app.extensions import db
from app.models import Role, User
from booking.models.budgets import Budget, BudgetKind, LedgerEntry, TrancheSchedule
from booking.services import budgets as budget_service
from booking.services import ledger

api = ApiBlueprint("budgets_api", __name__, tag="budgets")


class NewBudget(ApiModel):
    carer_id: int = Field(gt=0)
    period_start: date
    period_end: date
    allocated_pence: int = Field(gt=0, le=100_000_000)
    kind: BudgetKind
    tranches: TrancheSchedule = TrancheSchedule.WHOLE
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def period_in_order(self) -> NewBudget:
        if self.period_end < self.period_start:
            raise ValueError("period_end must be the same as or after period_start")
        return self


class BudgetOut(BaseModel):
    id: int
    carer_id: int
    kind: str
    period_start: date
    period_end: date
    award_pence: int
    tranche_schedule: str
    allocated_pence: int
    held_pence: int
    spent_pence: int
    top_ups_pence: int
    adjustments_pence: int
    available_pence: int


class EntryOut(BaseModel):
    id: int
    kind: str
    amount_pence: int
    booking_id: int | None
    reason: str | None
    tag: str | None
    created_at: str


class LedgerOut(BaseModel):
    budget_id: int
    entries: list[EntryOut]


def _budget_out(budget: Budget) -> BudgetOut:
    figures = ledger.balance(budget)
    return BudgetOut(
        id=budget.id,
        carer_id=budget.carer_id,
        kind=budget.kind.value,
        period_start=budget.period_start,
        period_end=budget.period_end,
        award_pence=budget.award_pence,
        tranche_schedule=budget.tranche_schedule.value,
        allocated_pence=figures.allocated_pence,
        held_pence=figures.held_pence,
        spent_pence=figures.spent_pence,
        top_ups_pence=figures.top_ups_pence,
        adjustments_pence=figures.adjustments_pence,
        available_pence=figures.available_pence,
    )


@api.operation(
    "/budgets",
    method="POST",
    summary="Allocate a budget to a carer of your council for a period",
    roles=[Role.COUNCIL_OFFICER],
    body=NewBudget,
    response=BudgetOut,
    status=201,
    errors=[(404, "not_found"), (409, "budget_overlaps"), (422, "validation_failed")],
    idempotent=True,
)
def create_budget(*, user: User, body: NewBudget) -> tuple[BudgetOut, int]:
    assert user.council_id is not None
    budget = budget_service.allocate_budget(
        council_id=user.council_id,
        carer_id=body.carer_id,
        kind=body.kind,
        period_start=body.period_start,
        period_end=body.period_end,
        award_pence=body.allocated_pence,
        schedule=body.tranches,
        actor=user,
        reason=body.reason,
        now=utcnow(),
    )
    return _budget_out(budget), 201


@api.operation(
    "/budget",
    method="GET",
    summary="Your current budget and its live balance",
    roles=[Role.CARER],
    response=BudgetOut,
    errors=[(404, "no_budget")],
)
def current_budget(*, user: User) -> BudgetOut:
    budget = ledger.current_budget(user.id, today=london_today(utcnow()))
    if budget is None:
        raise NotFound("You do not have a budget for today's date yet.", code="no_budget")
    return _budget_out(budget)


@api.operation(
    "/budgets/<int:budget_id>/ledger",
    method="GET",
    summary="Every movement on a budget, oldest first",
    roles=[Role.CARER, Role.COUNCIL_OFFICER],
    response=LedgerOut,
    errors=[(404, "not_found")],
)
def budget_ledger(*, user: User, budget_id: int) -> LedgerOut:
    budget = budget_service.budget_visible_to(user, budget_id)
    entries = db.session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.budget_id == budget.id)
        .order_by(LedgerEntry.created_at, LedgerEntry.id)
    )
    return LedgerOut(
        budget_id=budget.id,
        entries=[
            EntryOut(
                id=entry.id,
                kind=entry.kind.value,
                amount_pence=entry.amount_pence,
                booking_id=entry.booking_id,
                reason=entry.reason,
                tag=entry.tag,
                created_at=iso_z(entry.created_at) or "",
            )
            for entry in entries
        ],
    )
