"""Models: card top-ups, worker payout accounts, payouts and reconciliation differences.

A `Payment` is the card part of one booking (the part the budget did not cover). Its
amounts are whole pence; Stripe's own ids are stored so every later call (capture,
cancel, refund) and every webhook can find it. A `Payout` is what one completed break
earns its worker, paid by a Stripe Transfer once the dispute window has closed.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.models import Base, User


class PaymentStatus(enum.StrEnum):
    """Where the card part of a booking stands."""

    AWAITING_CARD = "awaiting_card"  # the carer has not entered a card yet
    AUTHORISING = "authorising"  # the authorisation is queued for Stripe
    REQUIRES_ACTION = "requires_action"  # the bank wants the carer to confirm (3-D Secure)
    AUTHORISED = "authorised"  # money reserved on the card, not taken
    CAPTURED = "captured"  # money taken (all or part of what was reserved)
    CANCELLED = "cancelled"  # reservation released, nothing taken
    FAILED = "failed"  # the card was refused
    RECORDED = "recorded"  # ledger backend: paid outside Stripe, recorded here only


class Payment(Base):
    """The card top-up of one booking, and what happened to it."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), unique=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id"), index=True)
    carer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    backend: Mapped[str] = mapped_column(String(16))
    status: Mapped[PaymentStatus]
    # What the card was asked to cover (the booking's top_up_pence).
    amount_pence: Mapped[int]
    captured_pence: Mapped[int] = mapped_column(default=0)
    refunded_pence: Mapped[int] = mapped_column(default=0)
    # Each new card entry after a refusal is a new attempt, so a new PaymentIntent.
    attempt: Mapped[int] = mapped_column(default=1)
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_status: Mapped[str | None] = mapped_column(String(32))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    authorised_at: Mapped[datetime | None]
    captured_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]

    carer: Mapped[User] = relationship(foreign_keys=[carer_id])

    __table_args__ = (
        CheckConstraint("amount_pence > 0", "amount_positive"),
        CheckConstraint(
            "captured_pence >= 0 AND captured_pence <= amount_pence", "captured_in_range"
        ),
        CheckConstraint(
            "refunded_pence >= 0 AND refunded_pence <= captured_pence", "refunded_in_range"
        ),
        CheckConstraint("attempt >= 1", "attempt_positive"),
    )

    @property
    def idempotency_prefix(self) -> str:
        """Stripe idempotency keys start with this: our ids, never random."""
        return f"payment-{self.id}-attempt-{self.attempt}"


class PayoutAccountStatus(enum.StrEnum):
    ONBOARDING = "onboarding"  # account made; the worker has not finished Stripe's form
    RESTRICTED = "restricted"  # Stripe needs more from the worker before paying out
    ACTIVE = "active"  # transfers and payouts enabled


class WorkerPayoutAccount(Base):
    """A worker's Stripe Connect Express account."""

    __tablename__ = "worker_payout_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int | None] = mapped_column(ForeignKey("councils.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    stripe_account_id: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[PayoutAccountStatus] = mapped_column(default=PayoutAccountStatus.ONBOARDING)
    details_submitted: Mapped[bool] = mapped_column(default=False)
    charges_enabled: Mapped[bool] = mapped_column(default=False)
    payouts_enabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    worker: Mapped[User] = relationship(foreign_keys=[worker_id])


class PayoutStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for the dispute window to close
    HELD = "held"  # the carer disputed the break
    PAID = "paid"  # transferred (or, with the ledger backend, recorded as paid)
    CANCELLED = "cancelled"  # nothing to pay (refunded in full)


class Payout(Base):
    """What one completed break earns its worker."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), unique=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount_pence: Mapped[int]
    status: Mapped[PayoutStatus] = mapped_column(default=PayoutStatus.PENDING)
    # When the carer's 48 hours to dispute end; not paid before.
    payable_from: Mapped[datetime] = mapped_column(index=True)
    backend: Mapped[str | None] = mapped_column(String(16))
    stripe_transfer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]

    worker: Mapped[User] = relationship(foreign_keys=[worker_id])

    __table_args__ = (
        CheckConstraint("amount_pence >= 0", "amount_not_negative"),
        Index("ix_payouts_status_payable", "status", "payable_from"),
    )


class ReconciliationDifference(Base):
    """One disagreement between our records and Stripe's, found by the daily job, for
    staff to look into. While it is open, the same disagreement found again only moves
    `last_seen_on` (one open row per object and kind); once staff mark it resolved, a
    new disagreement about the object starts a new row."""

    __tablename__ = "reconciliation_differences"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int | None] = mapped_column(ForeignKey("councils.id"), index=True)
    found_on: Mapped[date] = mapped_column(index=True)
    last_seen_on: Mapped[date]
    kind: Mapped[str] = mapped_column(String(32))
    object_ref: Mapped[str] = mapped_column(String(255))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"))
    ours: Mapped[str] = mapped_column(String(255))
    theirs: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(
            "uq_reconciliation_differences_open",
            "object_ref",
            "kind",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )
