"""Factories for workers: an approved worker with in-date checks and a weekly pattern."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from app.clock import london_today, utcnow
from app.extensions import db
from app.models import Council, Role, User
from booking.models.bookings import Booking, BookingStatus
from booking.models.workers import (
    AvailabilityRule,
    CheckKind,
    ProviderAdmin,
    ProviderOrganisation,
    VettingStatus,
    WorkerCheck,
    WorkerLanguage,
    WorkerProfile,
    WorkerSkill,
)
from booking.services import postcodes
from tests.factories import make_user

ALL_WEEK = [(d, time(7, 0), time(22, 0)) for d in range(7)]


def add_checks(profile: WorkerProfile, *, issued_on: date, expires_on: date | None) -> None:
    """Every required check (two references), issued and expiring on the given dates."""
    for kind in CheckKind:
        for n in range(2 if kind == CheckKind.REFERENCE else 1):
            db.session.add(
                WorkerCheck(
                    profile_id=profile.id,
                    council_id=profile.council_id,
                    kind=kind,
                    reference=f"REF-{kind.value}-{n}",
                    issued_on=issued_on,
                    expires_on=expires_on,
                    dbs_update_service=kind == CheckKind.DBS_ENHANCED,
                )
            )
    db.session.commit()


def make_worker(
    council: Council,
    *,
    postcode: str = "LS6 3AA",
    rate: int = 2000,
    approved: bool = True,
    checks_expire: date | None = None,
    today: date | None = None,
    weekly: list[tuple[int, time, time]] | None = None,
    skills: tuple[str, ...] = ("dementia",),
    languages: tuple[str, ...] = ("english",),
    gender: str = "female",
    radius: int = 20,
    organisation: ProviderOrganisation | None = None,
    **profile_fields: Any,
) -> User:
    """A worker user with a profile in `council`; approved with in-date checks by default."""
    user = make_user(Role.WORKER, council=council)
    place = postcodes.locate(postcode)
    today = today or london_today(utcnow())
    profile = WorkerProfile(
        user_id=user.id,
        council_id=council.id,
        organisation_id=organisation.id if organisation else None,
        display_name=user.name,
        bio="",
        gender=gender,
        postcode=place.postcode,
        latitude=place.latitude,
        longitude=place.longitude,
        travel_radius_km=radius,
        hourly_rate_pence=rate,
        status=VettingStatus.APPROVED if approved else VettingStatus.PENDING,
        reapproval_due=today + timedelta(days=700) if approved else None,
        **profile_fields,
    )
    profile.skill_rows = [WorkerSkill(council_id=council.id, skill=s) for s in skills]
    profile.language_rows = [WorkerLanguage(council_id=council.id, language=x) for x in languages]
    db.session.add(profile)
    db.session.flush()
    for weekday, start, end in ALL_WEEK if weekly is None else weekly:
        db.session.add(
            AvailabilityRule(
                profile_id=profile.id,
                council_id=council.id,
                weekday=weekday,
                start_time=start,
                end_time=end,
            )
        )
    db.session.commit()
    if approved:
        add_checks(
            profile,
            issued_on=today - timedelta(days=100),
            expires_on=checks_expire or today + timedelta(days=400),
        )
    return user


def profile_for(user: User) -> WorkerProfile:
    from booking.services.workers import profile_of

    profile = profile_of(user.id)
    assert profile is not None
    return profile


def make_organisation(council: Council, admin: User | None = None) -> ProviderOrganisation:
    organisation = ProviderOrganisation(council_id=council.id, name="Test Care Co-op")
    db.session.add(organisation)
    db.session.flush()
    if admin is not None:
        db.session.add(ProviderAdmin(organisation_id=organisation.id, user_id=admin.id))
    db.session.commit()
    return organisation


def make_booking(
    worker: User,
    carer: User,
    starts_at: datetime,
    ends_at: datetime,
    status: BookingStatus = BookingStatus.CONFIRMED,
) -> Booking:
    assert carer.council_id is not None
    booking = Booking(
        council_id=carer.council_id,
        carer_id=carer.id,
        worker_id=worker.id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=status,
        price_pence=1000,
    )
    db.session.add(booking)
    db.session.commit()
    return booking
