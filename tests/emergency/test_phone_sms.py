"""Texts and delivery reports: YES by SMS confirms, status callbacks land on the outbox
row, the yearly contact check, and the operators' rota (numbers stored as E.164)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import outbox
from app.clock import utcnow
from app.extensions import db
from app.models import AuditEntry, Council, OutboxMessage, Role
from app.scheduler import run_job
from emergency.models import CascadeStatus, Incident, Plan
from emergency.phone_models import ContactCheck, RotaEntry
from emergency.services import start_cascade
from tests.emergency.factories_phone import BASE, TOKEN, make_plan_with_card, signed_post, twiml
from tests.factories import CouncilFactory, make_user
from tests.helpers import sign_in


@pytest.fixture(autouse=True)
def _twilio_config(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", BASE)


@pytest.fixture
def council() -> Council:
    council: Council = CouncilFactory()
    return council


def _sms(sid: str, from_: str, body: str) -> dict[str, str]:
    return {"MessageSid": sid, "From": from_, "To": "+448000988234", "Body": body}


def _open_incident(council: Council, now: datetime) -> tuple[Incident, object]:
    card = make_plan_with_card(council, now=now)
    incident = Incident(
        council_id=council.id,
        plan_id=card.plan.id,
        plan_version_id=card.version.id,
        source="phone",
        opened_at=now,
    )
    db.session.add(incident)
    db.session.commit()
    start_cascade(incident, now=now)
    return incident, card


def test_yes_by_sms_confirms_the_contact(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    incident, card = _open_incident(council, now)
    contact = card.contacts[0]  # type: ignore[attr-defined]

    root = twiml(signed_post(client, "/twilio/sms", _sms("SM" + "1" * 32, contact.phone, " Yes! ")))

    db.session.refresh(incident)
    assert incident.confirmed_contact_id == contact.id
    assert incident.cascade_status is CascadeStatus.CONFIRMED
    [message] = list(root)
    assert message.tag == "Message"
    assert "operator will call you" in (message.text or "")


def test_anything_else_gets_a_short_plain_reply(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    incident, card = _open_incident(council, now)
    contact = card.contacts[0]  # type: ignore[attr-defined]

    root = twiml(
        signed_post(client, "/twilio/sms", _sms("SM" + "2" * 32, contact.phone, "who is this?"))
    )

    db.session.refresh(incident)
    assert incident.confirmed_contact_id is None
    text = root.findtext("Message") or ""
    assert "Reply YES" in text
    assert len(text) <= 160


def test_a_yes_in_a_national_format_still_matches_the_e164_contact(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    incident, card = _open_incident(council, now)
    contact = card.contacts[0]  # type: ignore[attr-defined]
    national = "0" + contact.phone[3:]
    twiml(signed_post(client, "/twilio/sms", _sms("SM" + "3" * 32, national, "YES")))
    db.session.refresh(incident)
    assert incident.confirmed_contact_id == contact.id


def test_a_replayed_sms_is_answered_once(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    _incident, card = _open_incident(council, now)
    params = _sms("SM" + "4" * 32, card.contacts[0].phone, "hello")  # type: ignore[attr-defined]
    assert twiml(signed_post(client, "/twilio/sms", params)).find("Message") is not None
    assert twiml(signed_post(client, "/twilio/sms", params)).find("Message") is None


# --- status callbacks ---------------------------------------------------------------------


def _sent_sms(now: datetime, sid: str) -> OutboxMessage:
    message = outbox.enqueue("sms", recipient="+447700900123", payload={"body": "Hi"})
    assert message is not None
    message.provider_ref = sid
    message.delivery_status = "queued"
    db.session.commit()
    return message


def test_delivery_status_is_recorded_by_message_sid(client: FlaskClient, now: datetime) -> None:
    message = _sent_sms(now, "SM" + "5" * 32)
    for status in ("sent", "delivered"):
        response = signed_post(
            client, "/twilio/status", {"MessageSid": "SM" + "5" * 32, "MessageStatus": status}
        )
        assert response.status_code == 204
    db.session.refresh(message)
    assert message.delivery_status == "delivered"

    # A late, out-of-order "sent" never overwrites "delivered".
    signed_post(client, "/twilio/status", {"MessageSid": "SM" + "5" * 32, "MessageStatus": "sent"})
    db.session.refresh(message)
    assert message.delivery_status == "delivered"


def test_a_failed_delivery_keeps_twilios_error_code(client: FlaskClient, now: datetime) -> None:
    message = _sent_sms(now, "SM" + "6" * 32)
    signed_post(
        client,
        "/twilio/status",
        {"MessageSid": "SM" + "6" * 32, "MessageStatus": "undelivered", "ErrorCode": "30003"},
    )
    db.session.refresh(message)
    assert message.delivery_status == "undelivered"
    assert "30003" in (message.last_error or "")


def test_status_for_an_unknown_sid_is_accepted_and_ignored(client: FlaskClient) -> None:
    response = signed_post(
        client, "/twilio/status", {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    )
    assert response.status_code == 204


# --- the yearly contact check ---------------------------------------------------------------


def test_contacts_are_asked_once_a_year_and_no_reply_flags_the_plan(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    card = make_plan_with_card(council, now=now, approved_at=now - timedelta(days=366))
    fresh = make_plan_with_card(
        council, now=now, contacts=[("Pat New", "+447911100333")], approved_at=now
    )

    assert run_job("phone_contact_checks", now=now) == {"sent": 2, "flagged": 0}
    assert run_job("phone_contact_checks", now=now + timedelta(days=1)) == {"sent": 0, "flagged": 0}
    sms = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "sms").order_by(OutboxMessage.id)
    ).all()
    assert sorted(m.recipient for m in sms) == sorted(c.phone for c in card.contacts)
    assert all("Please reply YES or NO" in m.payload["body"] for m in sms)
    assert db.session.scalar(select(func.count()).where(ContactCheck.plan_id == fresh.plan.id)) == 0

    # The first contact replies YES; the second never replies.
    twiml(signed_post(client, "/twilio/sms", _sms("SM" + "7" * 32, card.contacts[0].phone, "yes")))
    later = now + timedelta(days=15)
    assert run_job("phone_contact_checks", now=later) == {"sent": 0, "flagged": 1}

    plan = db.session.get(Plan, card.plan.id)
    assert plan is not None
    assert plan.review_due == later.date()
    flagged = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "emergency.plan.flagged_for_review")
    )
    assert flagged is not None
    # Flagging happens once.
    assert run_job("phone_contact_checks", now=later + timedelta(days=1))["flagged"] == 0


def test_a_no_reply_to_the_check_flags_the_plan_at_once(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    card = make_plan_with_card(council, now=now, approved_at=now - timedelta(days=400))
    run_job("phone_contact_checks", now=now)
    root = twiml(
        signed_post(client, "/twilio/sms", _sms("SM" + "8" * 32, card.contacts[1].phone, "No"))
    )
    assert "choose someone else" in (root.findtext("Message") or "")
    check = db.session.scalar(
        select(ContactCheck).where(ContactCheck.phone == card.contacts[1].phone)
    )
    assert check is not None
    assert check.reply == "no"
    assert check.flagged_at is not None


# --- the rota page --------------------------------------------------------------------------


def test_an_operator_puts_someone_on_duty_with_an_e164_number(
    client: FlaskClient, council: Council
) -> None:
    operator = make_user(Role.OPERATOR, council=council)
    sign_in(client, operator)
    response = client.post(
        "/emergency/rota",
        data={
            "operator": operator.id,
            "phone": "07911 123 456",
            "on_duty": "yes",
            "position": "main",
        },
    )
    assert response.status_code == 302
    entry = db.session.scalar(select(RotaEntry).where(RotaEntry.user_id == operator.id))
    assert entry is not None
    assert entry.phone == "+447911123456"
    assert entry.on_duty
    assert not entry.is_backup
    page = client.get("/emergency/rota")
    assert page.status_code == 200
    assert "+447911123456" in page.get_data(as_text=True)


def test_a_bad_number_is_refused_and_nothing_is_saved(
    client: FlaskClient, council: Council
) -> None:
    admin = make_user(Role.ADMIN, council=council)
    operator = make_user(Role.OPERATOR, council=council)
    sign_in(client, admin)
    response = client.post(
        "/emergency/rota",
        data={"operator": operator.id, "phone": "12345", "on_duty": "yes", "position": "main"},
    )
    assert response.status_code == 200
    assert "Enter a real phone number" in response.get_data(as_text=True) or "valid phone" in (
        response.get_data(as_text=True)
    )
    assert db.session.scalar(select(func.count(RotaEntry.id))) == 0


def test_only_operators_can_be_put_on_the_rota(client: FlaskClient, council: Council) -> None:
    admin = make_user(Role.ADMIN, council=council)
    carer = make_user(Role.CARER, council=council)
    sign_in(client, admin)
    response = client.post(
        "/emergency/rota",
        data={"operator": carer.id, "phone": "07911 123 456", "on_duty": "yes", "position": "main"},
    )
    assert response.status_code == 200
    assert db.session.scalar(select(func.count(RotaEntry.id))) == 0


def test_the_rota_is_for_operators_and_admins_only(client: FlaskClient, council: Council) -> None:
    sign_in(client, make_user(Role.PLAN_WRITER, council=council))
    assert client.get("/emergency/rota").status_code == 403


# --- replies from a contact the cascade has asked -------------------------------------------


def test_a_no_from_the_contact_moves_the_cascade_on_at_once(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    from emergency.models import CascadeAttempt, IncidentEvent

    incident, card = _open_incident(council, now)
    first, second = card.contacts  # type: ignore[attr-defined]

    root = twiml(signed_post(client, "/twilio/sms", _sms("SM" + "a" * 32, first.phone, "No sorry")))

    [message] = list(root)
    assert (message.tag, message.text) == (
        "Message",
        "Thank you for letting us know. We will ask someone else.",
    )
    db.session.refresh(incident)
    assert incident.confirmed_contact_id is None
    assert incident.cascade_position == second.position
    outcomes = db.session.execute(
        select(CascadeAttempt.contact_id, CascadeAttempt.outcome)
        .where(CascadeAttempt.incident_id == incident.id)
        .order_by(CascadeAttempt.id)
    ).all()
    assert [tuple(row) for row in outcomes] == [(first.id, "declined"), (second.id, "waiting")]
    to_second = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == second.phone)
    ).all()
    assert [m.kind for m in to_second] == ["sms"]
    texts = db.session.scalars(
        select(IncidentEvent.text)
        .where(IncidentEvent.incident_id == incident.id)
        .order_by(IncidentEvent.id)
    ).all()
    assert (
        f"{first.name} replied NO by SMS: they cannot step in now. Asking the next contact now."
        in texts
    )


def test_any_other_reply_from_the_contact_is_on_the_timeline(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    from emergency.models import IncidentEvent

    incident, card = _open_incident(council, now)
    contact = card.contacts[0]  # type: ignore[attr-defined]

    root = twiml(
        signed_post(
            client, "/twilio/sms", _sms("SM" + "b" * 32, contact.phone, "On my way\nin 20 mins?")
        )
    )

    text = root.findtext("Message") or ""
    assert (
        text == "Thank you. Reply YES if you can help now, NO if you cannot or call +448000988234."
    )
    assert len(text) <= 160
    [event] = db.session.scalars(
        select(IncidentEvent).where(
            IncidentEvent.incident_id == incident.id, IncidentEvent.kind == "sms"
        )
    ).all()
    assert event.text == f'{contact.name} replied by SMS: "On my way in 20 mins?"'
    assert event.details["contact_id"] == contact.id
    db.session.refresh(incident)
    assert incident.cascade_position == contact.position  # still waiting on them


# --- the yearly check when one number is on several plans ----------------------------------


def _two_plans_sharing_a_contact(council: Council, now: datetime) -> tuple[object, object]:
    shared = ("Sam Shared", "+447911100999")
    old = now - timedelta(days=400)
    one = make_plan_with_card(council, now=now, contacts=[shared], approved_at=old)
    two = make_plan_with_card(
        council, now=now, contacts=[shared, ("Alex Other", "+447911100888")], approved_at=old
    )
    return one, two


def test_one_number_on_two_plans_gets_one_sms_and_its_yes_answers_both(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    one, two = _two_plans_sharing_a_contact(council, now)

    assert run_job("phone_contact_checks", now=now) == {"sent": 3, "flagged": 0}

    to_shared = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == "+447911100999")
    ).all()
    assert len(to_shared) == 1
    twiml(signed_post(client, "/twilio/sms", _sms("SM" + "c" * 32, "+447911100999", "YES")))
    checks = db.session.scalars(
        select(ContactCheck).where(ContactCheck.phone == "+447911100999")
    ).all()
    assert sorted(c.plan_id for c in checks) == sorted([one.plan.id, two.plan.id])  # type: ignore[attr-defined]
    assert {c.reply for c in checks} == {"yes"}
    # Later only the other contact, who never replied, flags their plan.
    assert run_job("phone_contact_checks", now=now + timedelta(days=15))["flagged"] == 1


def test_one_number_on_two_plans_saying_no_flags_both_plans(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    one, two = _two_plans_sharing_a_contact(council, now)
    run_job("phone_contact_checks", now=now)

    twiml(signed_post(client, "/twilio/sms", _sms("SM" + "d" * 32, "+447911100999", "no")))

    flagged = db.session.scalars(
        select(AuditEntry.subject_id).where(
            AuditEntry.action == "emergency.plan.flagged_for_review"
        )
    ).all()
    assert sorted(flagged) == sorted([one.plan.id, two.plan.id])  # type: ignore[attr-defined]


def test_a_flag_late_on_a_summer_evening_is_for_the_uk_date(
    client: FlaskClient, council: Council
) -> None:
    from datetime import UTC, date

    # 23:30 UTC on 30 June is 00:30 on 1 July in London (BST).
    late = datetime(2027, 6, 30, 23, 30, tzinfo=UTC)
    card = make_plan_with_card(council, now=late, approved_at=late - timedelta(days=400))
    card.plan.review_due = date(2028, 1, 1)
    db.session.commit()
    run_job("phone_contact_checks", now=late)
    with time_machine.travel(late + timedelta(minutes=5), tick=False):
        twiml(
            signed_post(client, "/twilio/sms", _sms("SM" + "e" * 32, card.contacts[0].phone, "No"))
        )
    plan = db.session.get(Plan, card.plan.id)
    assert plan is not None
    assert plan.review_due == date(2027, 7, 1)


def _count_selects(run: object, table: str) -> int:
    """How many SELECTs that name `table` running `run()` sends to the database."""
    from sqlalchemy import event

    from app.extensions import db as database

    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and table in statement:
            seen.append(statement)

    engine = database.session.get_bind()
    event.listen(engine, "before_cursor_execute", note)
    try:
        run()  # type: ignore[operator]
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return len(seen)


def test_the_yearly_check_reads_plans_and_contacts_in_a_fixed_number_of_queries(
    council: Council, now: datetime
) -> None:
    from emergency.phone_services import send_contact_checks

    old = now - timedelta(days=400)
    for n in range(2):
        make_plan_with_card(
            council, now=now, approved_at=old, contacts=[(f"A{n}", f"+4479111004{n:02d}")]
        )
    few = _count_selects(lambda: send_contact_checks(now=now), "emergency_contacts")
    for n in range(6):
        make_plan_with_card(
            council, now=now, approved_at=old, contacts=[(f"B{n}", f"+4479111005{n:02d}")]
        )
    later = now + timedelta(days=400)
    many = _count_selects(lambda: send_contact_checks(now=later), "emergency_contacts")
    assert few == many == 1
    assert (
        _count_selects(
            lambda: send_contact_checks(now=later + timedelta(days=400)), "phone_contact_checks"
        )
        == 1
    )


# --- the rota belongs to one council ----------------------------------------------------------


def test_the_rota_shows_and_offers_only_the_councils_operators(
    client: FlaskClient, council: Council
) -> None:
    from emergency.phone_services import set_rota_entry

    mine = make_user(Role.OPERATOR, council=council, name="Mo Mine")
    other_council = CouncilFactory()
    theirs = make_user(Role.OPERATOR, council=other_council, name="Tess Theirs")
    set_rota_entry(
        mine, phone_text="07911 123 456", on_duty=True, is_backup=False, by=mine, now=utcnow()
    )
    set_rota_entry(
        theirs, phone_text="07911 223 344", on_duty=True, is_backup=False, by=theirs, now=utcnow()
    )

    sign_in(client, mine)
    page = client.get("/emergency/rota").get_data(as_text=True)

    assert "Mo Mine" in page
    assert "+447911123456" in page
    assert "Tess Theirs" not in page
    assert "+447911223344" not in page
    assert f'value="{theirs.id}"' not in page


def test_putting_another_councils_operator_on_the_rota_is_not_found(
    client: FlaskClient, council: Council
) -> None:
    admin = make_user(Role.ADMIN, council=council)
    theirs = make_user(Role.OPERATOR)
    sign_in(client, admin)

    response = client.post(
        "/emergency/rota",
        data={
            "operator": theirs.id,
            "phone": "07911 123 456",
            "on_duty": "yes",
            "position": "main",
        },
    )

    assert response.status_code == 404
    assert db.session.scalar(select(func.count(RotaEntry.id))) == 0


def test_the_rota_page_reads_each_operator_with_its_row(
    client: FlaskClient, council: Council
) -> None:
    from emergency.phone_services import set_rota_entry

    lead = make_user(Role.OPERATOR, council=council)
    sign_in(client, lead)

    def put_on(count: int) -> None:
        for _ in range(count):
            person = make_user(Role.OPERATOR, council=council)
            set_rota_entry(
                person,
                phone_text="07911 123 456",
                on_duty=True,
                is_backup=False,
                by=lead,
                now=utcnow(),
            )
        db.session.expire_all()

    put_on(2)
    few = _count_selects(lambda: client.get("/emergency/rota"), "users")
    put_on(6)
    many = _count_selects(lambda: client.get("/emergency/rota"), "users")
    assert few == many
