"""Demo data: the demo council's scheme, a plan for the demo carer with a card, and a
test plan with a test card for drills. Idempotent."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from app.demo import DemoContext, demo_seeder
from app.extensions import db
from emergency import services
from emergency.crypto import cipher_from_config
from emergency.models import EmergencyScheme, Plan


def _answers(name: str, *, test: bool, contacts: list[tuple[str, str, str]], today: str) -> dict:  # type: ignore[type-arg]
    return {
        "cared_for": {
            "name": name,
            "date_of_birth": "1938-05-14",
            "address": "12 Demo Street, Leeds",
            "postcode": "LS6 2AB",
            "safe_alone": "No more than 30 minutes",
        },
        "access": {
            "key_safe_code": "4321" if not test else "0000",
            "key_safe_location": "Left of the front door",
            "key_holder": "Neighbour at number 14",
            "notes": "",
        },
        "needs": {
            "personal_care": "Needs help to wash and dress",
            "mobility": "Walks with a frame; hoist for the bath",
            "continence": "Pads, supplied by the district nurse",
            "eating_drinking": "Soft food; remind to drink",
            "communication": "Hard of hearing: speak slowly, face her",
            "behaviour": "Can become anxious in the evening; music helps",
            "routines": "Up at 8, lunch at 12:30, bed at 9",
            "faith_culture": "",
        },
        "medication": [
            {
                "name": "Donepezil",
                "dose": "10 mg",
                "times": "9pm",
                "managed_by": "Carer",
                "stored_where": "Kitchen cupboard",
            }
        ],
        "allergies": "Penicillin",
        "gp": "Demo Surgery, 0113 000 0000",
        "professionals": "District nurse on Tuesdays",
        "contacts": [
            {
                "name": c_name,
                "relationship": rel,
                "phone": phone,
                "can_step_in": True,
                "has_key": index == 0,
                "availability": "Any time",
                "consent": True,
            }
            for index, (c_name, rel, phone) in enumerate(contacts)
        ],
        "replacement_care": {"arrangements": "Home care, same routine", "hours": 72},
        "consent": {
            "carer": True,
            "cared_for": "yes",
            "best_interests_record": "",
            "recorded_by": "Rita Planwriter",
            "recorded_on": today,
        },
    }


@demo_seeder
def seed_emergency(ctx: DemoContext) -> None:
    council = ctx.council
    if (
        db.session.scalar(select(EmergencyScheme).where(EmergencyScheme.council_id == council.id))
        is None
    ):
        db.session.add(
            EmergencyScheme(
                council_id=council.id,
                name="Demo City Carers' Emergency Card",
                line_phone=council.emergency_phone or "+448000988234",
                free_care_hours=72,
                cascade_timeout_minutes=10,
                window_warning_minutes=120,
                emergency_budget_pence=500_000,
            )
        )
        db.session.commit()
    carer = ctx.people["carer"]
    if db.session.scalar(select(Plan).where(Plan.carer_id == carer.id)) is not None:
        return
    cipher = cipher_from_config(current_app.config)
    pin_key = current_app.config["PIN_HMAC_KEY"]
    writer = ctx.people["plan_writer"]
    today = ctx.now.date().isoformat()
    plan = services.create_plan(
        council=council,
        carer=carer,
        writer=writer,
        answers=_answers(
            "Margaret Carer",
            test=False,
            contacts=[
                ("Helen Carer", "Daughter", "+447911123101"),
                ("Dev Singh", "Neighbour", "+447911123102"),
                ("Ann Lowe", "Friend", "+447911123103"),
            ],
            today=today,
        ),
        cipher=cipher,
        now=ctx.now,
    )
    issued = services.issue_card(plan, by=writer, pin_key=pin_key, now=ctx.now)
    drill = services.create_plan(
        council=council,
        carer=ctx.people["carer2"],
        writer=writer,
        answers=_answers(
            "Test Person (drill)",
            test=True,
            contacts=[("Drill Contact", "Test", "+447911123199")],
            today=today,
        ),
        cipher=cipher,
        now=ctx.now,
        is_test=True,
    )
    test_card = services.issue_card(drill, by=writer, pin_key=pin_key, now=ctx.now)
    ctx.lines.append(f"Emergency card PIN for {carer.name}: {issued.pin}")
    ctx.lines.append(f"Drill (test card, contacts nobody real): {test_card.pin}")
