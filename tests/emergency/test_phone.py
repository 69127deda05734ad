"""The voice line as Twilio would drive it: signed webhooks, TwiML checked element by
element, the PIN by keypad, the transfer to the operator and the cascade by phone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.middleware.proxy_fix import ProxyFix

from app.extensions import db
from app.models import Council, OutboxMessage, OutboxStatus
from app.scheduler import run_job
from emergency import phone
from emergency.models import CascadeStatus, Incident, IncidentEvent, PinAttempt
from emergency.phone_models import CascadeCall
from tests.emergency.factories_phone import (
    BASE,
    TOKEN,
    call_params,
    make_plan_with_card,
    mistype,
    operator_on_duty,
    signature,
    signed_post,
    twiml,
)
from tests.factories import CouncilFactory

SID = "AC" + "1" * 32
CALLS_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Calls.json"
WEBHOOKS = [
    "/twilio/voice",
    "/twilio/voice/pin",
    "/twilio/voice/dial",
    "/twilio/voice/cascade",
    "/twilio/sms",
    "/twilio/status",
]


@pytest.fixture(autouse=True)
def _twilio_config(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setitem(app.config, "TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setitem(app.config, "TWILIO_FROM_NUMBER", "+447700900001")
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", BASE)


@pytest.fixture
def council() -> Council:
    council: Council = CouncilFactory()
    return council


def _incidents() -> int:
    return int(db.session.scalar(select(func.count(Incident.id))) or 0)


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# --- signatures ------------------------------------------------------------------------


@pytest.mark.parametrize("path", WEBHOOKS)
def test_unsigned_requests_are_refused(client: FlaskClient, path: str) -> None:
    response = client.post(path, data=call_params(Digits="12345678"))
    assert response.status_code == 403


@pytest.mark.parametrize("path", WEBHOOKS)
def test_wrongly_signed_requests_are_refused(client: FlaskClient, path: str) -> None:
    params = call_params(Digits="12345678")
    wrong_token = signature(path, params, token="someone-elses-token")
    tampered = signature(path, {**params, "Digits": "87654321"})
    other_host = signature(path, params, base="https://attacker.example")
    for bad in (wrong_token, tampered, other_host, ""):
        response = client.post(path, data=params, headers={"X-Twilio-Signature": bad})
        assert response.status_code == 403


def test_the_query_string_is_part_of_what_is_signed(client: FlaskClient) -> None:
    params = call_params()
    signed_for_attempt_2 = signature("/twilio/voice?attempt=2", params)
    response = client.post(
        "/twilio/voice?attempt=3", data=params, headers={"X-Twilio-Signature": signed_for_attempt_2}
    )
    assert response.status_code == 403
    response = client.post(
        "/twilio/voice?attempt=2", data=params, headers={"X-Twilio-Signature": signed_for_attempt_2}
    )
    assert response.status_code == 200


def test_no_auth_token_configured_refuses_everything(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = call_params()
    sig = signature("/twilio/voice", params)
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", "")
    response = client.post("/twilio/voice", data=params, headers={"X-Twilio-Signature": sig})
    assert response.status_code == 403


def test_behind_a_trusted_proxy_the_forwarded_url_is_accepted(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = call_params()
    sig = signature("/twilio/voice", params, base="https://line.example.net")
    headers = {
        "X-Twilio-Signature": sig,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "line.example.net",
    }
    # Without trusted proxy hops the Host header is not believed.
    assert app.test_client().post("/twilio/voice", data=params, headers=headers).status_code == 403

    monkeypatch.setitem(app.config, "PROXY_FIX_HOPS", 1)
    monkeypatch.setattr(app, "wsgi_app", ProxyFix(app.wsgi_app, x_proto=1, x_host=1))
    assert app.test_client().post("/twilio/voice", data=params, headers=headers).status_code == 200


def test_webhooks_are_public_for_the_role_matrix(app: Flask) -> None:
    for name in ("voice", "voice_pin", "voice_dial", "voice_cascade", "sms", "status"):
        assert getattr(app.view_functions[f"phone.{name}"], "is_public", False)


# --- greeting and PIN ------------------------------------------------------------------


def test_a_call_is_greeted_and_asked_for_8_digits(client: FlaskClient) -> None:
    root = twiml(signed_post(client, "/twilio/voice", call_params()))

    gather, redirect = list(root)
    assert gather.tag == "Gather"
    assert gather.attrib["numDigits"] == "8"
    assert gather.attrib["input"] == "dtmf"
    assert gather.attrib["timeout"] == str(phone.GATHER_TIMEOUT_SECONDS)
    assert gather.attrib["method"] == "POST"
    assert gather.attrib["action"] == "/twilio/voice/pin?attempt=1"
    [say] = list(gather)
    assert say.tag == "Say"
    assert say.text == phone.GREETING
    # Silence falls through to a spoken retry.
    assert redirect.tag == "Redirect"
    assert redirect.text == "/twilio/voice?attempt=2"


def test_silence_gets_a_spoken_retry(client: FlaskClient) -> None:
    root = twiml(signed_post(client, "/twilio/voice?attempt=2", call_params()))
    gather = root.find("Gather")
    assert gather is not None
    assert gather.attrib["numDigits"] == "8"
    assert gather.findtext("Say") == phone.RETRY_SILENCE
    assert root.findtext("Redirect") == "/twilio/voice?attempt=3"


def test_after_three_silences_the_caller_goes_to_the_operator(
    client: FlaskClient, council: Council
) -> None:
    operator_on_duty(council, "+447700900900")
    root = twiml(signed_post(client, "/twilio/voice?attempt=4", call_params()))

    say, dial = list(root)
    assert say.text == phone.TO_OPERATOR
    assert dial.tag == "Dial"
    assert dial.text == "+447700900900"
    assert dial.attrib["timeout"] == str(phone.DIAL_TIMEOUT_SECONDS)
    assert dial.attrib["action"] == "/twilio/voice/dial?stage=1"
    assert root.find("Gather") is None


def test_a_pin_that_exists_opens_an_incident_and_dials_the_operator(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=now)

    root = twiml(signed_post(client, "/twilio/voice/pin?attempt=1", call_params(Digits=card.pin)))

    incident = db.session.scalar(select(Incident).where(Incident.plan_id == card.plan.id))
    assert incident is not None
    assert incident.source == "phone"
    say, dial = list(root)
    # Nothing is spoken beyond "your plan has been found".
    assert say.tag == "Say"
    assert say.text == phone.FOUND
    assert "found" in say.text
    assert dial.tag == "Dial"
    assert dial.text == "+447700900900"
    assert dial.attrib["timeout"] == str(phone.DIAL_TIMEOUT_SECONDS)
    assert dial.attrib["action"] == f"/twilio/voice/dial?stage=1&incident={incident.id}"
    attempts = db.session.scalars(select(PinAttempt).where(PinAttempt.channel == "phone"))
    assert [(a.outcome, a.caller_number) for a in attempts] == [("hit", "+447700900555")]


def test_a_replayed_pin_request_does_not_open_a_second_incident(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=now)
    params = call_params(Digits=card.pin)
    first = twiml(signed_post(client, "/twilio/voice/pin?attempt=1", params))
    second = twiml(signed_post(client, "/twilio/voice/pin?attempt=1", params))
    assert _incidents() == 1
    assert first.find("Dial").attrib == second.find("Dial").attrib  # type: ignore[union-attr]


def test_a_mistyped_pin_gets_a_spoken_retry(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    card = make_plan_with_card(council, now=now)

    root = twiml(
        signed_post(client, "/twilio/voice/pin?attempt=1", call_params(Digits=mistype(card.pin)))
    )

    assert _incidents() == 0
    gather = root.find("Gather")
    assert gather is not None
    assert gather.attrib["numDigits"] == "8"
    assert gather.attrib["action"] == "/twilio/voice/pin?attempt=2"
    assert gather.findtext("Say") == phone.RETRY_MISTYPED
    assert root.find("Dial") is None


def test_the_third_failed_pin_goes_to_the_operator(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=now)
    root = twiml(
        signed_post(client, "/twilio/voice/pin?attempt=3", call_params(Digits=mistype(card.pin)))
    )
    assert root.find("Gather") is None
    assert root.findtext("Dial") == "+447700900900"
    assert _incidents() == 0


def test_pin_attempts_are_rate_limited_per_caller_number(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=now)
    for n in range(5):
        unknown = "1234567" + str(n)
        signed_post(client, "/twilio/voice/pin?attempt=1", call_params(Digits=unknown))

    # Even the right PIN is refused from this number now: straight to an operator.
    root = twiml(signed_post(client, "/twilio/voice/pin?attempt=1", call_params(Digits=card.pin)))
    assert _incidents() == 0
    assert root.findtext("Say") == phone.TO_OPERATOR
    assert root.findtext("Dial") == "+447700900900"

    # Another caller is not affected.
    other = call_params(Digits=card.pin, From="+447700900666", CallSid="CA" + "8" * 32)
    root = twiml(signed_post(client, "/twilio/voice/pin?attempt=1", other))
    assert root.findtext("Say") == phone.FOUND
    assert _incidents() == 1


# --- no operator answers: the cascade starts at once ---------------------------------------


def _found_incident(client: FlaskClient, council: Council, now: datetime) -> tuple[Incident, Any]:
    card = make_plan_with_card(council, now=now)
    twiml(signed_post(client, "/twilio/voice/pin?attempt=1", call_params(Digits=card.pin)))
    incident = db.session.scalar(select(Incident).where(Incident.plan_id == card.plan.id))
    assert incident is not None
    return incident, card


def test_no_answer_starts_the_cascade_and_tries_the_fallback(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator_on_duty(council, "+447700900900")
    incident, card = _found_incident(client, council, now)
    assert incident.cascade_status is CascadeStatus.NOT_STARTED

    path = f"/twilio/voice/dial?stage=1&incident={incident.id}"
    root = twiml(signed_post(client, path, call_params(DialCallStatus="no-answer")))

    db.session.refresh(incident)
    assert incident.cascade_status is CascadeStatus.RUNNING
    say, dial = list(root)
    assert say.tag == "Say"
    assert dial.tag == "Dial"
    assert dial.text == council.duty_team_phone  # the fallback number
    assert dial.attrib["action"] == f"/twilio/voice/dial?stage=2&incident={incident.id}"
    sms = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == card.contacts[0].phone)
    ).all()
    assert [m.kind for m in sms] == ["sms"]

    root = twiml(
        signed_post(
            client,
            f"/twilio/voice/dial?stage=2&incident={incident.id}",
            call_params(DialCallStatus="busy"),
        )
    )
    assert [el.tag for el in root] == ["Say", "Hangup"]
    assert root.findtext("Say") == phone.NOBODY_ANSWERED


def test_an_answered_transfer_just_ends(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator_on_duty(council, "+447700900900")
    incident, _card = _found_incident(client, council, now)
    path = f"/twilio/voice/dial?stage=1&incident={incident.id}"
    root = twiml(signed_post(client, path, call_params(DialCallStatus="completed")))
    assert [el.tag for el in root] == ["Hangup"]
    db.session.refresh(incident)
    assert incident.cascade_status is CascadeStatus.NOT_STARTED
    assert incident.call_answered_at is not None


def test_nobody_on_duty_starts_the_cascade_straight_away(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    council.duty_team_phone = None
    db.session.commit()
    incident, _card = _found_incident(client, council, now)
    db.session.refresh(incident)
    assert incident.cascade_status is CascadeStatus.RUNNING


# --- the cascade by phone --------------------------------------------------------------------


def _running_cascade(client: FlaskClient, council: Council, now: datetime) -> tuple[Incident, Any]:
    operator_on_duty(council, "+447700900900")
    incident, card = _found_incident(client, council, now)
    path = f"/twilio/voice/dial?stage=2&incident={incident.id}"
    twiml(signed_post(client, path, call_params(DialCallStatus="no-answer")))
    db.session.refresh(incident)
    assert incident.cascade_status is CascadeStatus.RUNNING
    return incident, card


def _deliver_calls(now: datetime) -> list[Any]:
    """Run the outbox with the real Twilio SDK; return the Calls.json requests."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.POST,
            f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json",
            json={"sid": "SM" + "0" * 32, "status": "queued"},
            status=201,
        )
        counter = iter(range(1, 100))
        mock.add_callback(
            responses.POST,
            CALLS_URL,
            callback=lambda request: (
                201,
                {},
                f'{{"sid": "CA{next(counter):032d}", "status": "queued"}}',
            ),
            content_type="application/json",
        )
        run_job("deliver_outbox", now=now)
        return [call for call in mock.calls if call.request.url == CALLS_URL]


def test_the_cascade_calls_the_waiting_contact_with_machine_detection(
    app: Flask,
    client: FlaskClient,
    council: Council,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "NOTIFY_BACKEND", "twilio")
    incident, card = _running_cascade(client, council, now)

    assert run_job("phone_cascade_calls", now=now) == {"queued": 1}
    assert run_job("phone_cascade_calls", now=now) == {"queued": 0}  # idempotent
    [call_row] = db.session.scalars(select(CascadeCall)).all()
    assert call_row.contact_id == card.contacts[0].id

    requests_seen = _deliver_calls(now)
    assert len(requests_seen) == 1
    form = parse_qs(requests_seen[0].request.body)
    assert form["To"] == [card.contacts[0].phone]
    assert form["MachineDetection"] == ["Enable"]
    assert form["StatusCallback"] == [f"{BASE}/twilio/status"]
    url = form["Url"][0]
    assert url.startswith(f"{BASE}/twilio/voice/cascade?")
    assert _query(url) == {
        "incident": [str(incident.id)],
        "contact": [str(card.contacts[0].id)],
        "call": [str(call_row.id)],
    }
    message = db.session.get(OutboxMessage, call_row.outbox_message_id)
    assert message is not None
    assert message.status is OutboxStatus.SENT
    assert message.provider_ref == "CA" + "1".rjust(32, "0")


def test_pressing_1_on_the_cascade_call_confirms_the_contact(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    incident, card = _running_cascade(client, council, now)
    run_job("phone_cascade_calls", now=now)
    call_row = db.session.scalars(select(CascadeCall)).one()
    path = f"/twilio/voice/cascade?incident={incident.id}&contact={call_row.contact_id}&call={call_row.id}"

    root = twiml(signed_post(client, path, call_params(AnsweredBy="human")))
    gather = root.find("Gather")
    assert gather is not None
    assert gather.attrib["numDigits"] == "1"
    assert gather.attrib["input"] == "dtmf"
    assert gather.findtext("Say") == phone.CASCADE_ASK
    assert _query(gather.attrib["action"])["step"] == ["key"]
    db.session.refresh(incident)
    assert incident.confirmed_contact_id is None  # answering is not enough

    root = twiml(signed_post(client, gather.attrib["action"], call_params(Digits="1")))
    assert [el.tag for el in root] == ["Say", "Hangup"]
    db.session.refresh(incident)
    assert incident.confirmed_contact_id == card.contacts[0].id
    assert incident.cascade_status is CascadeStatus.CONFIRMED


def test_an_answering_machine_never_counts_and_the_contact_is_tried_again(
    app: Flask,
    client: FlaskClient,
    council: Council,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "NOTIFY_BACKEND", "twilio")
    incident, card = _running_cascade(client, council, now)
    run_job("phone_cascade_calls", now=now)
    _deliver_calls(now)
    call_row = db.session.scalars(select(CascadeCall)).one()
    message = db.session.get(OutboxMessage, call_row.outbox_message_id)
    assert message is not None
    path = f"/twilio/voice/cascade?incident={incident.id}&contact={call_row.contact_id}&call={call_row.id}"

    root = twiml(signed_post(client, path, call_params(AnsweredBy="machine_start")))
    assert [el.tag for el in root] == ["Hangup"]
    # Twilio then reports the call `completed`, as it would for a person.
    status = {
        "CallSid": message.provider_ref or "",
        "CallStatus": "completed",
        "AnsweredBy": "machine_start",
    }
    assert signed_post(client, "/twilio/status", status).status_code == 204

    db.session.refresh(incident)
    db.session.refresh(call_row)
    assert call_row.outcome == "not_reached"
    assert incident.confirmed_contact_id is None
    assert incident.cascade_status is CascadeStatus.RUNNING

    # Retried after the configured gap, before the cascade moves on.
    assert run_job("phone_cascade_calls", now=now + timedelta(minutes=1)) == {"queued": 0}
    assert call_row.ended_at is not None
    later = call_row.ended_at + timedelta(minutes=phone.services.DEFAULT_CALL_RETRY_MINUTES)
    assert run_job("phone_cascade_calls", now=later) == {"queued": 1}
    calls = db.session.scalars(select(CascadeCall).order_by(CascadeCall.attempt_number)).all()
    assert [(c.contact_id, c.attempt_number) for c in calls] == [
        (card.contacts[0].id, 1),
        (card.contacts[0].id, 2),
    ]
    db.session.refresh(incident)
    assert incident.cascade_step_due_at is not None
    assert incident.cascade_step_due_at >= later + phone.services.CALL_GRACE

    texts = [
        e.text
        for e in db.session.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident.id)
            .order_by(IncidentEvent.id)
        )
    ]
    assert any("try 1 of 2" in t for t in texts)
    assert any("answering machine" in t for t in texts)
    assert any("try 2 of 2" in t for t in texts)


def test_a_completed_call_without_a_keypress_is_not_reached(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    incident, _card = _running_cascade(client, council, now)
    run_job("phone_cascade_calls", now=now)
    call_row = db.session.scalars(select(CascadeCall)).one()
    message = db.session.get(OutboxMessage, call_row.outbox_message_id)
    assert message is not None
    message.provider_ref = "CA" + "7" * 32
    db.session.commit()
    path = f"/twilio/voice/cascade?incident={incident.id}&contact={call_row.contact_id}&call={call_row.id}"
    twiml(signed_post(client, path, call_params(AnsweredBy="unknown")))
    signed_post(client, "/twilio/status", {"CallSid": "CA" + "7" * 32, "CallStatus": "completed"})

    db.session.refresh(call_row)
    db.session.refresh(incident)
    assert call_row.outcome == "not_reached"
    assert call_row.call_status == "completed"
    assert incident.confirmed_contact_id is None
