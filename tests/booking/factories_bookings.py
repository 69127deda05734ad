"""Factories for booking tests: an approved, in-date worker with a profile and weekly
availability, and a carer with a live budget."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from app.extensions import db
from app.models import Council, Representation, Role, User
from booking.models.budgets import Budget, BudgetKind
from booking.models.workers import (
    AvailabilityRule,
    CheckKind,
    VettingStatus,
    WorkerCheck,
    WorkerProfile,
)
from booking.services import budgets as budget_services
from booking.services import postcodes
from tests.factories import CouncilFactory, make_user

# A Monday morning, well inside the demo data's world. Tests pass it as `now=`.
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RATE = 2000  # £20.00 an hour


def make_worker(
    council: Council,
    *,
    rate: int = RATE,
    start: time = time(7, 0),
    end: time = time(22, 0),
    instant: bool = False,
    postcode: str = "LS6 3AA",
    name: str | None = None,
    now: datetime = NOW,
    **profile_fields: object,
) -> User:
    """An approved worker whose checks are in date for years, free every day start–end."""
    worker = make_user(Role.WORKER, council=council, postcode=postcode)
    place = postcodes.locate(postcode)
    profile = WorkerProfile(
        user_id=worker.id,
        council_id=council.id,
        display_name=name or worker.name,
        postcode=place.postcode,
        latitude=place.latitude,
        longitude=place.longitude,
        travel_radius_km=20,
        hourly_rate_pence=rate,
        status=VettingStatus.APPROVED,
        approved_at=now - timedelta(days=30),
        reapproval_due=date(2029, 1, 1),
        favourites_instant_book=instant,
        **profile_fields,
    )
    db.session.add(profile)
    db.session.flush()
    issued = (now - timedelta(days=100)).date()
    for kind in CheckKind:
        for n in range(2 if kind is CheckKind.REFERENCE else 1):
            db.session.add(
                WorkerCheck(
                    profile_id=profile.id,
                    council_id=council.id,
                    kind=kind,
                    reference=f"T-{worker.id}-{kind.value}-{n}",
                    issued_on=issued,
                    expires_on=None,
                    dbs_update_service=True,
                )
            )
    for weekday in range(7):
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
    return worker


def make_carer(
    council: Council, *, award: int = 100_000, now: datetime = NOW, **fields: object
) -> User:
    """A carer with a whole-award budget covering `now` (no budget when award is 0)."""
    carer = make_user(Role.CARER, council=council, **fields)
    if award:
        budget_services.allocate_budget(
            council_id=council.id,
            carer_id=carer.id,
            kind=BudgetKind.DIRECT_PAYMENT,
            period_start=(now - timedelta(days=30)).date(),
            period_end=(now + timedelta(days=330)).date(),
            award_pence=award,
            actor=None,
            now=now,
        )
    return carer


def budget_of(carer: User, *, now: datetime = NOW) -> Budget:
    from booking.services import ledger

    budget = ledger.current_budget(carer.id, today=now.date())
    assert budget is not None
    return budget


def make_representative(carer: User) -> User:
    rep = make_user(Role.REPRESENTATIVE, council=carer.council)
    db.session.add(
        Representation(council_id=carer.council_id, carer_id=carer.id, representative_id=rep.id)
    )
    db.session.commit()
    return rep


def council() -> Council:
    made: Council = CouncilFactory()
    return made
