"""Emergency test data: a council with a scheme, a carer, a plan writer, an operator,
and plans with contacts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from app.extensions import db
from app.models import Council, Role, User
from emergency import services
from emergency.crypto import cipher_from_config
from emergency.models import EmergencyScheme, Plan
from tests.factories import CouncilFactory, make_user

SECRET_MEDICINE = "Zyloprim-Secret-Dose"
KEY_SAFE = "7392"


def plan_answers(contacts: int = 3, **overrides: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "cared_for": {
            "name": "Margaret Example",
            "date_of_birth": "1940-02-29",
            "address": "1 Test Road, Leeds",
            "postcode": "LS6 2AB",
            "safe_alone": "Not for long",
        },
        "access": {
            "key_safe_code": KEY_SAFE,
            "key_safe_location": "By the back door",
            "key_holder": "Number 3",
            "notes": "",
        },
        "needs": {"personal_care": "Help to wash", "mobility": "Frame"},
        "medication": [
            {"name": SECRET_MEDICINE, "dose": "5 mg", "times": "8am", "managed_by": "Carer"}
        ],
        "allergies": "Penicillin",
        "gp": "Test Surgery",
        "professionals": "",
        "contacts": [
            {
                "name": f"Contact {n}",
                "relationship": "Friend",
                "phone": f"07911 123{400 + n:03d}",
                "can_step_in": True,
                "has_key": n == 1,
                "availability": "Any time",
                "consent": True,
            }
            for n in range(1, contacts + 1)
        ],
        "replacement_care": {"arrangements": "Home care", "hours": 72},
        "consent": {
            "carer": True,
            "cared_for": "yes",
            "best_interests_record": "",
            "recorded_by": "Rita Writer",
            "recorded_on": "2026-11-01",
        },
    }
    answers.update(overrides)
    return answers


@dataclass
class Scene:
    council: Council
    carer: User
    writer: User
    operator: User
    officer: User


def make_scene(*, timeout_minutes: int = 10, free_hours: int = 48) -> Scene:
    council: Council = CouncilFactory()
    db.session.add(
        EmergencyScheme(
            council_id=council.id,
            name="Test Carers' Emergency Card",
            line_phone="+448000988234",
            free_care_hours=free_hours,
            cascade_timeout_minutes=timeout_minutes,
            window_warning_minutes=120,
            emergency_budget_pence=100_000,
        )
    )
    db.session.commit()
    return Scene(
        council=council,
        carer=make_user(Role.CARER, council=council, name="Sam Carer"),
        writer=make_user(Role.PLAN_WRITER, council=council, name="Rita Writer"),
        operator=make_user(Role.OPERATOR, council=council, name="Omar Operator"),
        officer=make_user(Role.COUNCIL_OFFICER, council=council, name="Olu Officer"),
    )


def cipher() -> Any:
    return cipher_from_config(current_app.config)


def pin_key() -> str:
    return str(current_app.config["PIN_HMAC_KEY"])


def make_plan(
    scene: Scene, *, now: datetime, contacts: int = 3, is_test: bool = False, **overrides: Any
) -> Plan:
    return services.create_plan(
        council=scene.council,
        carer=scene.carer,
        writer=scene.writer,
        answers=plan_answers(contacts, **overrides),
        cipher=cipher(),
        now=now,
        is_test=is_test,
    )


def make_card(scene: Scene, plan: Plan, *, now: datetime) -> services.IssuedCard:
    return services.issue_card(plan, by=scene.writer, pin_key=pin_key(), now=now)


def make_worker_free_now(
    council: Council, *, now: datetime, name: str = "Priya Worker", rate: int = 2000
) -> User:
    """An approved worker near the test plan's postcode who has said they are free for
    the next three days and takes bookings at no notice (what an emergency needs)."""
    from booking.models.workers import AvailabilityException, ExceptionKind
    from booking.services.workers import profile_of
    from tests.booking.factories_bookings import make_worker

    worker = make_worker(council, name=name, rate=rate, now=now, min_notice_minutes=0)
    profile = profile_of(worker.id)
    assert profile is not None
    db.session.add(
        AvailabilityException(
            profile_id=profile.id,
            council_id=profile.council_id,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(days=3),
            kind=ExceptionKind.EXTRA,
        )
    )
    db.session.commit()
    return worker
