"""POST /stripe/webhook: verified by signature, stored by event id, replay-safe. Events
are the real ones localstripe recorded, signed the way Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Any

import requests
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, OutboxMessage, ProcessedWebhook, Role
from booking.models.payments import PaymentStatus, PayoutAccountStatus, WorkerPayoutAccount
from booking.services import payments
from tests.booking.conftest import STRIPE_TEST_KEY, WEBHOOK_SECRET
from tests.booking.factories_payments import (
    deliver_outbox,
    list_all,
    make_card,
    make_top_up_booking,
    remote_intent,
)
from tests.factories import make_user
from tests.helpers import sign_in


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def post_event(client: FlaskClient, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET) -> Any:
    payload = json.dumps(event).encode()
    return client.post(
        "/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": sign(payload, secret), "Content-Type": "application/json"},
    )


def event(event_type: str, obj: dict[str, Any], event_id: str = "evt_test_1") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": obj},
    }


def localstripe_events(url: str, event_type: str) -> list[dict[str, Any]]:
    return list_all(url, "/v1/events", type=event_type)


def _counts() -> tuple[int, int]:
    return (
        int(db.session.scalar(select(func.count(ProcessedWebhook.id))) or 0),
        int(db.session.scalar(select(func.count(AuditEntry.id))) or 0),
    )


def test_a_real_failed_payment_event_is_applied_once(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    card = make_card(localstripe, "4000000000000341")
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id=card)
    # Stripe's answer to our call was lost: we have no PaymentIntent id or status yet.
    deliver_outbox(now)
    made.payment.status = PaymentStatus.AUTHORISING
    db.session.commit()
    failed = [
        e
        for e in localstripe_events(localstripe, "payment_intent.payment_failed")
        if e["data"]["object"]["payment_method"] == card
    ]
    assert len(failed) == 1

    first = post_event(client, failed[0])
    assert first.status_code == 200
    assert first.json == {"received": True, "replayed": False}
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.FAILED
    assert made.payment.stripe_payment_intent_id == failed[0]["data"]["object"]["id"]
    counts = _counts()

    replay = post_event(client, failed[0])

    assert replay.status_code == 200
    assert replay.json == {"received": True, "replayed": True}
    assert _counts() == counts


def test_amount_capturable_updated_marks_the_card_authorised(
    client: FlaskClient, stripe_config: dict[str, Any], now: datetime
) -> None:
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id="pm_card_1")
    intent = {
        "id": "pi_123",
        "object": "payment_intent",
        "status": "requires_capture",
        "amount": made.payment.amount_pence,
        "amount_capturable": made.payment.amount_pence,
        "metadata": {"payment_id": str(made.payment.id), "attempt": "1"},
    }

    response = post_event(client, event("payment_intent.amount_capturable_updated", intent))

    assert response.status_code == 200
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AUTHORISED
    assert made.payment.stripe_payment_intent_id == "pi_123"


def test_succeeded_canceled_and_refunded_events_are_recorded(
    client: FlaskClient, stripe_config: dict[str, Any], now: datetime
) -> None:
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id="pm_card_1")
    made.payment.stripe_payment_intent_id = "pi_456"
    made.payment.status = PaymentStatus.AUTHORISED
    db.session.commit()
    intent = {"id": "pi_456", "object": "payment_intent", "status": "succeeded", "metadata": {}}
    assert post_event(client, event("payment_intent.succeeded", intent, "evt_a")).status_code == 200
    db.session.refresh(made.payment)
    assert made.payment.stripe_status == "succeeded"

    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_456",
        "amount": 2000,
        "amount_refunded": 500,
        "refunded": False,
    }
    assert post_event(client, event("charge.refunded", charge, "evt_b")).status_code == 200
    db.session.refresh(made.payment)
    assert made.payment.stripe_status == "partially_refunded"

    canceled = {**intent, "status": "canceled"}
    assert (
        post_event(client, event("payment_intent.canceled", canceled, "evt_c")).status_code == 200
    )
    db.session.refresh(made.payment)
    # Stripe ended a reservation we still counted on: the carer is asked for a card again.
    assert made.payment.status is PaymentStatus.FAILED
    assert made.payment.stripe_status == "canceled"


def test_account_updated_activates_a_workers_bank_connection(
    client: FlaskClient, stripe_config: dict[str, Any]
) -> None:
    worker = make_user(Role.WORKER)
    db.session.add(
        WorkerPayoutAccount(worker_id=worker.id, stripe_account_id="acct_1Nv0FGQ9RKHgCVdK")
    )
    db.session.commit()
    account = {
        "id": "acct_1Nv0FGQ9RKHgCVdK",
        "object": "account",
        "type": "express",
        "details_submitted": True,
        "charges_enabled": True,
        "payouts_enabled": True,
    }

    assert post_event(client, event("account.updated", account)).status_code == 200

    row = db.session.scalar(select(WorkerPayoutAccount))
    assert row is not None
    assert row.status is PayoutAccountStatus.ACTIVE


def test_a_forged_or_unsigned_webhook_is_refused(
    client: FlaskClient, stripe_config: dict[str, Any]
) -> None:
    forged = post_event(client, event("account.updated", {"id": "acct_x"}), secret="whsec_wrong")
    unsigned = client.post(
        "/stripe/webhook", data=b"{}", headers={"Content-Type": "application/json"}
    )
    payload = json.dumps(event("account.updated", {"id": "acct_x"})).encode()
    stale = client.post(
        "/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": sign(payload, timestamp=int(time.time()) - 3600)},
    )

    assert (forged.status_code, unsigned.status_code, stale.status_code) == (400, 400, 400)
    assert _counts()[0] == 0


def test_a_lapsed_authorisation_asks_for_the_card_again_not_card_refused(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    made = make_top_up_booking(
        now=now, backend=payments.STRIPE, payment_method_id=make_card(localstripe)
    )
    deliver_outbox(now)
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AUTHORISED
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    # Stripe cancels an uncaptured authorisation by itself after about 7 days, with
    # cancellation_reason "automatic" (localstripe cannot age one, so the event is the
    # real intent with the reason Stripe documents for it).
    requests.post(
        f"{localstripe}/v1/payment_intents/{intent_id}/cancel",
        auth=(STRIPE_TEST_KEY, ""),
        timeout=5,
    ).raise_for_status()
    lapsed = {**remote_intent(localstripe, intent_id), "cancellation_reason": "automatic"}
    assert lapsed["status"] == "canceled"

    response = post_event(client, event("payment_intent.canceled", lapsed, "evt_lapsed"))

    assert response.status_code == 200
    db.session.refresh(made.payment)
    payment = made.payment
    assert payment.status is PaymentStatus.AWAITING_CARD
    assert (payment.attempt, payment.stripe_payment_intent_id, payment.payment_method_id) == (
        2,
        None,
        None,
    )
    assert payment.failure_message == payments.LAPSED_MESSAGE
    subjects = [
        m.payload["subject"]
        for m in db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email"))
    ]
    assert subjects == ["Please enter your card again for your break"]
    assert not payments.top_up_secured(made.booking)

    # The break page and the card page ask for the card again, and say why.
    sign_in(client, made.carer)
    detail = client.get(f"/bookings/{made.booking.id}").get_data(as_text=True)
    assert f'href="/payments/bookings/{made.booking.id}/card"' in detail
    assert "the money reserved for this break has been released" in detail
    card_page = client.get(f"/payments/bookings/{made.booking.id}/card").get_data(as_text=True)
    assert "the money reserved for this break has been released" in card_page
    assert "not accepted" not in card_page
    assert 'id="card-form"' in card_page

    # A new card is a new attempt: a new PaymentIntent, reserved again.
    payments.submit_card(
        payment, payment_method_id=make_card(localstripe), actor=made.carer, now=now
    )
    deliver_outbox(now)
    db.session.refresh(payment)
    assert payment.status is PaymentStatus.AUTHORISED
    assert payment.stripe_payment_intent_id not in (None, intent_id)
    assert payment.failure_message is None

    # The same lapse delivered again changes nothing.
    replay = post_event(client, event("payment_intent.canceled", lapsed, "evt_lapsed"))
    assert replay.json == {"received": True, "replayed": True}
    db.session.refresh(payment)
    assert payment.status is PaymentStatus.AUTHORISED


def test_a_lapse_after_the_break_was_settled_changes_nothing(
    client: FlaskClient, stripe_config: dict[str, Any], now: datetime
) -> None:
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id="pm_card_1")
    made.payment.stripe_payment_intent_id = "pi_settled"
    made.payment.status = PaymentStatus.CANCELLED
    db.session.commit()
    intent = {
        "id": "pi_settled",
        "object": "payment_intent",
        "status": "canceled",
        "cancellation_reason": "automatic",
        "metadata": {},
    }

    assert post_event(client, event("payment_intent.canceled", intent)).status_code == 200

    db.session.refresh(made.payment)
    assert (made.payment.status, made.payment.attempt) == (PaymentStatus.CANCELLED, 1)
    assert db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "email")) is None


def test_the_webhook_needs_no_csrf_token_but_pages_still_do(
    app: Any,
    client: FlaskClient,
    stripe_config: dict[str, Any],
    now: datetime,
    monkeypatch: Any,
) -> None:
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id=None)

    webhook = post_event(client, event("account.updated", {"id": "acct_unknown"}))
    sign_in(client, made.carer)
    page = client.post(
        f"/payments/bookings/{made.booking.id}/card", data={"payment_method": "pm_card_visa"}
    )

    assert webhook.status_code == 200
    assert page.status_code == 400
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AWAITING_CARD
