"""Models: bookings (see booking/models/__init__.py).

The booking row (core columns from the workers topic, the rest from the bookings topic),
reviews, concerns, the waiting list and iCalendar feed tokens. On PostgreSQL the
migration adds the exclusion constraint `ex_bookings_no_overlap`, so two live bookings
of one worker can never overlap.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.models import Base, Council, User


class BookingStatus(enum.StrEnum):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


# A live booking takes the worker's time (and is what the overlap constraint covers).
LIVE_STATUSES = (BookingStatus.REQUESTED, BookingStatus.CONFIRMED, BookingStatus.COMPLETED)


class FundedBy(enum.StrEnum):
    BUDGET = "budget"  # the carer's personal budget (plus any card top-up)
    SCHEME = "scheme"  # the emergency scheme pays; no carer budget is touched


class Booking(Base):
    """A break a carer booked with a worker, at a frozen price."""

    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    # Null only for scheme-funded emergency bookings made before a carer is linked.
    carer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[BookingStatus] = mapped_column(default=BookingStatus.REQUESTED)
    price_pence: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # --- added by the bookings topic ---------------------------------------------------
    funded_by: Mapped[FundedBy] = mapped_column(default=FundedBy.BUDGET)
    budget_id: Mapped[int | None] = mapped_column(ForeignKey("budgets.id"), index=True)
    # What the budget holds for this break (the whole price, top-up included) and the
    # part the carer pays by card.
    hold_pence: Mapped[int] = mapped_column(default=0)
    top_up_pence: Mapped[int] = mapped_column(default=0)
    # The worker's rates when the price was quoted, so actual time is charged at them.
    rates: Mapped[dict[str, Any]] = mapped_column(default=dict)
    postcode: Mapped[str | None] = mapped_column(String(10))
    address: Mapped[str | None] = mapped_column(Text)
    # About the person cared for: reaches the worker only when `share_notes` is true.
    notes: Mapped[str | None] = mapped_column(Text)
    share_notes: Mapped[bool] = mapped_column(default=False)
    support_kind: Mapped[str | None] = mapped_column(String(64))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    respond_by: Mapped[datetime | None] = mapped_column(index=True)
    confirmed_at: Mapped[datetime | None]
    instant: Mapped[bool] = mapped_column(default=False)
    ended_at: Mapped[datetime | None]  # declined, expired or cancelled at
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    fee_pence: Mapped[int] = mapped_column(default=0)
    actual_starts_at: Mapped[datetime | None]
    actual_ends_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    charged_pence: Mapped[int | None]
    # Actual time cost more than was held: the carer must approve the difference.
    extra_pence: Mapped[int] = mapped_column(default=0)
    extra_approved_at: Mapped[datetime | None]
    dispute_closes_at: Mapped[datetime | None] = mapped_column(index=True)
    disputed_at: Mapped[datetime | None]
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    dispute_resolved_at: Mapped[datetime | None]
    refunded_pence: Mapped[int] = mapped_column(default=0)
    final_at: Mapped[datetime | None]
    series_key: Mapped[str | None] = mapped_column(String(32), index=True)
    # One-time token of the booking form, so a double-submitted form books once.
    form_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    incident_ref: Mapped[str | None] = mapped_column(String(64))
    # What the reminder jobs have sent, so each goes once even when they run hourly.
    reminder_sent_at: Mapped[datetime | None]
    record_reminder_sent_at: Mapped[datetime | None]

    council: Mapped[Council] = relationship()
    carer: Mapped[User | None] = relationship(foreign_keys=[carer_id])
    worker: Mapped[User] = relationship(foreign_keys=[worker_id])

    __table_args__ = (
        CheckConstraint("price_pence >= 0", "price_not_negative"),
        CheckConstraint("ends_at > starts_at", "ends_after_start"),
        CheckConstraint(
            "hold_pence >= 0 AND top_up_pence >= 0 AND fee_pence >= 0 AND extra_pence >= 0 "
            "AND refunded_pence >= 0",
            "amounts_not_negative",
        ),
        CheckConstraint("charged_pence IS NULL OR charged_pence >= 0", "charge_not_negative"),
        Index("ix_bookings_worker_starts", "worker_id", "starts_at"),
        Index("ix_bookings_status_starts", "status", "starts_at"),
    )

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    @property
    def budget_pence(self) -> int:
        """The part of the price the budget pays (the rest is the card top-up)."""
        return self.price_pence - self.top_up_pence

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class BookingReview(Base):
    """A carer's rating (1 to 5) and short review of one completed break. Visible to
    council officers, never shown publicly; good ratings make the worker a favourite."""

    __tablename__ = "booking_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), unique=True)
    carer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    worker_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    rating: Mapped[int]
    text: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    booking: Mapped[Booking] = relationship()

    __table_args__ = (CheckConstraint("rating >= 1 AND rating <= 5", "rating_in_range"),)


class ConcernStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class BookingConcern(Base):
    """A safeguarding concern about a break; the council's officers are alerted at once."""

    __tablename__ = "booking_concerns"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)
    raised_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[ConcernStatus] = mapped_column(default=ConcernStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    booking: Mapped[Booking] = relationship()
    raised_by: Mapped[User] = relationship()


class WaitStatus(enum.StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    WITHDRAWN = "withdrawn"


class WaitingListEntry(Base):
    """A carer waiting for a favourite worker's taken slot; offered when it frees up."""

    __tablename__ = "waiting_list_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    carer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    # Where the break would be, so the offer's "book it" link can fill the form in.
    postcode: Mapped[str | None] = mapped_column(String(10))
    address: Mapped[str | None] = mapped_column(Text)
    status: Mapped[WaitStatus] = mapped_column(default=WaitStatus.WAITING)
    offered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    worker: Mapped[User] = relationship(foreign_keys=[worker_id])

    __table_args__ = (CheckConstraint("ends_at > starts_at", "ends_after_start"),)


class CalendarFeed(Base):
    """A secret iCalendar URL for one person's breaks. Only a SHA-256 of the token is
    stored; revoking sets `revoked_at`, regenerating makes a new row."""

    __tablename__ = "calendar_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()
