"""Emergency plans (versioned, sensitive parts encrypted), cards (PIN stored only as an
HMAC), PIN attempts (shared rate limiting), incidents with their timeline and the
contact cascade, and per-council scheme settings."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.models import Base, Council, User


class EmergencyScheme(Base):
    """A council's emergency card scheme: its name, line, free care window and budget."""

    __tablename__ = "emergency_schemes"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    line_phone: Mapped[str] = mapped_column(String(20))
    free_care_hours: Mapped[int] = mapped_column(default=48)
    cascade_timeout_minutes: Mapped[int] = mapped_column(default=10)
    window_warning_minutes: Mapped[int] = mapped_column(default=120)
    emergency_budget_pence: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    council: Mapped[Council] = relationship()

    __table_args__ = (
        CheckConstraint("free_care_hours IN (24, 48, 72)", "free_care_hours_allowed"),
        CheckConstraint("cascade_timeout_minutes > 0", "cascade_timeout_positive"),
        CheckConstraint("emergency_budget_pence >= 0", "budget_not_negative"),
    )


class PlanStatus(enum.StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class Plan(Base):
    """One carer's emergency plan for one cared-for person. Its content lives in versions."""

    __tablename__ = "emergency_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    carer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    writer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[PlanStatus] = mapped_column(default=PlanStatus.ACTIVE)
    current_version: Mapped[int] = mapped_column(default=1)
    is_test: Mapped[bool] = mapped_column(default=False)
    approved_at: Mapped[datetime]
    review_due: Mapped[date]
    review_reminder_sent_for: Mapped[date | None]
    overdue_flagged_for: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    council: Mapped[Council] = relationship()
    carer: Mapped[User] = relationship(foreign_keys=[carer_id])
    writer: Mapped[User | None] = relationship(foreign_keys=[writer_id])
    versions: Mapped[list[PlanVersion]] = relationship(
        back_populates="plan", order_by="PlanVersion.number", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint("current_version >= 1", "version_positive"),
        # Versions point at (id, council_id), so a version is always in its plan's council.
        Index("uq_emergency_plans_id_council", "id", "council_id", unique=True),
    )


class PlanVersion(Base):
    """A frozen copy of a plan. An edit adds a version; old ones stay readable to staff.

    `details_encrypted` holds every health, medication and access detail as Fernet-
    encrypted JSON; the key-safe code is encrypted on its own so it can be revealed
    separately (only inside an open incident)."""

    __tablename__ = "emergency_plan_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int]
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    number: Mapped[int]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    details_encrypted: Mapped[str] = mapped_column(Text)
    key_safe_encrypted: Mapped[str | None] = mapped_column(Text)
    cared_for_postcode: Mapped[str | None] = mapped_column(String(10))
    replacement_care_hours: Mapped[int] = mapped_column(default=72)
    consent_carer: Mapped[bool] = mapped_column(default=False)
    consent_cared_for: Mapped[str] = mapped_column(String(16))  # yes, no, best_interests
    consent_recorded_by: Mapped[str] = mapped_column(String(200))
    consent_recorded_on: Mapped[date]

    plan: Mapped[Plan] = relationship(back_populates="versions")
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="plan_version",
        order_by="Contact.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    __table_args__ = (
        # The plan's council, kept equal to it by the database (issue 2: tenancy).
        ForeignKeyConstraint(
            ["plan_id", "council_id"],
            ["emergency_plans.id", "emergency_plans.council_id"],
            ondelete="CASCADE",
        ),
        # Contacts point at (id, council_id) in turn.
        Index("uq_emergency_plan_versions_id_council", "id", "council_id", unique=True),
        UniqueConstraint("plan_id", "number", name="uq_emergency_plan_versions_plan_number"),
        CheckConstraint(
            "consent_cared_for IN ('yes', 'no', 'best_interests')", "consent_cared_for_allowed"
        ),
    )


class Contact(Base):
    """A named contact of one plan version, in cascade order, with their own consent."""

    __tablename__ = "emergency_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_version_id: Mapped[int] = mapped_column(index=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    relationship_to_carer: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20), index=True)
    can_step_in: Mapped[bool] = mapped_column(default=True)
    has_key: Mapped[bool] = mapped_column(default=False)
    availability: Mapped[str | None] = mapped_column(String(200))
    consent: Mapped[bool] = mapped_column(default=False)
    consent_recorded_on: Mapped[date | None]

    plan_version: Mapped[PlanVersion] = relationship(back_populates="contacts")

    __table_args__ = (
        # The version's council, kept equal to it by the database.
        ForeignKeyConstraint(
            ["plan_version_id", "council_id"],
            ["emergency_plan_versions.id", "emergency_plan_versions.council_id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("plan_version_id", "position", name="uq_emergency_contacts_position"),
    )

    @property
    def relationship_text(self) -> str:
        return self.relationship_to_carer


class PlanDraft(Base):
    """A plan writer's answers while they work through the guided form. Kept as a row
    (not in the cookie session) so a long form survives a lost connection, and encrypted
    because it holds the same sensitive details as a plan."""

    __tablename__ = "emergency_plan_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    writer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("emergency_plans.id"))
    answers_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CardStatus(enum.StrEnum):
    LIVE = "live"
    REVOKED = "revoked"
    LOST = "lost"


class Card(Base):
    """A wallet card. The PIN is never stored: only its HMAC-SHA256 under a server key."""

    __tablename__ = "emergency_cards"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("emergency_plans.id"), index=True)
    pin_hmac: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[CardStatus] = mapped_column(default=CardStatus.LIVE)
    is_test: Mapped[bool] = mapped_column(default=False)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(200))

    plan: Mapped[Plan] = relationship()


class PinAttempt(Base):
    """Every PIN lookup, hit or miss, kept in the database so every app server sees the
    same counts for rate limiting and lockout."""

    __tablename__ = "emergency_pin_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int | None] = mapped_column(ForeignKey("councils.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    caller_number: Mapped[str | None] = mapped_column(String(20))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))  # hit, invalid, unknown, revoked
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (
        Index("ix_emergency_pin_attempts_operator", "operator_id", "created_at"),
        Index("ix_emergency_pin_attempts_caller", "caller_number", "created_at"),
    )


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class CascadeStatus(enum.StrEnum):
    NOT_STARTED = "not_started"
    RUNNING = "running"
    CONFIRMED = "confirmed"
    EXHAUSTED = "exhausted"


class Incident(Base):
    """One activation of a plan: from the lookup to closing with an outcome."""

    __tablename__ = "emergency_incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("emergency_plans.id"), index=True)
    plan_version_id: Mapped[int] = mapped_column(ForeignKey("emergency_plan_versions.id"))
    card_id: Mapped[int | None] = mapped_column(ForeignKey("emergency_cards.id"), index=True)
    status: Mapped[IncidentStatus] = mapped_column(default=IncidentStatus.OPEN)
    source: Mapped[str] = mapped_column(String(16))  # console, api, phone
    is_drill: Mapped[bool] = mapped_column(default=False)
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    call_started_at: Mapped[datetime | None]
    call_answered_at: Mapped[datetime | None]
    cascade_status: Mapped[CascadeStatus] = mapped_column(default=CascadeStatus.NOT_STARTED)
    cascade_position: Mapped[int | None]
    cascade_step_due_at: Mapped[datetime | None] = mapped_column(index=True)
    confirmed_contact_id: Mapped[int | None] = mapped_column(ForeignKey("emergency_contacts.id"))
    contact_confirmed_at: Mapped[datetime | None]
    care_arranged_at: Mapped[datetime | None]
    care_arrives_at: Mapped[datetime | None]
    care_window_ends_at: Mapped[datetime | None]
    window_warning_sent_at: Mapped[datetime | None]
    booking_id: Mapped[int | None]
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[str | None] = mapped_column(Text)

    plan: Mapped[Plan] = relationship()
    plan_version: Mapped[PlanVersion] = relationship()
    card: Mapped[Card | None] = relationship()
    events: Mapped[list[IncidentEvent]] = relationship(
        back_populates="incident", order_by="IncidentEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_emergency_incidents_open", "status", "opened_at"),
        CheckConstraint("source IN ('console', 'api', 'phone')", "source_allowed"),
        # Timeline events, cascade attempts and cascade calls point at (id, council_id),
        # so each stays in its incident's council.
        Index("uq_emergency_incidents_id_council", "id", "council_id", unique=True),
    )


def in_incident_council() -> ForeignKeyConstraint:
    """(incident_id, council_id) points at the incident, so the database refuses a row of
    an incident's timeline or cascade whose council is not the incident's."""
    return ForeignKeyConstraint(
        ["incident_id", "council_id"],
        ["emergency_incidents.id", "emergency_incidents.council_id"],
        ondelete="CASCADE",
    )


class IncidentEvent(Base):
    """One line of an incident's timeline (append-only)."""

    __tablename__ = "emergency_incident_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(index=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    incident: Mapped[Incident] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship()

    __table_args__ = (in_incident_council(),)


class CascadeAttempt(Base):
    """The cascade's try of one contact: when it was sent, when it times out, and how it
    ended (waiting, confirmed, timed_out, skipped)."""

    __tablename__ = "emergency_cascade_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(index=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("emergency_contacts.id"))
    position: Mapped[int]
    started_at: Mapped[datetime]
    due_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16), default="waiting")
    ended_at: Mapped[datetime | None]

    contact: Mapped[Contact] = relationship()

    __table_args__ = (
        in_incident_council(),
        UniqueConstraint("incident_id", "contact_id", name="uq_emergency_cascade_attempts_pair"),
    )
