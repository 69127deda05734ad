"""Demo workers: one provider organisation, three approved workers with in-date checks,
profiles and weekly availability. Running it twice changes nothing."""

from __future__ import annotations

from datetime import time, timedelta

from sqlalchemy import select

from app.clock import london_today
from app.demo import DemoContext, demo_seeder
from app.extensions import db
from booking.models.workers import (
    AvailabilityRule,
    CheckKind,
    DecisionKind,
    ProviderAdmin,
    ProviderOrganisation,
    VettingDecision,
    VettingStatus,
    WorkerCheck,
    WorkerLanguage,
    WorkerProfile,
    WorkerSkill,
)
from booking.services import postcodes

DEMO_WORKERS = {
    "worker": {
        "bio": "Twelve years in dementia care. I love a walk and a cuppa.",
        "skills": ["dementia", "personal_care", "sitting_service"],
        "languages": ["english", "punjabi"],
        "gender": "female",
        "rate": 1850,
        "radius": 10,
        "organisation": False,
    },
    "worker2": {
        "bio": "Former teaching assistant; calm with autistic young people.",
        "skills": ["autism", "learning_disability", "outings"],
        "languages": ["english", "yoruba"],
        "gender": "male",
        "rate": 1700,
        "radius": 15,
        "organisation": True,
    },
    "worker3": {
        "bio": "Trained in moving and handling, happy with evenings and weekends.",
        "skills": ["moving_and_handling", "personal_care", "dementia"],
        "languages": ["english", "welsh"],
        "gender": "female",
        "rate": 1950,
        "radius": 20,
        "organisation": True,
    },
}


@demo_seeder
def seed_workers(ctx: DemoContext) -> None:
    admin = ctx.people["provider_admin"]
    organisation = db.session.scalar(
        select(ProviderOrganisation).where(ProviderOrganisation.council_id == ctx.council.id)
    )
    if organisation is None:
        organisation = ProviderOrganisation(
            council_id=ctx.council.id, name="Aire Valley Care Co-op"
        )
        db.session.add(organisation)
        db.session.flush()
    if db.session.scalar(select(ProviderAdmin).where(ProviderAdmin.user_id == admin.id)) is None:
        db.session.add(ProviderAdmin(organisation_id=organisation.id, user_id=admin.id))
    today = london_today(ctx.now)
    for key, spec in DEMO_WORKERS.items():
        user = ctx.people[key]
        if db.session.scalar(select(WorkerProfile).where(WorkerProfile.user_id == user.id)):
            continue
        place = postcodes.locate(user.postcode or "LS1")
        profile = WorkerProfile(
            user_id=user.id,
            council_id=ctx.council.id,
            organisation_id=organisation.id if spec["organisation"] else None,
            display_name=user.name,
            bio=spec["bio"],
            gender=spec["gender"],
            postcode=place.postcode,
            latitude=place.latitude,
            longitude=place.longitude,
            travel_radius_km=spec["radius"],
            hourly_rate_pence=spec["rate"],
            evening_premium_percent=20,
            weekend_premium_percent=25,
            bank_holiday_premium_percent=50,
            min_notice_minutes=120,
            buffer_minutes=30,
            status=VettingStatus.APPROVED,
            approved_at=ctx.now,
            reapproval_due=today.replace(year=today.year + 2),
        )
        profile.skill_rows = [
            WorkerSkill(council_id=ctx.council.id, skill=s)
            for s in spec["skills"]  # type: ignore[attr-defined]
        ]
        profile.language_rows = [
            WorkerLanguage(council_id=ctx.council.id, language=x)
            for x in spec["languages"]  # type: ignore[attr-defined]
        ]
        db.session.add(profile)
        db.session.flush()
        issued = today - timedelta(days=200)
        for kind in CheckKind:
            copies = 2 if kind == CheckKind.REFERENCE else 1
            for n in range(copies):
                db.session.add(
                    WorkerCheck(
                        profile_id=profile.id,
                        council_id=profile.council_id,
                        kind=kind,
                        reference=f"DEMO-{key.upper()}-{kind.value}-{n + 1}",
                        issued_on=issued,
                        expires_on=issued + timedelta(days=3 * 365)
                        if kind in (CheckKind.INSURANCE, CheckKind.TRAINING_FIRST_AID)
                        else None,
                        dbs_update_service=kind == CheckKind.DBS_ENHANCED,
                    )
                )
        for weekday in range(7):
            start, end = (time(8, 0), time(20, 0)) if weekday < 5 else (time(10, 0), time(18, 0))
            db.session.add(
                AvailabilityRule(
                    profile_id=profile.id,
                    council_id=profile.council_id,
                    weekday=weekday,
                    start_time=start,
                    end_time=end,
                )
            )
        db.session.add(
            VettingDecision(
                profile_id=profile.id,
                council_id=profile.council_id,
                decision=DecisionKind.APPROVED,
                reason="Demo: all checks seen",
                decided_by_id=ctx.people["officer"].id,
                created_at=ctx.now,
            )
        )
    db.session.commit()
    ctx.lines.append(
        f"Workers: 3 approved demo workers; provider organisation '{organisation.name}'"
    )
