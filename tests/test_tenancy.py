"""Councils are tenants (issue 2): every record that belongs to a council carries its id.

A table without council_id must be in COUNCIL_FREE_TABLES with the reason; a child
table's council is its parent's, which the database itself keeps for the tables with a
(parent_id, council_id) foreign key, and the services keep for the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

import booking.models  # noqa: F401 - every model is on Base.metadata
import emergency.models
import emergency.phone_models  # noqa: F401
from app.extensions import db
from app.models import Base, Council, User
from booking.models.workers import (
    AvailabilityException,
    AvailabilityRule,
    CheckKind,
    DecisionKind,
    VettingDecision,
    WorkerCheck,
    WorkerLanguage,
    WorkerProfile,
    WorkerSkill,
)
from booking.services import availability, vetting
from booking.services.workers import toggle_favourite
from emergency import phone_services, services
from emergency.models import CascadeAttempt, Contact, Incident, IncidentEvent, PlanVersion
from emergency.phone_models import CascadeCall
from tests.booking.factories_workers import add_checks, make_worker, profile_for
from tests.emergency.factories import Scene, make_card, make_plan, make_scene, pin_key
from tests.factories import CouncilFactory

# The tables that stay without council_id, and why. Nothing else may.
COUNCIL_FREE_TABLES = {
    "councils": "the tenants themselves",
    "user_roles": "a person's roles; the person (users.council_id) carries the council, "
    "and admins belong to none",
    "api_tokens": "a person's sign-in credential, scoped through its user",
    "calendar_feeds": "a person's secret feed URL; it shows that person's own breaks",
    "idempotency_records": "replay protection of one user's API requests, not council data",
    "processed_webhooks": "Stripe and Twilio event ids seen once, for the whole service",
    "provider_admins": "links one person to the organisation they manage (one row per "
    "user); provider_organisations carries the council",
}

# Tables that had their council only through a parent: (parent id column, parent table,
# the parent's column it points at). The council must be the parent's.
PARENT_OF = {
    "worker_skills": ("profile_id", "worker_profiles", "id"),
    "worker_languages": ("profile_id", "worker_profiles", "id"),
    "worker_checks": ("profile_id", "worker_profiles", "id"),
    "vetting_decisions": ("profile_id", "worker_profiles", "id"),
    "availability_rules": ("profile_id", "worker_profiles", "id"),
    "availability_exceptions": ("profile_id", "worker_profiles", "id"),
    "favourites": ("carer_id", "users", "id"),
    "emergency_plan_versions": ("plan_id", "emergency_plans", "id"),
    "emergency_contacts": ("plan_version_id", "emergency_plan_versions", "id"),
    "emergency_incident_events": ("incident_id", "emergency_incidents", "id"),
    "emergency_cascade_attempts": ("incident_id", "emergency_incidents", "id"),
    "phone_cascade_calls": ("incident_id", "emergency_incidents", "id"),
}
# Other rows these children point at, which must be in the same council too.
ALSO_SAME_COUNCIL = [
    ("favourites", "worker_id", "worker_profiles", "user_id"),
    ("emergency_cascade_attempts", "contact_id", "emergency_contacts", "id"),
    ("phone_cascade_calls", "contact_id", "emergency_contacts", "id"),
]
# Where the database refuses a child in another council than its parent's.
DATABASE_KEPT = set(PARENT_OF) - {"favourites"}


def test_every_table_carries_council_id_unless_listed_with_a_reason() -> None:
    without = {t.name for t in Base.metadata.tables.values() if "council_id" not in t.c}
    assert without == set(COUNCIL_FREE_TABLES)


@pytest.mark.parametrize("table", sorted(PARENT_OF))
def test_children_have_a_required_indexed_council_id(table: str) -> None:
    column = Base.metadata.tables[table].c.council_id
    assert not column.nullable
    assert column.index
    assert {fk.column.table.name for fk in column.foreign_keys} >= {"councils"}
    parent_column, parent, _key = PARENT_OF[table]
    composite = [
        fk
        for fk in Base.metadata.tables[table].foreign_key_constraints
        if fk.referred_table.name == parent and len(fk.columns) == 2
    ]
    if table in DATABASE_KEPT:
        [fk] = composite
        assert [c.name for c in fk.columns] == [parent_column, "council_id"]
    else:
        assert composite == []


# --- every child's council is its parent's, for the demo council and another --------------


def _demo_pin(lines: list[str]) -> str:
    [line] = [line for line in lines if line.startswith("Emergency card PIN for")]
    return line.rsplit(" ", 1)[-1]


def _incident_with_calls(pin: str, operator: User, now: datetime) -> Incident:
    incident = services.lookup_pin(
        pin,
        channel="console",
        operator=operator,
        caller_number=None,
        ip_address=None,
        pin_key=pin_key(),
        now=now,
    ).incident
    services.start_cascade(incident, now=now)
    phone_services.place_cascade_calls(now=now, max_attempts=3, retry_minutes=5)
    db.session.commit()
    return incident


def _time_off(worker: User, now: datetime) -> None:
    availability.add_exception(
        profile_for(worker),
        availability.ExceptionSlot(now + timedelta(days=2), now + timedelta(days=2, hours=3)),
        actor=worker,
        now=now,
    )


def _seed_demo_council(now: datetime) -> Council:
    from app.demo import seed

    lines = list(seed(now=now, password_method="pbkdf2:sha256:1000"))
    demo = db.session.scalars(select(User).where(User.email.like("%@demo.example")))
    by_email = {u.email: u for u in demo}
    carer, worker = by_email["carer@demo.example"], by_email["worker@demo.example"]
    toggle_favourite(carer, worker.id, now=now)
    _time_off(worker, now)
    _incident_with_calls(_demo_pin(lines), by_email["operator@demo.example"], now)
    assert carer.council is not None
    return carer.council


def _seed_other_council(now: datetime) -> Council:
    scene = make_scene()
    worker = make_worker(scene.council, approved=False, skills=("cooking",))
    today = now.date()
    add_checks(
        profile_for(worker),
        issued_on=today - timedelta(days=30),
        expires_on=today + timedelta(days=400),
    )
    vetting.approve_worker(scene.officer, worker.id, now=now)
    toggle_favourite(scene.carer, worker.id, now=now)
    _time_off(worker, now)
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    _incident_with_calls(issued.pin, scene.operator, now)
    return scene.council


def test_every_childs_council_is_its_parents(now: datetime) -> None:
    councils = {_seed_demo_council(now).id, _seed_other_council(now).id}
    assert len(councils) == 2
    checks = [(t, *PARENT_OF[t]) for t in PARENT_OF] + ALSO_SAME_COUNCIL
    for table, column, parent, key in checks:
        rows = db.session.execute(
            text(
                f"SELECT c.council_id, p.council_id FROM {table} c "  # noqa: S608
                f"LEFT JOIN {parent} p ON p.{key} = c.{column}"
            )
        ).all()
        seen = {child for child, _ in rows}
        assert councils <= seen, f"{table} has no rows in one of the councils: {seen}"
        wrong = [row for row in rows if row[0] != row[1]]
        assert wrong == [], f"{table}.council_id differs from {parent}'s: {wrong}"


# --- the database refuses a child in another council than its parent's --------------------


@dataclass
class Parents:
    profile: WorkerProfile
    version: PlanVersion
    contact: Contact
    incident: Incident


@pytest.fixture
def parents(now: datetime) -> Parents:
    scene: Scene = make_scene()
    worker = make_worker(scene.council)
    plan = make_plan(scene, now=now)
    incident = services.lookup_pin(
        make_card(scene, plan, now=now).pin,
        channel="console",
        operator=scene.operator,
        caller_number=None,
        ip_address=None,
        pin_key=pin_key(),
        now=now,
    ).incident
    version = plan.versions[-1]
    return Parents(profile_for(worker), version, version.contacts[0], incident)


NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
ROWS: dict[str, Callable[[Parents, int], Any]] = {
    "worker_skills": lambda p, c: WorkerSkill(
        profile_id=p.profile.id, council_id=c, skill="gardening"
    ),
    "worker_languages": lambda p, c: WorkerLanguage(
        profile_id=p.profile.id, council_id=c, language="welsh"
    ),
    "worker_checks": lambda p, c: WorkerCheck(
        profile_id=p.profile.id,
        council_id=c,
        kind=CheckKind.INSURANCE,
        reference="INS-1",
        issued_on=date(2026, 1, 1),
    ),
    "vetting_decisions": lambda p, c: VettingDecision(
        profile_id=p.profile.id, council_id=c, decision=DecisionKind.SUSPENDED
    ),
    "availability_rules": lambda p, c: AvailabilityRule(
        profile_id=p.profile.id, council_id=c, weekday=0, start_time=time(9), end_time=time(10)
    ),
    "availability_exceptions": lambda p, c: AvailabilityException(
        profile_id=p.profile.id, council_id=c, starts_at=NOW, ends_at=NOW + timedelta(hours=1)
    ),
    "emergency_plan_versions": lambda p, c: PlanVersion(
        plan_id=p.version.plan_id,
        council_id=c,
        number=99,
        details_encrypted="x",
        consent_cared_for="yes",
        consent_recorded_by="Test",
        consent_recorded_on=date(2026, 11, 1),
    ),
    "emergency_contacts": lambda p, c: Contact(
        plan_version_id=p.version.id,
        council_id=c,
        position=99,
        name="Another Contact",
        relationship_to_carer="Friend",
        phone="+447911100999",
    ),
    "emergency_incident_events": lambda p, c: IncidentEvent(
        incident_id=p.incident.id, council_id=c, kind="note"
    ),
    "emergency_cascade_attempts": lambda p, c: CascadeAttempt(
        incident_id=p.incident.id,
        council_id=c,
        contact_id=p.contact.id,
        position=1,
        started_at=NOW,
        due_at=NOW + timedelta(minutes=10),
    ),
    "phone_cascade_calls": lambda p, c: CascadeCall(
        incident_id=p.incident.id, council_id=c, contact_id=p.contact.id, attempt_number=1
    ),
}


def test_every_database_kept_table_has_a_row_to_try() -> None:
    assert set(ROWS) == DATABASE_KEPT


@pytest.mark.parametrize("table", sorted(ROWS))
def test_the_database_refuses_a_child_in_another_council(table: str, parents: Parents) -> None:
    own = parents.profile.council_id
    other: Council = CouncilFactory()
    right = ROWS[table](parents, own)
    assert right.__table__.name == table
    with db.session.begin_nested():
        db.session.add(right)  # the same row in its parent's council is accepted
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.add(ROWS[table](parents, other.id))


def test_sqlite_enforces_foreign_keys_in_the_app(is_postgres: bool) -> None:
    """The refusals above need SQLite's foreign keys on, which the app turns on for every
    connection (and the migrations switch back on when they finish)."""
    if not is_postgres:
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
