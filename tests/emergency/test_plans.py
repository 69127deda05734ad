"""Plans: validation, versions, encryption at rest, key rotation, reviews, audit."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import select, text

from app.extensions import db
from app.models import AuditEntry, OutboxMessage
from emergency import services
from emergency.crypto import FieldCipher
from emergency.models import Plan
from tests.emergency.factories import (
    KEY_SAFE,
    SECRET_MEDICINE,
    cipher,
    make_plan,
    make_scene,
    plan_answers,
)


def test_sensitive_fields_are_unreadable_in_the_raw_row(now: datetime) -> None:
    scene = make_scene()
    plan = make_plan(scene, now=now)
    row = (
        db.session.execute(
            text("SELECT * FROM emergency_plan_versions WHERE plan_id = :id"), {"id": plan.id}
        )
        .mappings()
        .one()
    )
    raw = " ".join(str(value) for value in row.values())
    for secret in (
        SECRET_MEDICINE,
        "Penicillin",
        "Margaret Example",
        "1 Test Road",
        KEY_SAFE,
        "Help to wash",
    ):
        assert secret not in raw
    view = services.view_plan(plan, viewer=scene.writer, cipher=cipher(), now=now)
    assert view.details["medication"][0]["name"] == SECRET_MEDICINE
    assert "key_safe_code" not in view.details["access"]


def test_edit_makes_a_new_version_and_old_ones_stay_readable(now: datetime) -> None:
    scene = make_scene()
    plan = make_plan(scene, now=now)
    changed = plan_answers(2, allergies="Peanuts")
    later = now + timedelta(days=30)
    services.update_plan(plan, writer=scene.writer, answers=changed, cipher=cipher(), now=later)
    assert plan.current_version == 2
    assert plan.review_due > (now + timedelta(days=360)).date()
    old = services.view_plan(
        plan, viewer=scene.officer, cipher=cipher(), now=later, version_number=1
    )
    new = services.view_plan(plan, viewer=scene.officer, cipher=cipher(), now=later)
    assert old.details["allergies"] == "Penicillin"
    assert new.details["allergies"] == "Peanuts"
    assert len(old.contacts) == 3
    assert len(services.plan_contacts(plan)) == 2
    views = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "emergency.plan_viewed")
    ).all()
    assert [v.details["version"] for v in views] == [1, 2]


def test_plan_contacts_in_order_with_consent(now: datetime) -> None:
    scene = make_scene()
    contacts = services.plan_contacts(make_plan(scene, now=now))
    assert [c.position for c in contacts] == [1, 2, 3]
    assert contacts[0].phone == "+447911123401"
    assert contacts[0].has_key is True
    assert all(c.consent and c.can_step_in for c in contacts)


def test_validation_names_every_problem(now: datetime) -> None:
    scene = make_scene()
    bad = plan_answers(1)
    bad["cared_for"]["name"] = ""
    bad["contacts"][0]["phone"] = "12"
    bad["contacts"][0]["consent"] = False
    bad["consent"]["cared_for"] = "best_interests"
    with pytest.raises(services.PlanInvalid) as caught:
        services.create_plan(
            council=scene.council,
            carer=scene.carer,
            writer=scene.writer,
            answers=bad,
            cipher=cipher(),
            now=now,
        )
    assert set(caught.value.fields) >= {
        "cared_for.name",
        "contacts.0.phone",
        "contacts.0.consent",
        "consent.best_interests_record",
    }
    assert db.session.scalar(select(Plan).where(Plan.council_id == scene.council.id)) is None


def test_rotate_keys_reencrypts_with_the_newest_key(app: Flask, now: datetime) -> None:
    scene = make_scene()
    plan = make_plan(scene, now=now)
    old_keys = list(app.config["PLAN_ENCRYPTION_KEYS"])
    new_key = Fernet.generate_key().decode()
    app.config["PLAN_ENCRYPTION_KEYS"] = [new_key, *old_keys]
    try:
        result = app.test_cli_runner().invoke(args=["emergency", "rotate-keys"])
        assert result.exit_code == 0, result.output
        assert "Re-encrypted" in result.output
        only_new = FieldCipher([new_key])
        version = services.current_version(plan)
        db.session.refresh(version)
        assert (
            services.version_details(version, only_new)["medication"][0]["name"] == SECRET_MEDICINE
        )
        assert version.key_safe_encrypted is not None
        assert only_new.decrypt(version.key_safe_encrypted) == KEY_SAFE
    finally:
        app.config["PLAN_ENCRYPTION_KEYS"] = old_keys


def test_review_reminders_then_overdue(app: Flask, now: datetime) -> None:
    scene = make_scene()
    plan = make_plan(scene, now=now)
    month_before = datetime.combine(
        plan.review_due - timedelta(days=29), datetime.min.time(), tzinfo=now.tzinfo
    ) + timedelta(hours=12)
    from app.scheduler import run_job

    first = run_job("plan_review_reminders", month_before)
    assert first["reminded"] >= 1
    sms = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == scene.carer.phone)
    )
    email = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == scene.writer.email)
    )
    assert sms is not None
    assert "yearly" in sms.payload["body"]
    assert email is not None
    again = run_job("plan_review_reminders", month_before)
    assert again["reminded"] == 0
    after = month_before + timedelta(days=31)
    overdue = run_job("plan_review_reminders", after)
    assert overdue["overdue"] >= 1
    assert plan.overdue_flagged_for == plan.review_due
    flagged = db.session.scalar(
        select(AuditEntry).where(
            AuditEntry.action == "emergency.plan_review_overdue", AuditEntry.subject_id == plan.id
        )
    )
    assert flagged is not None


def test_review_reminders_load_carers_and_writers_in_one_go(
    now: datetime, sql_count: list[str]
) -> None:
    """The job's queries for people do not grow with the number of plans it reminds."""
    from app.models import Council, Role
    from app.scheduler import run_job
    from tests.factories import make_user

    scene = make_scene()
    council_id = scene.council.id
    soon = (now + timedelta(days=10)).date()

    def plans_due_soon(count: int) -> None:
        council = db.session.get(Council, council_id)
        assert council is not None
        for _ in range(count):
            plan = services.create_plan(
                council=council,
                carer=make_user(Role.CARER, council=council),
                writer=make_user(Role.PLAN_WRITER, council=council),
                answers=plan_answers(1),
                cipher=cipher(),
                now=now,
            )
            plan.review_due = soon
        db.session.commit()

    def people_queries() -> tuple[int, list[str]]:
        db.session.expunge_all()
        start = len(sql_count)
        result = run_job("plan_review_reminders", now)
        return result["reminded"], [s for s in sql_count[start:] if "FROM users" in s]

    plans_due_soon(1)
    reminded_one, one = people_queries()
    plans_due_soon(6)
    reminded_many, many = people_queries()
    assert (reminded_one, reminded_many) == (1, 6)  # each plan reminded once only
    assert len(many) == len(one)
