"""The money ledger primitives the booking and payment code call.

Sign convention: each entry's `amount_pence` is its signed effect on `available`:
allocation +, top_up +, hold −, release + (returns a hold), capture − (spend),
refund + (returns spend), adjustment ±. So

    available   = Σ amount
    allocated   = Σ allocation
    held        = −(Σ hold + Σ release)
    spent       = −(Σ capture + Σ refund)
    top_ups     = Σ top_up
    adjustments = Σ adjustment

Callers pass positive amounts to `hold`, `release`, `capture`, `refund`, `top_up` and
`allocate` (the sign comes from the kind) and a signed amount to `adjust`.

Every primitive locks the budget row, returns the existing entry unchanged when its
idempotency key was already used, refuses to let `available` go below zero, writes one
entry and commits (or only flushes with `commit=False`, so the booking service can write
the booking and its hold in one transaction). Completing a break is
`release(the hold)` then `capture(actual)` in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import case, func, select

from app.errors import Conflict, DomainError
from app.extensions import db
from app.models import User
from app.money import format_pence
from booking.models.budgets import Budget, LedgerEntry, LedgerKind


class InsufficientBudget(DomainError):
    code = "insufficient_budget"
    status = 402


class LedgerMismatch(DomainError):
    """A release or refund larger than what the booking holds or spent."""

    code = "ledger_mismatch"
    status = 409


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Balance:
    allocated_pence: int = 0
    held_pence: int = 0
    spent_pence: int = 0
    top_ups_pence: int = 0
    adjustments_pence: int = 0
    available_pence: int = 0


def _sum_of(kind: LedgerKind) -> object:
    return func.coalesce(
        func.sum(case((LedgerEntry.kind == kind, LedgerEntry.amount_pence), else_=0)), 0
    )


def _balance_columns() -> list[object]:
    return [
        _sum_of(LedgerKind.ALLOCATION).label("allocation"),
        _sum_of(LedgerKind.HOLD).label("hold"),
        _sum_of(LedgerKind.RELEASE).label("release"),
        _sum_of(LedgerKind.CAPTURE).label("capture"),
        _sum_of(LedgerKind.REFUND).label("refund"),
        _sum_of(LedgerKind.TOP_UP).label("top_up"),
        _sum_of(LedgerKind.ADJUSTMENT).label("adjustment"),
        func.coalesce(func.sum(LedgerEntry.amount_pence), 0).label("available"),
    ]


def _balance_from(row: object) -> Balance:
    return Balance(
        allocated_pence=int(row.allocation),  # type: ignore[attr-defined]
        held_pence=-int(row.hold + row.release),  # type: ignore[attr-defined]
        spent_pence=-int(row.capture + row.refund),  # type: ignore[attr-defined]
        top_ups_pence=int(row.top_up),  # type: ignore[attr-defined]
        adjustments_pence=int(row.adjustment),  # type: ignore[attr-defined]
        available_pence=int(row.available),  # type: ignore[attr-defined]
    )


def balance(budget: Budget | int) -> Balance:
    """The budget's figures, summed from the ledger in one query."""
    budget_id = budget if isinstance(budget, int) else budget.id
    row = db.session.execute(
        select(*_balance_columns()).where(LedgerEntry.budget_id == budget_id)  # type: ignore[call-overload]
    ).one()
    return _balance_from(row)


def balances_for(budget_ids: Iterable[int]) -> dict[int, Balance]:
    """Figures for many budgets in one query (for tables); budgets with no entries get zeros."""
    ids = list(dict.fromkeys(budget_ids))
    if not ids:
        return {}
    rows = db.session.execute(
        select(LedgerEntry.budget_id, *_balance_columns())  # type: ignore[call-overload]
        .where(LedgerEntry.budget_id.in_(ids))
        .group_by(LedgerEntry.budget_id)
    ).all()
    found = {row.budget_id: _balance_from(row) for row in rows}
    return {budget_id: found.get(budget_id, Balance()) for budget_id in ids}


def lock_budget(budget_id: int) -> Budget:
    """Load the budget under a row lock (`SELECT … FOR UPDATE` on PostgreSQL; SQLite
    transactions start with BEGIN IMMEDIATE, which serialises writers)."""
    budget = db.session.scalar(
        select(Budget)
        .where(Budget.id == budget_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if budget is None:
        raise DomainError("That budget does not exist.", code="not_found", status=404)
    return budget


def current_budget(carer_id: int, *, today: date) -> Budget | None:
    """The carer's budget whose period includes `today` (at most one, by the overlap rule)."""
    return db.session.scalar(
        select(Budget)
        .where(
            Budget.carer_id == carer_id,
            Budget.period_start <= today,
            Budget.period_end >= today,
        )
        .order_by(Budget.period_start.desc())
        .limit(1)
    )


def _existing(idempotency_key: str) -> LedgerEntry | None:
    return db.session.scalar(
        select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key)
    )


def _booking_sum(budget_id: int, booking_id: int | None, kinds: tuple[LedgerKind, ...]) -> int:
    booking_filter = (
        LedgerEntry.booking_id.is_(None)
        if booking_id is None
        else LedgerEntry.booking_id == booking_id
    )
    total = db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_pence), 0)).where(
            LedgerEntry.budget_id == budget_id, LedgerEntry.kind.in_(kinds), booking_filter
        )
    )
    return int(total or 0)


def _write(
    budget: Budget,
    kind: LedgerKind,
    signed_amount: int,
    *,
    booking_id: int | None,
    actor: User | None,
    reason: str | None,
    tag: str | None,
    idempotency_key: str,
    now: datetime,
    commit: bool,
) -> LedgerEntry:
    if not idempotency_key:
        raise ValueError("every ledger entry needs an idempotency key")
    locked = lock_budget(budget.id)
    existing = _existing(idempotency_key)
    if existing is not None:
        # A replay must be the same movement: same budget, kind, money and break. A key
        # reused for anything else is a caller's bug, never a second movement.
        if (existing.budget_id, existing.kind, existing.amount_pence, existing.booking_id) != (
            locked.id,
            kind,
            signed_amount,
            booking_id,
        ):
            raise IdempotencyKeyReused(
                "This idempotency key was already used for a different movement of money."
            )
        if commit:
            # End the transaction like a write would, so the budget's row lock is not
            # held until the caller's session happens to end.
            db.session.commit()
        return existing

    if kind is LedgerKind.RELEASE:
        still_held = -_booking_sum(locked.id, booking_id, (LedgerKind.HOLD, LedgerKind.RELEASE))
        if signed_amount > still_held:
            raise LedgerMismatch(
                f"Only {format_pence(still_held)} is held for this break, "
                f"so {format_pence(signed_amount)} cannot be released."
            )
    if kind is LedgerKind.REFUND:
        still_spent = -_booking_sum(locked.id, booking_id, (LedgerKind.CAPTURE, LedgerKind.REFUND))
        if signed_amount > still_spent:
            raise LedgerMismatch(
                f"Only {format_pence(still_spent)} was spent on this break, "
                f"so {format_pence(signed_amount)} cannot be refunded."
            )
    if signed_amount < 0:
        available = balance(locked.id).available_pence
        if available + signed_amount < 0:
            raise InsufficientBudget(
                f"There is not enough money left in this budget. {format_pence(available)} "
                f"is available and this needs {format_pence(-signed_amount)}."
            )

    entry = LedgerEntry(
        council_id=locked.council_id,
        budget_id=locked.id,
        kind=kind,
        amount_pence=signed_amount,
        booking_id=booking_id,
        actor_id=actor.id if actor is not None else None,
        reason=reason,
        tag=tag,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    db.session.add(entry)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return entry


def _positive(amount_pence: int) -> int:
    if isinstance(amount_pence, bool) or not isinstance(amount_pence, int):
        raise TypeError("amounts are whole pence (int)")
    if amount_pence < 0:
        raise ValueError("pass a positive amount; the kind of entry gives the sign")
    return amount_pence


def allocate(
    budget: Budget,
    amount_pence: int,
    *,
    actor: User | None,
    reason: str | None,
    idempotency_key: str,
    now: datetime,
    commit: bool = True,
) -> LedgerEntry:
    """Credit allocated money (the award, or one tranche of it)."""
    return _write(
        budget,
        LedgerKind.ALLOCATION,
        _positive(amount_pence),
        booking_id=None,
        actor=actor,
        reason=reason,
        tag=None,
        idempotency_key=idempotency_key,
        now=now,
        commit=commit,
    )


def hold(
    budget: Budget,
    amount_pence: int,
    *,
    booking_id: int | None,
    actor: User | None,
    reason: str | None,
    idempotency_key: str,
    now: datetime,
    commit: bool = True,
) -> LedgerEntry:
    """Set money aside for a requested break. InsufficientBudget if it is not there."""
    return _write(
        budget,
        LedgerKind.HOLD,
        -_positive(amount_pence),
        booking_id=booking_id,
        actor=actor,
        reason=reason,
        tag=None,
        idempotency_key=idempotency_key,
        now=now,
        commit=commit,
    )


def release(
    budget: Budget,
    amount_pence: int,
    *,
    booking_id: int | None,
    actor: User | None,
    reason: str | None,
    idempotency_key: str,
    now: datetime,
    commit: bool = True,
) -> LedgerEntry:
    """Return held money to available. Never more than the booking still holds."""
    return _write(
        budget,
        LedgerKind.RELEASE,
        _positive(amount_pence),
        booking_id=booking_id,
        actor=actor,
        reason=reason,
        tag=None,
        idempotency_key=idempotency_key,
        now=now,
        commit=commit,
    )


def capture(
    budget: Budget,
    amount_pence: int,
    *,
    booking_id: int | None,
    actor: User | None,
    reason: str | None,
    idempotency_key: str,
    now: datetime,
    commit: bool = True,
) -> LedgerEntry:
    """Spend money on a break (after releasing its hold, in the same transaction)."""
    return _write(
        budget,
        LedgerKind.CAPTURE,
        -_positive(amount_pence),
        booking_id=booking_id,
        actor=actor,
        reason=reason,
        tag=None,
        idempotency_key=idempotency_key,
        now=now,
        commit=commit,
    )


def refund(
    budget: Budget,
    amount_pence: int,
    *,
    booking_id: int | None,
    actor: User | None,
    reason: str | None,
    idempotency_key: str,
    now: datetime,
    commit: bool = True,
) -> LedgerEntry:
    """Give back money spent on a break. Never more than was spent on it."""
    return _write(
        budget,
        LedgerKind.REFUND,
        _positive(amount_pence),
        booking_id=booking_id,
        actor=actor,
        reason=reason,
        tag=None,
        idempotency_key=idempotency_key,
        now=now,
        commit=commit,
    )


def top_up(
    budget: Budget,
    amount_pence: int,
    *,
    booking_id: int | None,
    actor: User | None,
    reason: str | None,
    idempotency_key: str,
    now: datetime,
    commit: bool = True,
) -> LedgerEntry:
    """Money the carer adds themselves (e.g. a card payment for the part not covered)."""
    return _write(
        budget,
        LedgerKind.TOP_UP,
        _positive(amount_pence),
        booking_id=booking_id,
        actor=actor,
        reason=reason,
        tag=None,
        idempotency_key=idempotency_key,
        now=now,
        commit=commit,
    )


def adjust(
    budget: Budget,
    amount_pence: int,
    *,
    actor: User | None,
    reason: str,
    tag: str | None = None,
    idempotency_key: str,
    now: datetime,
    commit: bool = True,
) -> LedgerEntry:
    """A signed correction by the council. Officers go through
    `booking.services.budgets.adjust_budget`, which adds the young-carer rule and audit."""
    if isinstance(amount_pence, bool) or not isinstance(amount_pence, int):
        raise TypeError("amounts are whole pence (int)")
    if amount_pence == 0:
        raise ValueError("an adjustment must move some money")
    return _write(
        budget,
        LedgerKind.ADJUSTMENT,
        amount_pence,
        booking_id=None,
        actor=actor,
        reason=reason,
        tag=tag,
        idempotency_key=idempotency_key,
        now=now,
        commit=commit,
    )
