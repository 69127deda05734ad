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
    operator_takes_call,
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
    "/twilio/voice/screen",
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


PARENT = call_params()["CallSid"]


def assert_dials(dial: Any, number: str, *, stage: int, incident_id: int | None = None) -> None:
    """A <Dial> that rings `number` with the press-1 whisper, element by element."""
    assert dial.tag == "Dial"
    where = f"stage={stage}" + (f"&incident={incident_id}" if incident_id is not None else "")
    assert dial.attrib == {
        "timeout": str(phone.DIAL_TIMEOUT_SECONDS),
        "action": f"/twilio/voice/dial?{where}",
        "method": "POST",
        "answerOnBridge": "true",
    }
    assert (dial.text or "").strip() == ""
    [number_el] = list(dial)
    assert number_el.tag == "Number"
    assert number_el.text == number
    assert number_el.attrib == {
        "url": f"/twilio/voice/screen?{where}&parent={PARENT}",
        "method": "POST",
    }


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
    for name in (
        "voice",
        "voice_pin",
        "voice_screen",
        "voice_dial",
        "voice_cascade",
        "sms",
        "status",
    ):
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
    assert_dials(dial, "+447700900900", stage=1)
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
    assert_dials(dial, "+447700900900", stage=1, incident_id=incident.id)
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


def test_a_pin_typed_on_the_keypad_is_never_stored_in_clear(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    """Replays are recognised without keeping the PIN: only its HMAC is stored, as for
    cards, for a hit and for a miss alike."""
    from app.models import ProcessedWebhook

    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=now)
    wrong = mistype(card.pin)
    signed_post(client, "/twilio/voice/pin?attempt=1", call_params(Digits=wrong))
    params = call_params(Digits=card.pin)
    signed_post(client, "/twilio/voice/pin?attempt=2", params)
    signed_post(client, "/twilio/voice/pin?attempt=2", params)  # a replay
    assert _incidents() == 1
    notes = db.session.scalars(select(ProcessedWebhook.event_id)).all()
    assert any(n.startswith("voice-pin:") for n in notes)
    assert any(n.startswith("voice-pin-miss:") for n in notes)
    assert not [n for n in notes if card.pin in n or wrong in n]


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
    assert root.findtext("Dial/Number") == "+447700900900"
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
    assert root.findtext("Dial/Number") == "+447700900900"

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
    assert council.duty_team_phone is not None
    assert_dials(dial, council.duty_team_phone, stage=2, incident_id=incident.id)  # fallback
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
    taken = twiml(operator_takes_call(client, call_params(), incident_id=incident.id))
    [say] = list(taken)
    assert (say.tag, say.text) == ("Say", phone.SCREEN_CONNECTING)  # then Twilio bridges
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
    # The report names our own row, so it is matched even before the SID is saved.
    assert form["StatusCallback"] == [f"{BASE}/twilio/status?outbox={call_row.outbox_message_id}"]
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
    later = call_row.ended_at + timedelta(minutes=app.config["CASCADE_CALL_RETRY_MINUTES"])
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


def test_the_cascade_prompt_says_what_each_key_does() -> None:
    assert "press 1" in phone.CASCADE_ASK
    assert "press 2, and we will ask the next person straight away" in phone.CASCADE_ASK


# --- call screening: the operator presses 1, a voicemail never does -----------------------


def test_the_operators_phone_hears_a_whisper_asking_for_1(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator_on_duty(council, "+447700900900")
    incident, _card = _found_incident(client, council, now)
    leg = {"CallSid": "CA" + "6" * 32, "ParentCallSid": PARENT, "To": "+447700900900"}
    path = f"/twilio/voice/screen?stage=1&incident={incident.id}&parent={PARENT}"

    root = twiml(signed_post(client, path, leg))

    gather, hangup = list(root)
    assert gather.tag == "Gather"
    assert gather.attrib == {
        "numDigits": "1",
        "input": "dtmf",
        "timeout": str(phone.GATHER_TIMEOUT_SECONDS),
        "action": f"/twilio/voice/screen?step=key&stage=1&incident={incident.id}&parent={PARENT}",
        "method": "POST",
    }
    assert [(say.tag, say.text) for say in gather] == [("Say", phone.SCREEN_ASK)] * 2
    # No key (a voicemail greeting, or nobody): the operator's leg is hung up.
    assert hangup.tag == "Hangup"
    assert list(hangup) == []


def test_a_voicemail_that_picks_up_the_transfer_is_not_an_operator(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator_on_duty(council, "+447700900900")
    incident, _card = _found_incident(client, council, now)
    # The whisper played to the voicemail, nobody pressed 1; Twilio may still report the
    # operator's leg `completed` because audio flowed.
    path = f"/twilio/voice/dial?stage=1&incident={incident.id}"
    root = twiml(
        signed_post(client, path, call_params(DialCallStatus="completed", DialCallDuration="25"))
    )

    say, dial = list(root)
    assert say.tag == "Say"
    assert council.duty_team_phone is not None
    assert_dials(dial, council.duty_team_phone, stage=2, incident_id=incident.id)
    db.session.refresh(incident)
    assert incident.call_answered_at is None
    assert incident.cascade_status is CascadeStatus.RUNNING
    texts = [e.text for e in incident.events]
    assert any("nobody pressed 1" in t and "+447700900555" in t for t in texts)
    assert not any(t.startswith("An operator answered") for t in texts)


def test_a_whisper_without_a_1_hangs_up_and_the_no_answer_moves_on(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    operator_on_duty(council, "+447700900900")
    incident, _card = _found_incident(client, council, now)
    leg = {"CallSid": "CA" + "6" * 32, "ParentCallSid": PARENT, "Digits": "9"}
    path = f"/twilio/voice/screen?step=key&stage=1&incident={incident.id}&parent={PARENT}"

    root = twiml(signed_post(client, path, leg))

    assert [el.tag for el in root] == ["Hangup"]
    # Twilio's screening guide: a hung-up whisper comes back as not `completed`.
    dial_path = f"/twilio/voice/dial?stage=1&incident={incident.id}"
    root = twiml(signed_post(client, dial_path, call_params(DialCallStatus="no-answer")))
    assert root.find("Dial") is not None
    db.session.refresh(incident)
    assert incident.cascade_status is CascadeStatus.RUNNING
    assert incident.call_answered_at is None


def test_an_operators_1_is_recorded_once(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    from app.models import ProcessedWebhook

    operator_on_duty(council, "+447700900900")
    incident, _card = _found_incident(client, council, now)
    first = operator_takes_call(client, call_params(), incident_id=incident.id)
    again = operator_takes_call(client, call_params(), incident_id=incident.id)
    assert first.get_data() == again.get_data()
    rows = db.session.scalars(
        select(ProcessedWebhook).where(ProcessedWebhook.event_type == "screen-accepted")
    ).all()
    assert [r.event_id for r in rows] == [f"screen-accepted:{PARENT}:1"]
    # Pressing 1 for the first operator does not count for the fallback's ring.
    dial_path = f"/twilio/voice/dial?stage=2&incident={incident.id}"
    root = twiml(signed_post(client, dial_path, call_params(DialCallStatus="completed")))
    assert [el.tag for el in root] == ["Say", "Hangup"]
    db.session.refresh(incident)
    assert incident.call_answered_at is None


# --- a caller whose plan was not found, and no operator answers ----------------------------


def _own_line(council: Council) -> str:
    council.emergency_phone = "+448000111" + f"{council.id % 1000:03d}"
    db.session.commit()
    return council.emergency_phone


def test_an_unidentified_caller_is_told_the_truth_and_noted_for_the_operators(
    client: FlaskClient, council: Council
) -> None:
    from emergency.phone_models import MissedCall

    line = _own_line(council)
    operator_on_duty(council, "+447700900900")
    params = call_params(To=line)
    root = twiml(signed_post(client, "/twilio/voice?attempt=4", params))
    assert_dials(root.find("Dial"), "+447700900900", stage=1)
    root = twiml(
        signed_post(client, "/twilio/voice/dial?stage=1", {**params, "DialCallStatus": "busy"})
    )
    assert council.duty_team_phone == "+441132222222"
    assert_dials(root.find("Dial"), "+441132222222", stage=2)
    assert db.session.scalars(select(MissedCall)).all() == []

    last = {**params, "DialCallStatus": "no-answer"}
    response = signed_post(client, "/twilio/voice/dial?stage=2", last)
    root = twiml(response)

    sorry, duty, hangup = list(root)
    assert (sorry.tag, sorry.text) == ("Say", phone.UNIDENTIFIED_NOBODY_ANSWERED)
    spoken = "0 1 1 3, 2 2 2, 2 2 2 2"
    assert (duty.tag, duty.text) == (
        "Say",
        phone.CALL_DUTY_TEAM.format(number=spoken)
        + phone.CALL_DUTY_TEAM_AGAIN.format(number=spoken),
    )
    assert hangup.tag == "Hangup"
    assert "999" in (sorry.text or "")
    assert not any("call you back" in (el.text or "") for el in root)
    [missed] = db.session.scalars(select(MissedCall)).all()
    assert (missed.council_id, missed.caller_number, missed.line_number, missed.reason) == (
        council.id,
        "+447700900555",
        line,
        "no operator answered",
    )
    assert missed.call_sid == params["CallSid"]
    # Twilio retries the same report: the caller hears the same, one row stays.
    assert signed_post(client, "/twilio/voice/dial?stage=2", last).get_data() == response.get_data()
    assert len(db.session.scalars(select(MissedCall)).all()) == 1


def test_with_nobody_on_duty_a_withheld_caller_is_not_put_through_to_nobody(
    client: FlaskClient, council: Council
) -> None:
    from emergency.phone_models import MissedCall

    line = _own_line(council)
    council.duty_team_phone = None
    db.session.commit()
    params = call_params(To=line, From="anonymous")

    root = twiml(signed_post(client, "/twilio/voice?attempt=4", params))

    assert [(el.tag, el.text) for el in root] == [
        ("Say", phone.UNIDENTIFIED_NOBODY_ANSWERED),
        ("Say", phone.CALL_AGAIN_LATER),
        ("Hangup", None),
    ]
    [missed] = db.session.scalars(select(MissedCall)).all()
    assert (missed.council_id, missed.caller_number, missed.reason) == (
        council.id,
        None,
        "nobody on duty",
    )


def test_operators_see_their_councils_missed_calls_and_mark_them_dealt_with(
    client: FlaskClient, council: Council
) -> None:
    from app.models import AuditEntry, Role
    from emergency.phone_models import MissedCall
    from tests.factories import make_user
    from tests.helpers import sign_in

    line = _own_line(council)
    council.duty_team_phone = None
    db.session.commit()
    twiml(signed_post(client, "/twilio/voice?attempt=4", call_params(To=line)))
    [missed] = db.session.scalars(select(MissedCall)).all()
    operator = make_user(Role.OPERATOR, council=council)
    stranger = make_user(Role.OPERATOR)

    sign_in(client, stranger)
    assert "+447700900555" not in client.get("/emergency/missed-calls").get_data(as_text=True)
    assert client.post(f"/emergency/missed-calls/{missed.id}/done").status_code == 404
    assert "missed call" not in client.get("/emergency/rota").get_data(as_text=True)

    sign_in(client, operator)
    rota = client.get("/emergency/rota").get_data(as_text=True)
    assert "1 missed call to the line is waiting" in rota
    page = client.get("/emergency/missed-calls")
    assert page.status_code == 200
    assert "+447700900555" in page.get_data(as_text=True)
    assert client.post(f"/emergency/missed-calls/{missed.id}/done").status_code == 302
    db.session.refresh(missed)
    assert missed.dealt_with_by_id == operator.id
    assert "+447700900555" not in client.get("/emergency/missed-calls").get_data(as_text=True)
    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "phone.missed_call.dealt_with")
    ).all()
    assert [(a.actor_id, a.subject_id) for a in audit] == [(operator.id, missed.id)]


# --- keys on the cascade call ------------------------------------------------------------------


def _answered_cascade_call(
    client: FlaskClient, council: Council, now: datetime
) -> tuple[Incident, Any, CascadeCall, str]:
    incident, card = _running_cascade(client, council, now)
    run_job("phone_cascade_calls", now=now)
    call_row = db.session.scalars(select(CascadeCall)).one()
    path = f"/twilio/voice/cascade?incident={incident.id}&contact={call_row.contact_id}&call={call_row.id}"
    root = twiml(signed_post(client, path, call_params(AnsweredBy="human")))
    gather = root.find("Gather")
    assert gather is not None
    return incident, card, call_row, gather.attrib["action"]


def test_pressing_2_on_the_cascade_call_moves_on_at_once(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    from emergency.models import CascadeAttempt

    incident, card, call_row, action = _answered_cascade_call(client, council, now)
    second = card.contacts[1]
    assert (
        db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == second.phone)
        ).all()
        == []
    )

    root = twiml(signed_post(client, action, call_params(Digits="2")))

    assert [(el.tag, el.text) for el in root] == [
        ("Say", phone.CASCADE_DECLINED),
        ("Hangup", None),
    ]
    db.session.refresh(call_row)
    assert (call_row.outcome, call_row.digits) == ("declined", "2")
    attempts = db.session.scalars(
        select(CascadeAttempt)
        .where(CascadeAttempt.incident_id == incident.id)
        .order_by(CascadeAttempt.id)
    ).all()
    assert [(a.contact_id, a.outcome) for a in attempts] == [
        (card.contacts[0].id, "declined"),
        (second.id, "waiting"),
    ]
    # The next contact is asked now, not after the scheme's timeout.
    sms = db.session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == second.phone))
    assert [m.kind for m in sms] == ["sms"]
    texts = [e.text for e in incident.events]
    assert (
        f"{card.contacts[0].name} pressed 2 on the automated call: they cannot step in now. "
        "Asking the next contact now." in texts
    )
    assert run_job("phone_cascade_calls", now=now) == {"queued": 1}  # the next one is called


def test_another_key_is_asked_again_then_not_counted(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    incident, card, call_row, action = _answered_cascade_call(client, council, now)

    root = twiml(signed_post(client, action, call_params(Digits="7")))

    gather, goodbye, hangup = list(root)
    assert gather.tag == "Gather"
    assert gather.attrib == {
        "numDigits": "1",
        "input": "dtmf",
        "timeout": str(phone.GATHER_TIMEOUT_SECONDS),
        "action": action + "&again=1",
        "method": "POST",
    }
    assert [(s.tag, s.text) for s in gather] == [("Say", phone.CASCADE_ASK_AGAIN)] * 2
    assert (goodbye.tag, goodbye.text) == ("Say", phone.CASCADE_NO_KEY)
    assert hangup.tag == "Hangup"
    db.session.refresh(call_row)
    assert call_row.outcome == "pending"  # nothing counted yet

    root = twiml(signed_post(client, action + "&again=1", call_params(Digits="7")))

    assert [(el.tag, el.text) for el in root] == [
        ("Say", phone.CASCADE_UNCLEAR),
        ("Hangup", None),
    ]
    db.session.refresh(call_row)
    db.session.refresh(incident)
    assert call_row.outcome == "not_reached"  # tried again as configured
    assert incident.confirmed_contact_id is None
    assert incident.cascade_position == card.contacts[0].position  # still waiting on them


def test_the_cascade_call_settings_come_from_the_environment(
    app: Flask,
    client: FlaskClient,
    council: Council,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.config import load_config

    defaults = load_config(app.instance_path, environ={})
    assert (
        defaults["CASCADE_CALL_ATTEMPTS"],
        defaults["CASCADE_CALL_RETRY_MINUTES"],
        defaults["TWILIO_TIMEOUT_SECONDS"],
    ) == (2, 3, 10.0)
    chosen = load_config(
        app.instance_path,
        environ={
            "CASCADE_CALL_ATTEMPTS": "1",
            "CASCADE_CALL_RETRY_MINUTES": "7",
            "TWILIO_TIMEOUT_SECONDS": "4.5",
        },
    )
    assert (
        chosen["CASCADE_CALL_ATTEMPTS"],
        chosen["CASCADE_CALL_RETRY_MINUTES"],
        chosen["TWILIO_TIMEOUT_SECONDS"],
    ) == (1, 7, 4.5)

    # The job passes them in: with one attempt, a missed call is not tried again.
    monkeypatch.setitem(app.config, "CASCADE_CALL_ATTEMPTS", 1)
    incident, _card = _running_cascade(client, council, now)
    assert run_job("phone_cascade_calls", now=now) == {"queued": 1}
    call_row = db.session.scalars(select(CascadeCall)).one()
    call_row.outcome, call_row.ended_at = "not_reached", now
    db.session.commit()
    assert run_job("phone_cascade_calls", now=now + timedelta(hours=1)) == {"queued": 0}
    assert any("try 1 of 1" in e.text for e in incident.events)


# --- odd input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/twilio/voice/dial?stage=1&incident=99999999999999999999999",
        "/twilio/voice/dial?stage=99999999999999999999999&incident=1",
        "/twilio/voice/dial?stage=1&incident=%C2%B2",
        "/twilio/voice/cascade?incident=99999999999999999999&contact=1&call=99999999999999999999",
        "/twilio/voice/screen?stage=99999999999999999999&incident=99999999999999999999",
        "/twilio/voice?attempt=99999999999999999999999",
        "/twilio/status?outbox=99999999999999999999999",
    ],
)
def test_a_huge_or_odd_number_in_the_url_is_never_a_500(client: FlaskClient, path: str) -> None:
    params = call_params(DialCallStatus="no-answer", CallStatus="completed")
    response = signed_post(client, path, params)
    assert response.status_code in (200, 204), response.get_data(as_text=True)
