"""The Twilio backend against the real `twilio` SDK, its HTTP calls caught by `responses`:
the exact requests Twilio would receive, error sorting, and an outage that loses nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from flask import Flask
from sqlalchemy import select

from app import outbox
from app.extensions import db
from app.models import OutboxMessage, OutboxStatus
from app.notify import DeliveryError, make_notifier
from app.scheduler import run_job
from app.twilio_backend import TwilioNotifier

SID = "AC" + "1" * 32
TOKEN = "twilio-test-auth-token"
FROM = "+447700900001"
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
CALLS_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Calls.json"
BASE = "https://carers.example.org"


def twilio_config(**extra: Any) -> dict[str, Any]:
    config = {
        "NOTIFY_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM_NUMBER": FROM,
        "TWILIO_MESSAGING_SERVICE_SID": "",
        "PUBLIC_BASE_URL": BASE,
        "OUTBOX_MAX_ATTEMPTS": 8,
        "OUTBOX_BASE_DELAY_SECONDS": 30,
    }
    config.update(extra)
    return config


def message_json(sid: str, status: str = "queued") -> dict[str, Any]:
    return {"sid": sid, "account_sid": SID, "status": status, "to": "+447700900123"}


def form_of(call: Any) -> dict[str, list[str]]:
    return parse_qs(call.request.body)


@responses.activate
def test_sms_posts_exactly_what_twilio_expects() -> None:
    responses.post(MESSAGES_URL, json=message_json("SM" + "a" * 32), status=201)
    notifier = make_notifier(twilio_config())
    assert isinstance(notifier, TwilioNotifier)

    sent = notifier.send_sms(
        "+447700900123", "Your break is confirmed.", status_callback=f"{BASE}/twilio/status"
    )

    assert sent.provider_ref == "SM" + "a" * 32
    assert sent.status == "queued"
    assert len(responses.calls) == 1
    call = responses.calls[0]
    assert call.request.method == "POST"
    assert call.request.url == MESSAGES_URL
    assert form_of(call) == {
        "To": ["+447700900123"],
        "From": [FROM],
        "Body": ["Your break is confirmed."],
        "StatusCallback": [f"{BASE}/twilio/status"],
    }
    assert call.request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_sms_through_a_messaging_service_names_the_service_not_a_sender() -> None:
    responses.post(MESSAGES_URL, json=message_json("SM" + "b" * 32), status=201)
    notifier = make_notifier(twilio_config(TWILIO_MESSAGING_SERVICE_SID="MG" + "2" * 32))

    notifier.send_sms("+447700900123", "Hello")

    form = form_of(responses.calls[0])
    assert form["MessagingServiceSid"] == ["MG" + "2" * 32]
    assert "From" not in form
    assert "StatusCallback" not in form


@responses.activate
def test_call_asks_for_answering_machine_detection_and_progress_callbacks() -> None:
    responses.post(CALLS_URL, json={"sid": "CA" + "c" * 32, "status": "queued", "account_sid": SID})
    notifier = make_notifier(twilio_config())

    sent = notifier.place_call(
        "+447700900123",
        twiml_url=f"{BASE}/twilio/voice/cascade?incident=4&contact=7",
        status_callback=f"{BASE}/twilio/status",
        machine_detection=True,
    )

    assert sent.provider_ref == "CA" + "c" * 32
    call = responses.calls[0]
    assert call.request.url == CALLS_URL
    form = form_of(call)
    assert form["To"] == ["+447700900123"]
    assert form["From"] == [FROM]
    assert form["Url"] == [f"{BASE}/twilio/voice/cascade?incident=4&contact=7"]
    assert form["Method"] == ["POST"]
    assert form["MachineDetection"] == ["Enable"]
    assert form["StatusCallback"] == [f"{BASE}/twilio/status"]
    assert form["StatusCallbackMethod"] == ["POST"]
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]


@responses.activate
def test_a_call_needs_a_from_number_even_with_a_messaging_service() -> None:
    notifier = make_notifier(
        twilio_config(TWILIO_FROM_NUMBER="", TWILIO_MESSAGING_SERVICE_SID="MG" + "2" * 32)
    )
    with pytest.raises(DeliveryError) as caught:
        notifier.place_call("+447700900123", twiml_url=f"{BASE}/x")
    assert caught.value.permanent
    assert len(responses.calls) == 0


def test_missing_credentials_fail_clearly() -> None:
    with pytest.raises(ValueError, match="TWILIO_ACCOUNT_SID"):
        make_notifier(twilio_config(TWILIO_AUTH_TOKEN=""))
    with pytest.raises(ValueError, match="TWILIO_FROM_NUMBER"):
        make_notifier(twilio_config(TWILIO_FROM_NUMBER=""))


@pytest.mark.parametrize(
    ("status", "code", "permanent"),
    [
        (400, 21211, True),  # invalid To number
        (400, 21610, True),  # recipient replied STOP
        (400, 21614, True),  # not a mobile
        (404, 20404, True),
        (429, 20429, False),
        (401, 20003, False),  # bad credentials: staff can fix them, keep the message
        (500, None, False),
        (503, None, False),
    ],
)
@responses.activate
def test_twilio_errors_are_sorted_into_permanent_and_retryable(
    status: int, code: int | None, permanent: bool
) -> None:
    body: dict[str, Any] = {"status": status, "message": "refused"}
    if code is not None:
        body["code"] = code
    responses.post(MESSAGES_URL, json=body, status=status)
    notifier = make_notifier(twilio_config())
    with pytest.raises(DeliveryError) as caught:
        notifier.send_sms("+447700900123", "Hello")
    assert caught.value.permanent is permanent


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ConnectionError("down"), requests.exceptions.ReadTimeout("slow")],
)
@responses.activate
def test_network_failures_are_retryable(failure: Exception) -> None:
    responses.post(MESSAGES_URL, body=failure)
    notifier = make_notifier(twilio_config())
    with pytest.raises(DeliveryError) as caught:
        notifier.send_sms("+447700900123", "Hello")
    assert not caught.value.permanent


def _queue(count: int, now: datetime) -> list[int]:
    ids = []
    for n in range(count):
        message = outbox.enqueue(
            "sms",
            recipient=f"+44770090010{n}",
            payload={"body": f"Message {n}"},
            dedupe_key=f"twilio-outage-{n}",
            not_before=now,
        )
        assert message is not None
        ids.append(message.id)
    db.session.commit()
    return ids


@responses.activate
def test_an_outage_then_recovery_delivers_every_message_exactly_once(
    app: Flask, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in twilio_config().items():
        monkeypatch.setitem(app.config, key, value)
    ids = _queue(3, now)

    # The outage: 500s, then refused connections, then read timeouts.
    failures: list[Any] = [
        {"json": {"status": 500, "message": "Internal"}, "status": 500},
        {"body": requests.exceptions.ConnectionError("refused")},
        {"body": requests.exceptions.ReadTimeout("timed out")},
    ]
    when = now
    for failure in failures:
        responses.reset()
        responses.post(MESSAGES_URL, **failure)
        result = run_job("deliver_outbox", now=when)
        assert result == {"sent": 0, "retry": 3, "dead": 0}
        assert len(responses.calls) == 3
        rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))
        assert {row.status for row in rows} == {OutboxStatus.PENDING}
        when += timedelta(hours=7)  # past the longest backoff

    # Recovery: each message goes out once, with its own sid.
    responses.reset()
    sids = iter(f"SM{n:032d}" for n in range(10))
    responses.add_callback(
        responses.POST,
        MESSAGES_URL,
        callback=lambda request: (201, {}, _json(message_json(next(sids)))),
        content_type="application/json",
    )
    assert run_job("deliver_outbox", now=when) == {"sent": 3, "retry": 0, "dead": 0}
    assert run_job("deliver_outbox", now=when + timedelta(days=1)) == {
        "sent": 0,
        "retry": 0,
        "dead": 0,
    }
    assert len(responses.calls) == 3
    bodies = sorted(form_of(call)["Body"][0] for call in responses.calls)
    assert bodies == ["Message 0", "Message 1", "Message 2"]
    rows = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))))
    assert {row.status for row in rows} == {OutboxStatus.SENT}
    assert {row.attempts for row in rows} == {4}
    assert len({row.provider_ref for row in rows}) == 3
    assert all(row.last_error is None for row in rows)


@responses.activate
def test_a_long_outage_ends_dead_and_visible_to_staff(
    app: Flask, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in twilio_config(OUTBOX_MAX_ATTEMPTS=3).items():
        monkeypatch.setitem(app.config, key, value)
    [message_id] = _queue(1, now)
    responses.post(MESSAGES_URL, json={"status": 503, "message": "Unavailable"}, status=503)

    when = now
    for _ in range(3):
        run_job("deliver_outbox", now=when)
        when += timedelta(hours=7)

    message = db.session.get(OutboxMessage, message_id)
    assert message is not None
    assert message.status is OutboxStatus.DEAD
    assert "HTTP 503" in (message.last_error or "")
    assert len(responses.calls) == 3


@responses.activate
def test_an_invalid_number_is_not_retried(
    app: Flask, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in twilio_config().items():
        monkeypatch.setitem(app.config, key, value)
    [message_id] = _queue(1, now)
    responses.post(
        MESSAGES_URL, json={"status": 400, "code": 21211, "message": "Invalid To"}, status=400
    )

    run_job("deliver_outbox", now=now)
    run_job("deliver_outbox", now=now + timedelta(days=1))

    message = db.session.get(OutboxMessage, message_id)
    assert message is not None
    assert message.status is OutboxStatus.DEAD
    assert len(responses.calls) == 1


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data)


HOOKS = "https://hooks.carers.example.org"


@responses.activate
def test_delivery_reports_go_to_the_configured_callback_base(
    app: Flask, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment may route Twilio's delivery reports to a separate host; the SMS asks
    for it, and a report Twilio signs for that host is accepted (and only a signed one)."""
    from twilio.request_validator import RequestValidator

    for key, value in twilio_config(TWILIO_STATUS_CALLBACK_BASE_URL=HOOKS).items():
        monkeypatch.setitem(app.config, key, value)
    [message_id] = _queue(1, now)
    responses.post(MESSAGES_URL, json=message_json("SM" + "6" * 32), status=201)
    assert run_job("deliver_outbox", now=now) == {"sent": 1, "retry": 0, "dead": 0}
    path = f"/twilio/status?outbox={message_id}"  # the report names our row
    assert form_of(responses.calls[0])["StatusCallback"] == [f"{HOOKS}{path}"]

    params = {"MessageSid": "SM" + "6" * 32, "MessageStatus": "delivered"}
    client = app.test_client()
    forged = RequestValidator("not-the-token").compute_signature(f"{HOOKS}{path}", params)
    refused = client.post(path, data=params, headers={"X-Twilio-Signature": forged})
    assert refused.status_code == 403
    signed = RequestValidator(TOKEN).compute_signature(f"{HOOKS}{path}", params)
    accepted = client.post(path, data=params, headers={"X-Twilio-Signature": signed})
    assert accepted.status_code in (200, 204)
    message = db.session.get(OutboxMessage, message_id)
    assert message is not None
    db.session.refresh(message)
    assert message.delivery_status == "delivered"


def test_the_api_timeout_comes_from_the_config() -> None:
    notifier = make_notifier(twilio_config(TWILIO_TIMEOUT_SECONDS=4.5))
    assert isinstance(notifier, TwilioNotifier)
    assert notifier.client.http_client.timeout == 4.5
