"""Models: personal budgets, their tranche schedule and the append-only money ledger.

A budget's figures are never stored: they are sums over `ledger_entries` (see
`booking.services.ledger.balance`). Each entry's `amount_pence` is its signed effect on
the money available to spend.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.models import Base, User


class BudgetKind(enum.StrEnum):
    """How the money is managed (the council's funding route)."""

    DIRECT_PAYMENT = "direct_payment"
    COUNCIL_MANAGED = "council_managed"
    MIXED = "mixed"


class TrancheSchedule(enum.StrEnum):
    """How the award for the period is released into the ledger."""

    WHOLE = "whole"  # all of it at once, when the budget is set up
    FOUR_WEEKLY = "four_weekly"
    MONTHLY = "monthly"


class LedgerKind(enum.StrEnum):
    ALLOCATION = "allocation"
    HOLD = "hold"
    RELEASE = "release"
    CAPTURE = "capture"
    REFUND = "refund"
    TOP_UP = "top_up"
    ADJUSTMENT = "adjustment"


class AdjustmentTag(enum.StrEnum):
    """Why an officer adjusted a budget. `caring_role` may never reduce a young carer's."""

    ASSESSMENT = "assessment"
    CORRECTION = "correction"
    CARING_ROLE = "caring_role"
    OTHER = "other"


class Budget(Base):
    """A carer's personal budget for one period. One current budget per carer at a time:
    periods of one carer never overlap (a service check everywhere, and an exclusion
    constraint on PostgreSQL)."""

    __tablename__ = "budgets"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    carer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[BudgetKind]
    period_start: Mapped[date]
    period_end: Mapped[date]
    # What the council awarded for the whole period; the ledger holds what is released.
    award_pence: Mapped[int]
    tranche_schedule: Mapped[TrancheSchedule] = mapped_column(default=TrancheSchedule.WHOLE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    carer: Mapped[User] = relationship(foreign_keys=[carer_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    tranches: Mapped[list[BudgetTranche]] = relationship(
        back_populates="budget", order_by="BudgetTranche.sequence"
    )

    __table_args__ = (
        CheckConstraint("period_end >= period_start", "period_in_order"),
        CheckConstraint("award_pence >= 0", "award_not_negative"),
        Index("ix_budgets_carer_period", "carer_id", "period_start", "period_end"),
    )

    def covers(self, day: date) -> bool:
        return self.period_start <= day <= self.period_end


class BudgetTranche(Base):
    """One scheduled release of part of a budget's award. `released_at` is set once,
    when its allocation entry (idempotency key `tranche:<id>`) is written."""

    __tablename__ = "budget_tranches"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id"), index=True)
    sequence: Mapped[int]
    due_on: Mapped[date] = mapped_column(index=True)
    amount_pence: Mapped[int]
    released_at: Mapped[datetime | None]

    budget: Mapped[Budget] = relationship(back_populates="tranches")

    __table_args__ = (
        UniqueConstraint("budget_id", "sequence", name="uq_budget_tranches_budget_sequence"),
        CheckConstraint("amount_pence >= 0", "amount_not_negative"),
    )


class LedgerEntry(Base):
    """One signed movement of money on a budget. Append-only: never updated or deleted
    (a trigger refuses both on PostgreSQL); corrections are new entries."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id"), index=True)
    kind: Mapped[LedgerKind]
    amount_pence: Mapped[int]
    # The foreign key arrives with the bookings migration (0006_bookings).
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    tag: Mapped[str | None] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])

    __table_args__ = (
        CheckConstraint(
            "(kind IN ('allocation', 'top_up', 'release', 'refund') AND amount_pence >= 0)"
            " OR (kind IN ('hold', 'capture') AND amount_pence <= 0)"
            " OR (kind = 'adjustment' AND amount_pence <> 0)",
            "sign_matches_kind",
        ),
        Index("ix_ledger_entries_budget_created", "budget_id", "created_at"),
    )
