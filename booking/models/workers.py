"""Models: workers (see booking/models/__init__.py).

Support workers, the provider organisations some of them work for, their vetting
checks and decisions, their published weekly availability and exceptions, and the
carers' favourites. A worker is known everywhere by their user id (`worker_id`).
"""

from __future__ import annotations

import enum
from datetime import date, datetime, time

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utcnow
from app.models import Base, User


class VettingStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"


class CheckKind(enum.StrEnum):
    DBS_ENHANCED = "dbs_enhanced"
    RIGHT_TO_WORK = "right_to_work"
    INSURANCE = "insurance"
    TRAINING_MOVING_HANDLING = "training_moving_handling"
    TRAINING_FIRST_AID = "training_first_aid"
    TRAINING_SAFEGUARDING = "training_safeguarding"
    REFERENCE = "reference"


class DecisionKind(enum.StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    REINSTATED = "reinstated"


class ExceptionKind(enum.StrEnum):
    UNAVAILABLE = "unavailable"
    EXTRA = "extra"


def _in_profile_council() -> ForeignKeyConstraint:
    """(profile_id, council_id) points at the worker's profile, so the database refuses a
    row whose council is not its worker's (issue 2: every council's record carries its id)."""
    return ForeignKeyConstraint(
        ["profile_id", "council_id"],
        ["worker_profiles.id", "worker_profiles.council_id"],
        ondelete="CASCADE",
    )


class ProviderOrganisation(Base):
    """A care provider whose admins manage their own workers, inside one council."""

    __tablename__ = "provider_organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProviderAdmin(Base):
    """Links a provider admin to the one organisation they manage."""

    __tablename__ = "provider_admins"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("provider_organisations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)

    organisation: Mapped[ProviderOrganisation] = relationship()


class WorkerProfile(Base):
    """What carers see of a worker, the worker's own booking rules, and their vetting state."""

    __tablename__ = "worker_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("provider_organisations.id"), index=True
    )
    display_name: Mapped[str] = mapped_column(String(100))
    bio: Mapped[str] = mapped_column(Text, default="")
    photo: Mapped[bytes | None] = mapped_column(LargeBinary)
    photo_content_type: Mapped[str | None] = mapped_column(String(32))
    gender: Mapped[str | None] = mapped_column(String(32))
    postcode: Mapped[str | None] = mapped_column(String(10))
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    travel_radius_km: Mapped[int] = mapped_column(default=10)
    hourly_rate_pence: Mapped[int] = mapped_column(default=0)
    evening_premium_percent: Mapped[int] = mapped_column(default=0)
    weekend_premium_percent: Mapped[int] = mapped_column(default=0)
    bank_holiday_premium_percent: Mapped[int] = mapped_column(default=0)
    min_notice_minutes: Mapped[int] = mapped_column(default=120)
    min_session_minutes: Mapped[int] = mapped_column(default=60)
    max_hours_per_week: Mapped[int] = mapped_column(default=48)
    buffer_minutes: Mapped[int] = mapped_column(default=0)
    favourites_instant_book: Mapped[bool] = mapped_column(default=False)
    response_deadline_hours: Mapped[int] = mapped_column(default=24)
    status: Mapped[VettingStatus] = mapped_column(default=VettingStatus.PENDING)
    approved_at: Mapped[datetime | None]
    reapproval_due: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()
    organisation: Mapped[ProviderOrganisation | None] = relationship()
    skill_rows: Mapped[list[WorkerSkill]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="WorkerSkill.skill"
    )
    language_rows: Mapped[list[WorkerLanguage]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="WorkerLanguage.language"
    )

    __table_args__ = (
        CheckConstraint("hourly_rate_pence >= 0", "rate_not_negative"),
        CheckConstraint("travel_radius_km >= 0", "radius_not_negative"),
        CheckConstraint("min_session_minutes >= 60", "session_at_least_an_hour"),
        CheckConstraint("min_notice_minutes >= 0", "notice_not_negative"),
        CheckConstraint("max_hours_per_week > 0", "max_hours_positive"),
        CheckConstraint("buffer_minutes >= 0", "buffer_not_negative"),
        CheckConstraint(
            "evening_premium_percent >= 0 AND weekend_premium_percent >= 0 "
            "AND bank_holiday_premium_percent >= 0",
            "premiums_not_negative",
        ),
        Index("ix_worker_profiles_search", "council_id", "status", "latitude", "longitude"),
        # What the rows below point at with (profile_id, council_id), so the database
        # keeps each of them in its worker's council.
        Index("uq_worker_profiles_id_council", "id", "council_id", unique=True),
    )

    @property
    def skills(self) -> list[str]:
        return [row.skill for row in self.skill_rows]

    @property
    def languages(self) -> list[str]:
        return [row.language for row in self.language_rows]


class WorkerSkill(Base):
    """One skill of a worker; a row per skill so search can filter in SQL."""

    __tablename__ = "worker_skills"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int]
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    skill: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        _in_profile_council(),
        UniqueConstraint("profile_id", "skill", name="uq_worker_skills_profile_skill"),
        Index("ix_worker_skills_skill", "skill", "profile_id"),
    )


class WorkerLanguage(Base):
    """One language a worker speaks (lower case), a row each for SQL filtering."""

    __tablename__ = "worker_languages"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int]
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    language: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        _in_profile_council(),
        UniqueConstraint("profile_id", "language", name="uq_worker_languages_profile_language"),
        Index("ix_worker_languages_language", "language", "profile_id"),
    )


class WorkerCheck(Base):
    """Evidence of one vetting check. A renewal is a new row; the newest counts."""

    __tablename__ = "worker_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(index=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    kind: Mapped[CheckKind]
    reference: Mapped[str] = mapped_column(String(200))
    issued_on: Mapped[date]
    expires_on: Mapped[date | None]
    dbs_update_service: Mapped[bool] = mapped_column(default=False)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        _in_profile_council(),
        CheckConstraint("expires_on IS NULL OR expires_on > issued_on", "expires_after_issue"),
    )

    def in_date(self, day: date) -> bool:
        """Valid on `day`: issued by then and not yet expired (expiry day is not covered)."""
        return self.issued_on <= day and (self.expires_on is None or day < self.expires_on)


class VettingDecision(Base):
    """Append-only history of what was decided about a worker, by whom and why."""

    __tablename__ = "vetting_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(index=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    decision: Mapped[DecisionKind]
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    decided_by: Mapped[User | None] = relationship()

    __table_args__ = (_in_profile_council(),)


class AvailabilityRule(Base):
    """A weekly slot in UK wall-clock time (weekday 0 = Monday), expanded per date."""

    __tablename__ = "availability_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(index=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    weekday: Mapped[int]
    start_time: Mapped[time]
    end_time: Mapped[time]

    __table_args__ = (
        _in_profile_council(),
        CheckConstraint("weekday >= 0 AND weekday <= 6", "weekday_in_range"),
        CheckConstraint("end_time > start_time", "ends_after_start"),
    )


class AvailabilityException(Base):
    """A one-off change to the weekly pattern: time off (unavailable) or an extra slot."""

    __tablename__ = "availability_exceptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(index=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    kind: Mapped[ExceptionKind] = mapped_column(default=ExceptionKind.UNAVAILABLE)
    note: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        _in_profile_council(),
        CheckConstraint("ends_at > starts_at", "ends_after_start"),
    )


class Favourite(Base):
    """A worker a carer wants to see first ("the worker I had last time")."""

    __tablename__ = "favourites"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The carer's council (which is also the worker's: favourites stay inside one council).
    # Set by the services that add one; users.council_id may be null, so no composite key.
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), index=True)
    carer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    worker_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("carer_id", "worker_id", name="uq_favourites_pair"),)
