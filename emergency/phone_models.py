"""Tables of the 24-hour phone line: the operators' rota, each automated cascade call,
and the yearly "are you still willing to be called?" check of every contact."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.models import Base, User
from emergency.models import in_incident_council


class RotaEntry(Base):
    """One operator's number on the line's rota and whether they are on duty now.

    A backup on duty is the `<Dial>` fallback when the main operator does not answer."""

    __tablename__ = "phone_rota_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int | None] = mapped_column(ForeignKey("councils.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    phone: Mapped[str] = mapped_column(String(20))
    on_duty: Mapped[bool] = mapped_column(default=False)
    is_backup: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    __table_args__ = (
        Index("ix_phone_rota_entries_duty", "on_duty", "is_backup", "updated_at"),
        CheckConstraint("phone LIKE '+%'", "phone_is_e164"),
    )


class CascadeCall(Base):
    """One automated call to one contact during an incident's cascade.

    Only a keypress of 1 counts as reached: an answering machine (`AnsweredBy=machine_*`)
    or a call that Twilio reports `completed` without a key never does."""

    __tablename__ = "phone_cascade_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(index=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("emergency_contacts.id"))
    attempt_number: Mapped[int]
    outbox_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbox_messages.id"), index=True
    )
    call_status: Mapped[str] = mapped_column(String(32), default="queued")
    answered_by: Mapped[str | None] = mapped_column(String(32))
    digits: Mapped[str | None] = mapped_column(String(8))
    # pending, confirmed, declined, not_reached
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        in_incident_council(),
        UniqueConstraint(
            "incident_id", "contact_id", "attempt_number", name="uq_phone_cascade_calls_attempt"
        ),
        CheckConstraint("attempt_number >= 1", "attempt_positive"),
        CheckConstraint(
            "outcome IN ('pending', 'confirmed', 'declined', 'not_reached')", "outcome_allowed"
        ),
    )


class ContactCheck(Base):
    """The yearly SMS asking a contact whether they are still willing to be called.

    No reply by `reply_due_at` (or a NO) flags the plan for review."""

    __tablename__ = "phone_contact_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("emergency_plans.id"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("emergency_contacts.id"), index=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)
    sent_at: Mapped[datetime]
    reply_due_at: Mapped[datetime]
    replied_at: Mapped[datetime | None]
    reply: Mapped[str | None] = mapped_column(String(8))  # yes, no
    flagged_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_phone_contact_checks_open", "replied_at", "reply_due_at"),)


class MissedCall(Base):
    """A caller to the line whose plan was not found (no PIN, or a PIN that did not work)
    and whom no operator answered. Operators see these on the missed-calls page and call
    back when there is a number; nothing else would ever tell staff about them."""

    __tablename__ = "phone_missed_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The council whose line was dialled, when Twilio's `To` tells us.
    council_id: Mapped[int | None] = mapped_column(ForeignKey("councils.id"))
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    caller_number: Mapped[str | None] = mapped_column(String(32))  # None: withheld
    line_number: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))
    called_at: Mapped[datetime] = mapped_column(default=utcnow)
    dealt_with_at: Mapped[datetime | None]
    dealt_with_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        Index("ix_phone_missed_calls_open", "council_id", "dealt_with_at", "called_at"),
    )
