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
from app.models import AuditEntry, ProcessedWebhook, Role
from booking.models.payments import PaymentStatus, PayoutAccountStatus, WorkerPayoutAccount
from booking.services import payments
from tests.booking.conftest import STRIPE_TEST_KEY, WEBHOOK_SECRET
from tests.booking.factories_payments import deliver_outbox, make_card, make_top_up_booking
from tests.factories import make_user


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
    response = requests.get(
        f"{url}/v1/events", auth=(STRIPE_TEST_KEY, ""), params={"type": event_type}, timeout=5
    )
    response.raise_for_status()
    return list(response.json()["data"])


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
