"""Messages Twilio could not deliver reach staff: a later `undelivered`/`failed` report
makes the outbox row failed (with Twilio's error code), a failed cascade SMS or call goes
on the incident's timeline and the cascade treats that contact as not reached. A report
that arrives before the row has saved Twilio's SID is not lost."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from app import outbox
from app.extensions import db
from app.models import Council, OutboxMessage, OutboxStatus, Role
from app.scheduler import run_job
from emergency.models import CascadeAttempt, CascadeStatus, Incident, IncidentEvent
from emergency.phone_models import CascadeCall
from emergency.services import start_cascade
from tests.emergency.factories_phone import (
    BASE,
    TOKEN,
    make_plan_with_card,
    signed_post,
)
from tests.factories import CouncilFactory, make_user
from tests.helpers import sign_in

SID = "AC" + "1" * 32
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
CALLS_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Calls.json"


@pytest.fixture(autouse=True)
def _twilio(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "NOTIFY_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM_NUMBER": "+447700900001",
        "TWILIO_MESSAGING_SERVICE_SID": "",
        "TWILIO_STATUS_CALLBACK_BASE_URL": "",
        "PUBLIC_BASE_URL": BASE,
        "OUTBOX_MAX_ATTEMPTS": 8,
        "CASCADE_CALL_ATTEMPTS": 1,
        "CASCADE_CALL_RETRY_MINUTES": 3,
    }.items():
        monkeypatch.setitem(app.config, key, value)


@pytest.fixture
def council() -> Council:
    made: Council = CouncilFactory()
    return made


# The outbox job runs a moment after the test's `now` (rows enqueued without a time are
# due from the moment they were written).
SOON = timedelta(seconds=5)


def _deliver(
    now: datetime, *, sms: dict[str, Any], call: dict[str, Any] | None = None
) -> list[Any]:
    """Run the outbox (at `now` + SOON) with the real Twilio SDK; Twilio answers as
    given. Returns the requests Twilio received."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as twilio:
        twilio.add(responses.POST, MESSAGES_URL, **sms)
        twilio.add(
            responses.POST,
            CALLS_URL,
            **(call or {"json": {"sid": "CA" + "c" * 32, "status": "queued"}, "status": 201}),
        )
        run_job("deliver_outbox", now=now + SOON)
        db.session.expire_all()
        return list(twilio.calls)


def _report(client: FlaskClient, message: OutboxMessage, **params: str) -> None:
    path = f"/twilio/status?outbox={message.id}"
    assert signed_post(client, path, params).status_code == 204


def _open_cascade(council: Council, now: datetime) -> tuple[Incident, Any]:
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


def _cascade_sms(incident: Incident, contact: Any) -> OutboxMessage:
    message = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.dedupe_key == f"cascade-{incident.id}-{contact.id}-sms"
        )
    )
    assert message is not None
    return message


def _timeline(incident: Incident) -> list[str]:
    return list(
        db.session.scalars(
            select(IncidentEvent.text)
            .where(IncidentEvent.incident_id == incident.id)
            .order_by(IncidentEvent.id)
        )
    )


def test_an_sms_twilio_later_reports_undelivered_is_failed_for_staff(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    message = outbox.enqueue(
        "sms", recipient="+447700900123", payload={"body": "Hello"}, council_id=council.id
    )
    assert message is not None
    db.session.commit()
    sms = {"json": {"sid": "SM" + "1" * 32, "status": "queued"}, "status": 201}
    [sent] = _deliver(now, sms=sms)
    assert "StatusCallback=" in sent.request.body
    db.session.refresh(message)
    assert (message.status, message.provider_ref) == (OutboxStatus.SENT, "SM" + "1" * 32)

    _report(
        client,
        message,
        MessageSid="SM" + "1" * 32,
        MessageStatus="undelivered",
        ErrorCode="30003",
    )

    db.session.refresh(message)
    assert message.status is OutboxStatus.DEAD
    assert message.delivery_status == "undelivered"
    assert message.last_error == "Twilio reported error 30003 (undelivered)"
    sign_in(client, make_user(Role.OPERATOR, council=council))
    failed = client.get("/staff/outbox?status=dead").get_data(as_text=True)
    assert "+447700900123" in failed
    assert "Twilio reported error 30003 (undelivered)" in failed
    assert "Failed (undelivered)" in failed
    # Replayed, the report changes nothing; staff may send it again.
    _report(client, message, MessageSid="SM" + "1" * 32, MessageStatus="undelivered")
    assert client.post(f"/staff/outbox/{message.id}/retry").status_code == 302
    db.session.refresh(message)
    assert message.status is OutboxStatus.PENDING


def test_a_failed_cascade_sms_goes_on_the_incident_timeline(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    incident, card = _open_cascade(council, now)
    sms = _cascade_sms(incident, card.contacts[0])
    _deliver(now, sms={"json": {"sid": "SM" + "2" * 32, "status": "queued"}, "status": 201})

    _report(client, sms, MessageSid="SM" + "2" * 32, MessageStatus="failed", ErrorCode="30008")

    db.session.refresh(sms)
    assert sms.status is OutboxStatus.DEAD
    assert (
        f"The SMS to {card.contacts[0].name} could not be delivered "
        "(Twilio reported error 30008 (failed))." in _timeline(incident)
    )


def test_a_contact_whose_sms_failed_and_whose_calls_all_missed_is_passed_over_at_once(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    incident, card = _open_cascade(council, now)
    first, second = card.contacts
    _deliver(now, sms={"json": {"sid": "SM" + "3" * 32, "status": "queued"}, "status": 201})
    _report(
        client,
        _cascade_sms(incident, first),
        MessageSid="SM" + "3" * 32,
        MessageStatus="undelivered",
        ErrorCode="30005",
    )
    assert run_job("phone_cascade_calls", now=now) == {"queued": 1}
    _deliver(now, sms={"json": {"sid": "SM" + "4" * 32, "status": "queued"}, "status": 201})
    call = db.session.scalars(select(CascadeCall)).one()
    message = db.session.get(OutboxMessage, call.outbox_message_id)
    assert message is not None
    _report(client, message, CallSid="CA" + "c" * 32, CallStatus="no-answer")
    db.session.refresh(call)
    assert call.outcome == "not_reached"

    # The scheme's timeout (10 minutes) has not passed: the job moves on anyway.
    later = now + timedelta(minutes=1)
    assert run_job("phone_cascade_calls", now=later) == {"queued": 1}

    db.session.refresh(incident)
    assert incident.cascade_position == second.position
    attempts = db.session.execute(
        select(CascadeAttempt.contact_id, CascadeAttempt.outcome)
        .where(CascadeAttempt.incident_id == incident.id)
        .order_by(CascadeAttempt.id)
    ).all()
    assert [tuple(a) for a in attempts] == [(first.id, "unreachable"), (second.id, "waiting")]
    assert (
        f"{first.name} could not be reached: their SMS was not delivered and 1 call did not "
        "reach them. Asking the next contact now." in _timeline(incident)
    )
    calls = db.session.scalars(select(CascadeCall).order_by(CascadeCall.id)).all()
    assert [c.contact_id for c in calls] == [first.id, second.id]  # the next one is called


def test_a_contact_whose_sms_arrived_is_waited_for_even_when_calls_missed(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    incident, card = _open_cascade(council, now)
    _deliver(now, sms={"json": {"sid": "SM" + "5" * 32, "status": "queued"}, "status": 201})
    _report(
        client,
        _cascade_sms(incident, card.contacts[0]),
        MessageSid="SM" + "5" * 32,
        MessageStatus="delivered",
    )
    run_job("phone_cascade_calls", now=now)
    _deliver(now, sms={"json": {"sid": "SM" + "6" * 32, "status": "queued"}, "status": 201})
    message = db.session.get(
        OutboxMessage, db.session.scalars(select(CascadeCall)).one().outbox_message_id
    )
    assert message is not None
    _report(client, message, CallSid="CA" + "c" * 32, CallStatus="busy")

    assert run_job("phone_cascade_calls", now=now + timedelta(minutes=5)) == {"queued": 0}

    db.session.refresh(incident)
    assert incident.cascade_position == card.contacts[0].position  # they may still reply YES
    assert incident.cascade_status is CascadeStatus.RUNNING


def test_a_cascade_call_twilio_refuses_is_not_reached_and_tried_again(
    app: Flask,
    client: FlaskClient,
    council: Council,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "CASCADE_CALL_ATTEMPTS", 2)
    incident, card = _open_cascade(council, now)
    run_job("phone_cascade_calls", now=now)
    refused = {
        "json": {"status": 400, "code": 13224, "message": "Invalid phone number"},
        "status": 400,
    }
    _deliver(
        now,
        sms={"json": {"sid": "SM" + "7" * 32, "status": "queued"}, "status": 201},
        call=refused,
    )

    call = db.session.scalars(select(CascadeCall)).one()
    message = db.session.get(OutboxMessage, call.outbox_message_id)
    assert message is not None
    assert message.status is OutboxStatus.DEAD
    assert (call.outcome, call.ended_at) == ("not_reached", now + SOON)
    [event] = [
        t for t in _timeline(incident) if t.startswith(f"The call to {card.contacts[0].name}")
    ]
    assert "could not be made" in event
    assert "code 13224" in event
    retry_at = now + SOON + timedelta(minutes=3)
    assert run_job("phone_cascade_calls", now=retry_at - timedelta(seconds=1)) == {"queued": 0}
    assert run_job("phone_cascade_calls", now=retry_at) == {"queued": 1}


def test_a_report_on_an_earlier_send_of_a_retried_message_changes_nothing(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator = make_user(Role.OPERATOR, council=council)
    message = outbox.enqueue(
        "sms", recipient="+447700900123", payload={"body": "Hello"}, council_id=council.id
    )
    assert message is not None
    db.session.commit()
    _deliver(now, sms={"json": {"sid": "SM" + "8" * 32, "status": "queued"}, "status": 201})
    _report(client, message, MessageSid="SM" + "8" * 32, MessageStatus="failed")
    sign_in(client, operator)
    client.post(f"/staff/outbox/{message.id}/retry")

    # Waiting to go again: a late word about the first send is not about this one.
    _report(client, message, MessageSid="SM" + "8" * 32, MessageStatus="undelivered")
    db.session.refresh(message)
    assert (message.status, message.delivery_status) == (OutboxStatus.PENDING, None)

    _deliver(now, sms={"json": {"sid": "SM" + "9" * 32, "status": "queued"}, "status": 201})
    _report(client, message, MessageSid="SM" + "8" * 32, MessageStatus="read")
    _report(client, message, MessageSid="SM" + "9" * 32, MessageStatus="delivered")
    db.session.refresh(message)
    assert (message.status, message.provider_ref, message.delivery_status) == (
        OutboxStatus.SENT,
        "SM" + "9" * 32,
        "delivered",
    )


def _wait_for_a_lock_wait(timeout: float = 30.0) -> None:
    """Until another session of this database waits on a row lock (PostgreSQL)."""
    deadline = time.monotonic() + timeout
    with db.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            if waiting:
                return
            conn.rollback()
            time.sleep(0.01)
    raise AssertionError("the status report never waited for the delivery's row lock")


@pytest.mark.committing
def test_a_report_that_arrives_before_the_sid_is_saved_is_not_lost(
    app: Flask, is_postgres: bool, now: datetime
) -> None:
    """Twilio can report (here: undelivered) while the sending job is still saving the
    SID. The report names our row and waits for the job's lock, then applies."""
    message = outbox.enqueue("sms", recipient="+447700900123", payload={"body": "Hi"})
    assert message is not None
    db.session.commit()
    message_id = message.id
    db.session.remove()
    sid = "SM" + "f" * 32
    answers: list[int] = []
    errors: list[BaseException] = []

    def report() -> None:
        try:
            with app.app_context():
                params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30005"}
                response = signed_post(
                    app.test_client(), f"/twilio/status?outbox={message_id}", params
                )
                answers.append(response.status_code)
                db.session.remove()
        except BaseException as exc:
            errors.append(exc)

    reporter = threading.Thread(target=report)

    def twilio_accepts(_request: Any) -> tuple[int, dict[str, str], str]:
        reporter.start()  # Twilio reports before our job has committed the SID
        if is_postgres:
            _wait_for_a_lock_wait()
        return 201, {}, json.dumps({"sid": sid, "status": "queued"})

    with responses.RequestsMock() as twilio:
        twilio.add_callback(responses.POST, MESSAGES_URL, callback=twilio_accepts)
        assert run_job("deliver_outbox", now=now + SOON)["sent"] == 1
        db.session.remove()
    reporter.join(timeout=60)

    assert errors == []
    assert answers == [204]
    saved = db.session.get(OutboxMessage, message_id)
    assert saved is not None
    assert (saved.provider_ref, saved.status, saved.delivery_status) == (
        sid,
        OutboxStatus.DEAD,
        "undelivered",
    )
    assert saved.last_error == "Twilio reported error 30005 (undelivered)"
