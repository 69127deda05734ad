"""Every inbound webhook, delivered twice: providers retry whenever our answer is slow or
lost, so each of them must have its effect once.

The webhooks are every public POST endpoint a provider calls (the test below checks the
list against the URL map): Stripe's `/stripe/webhook`, and Twilio's `/twilio/voice`,
`/twilio/voice/pin`, `/twilio/voice/dial`, `/twilio/voice/cascade`, `/twilio/sms` and
`/twilio/status`. For each event the first request must change something (checked), and
the identical, identically signed second request must leave every row of every table as
it was: no second ledger entry, payment change, SMS or call queued, incident event or
PIN miss. Stripe also retries after an error of ours: that retry is applied once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app import outbox
from app.extensions import db
from app.models import AuditEntry, Base, Council, OutboxMessage, ProcessedWebhook, Role
from app.scheduler import run_job
from booking.models.payments import Payment, PaymentStatus, PayoutAccountStatus, WorkerPayoutAccount
from booking.services import payments
from emergency.models import CascadeStatus, Incident, IncidentEvent, PinAttempt
from emergency.phone_models import CascadeCall
from emergency.phone_services import call_arrived_at
from emergency.services import start_cascade
from tests.booking.factories_payments import TopUpBooking, make_top_up_booking
from tests.emergency.factories_phone import (
    BASE,
    TOKEN,
    call_params,
    make_plan_with_card,
    mistype,
    operator_on_duty,
    operator_takes_call,
    signature,
)
from tests.factories import CouncilFactory, make_user

WEBHOOK_SECRET = "whsec_fault_tests"
THREADS = 4
WEBHOOKS = {
    "/stripe/webhook",
    "/twilio/voice",
    "/twilio/voice/pin",
    "/twilio/voice/screen",
    "/twilio/voice/dial",
    "/twilio/voice/cascade",
    "/twilio/sms",
    "/twilio/status",
}


@pytest.fixture(autouse=True)
def _providers(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", BASE)
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)


def snapshot() -> dict[str, list[str]]:
    """Every row of every table, as text: equal snapshots mean nothing was written."""
    db.session.expire_all()
    return {
        table.name: sorted(repr(tuple(row)) for row in db.session.execute(select(table)).all())
        for table in Base.metadata.sorted_tables
    }


def changed_tables(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def test_the_list_of_webhooks_is_complete(app: Flask) -> None:
    """Every public POST endpoint is either a webhook replayed here or a page for people."""
    for_people = {
        "/",
        "/auth/sign-in",
        "/auth/second-factor",
        "/auth/second-factor/set-up",
        "/auth/reset",
        "/auth/reset/new-password",
        "/api/v1/tokens",
        "/workers/sign-up",
    }
    public_posts = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or set())
        and getattr(app.view_functions[rule.endpoint], "is_public", False)
    }
    assert public_posts - for_people == WEBHOOKS


# --- Stripe ------------------------------------------------------------------------------


def stripe_signature(payload: bytes) -> str:
    timestamp = int(time.time())
    digest = hmac.new(
        WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def post_stripe(client: FlaskClient, payload: bytes, signed: str) -> Any:
    return client.post(
        "/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": signed, "Content-Type": "application/json"},
    )


def stripe_event(event_type: str, obj: dict[str, Any], event_id: str) -> bytes:
    event = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def _card_booking(now: datetime, *, status: PaymentStatus, intent: str | None) -> TopUpBooking:
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id="pm_card_1")
    made.payment.status = status
    made.payment.stripe_payment_intent_id = intent
    db.session.commit()
    return made


def _intent(made: TopUpBooking, intent_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": status,
        "amount": made.payment.amount_pence,
        "metadata": {"payment_id": str(made.payment.id), "attempt": str(made.payment.attempt)},
        **extra,
    }


def _authorised(now: datetime) -> tuple[dict[str, Any], Callable[[], None]]:
    made = _card_booking(now, status=PaymentStatus.AUTHORISING, intent=None)

    def check() -> None:
        db.session.refresh(made.payment)
        assert made.payment.status is PaymentStatus.AUTHORISED
        assert made.payment.stripe_payment_intent_id == "pi_replay_1"

    return _intent(made, "pi_replay_1", "requires_capture"), check


def _failed(now: datetime) -> tuple[dict[str, Any], Callable[[], None]]:
    made = _card_booking(now, status=PaymentStatus.AUTHORISING, intent="pi_replay_2")
    error = {"message": "Your card was declined.", "code": "card_declined"}

    def check() -> None:
        db.session.refresh(made.payment)
        assert made.payment.status is PaymentStatus.FAILED
        emails = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == made.carer.email)
        ).all()
        assert [m.payload["subject"] for m in emails] == ["Your card was not accepted"]

    intent = _intent(made, "pi_replay_2", "requires_payment_method", last_payment_error=error)
    return intent, check


def _canceled(now: datetime) -> tuple[dict[str, Any], Callable[[], None]]:
    made = _card_booking(now, status=PaymentStatus.AUTHORISED, intent="pi_replay_3")

    def check() -> None:
        db.session.refresh(made.payment)
        assert made.payment.status is PaymentStatus.FAILED
        assert made.payment.stripe_status == "canceled"

    return _intent(made, "pi_replay_3", "canceled"), check


def _succeeded(now: datetime) -> tuple[dict[str, Any], Callable[[], None]]:
    made = _card_booking(now, status=PaymentStatus.CAPTURED, intent="pi_replay_4")

    def check() -> None:
        db.session.refresh(made.payment)
        assert made.payment.stripe_status == "succeeded"

    return _intent(made, "pi_replay_4", "succeeded"), check


def _refunded(now: datetime) -> tuple[dict[str, Any], Callable[[], None]]:
    made = _card_booking(now, status=PaymentStatus.CAPTURED, intent="pi_replay_5")
    charge = {
        "id": "ch_replay_5",
        "object": "charge",
        "payment_intent": "pi_replay_5",
        "amount": 2000,
        "amount_refunded": 500,
        "refunded": False,
    }

    def check() -> None:
        db.session.refresh(made.payment)
        assert made.payment.stripe_status == "partially_refunded"
        audits = db.session.scalar(
            select(func.count(AuditEntry.id)).where(AuditEntry.action == "payment.refund_confirmed")
        )
        assert audits == 1

    return charge, check


def _account(now: datetime) -> tuple[dict[str, Any], Callable[[], None]]:
    worker = make_user(Role.WORKER)
    db.session.add(WorkerPayoutAccount(worker_id=worker.id, stripe_account_id="acct_replay"))
    db.session.commit()
    account = {
        "id": "acct_replay",
        "object": "account",
        "details_submitted": True,
        "charges_enabled": True,
        "payouts_enabled": True,
    }

    def check() -> None:
        row = db.session.scalar(select(WorkerPayoutAccount))
        assert row is not None
        assert row.status is PayoutAccountStatus.ACTIVE

    return account, check


def _unknown(now: datetime) -> tuple[dict[str, Any], Callable[[], None]]:
    def check() -> None:
        assert db.session.scalar(select(func.count(ProcessedWebhook.id))) == 1

    return {"id": "cus_1", "object": "customer"}, check


STRIPE_CASES = {
    "payment_intent.amount_capturable_updated": _authorised,
    "payment_intent.payment_failed": _failed,
    "payment_intent.canceled": _canceled,
    "payment_intent.succeeded": _succeeded,
    "charge.refunded": _refunded,
    "account.updated": _account,
    "customer.created": _unknown,
}


@pytest.mark.parametrize("event_type", list(STRIPE_CASES))
def test_a_stripe_event_delivered_twice_is_applied_once(
    client: FlaskClient, now: datetime, event_type: str
) -> None:
    obj, check = STRIPE_CASES[event_type](now)
    payload = stripe_event(event_type, obj, f"evt_replay_{event_type}")
    signed = stripe_signature(payload)
    before = snapshot()

    first = post_stripe(client, payload, signed)

    assert first.status_code == 200
    assert first.json == {"received": True, "replayed": False}
    check()
    after_first = snapshot()
    assert after_first != before

    second = post_stripe(client, payload, signed)

    assert second.status_code == 200
    assert second.json == {"received": True, "replayed": True}
    assert changed_tables(after_first, snapshot()) == []
    check()


def test_a_stripe_retry_after_our_database_failed_is_applied_once(
    client: FlaskClient, now: datetime
) -> None:
    obj, check = _failed(now)
    payload = stripe_event("payment_intent.payment_failed", obj, "evt_replay_after_503")
    signed = stripe_signature(payload)
    before = snapshot()

    dropped = OperationalError("UPDATE payments", {}, Exception("server closed the connection"))
    with mock.patch.object(payments, "card_refused", side_effect=dropped):
        failed = post_stripe(client, payload, signed)

    # Stripe sees an error, so it will send the event again; nothing was kept meanwhile,
    # not even the note that the event was seen.
    assert failed.status_code >= 500
    assert changed_tables(before, snapshot()) == []

    retried = post_stripe(client, payload, signed)
    assert retried.json == {"received": True, "replayed": False}
    check()
    after = snapshot()
    assert post_stripe(client, payload, signed).json == {"received": True, "replayed": True}
    assert changed_tables(after, snapshot()) == []


@pytest.mark.committing
def test_the_same_stripe_event_arriving_at_once_is_applied_once(
    app: Flask, now: datetime, postgres_only: None
) -> None:
    obj, _check = _failed(now)
    payload = stripe_event("payment_intent.payment_failed", obj, "evt_replay_concurrent")
    signed = stripe_signature(payload)
    payment_id = int(obj["metadata"]["payment_id"])
    db.session.remove()
    barrier = threading.Barrier(THREADS, timeout=30)
    answers: list[Any] = []

    def deliver() -> None:
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            response = post_stripe(client, payload, signed)
            answers.append((response.status_code, response.json))
            db.session.remove()

    threads = [threading.Thread(target=deliver) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(a[1]["replayed"] for a in answers) == [False] + [True] * (THREADS - 1)
    assert {a[0] for a in answers} == {200}
    payment = db.session.get(Payment, payment_id)
    assert payment is not None
    assert payment.status is PaymentStatus.FAILED
    emails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email")).all()
    assert [m.payload["subject"] for m in emails] == ["Your card was not accepted"]
    assert db.session.scalar(select(func.count(ProcessedWebhook.id))) == 1


# --- Twilio ------------------------------------------------------------------------------


@pytest.fixture
def council() -> Council:
    made: Council = CouncilFactory()
    return made


def post_twilio(client: FlaskClient, path: str, params: dict[str, str]) -> Any:
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature(path, params)})


def _incident_of(plan_id: int) -> Incident:
    incident = db.session.scalar(select(Incident).where(Incident.plan_id == plan_id))
    assert incident is not None
    return incident


def _found(client: FlaskClient, council: Council, now: datetime) -> tuple[Incident, Any]:
    """A caller typed a live card's PIN: an incident is open, the operator being rung."""
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=now)
    response = post_twilio(client, "/twilio/voice/pin?attempt=1", call_params(Digits=card.pin))
    assert response.status_code == 200
    return _incident_of(card.plan.id), card


def _cascade_call(client: FlaskClient, council: Council, now: datetime) -> tuple[Incident, Any]:
    """Nobody answered the transfer; the cascade's automated call to contact 1 is placed."""
    incident, _card = _found(client, council, now)
    path = f"/twilio/voice/dial?stage=2&incident={incident.id}"
    assert post_twilio(client, path, call_params(DialCallStatus="no-answer")).status_code == 200
    assert run_job("phone_cascade_calls", now=now) == {"queued": 1}
    call = db.session.scalars(select(CascadeCall)).one()
    return incident, call


def _events(incident: Incident) -> list[str]:
    return [
        e.text
        for e in db.session.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident.id)
            .order_by(IncidentEvent.id)
        )
    ]


def _call_arrival_noted() -> None:
    """The only row a greeting writes: when the call reached the line (TSA figures)."""
    assert call_arrived_at(call_params()["CallSid"]) is not None


def _voice(client: FlaskClient, council: Council, now: datetime) -> Any:
    return "/twilio/voice?attempt=1", call_params(), _call_arrival_noted


def _voice_to_operator(client: FlaskClient, council: Council, now: datetime) -> Any:
    operator_on_duty(council, "+447700900900")
    params = call_params(To=council.emergency_phone or "")
    return "/twilio/voice?attempt=4", params, _call_arrival_noted


def _pin_found(client: FlaskClient, council: Council, now: datetime) -> Any:
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=now)

    def check() -> None:
        incident = _incident_of(card.plan.id)
        assert any("Plan found from a call" in text for text in _events(incident))

    return "/twilio/voice/pin?attempt=1", call_params(Digits=card.pin), check


def _pin_found_nobody_on_duty(client: FlaskClient, council: Council, now: datetime) -> Any:
    council.duty_team_phone = None
    db.session.commit()
    card = make_plan_with_card(council, now=now)

    def check() -> None:
        incident = _incident_of(card.plan.id)
        assert incident.cascade_status is CascadeStatus.RUNNING
        texts = _events(incident)
        assert sum("no-operator-on-duty" in text for text in texts) == 1
        assert sum("Started contacting" in text for text in texts) == 1

    return "/twilio/voice/pin?attempt=1", call_params(Digits=card.pin), check


def _pin_mistyped(client: FlaskClient, council: Council, now: datetime) -> Any:
    card = make_plan_with_card(council, now=now)

    def check() -> None:
        misses = db.session.scalars(select(PinAttempt.outcome)).all()
        assert misses == ["invalid"]

    return "/twilio/voice/pin?attempt=1", call_params(Digits=mistype(card.pin)), check


def _pin_unknown(client: FlaskClient, council: Council, now: datetime) -> Any:
    def check() -> None:
        assert db.session.scalars(select(PinAttempt.outcome)).all() == ["unknown"]

    # 1234567 with its check digit: well formed, but no card has it.
    from emergency.pins import check_pin_format

    pin = next(p for p in (f"1234567{d}" for d in range(10)) if check_pin_format(p))
    return "/twilio/voice/pin?attempt=1", call_params(Digits=pin), check


def _dial_no_answer(client: FlaskClient, council: Council, now: datetime) -> Any:
    incident, card = _found(client, council, now)

    def check() -> None:
        db.session.refresh(incident)
        assert incident.cascade_status is CascadeStatus.RUNNING
        texts = _events(incident)
        assert sum("No operator answered" in text for text in texts) == 1
        assert sum("Started contacting" in text for text in texts) == 1
        sms = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == card.contacts[0].phone)
        ).all()
        assert len(sms) == 1

    path = f"/twilio/voice/dial?stage=1&incident={incident.id}"
    return path, call_params(DialCallStatus="no-answer"), check


def _dial_answered(client: FlaskClient, council: Council, now: datetime) -> Any:
    incident, _card = _found(client, council, now)
    operator_takes_call(client, call_params(), incident_id=incident.id)  # pressed 1

    def check() -> None:
        assert sum("An operator answered" in text for text in _events(incident)) == 1

    path = f"/twilio/voice/dial?stage=1&incident={incident.id}"
    return path, call_params(DialCallStatus="completed"), check


def _cascade_path(incident: Incident, call: CascadeCall, *, key: bool = False) -> str:
    path = f"/twilio/voice/cascade?incident={incident.id}&contact={call.contact_id}&call={call.id}"
    return path + "&step=key" if key else path


def _cascade_human(client: FlaskClient, council: Council, now: datetime) -> Any:
    incident, call = _cascade_call(client, council, now)

    def check() -> None:
        assert sum("was answered" in text for text in _events(incident)) == 1

    return _cascade_path(incident, call), call_params(AnsweredBy="human"), check


def _cascade_machine(client: FlaskClient, council: Council, now: datetime) -> Any:
    incident, call = _cascade_call(client, council, now)

    def check() -> None:
        assert sum("answering machine" in text for text in _events(incident)) == 1

    return _cascade_path(incident, call), call_params(AnsweredBy="machine_start"), check


def _cascade_pressed_1(client: FlaskClient, council: Council, now: datetime) -> Any:
    incident, call = _cascade_call(client, council, now)

    def check() -> None:
        db.session.refresh(incident)
        assert incident.confirmed_contact_id == call.contact_id
        assert sum("can step in" in text for text in _events(incident)) == 1

    return _cascade_path(incident, call, key=True), call_params(Digits="1"), check


def _cascade_pressed_2(client: FlaskClient, council: Council, now: datetime) -> Any:
    incident, call = _cascade_call(client, council, now)

    def check() -> None:
        assert sum("cannot step in" in text for text in _events(incident)) == 1

    return _cascade_path(incident, call, key=True), call_params(Digits="2"), check


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


def _sms_yes(client: FlaskClient, council: Council, now: datetime) -> Any:
    incident, card = _open_cascade(council, now)

    def check() -> None:
        db.session.refresh(incident)
        assert incident.confirmed_contact_id == card.contacts[0].id

    params = {
        "MessageSid": "SM" + "3" * 32,
        "From": card.contacts[0].phone,
        "To": "+448000988234",
        "Body": "Yes",
    }
    return "/twilio/sms", params, check


def _sms_other(client: FlaskClient, council: Council, now: datetime) -> Any:
    _incident, card = _open_cascade(council, now)
    params = {
        "MessageSid": "SM" + "4" * 32,
        "From": card.contacts[1].phone,
        "To": "+448000988234",
        "Body": "who is this?",
    }
    return "/twilio/sms", params, lambda: None


def _status_sms(client: FlaskClient, council: Council, now: datetime) -> Any:
    message = outbox.enqueue("sms", recipient="+447700900123", payload={"body": "Hi"})
    assert message is not None
    message.provider_ref = "SM" + "5" * 32
    message.delivery_status = "sent"
    db.session.commit()

    def check() -> None:
        db.session.refresh(message)
        assert message.delivery_status == "undelivered"
        assert "30003" in (message.last_error or "")

    params = {"MessageSid": "SM" + "5" * 32, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    return "/twilio/status", params, check


def _status_call(client: FlaskClient, council: Council, now: datetime) -> Any:
    incident, call = _cascade_call(client, council, now)
    message = db.session.get(OutboxMessage, call.outbox_message_id)
    assert message is not None
    message.provider_ref = "CA" + "7" * 32
    db.session.commit()

    def check() -> None:
        db.session.refresh(call)
        assert call.outcome == "not_reached"
        assert sum("was not reached" in text for text in _events(incident)) == 1

    return "/twilio/status", {"CallSid": "CA" + "7" * 32, "CallStatus": "no-answer"}, check


TWILIO_CASES: dict[str, Any] = {
    "voice-greeting": _voice,
    "voice-to-operator": _voice_to_operator,
    "voice/pin-found": _pin_found,
    "voice/pin-found-nobody-on-duty": _pin_found_nobody_on_duty,
    "voice/pin-mistyped": _pin_mistyped,
    "voice/pin-unknown": _pin_unknown,
    "voice/dial-no-answer": _dial_no_answer,
    "voice/dial-answered": _dial_answered,
    "voice/cascade-human": _cascade_human,
    "voice/cascade-machine": _cascade_machine,
    "voice/cascade-pressed-1": _cascade_pressed_1,
    "voice/cascade-pressed-2": _cascade_pressed_2,
    "sms-yes": _sms_yes,
    "sms-other": _sms_other,
    "status-sms": _status_sms,
    "status-call": _status_call,
}


@pytest.mark.parametrize("case", list(TWILIO_CASES))
def test_a_twilio_webhook_delivered_twice_has_its_effect_once(
    client: FlaskClient, council: Council, now: datetime, case: str
) -> None:
    path, params, check = TWILIO_CASES[case](client, council, now)
    before = snapshot()

    first = post_twilio(client, path, params)

    assert first.status_code in (200, 204), first.get_data(as_text=True)
    check()
    after_first = snapshot()
    assert after_first != before  # the first delivery did something

    second = post_twilio(client, path, params)

    assert second.status_code == first.status_code
    assert changed_tables(after_first, snapshot()) == []
    check()
    if path.startswith("/twilio/voice"):
        # Twilio plays whatever the retry answers: the caller hears the same thing.
        assert second.get_data() == first.get_data()


def test_the_same_wrong_pin_typed_again_is_a_new_try_not_a_replay(
    client: FlaskClient, council: Council, now: datetime
) -> None:
    """Replays are told apart by the try number Twilio was asked to send back: a caller
    who types the same wrong digits on the second try is counted twice."""
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=now)
    params = call_params(Digits=mistype(card.pin))

    first = post_twilio(client, "/twilio/voice/pin?attempt=1", params)
    replay = post_twilio(client, "/twilio/voice/pin?attempt=1", params)
    second_try = post_twilio(client, "/twilio/voice/pin?attempt=2", params)

    assert first.get_data() == replay.get_data()
    assert b"attempt=3" in second_try.get_data()
    assert db.session.scalars(select(PinAttempt.outcome)).all() == ["invalid", "invalid"]
