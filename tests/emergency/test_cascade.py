"""The contact cascade run by the scheduler's jobs, confirmations, replacement care,
the free-care window, and drills that contact nobody real."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.clock import utcnow
from app.errors import DomainError
from app.extensions import db
from app.models import OutboxMessage, Role
from app.scheduler import run_job
from booking.models.bookings import Booking, BookingStatus, FundedBy
from booking.models.budgets import LedgerEntry
from emergency import services
from emergency.models import CascadeStatus, EmergencyScheme, Incident
from emergency.services import care
from tests.booking.factories_bookings import make_worker as make_booking_worker
from tests.emergency.factories import (
    SECRET_MEDICINE,
    cipher,
    make_card,
    make_plan,
    make_scene,
    make_worker_free_now,
    pin_key,
    plan_answers,
)
from tests.factories import make_user


def _open(scene: Any, now: datetime, **plan_kwargs: Any) -> Incident:
    issued = make_card(scene, make_plan(scene, now=now, **plan_kwargs), now=now)
    return services.lookup_pin(
        issued.pin,
        channel="console",
        operator=scene.operator,
        caller_number=None,
        ip_address=None,
        pin_key=pin_key(),
        now=now,
    ).incident


def _sms_to(phone: str) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.recipient == phone, OutboxMessage.kind == "sms"
            )
        )
    )


def test_cascade_runs_through_three_contacts_then_arranges_care(now: datetime) -> None:
    scene = make_scene(timeout_minutes=10)
    worker = make_worker_free_now(scene.council, now=now)
    incident = _open(scene, now)
    contacts = services.plan_contacts(incident.plan)
    services.start_cascade(incident, now=now)
    services.start_cascade(incident, now=now)  # idempotent
    assert [len(_sms_to(c.phone)) for c in contacts] == [1, 0, 0]
    body = _sms_to(contacts[0].phone)[0].payload["body"]
    assert "Reply YES" in body
    assert SECRET_MEDICINE not in body
    assert "Penicillin" not in body

    assert run_job("emergency_cascade", now + timedelta(minutes=5)) == {"advanced": 0}
    run_job("emergency_cascade", now + timedelta(minutes=11))
    assert [len(_sms_to(c.phone)) for c in contacts] == [1, 1, 0]
    run_job("emergency_cascade", now + timedelta(minutes=11))  # nothing new yet
    run_job("emergency_cascade", now + timedelta(minutes=22))
    assert [len(_sms_to(c.phone)) for c in contacts] == [1, 1, 1]
    assert incident.care_arranged_at is None
    run_job("emergency_cascade", now + timedelta(minutes=33))
    db.session.refresh(incident)
    assert incident.cascade_status is CascadeStatus.EXHAUSTED
    assert incident.care_arranged_at is not None
    arranged = [e for e in services.events_of(incident) if e.kind == "care_arranged"]
    assert len(arranged) == 1
    assert arranged[0].details["worker_id"] == worker.id
    assert arranged[0].details["funded_by"] == "scheme_emergency_budget"
    # A real booking on the scheme's money, confirmed, for the plan's care hours.
    booking = db.session.get(Booking, incident.booking_id)
    assert booking is not None
    assert booking.worker_id == worker.id
    assert booking.funded_by is FundedBy.SCHEME
    assert booking.status is BookingStatus.CONFIRMED
    assert booking.carer_id == scene.carer.id
    assert booking.ends_at - booking.starts_at == timedelta(hours=48)
    assert booking.notes is None  # health details stay in the plan
    assert arranged[0].details["price_pence"] == booking.price_pence > 0
    kinds = [e.kind for e in services.events_of(incident)]
    assert kinds.count("cascade_contact_tried") == 3
    assert kinds.count("cascade_timeout") == 3
    # The carer hears that care is on its way (no health details).
    carer_sms = _sms_to(scene.carer.phone)
    assert len(carer_sms) == 1
    assert "care worker is on their way" in carer_sms[0].payload["body"]
    # Running the job again changes nothing.
    assert run_job("emergency_cascade", now + timedelta(minutes=60)) == {"advanced": 0}


def test_operator_books_a_worker_they_phoned_on_the_scheme_budget(now: datetime) -> None:
    """Nobody is marked free now: the operator phones an approved worker and books them.
    The carer's own budget is never touched."""
    scene = make_scene(timeout_minutes=10)
    busy = make_booking_worker(
        scene.council, name="Bea Busy", now=now, start=time(3, 0), end=time(4, 0)
    )
    incident = _open(scene, now, contacts=1)
    found = services.find_replacement_care(incident, now=now)
    assert [o.worker_id for o in found.options] == [busy.id]
    assert found.options[0].free_now is False
    assert any("Phone one of these" in n for n in found.notes)
    # The automatic path books only someone free now, so it falls back to the duty team.
    services.start_cascade(incident, now=now)
    run_job("emergency_cascade", now + timedelta(minutes=11))
    db.session.refresh(incident)
    assert incident.care_arranged_at is None
    assert "fallback" in [e.kind for e in services.events_of(incident)]

    services.arrange_replacement_care(
        incident, by=scene.operator, now=now + timedelta(minutes=15), worker_id=busy.id
    )
    booking = db.session.get(Booking, incident.booking_id)
    assert booking is not None
    assert booking.worker_id == busy.id
    assert booking.funded_by is FundedBy.SCHEME
    assert booking.requested_by_id == scene.operator.id
    assert db.session.scalars(select(LedgerEntry)).all() == []
    assert care.emergency_spend_pence(scene.council.id) == booking.price_pence


def test_operator_cannot_book_a_worker_already_booked_then(now: datetime) -> None:
    scene = make_scene()
    worker = make_worker_free_now(scene.council, now=now)
    first = _open(scene, now, contacts=1)
    services.arrange_replacement_care(first, by=scene.operator, now=now, worker_id=worker.id)
    other_carer = make_user(Role.CARER, council=scene.council, name="Second Carer")
    scene2 = type(scene)(**{**vars(scene), "carer": other_carer})
    second = _open(scene2, now, contacts=1)
    found = services.find_replacement_care(second, now=now)
    assert worker.id not in [o.worker_id for o in found.options if o.free_now]
    with pytest.raises(DomainError) as refused:
        services.arrange_replacement_care(second, by=scene.operator, now=now, worker_id=worker.id)
    assert refused.value.code in {"slot_taken", "worker_not_bookable"}
    db.session.refresh(second)
    assert second.booking_id is None
    assert second.care_arranged_at is None


def test_overspending_the_emergency_budget_still_books_and_warns(now: datetime) -> None:
    scene = make_scene()
    scheme = db.session.scalar(select(EmergencyScheme))
    assert scheme is not None
    scheme.emergency_budget_pence = 1000
    db.session.commit()
    make_worker_free_now(scene.council, now=now)
    incident = _open(scene, now, contacts=1)
    services.arrange_replacement_care(incident, by=scene.operator, now=now)
    assert incident.booking_id is not None
    warnings = [e for e in services.events_of(incident) if e.kind == "budget_warning"]
    assert len(warnings) == 1
    assert "overspent" in warnings[0].text


def test_sms_yes_confirms_and_stops_the_cascade(now: datetime) -> None:
    scene = make_scene(timeout_minutes=10)
    incident = _open(scene, now)
    contacts = services.plan_contacts(incident.plan)
    services.start_cascade(incident, now=now)
    run_job("emergency_cascade", now + timedelta(minutes=11))
    found = services.find_active_cascade_contact_by_phone(
        contacts[1].phone, now=now + timedelta(minutes=12)
    )
    assert found is not None
    assert found[0].id == incident.id
    assert found[1].id == contacts[1].id
    assert services.find_active_cascade_contact_by_phone(contacts[2].phone, now=now) is None
    services.confirm_contact(incident, contacts[1], via="sms", now=now + timedelta(minutes=12))
    services.confirm_contact(incident, contacts[1], via="sms", now=now + timedelta(minutes=13))
    assert incident.cascade_status is CascadeStatus.CONFIRMED
    assert incident.contact_confirmed_at == now + timedelta(minutes=12)
    run_job("emergency_cascade", now + timedelta(hours=2))
    assert _sms_to(contacts[2].phone) == []
    assert incident.care_arranged_at is None
    assert "agreed to step in" in _sms_to(scene.carer.phone)[0].payload["body"]
    assert [e.kind for e in services.events_of(incident)].count("contact_confirmed") == 1


def test_contacts_who_cannot_step_in_are_skipped(now: datetime) -> None:
    scene = make_scene()
    answers = plan_answers(2)
    answers["contacts"][0]["can_step_in"] = False
    plan = services.create_plan(
        council=scene.council,
        carer=scene.carer,
        writer=scene.writer,
        answers=answers,
        cipher=cipher(),
        now=now,
    )
    issued = make_card(scene, plan, now=now)
    incident = services.lookup_pin(
        issued.pin,
        channel="api",
        operator=scene.operator,
        caller_number=None,
        ip_address=None,
        pin_key=pin_key(),
        now=now,
    ).incident
    services.start_cascade(incident, now=now)
    contacts = services.plan_contacts(plan)
    assert _sms_to(contacts[0].phone) == []
    assert len(_sms_to(contacts[1].phone)) == 1


def test_drill_contacts_nobody_real(now: datetime) -> None:
    scene = make_scene(timeout_minutes=10)
    make_worker_free_now(scene.council, now=now)
    incident = _open(scene, now, is_test=True)
    assert incident.is_drill
    before = db.session.scalars(select(OutboxMessage)).all()
    services.start_cascade(incident, now=now)
    for minutes in (11, 22, 33):
        run_job("emergency_cascade", now + timedelta(minutes=minutes))
    assert db.session.scalars(select(OutboxMessage)).all() == before
    db.session.refresh(incident)
    assert incident.care_arranged_at is not None
    assert incident.booking_id is None
    assert [e.kind for e in services.events_of(incident)].count("drill_message") >= 4


def test_care_window_warning_before_it_ends(now: datetime) -> None:
    scene = make_scene(free_hours=24)
    make_worker_free_now(scene.council, now=now)
    incident = _open(scene, now)
    services.arrange_replacement_care(incident, by=scene.operator, now=now)
    assert incident.care_window_ends_at == now + timedelta(hours=24)
    assert run_job("care_window_warnings", now + timedelta(hours=21)) == {"warned": 0}
    assert run_job("care_window_warnings", now + timedelta(hours=22, minutes=1)) == {"warned": 1}
    assert run_job("care_window_warnings", now + timedelta(hours=23)) == {"warned": 0}
    assert "care_window_warning" in [e.kind for e in services.events_of(incident)]
    assert any("ends at" in m.payload["body"] for m in _sms_to(scene.carer.phone))


def test_no_worker_falls_back_to_the_duty_team(now: datetime) -> None:
    scene = make_scene()
    incident = _open(scene, now, contacts=1)
    services.arrange_replacement_care(incident, by=scene.operator, now=now)
    fallback = [e for e in services.events_of(incident) if e.kind == "fallback"]
    assert fallback
    assert scene.council.duty_team_phone in fallback[0].text


def test_flask_jobs_run_moves_the_cascade_on(app: Any, now: datetime) -> None:
    """The same code path as the scheduler: `flask jobs run emergency_cascade`."""
    scene = make_scene(timeout_minutes=10)
    earlier = now - timedelta(minutes=15)
    incident = _open(scene, earlier, contacts=2)
    services.start_cascade(incident, now=earlier)
    result = app.test_cli_runner().invoke(args=["jobs", "run", "emergency_cascade"])
    assert result.exit_code == 0, result.output
    second = services.plan_contacts(incident.plan)[1]
    assert len(_sms_to(second.phone)) == 1


def test_demo_seed_is_idempotent(app: Any) -> None:
    from app.demo import seed
    from emergency.models import Card

    first = list(seed(now=utcnow(), password_method="pbkdf2:sha256:1000"))
    cards = db.session.scalar(select(func.count(Card.id)))
    second = list(seed(now=utcnow(), password_method="pbkdf2:sha256:1000"))
    assert any("Emergency card PIN" in line for line in first)
    assert db.session.scalar(select(func.count(Card.id))) == cards == 2
    assert not any("Emergency card PIN" in line for line in second)


def test_flask_jobs_run_drives_the_cascade_to_an_emergency_booking(app: Any, now: datetime) -> None:
    """The same path as the scheduler, through the command staff would type:
    `flask jobs run emergency_cascade`, at each contact's timeout."""
    import time_machine

    scene = make_scene(timeout_minutes=10)
    worker = make_worker_free_now(scene.council, now=now)
    incident = _open(scene, now)
    contacts = services.plan_contacts(incident.plan)
    services.start_cascade(incident, now=now)
    runner = app.test_cli_runner()
    texted = []
    for minutes in (11, 22, 33):
        with time_machine.travel(now + timedelta(minutes=minutes), tick=False):
            result = runner.invoke(args=["jobs", "run", "emergency_cascade"])
        assert result.exit_code == 0, result.output
        assert "emergency_cascade:" in result.output
        texted.append([len(_sms_to(c.phone)) for c in contacts])
    assert texted == [[1, 1, 0], [1, 1, 1], [1, 1, 1]]
    db.session.expire_all()
    incident = db.session.get(Incident, incident.id)
    assert incident is not None
    assert incident.cascade_status is CascadeStatus.EXHAUSTED
    booking = db.session.get(Booking, incident.booking_id)
    assert booking is not None
    assert booking.worker_id == worker.id
    assert booking.funded_by is FundedBy.SCHEME


def test_a_contact_who_says_no_moves_the_cascade_on_once_and_the_last_no_ends_it_at_once(
    now: datetime,
) -> None:
    from emergency.services.cascade import contact_declined

    scene = make_scene(timeout_minutes=10)
    incident = _open(scene, now, contacts=2)
    first, second = services.plan_contacts(incident.plan)
    services.start_cascade(incident, now=now)

    assert contact_declined(incident, first, said="replied NO by SMS", now=now) is True
    assert [len(_sms_to(c.phone)) for c in (first, second)] == [1, 1]
    # A second NO from someone the cascade has already passed changes only the timeline.
    assert contact_declined(incident, first, said="replied NO by SMS", now=now) is False
    assert len(_sms_to(second.phone)) == 1
    assert incident.cascade_position == second.position

    assert contact_declined(incident, second, said="pressed 2 on the automated call", now=now)
    db.session.refresh(incident)
    assert incident.cascade_status is CascadeStatus.EXHAUSTED  # now, not after two timeouts
    kinds = [e.kind for e in services.events_of(incident)]
    assert kinds.count("cascade_timeout") == 0
    assert kinds.count("cascade_exhausted") == 1


def test_a_no_from_someone_not_in_the_plan_is_refused(now: datetime) -> None:
    from emergency.services.cascade import contact_declined

    scene = make_scene()
    incident = _open(scene, now, contacts=1)
    other = _open(make_scene(), now, contacts=1)
    [stranger] = services.plan_contacts(other.plan)
    with pytest.raises(DomainError):
        contact_declined(incident, stranger, said="replied NO by SMS", now=now)
