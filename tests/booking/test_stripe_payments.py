"""Card top-ups with the `stripe` backend against a real local Stripe server (localstripe):
authorise at request, capture the actual amount, cancel, refund, retries and timeouts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
import stripe
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboxMessage, OutboxStatus
from booking.models.payments import PaymentStatus, ReconciliationDifference
from booking.services import ledger, payments, reconciliation
from booking.services.reconciliation import ledger_card_pence
from booking.services.stripe_backend import make_gateway
from tests.booking.conftest import STRIPE_TEST_KEY
from tests.booking.factories_payments import (
    cancel,
    complete,
    deliver_outbox,
    make_card,
    make_top_up_booking,
    refund,
)

STRIPE = payments.STRIPE


def _intent(localstripe: str, intent_id: str) -> dict[str, Any]:
    response = requests.get(
        f"{localstripe}/v1/payment_intents/{intent_id}",
        auth=(STRIPE_TEST_KEY, ""),
        params={"expand[]": "latest_charge"},
        timeout=5,
    )
    response.raise_for_status()
    return dict(response.json())


def _charge(localstripe: str, charge_id: str) -> dict[str, Any]:
    response = requests.get(
        f"{localstripe}/v1/charges/{charge_id}", auth=(STRIPE_TEST_KEY, ""), timeout=5
    )
    response.raise_for_status()
    return dict(response.json())


def _authorised(localstripe: str, now: datetime, **kwargs: Any) -> Any:
    made = make_top_up_booking(
        now=now,
        backend=STRIPE,
        payment_method_id=make_card(localstripe),
        **kwargs,
    )
    assert made.payment.status is PaymentStatus.AUTHORISING
    deliver_outbox(now)
    db.session.refresh(made.payment)
    return made


def test_authorise_then_capture_the_actual_amount(localstripe: str, now: datetime) -> None:
    made = _authorised(localstripe, now, award_pence=3000, price_pence=5000)
    payment = made.payment
    assert payment.status is PaymentStatus.AUTHORISED
    assert payment.stripe_payment_intent_id
    remote = _intent(localstripe, payment.stripe_payment_intent_id)
    assert remote["status"] == "requires_capture"
    assert remote["amount"] == 2000
    assert remote["capture_method"] == "manual"
    assert remote["metadata"]["payment_id"] == str(payment.id)

    # The break took less time: 4000 of 5000. The budget pays its 3000, the card 1000.
    complete(made, charged_pence=4000, now=now + timedelta(days=3), backend=STRIPE)
    assert deliver_outbox(now + timedelta(days=3))["sent"] == 1

    db.session.refresh(payment)
    assert payment.status is PaymentStatus.CAPTURED
    assert payment.captured_pence == 1000
    assert payment.stripe_status == "succeeded"
    remote = _intent(localstripe, payment.stripe_payment_intent_id)
    assert remote["status"] == "succeeded"
    charge = remote["latest_charge"]
    assert charge["amount"] - charge["amount_refunded"] == 1000  # kept on the card
    # The ledger matches Stripe: the card money it still counts is what Stripe kept.
    assert ledger_card_pence(payment) == 1000
    assert ledger.balance(made.budget).available_pence == 0
    assert ledger.balance(made.budget).held_pence == 0
    result = reconciliation.reconcile(gateway=make_gateway(dict(db_config())), now=now)
    assert result == {"checked": 1, "differences": 0}


def db_config() -> dict[str, Any]:
    from flask import current_app

    return dict(current_app.config)


def test_cancelling_releases_the_authorisation(localstripe: str, now: datetime) -> None:
    made = _authorised(localstripe, now)
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id

    cancel(made, now=now, backend=STRIPE)
    assert deliver_outbox(now)["sent"] == 1

    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.CANCELLED
    assert made.payment.stripe_status == "canceled"
    assert _intent(localstripe, intent_id)["status"] == "canceled"
    assert ledger.balance(made.budget).available_pence == 3000
    assert ledger_card_pence(made.payment) == 0


def test_cancelled_before_stripe_answered_never_authorises(localstripe: str, now: datetime) -> None:
    made = make_top_up_booking(now=now, backend=STRIPE, payment_method_id=make_card(localstripe))
    cancel(made, now=now, backend=STRIPE)

    deliver_outbox(now)

    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.CANCELLED
    assert made.payment.stripe_payment_intent_id is None


def test_a_refund_after_a_dispute_goes_back_to_the_card(localstripe: str, now: datetime) -> None:
    made = _authorised(localstripe, now, award_pence=3000, price_pence=5000)
    complete(made, charged_pence=5000, now=now, backend=STRIPE)
    deliver_outbox(now)

    refund(made, refund_pence=500, now=now + timedelta(hours=30), backend=STRIPE)
    assert deliver_outbox(now + timedelta(hours=30))["sent"] == 1

    db.session.refresh(made.payment)
    assert made.payment.refunded_pence == 500
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    charge = _intent(localstripe, intent_id)["latest_charge"]
    assert charge["amount_refunded"] == 500
    assert ledger_card_pence(made.payment) == 1500
    assert ledger.balance(made.budget).available_pence == 0


def test_a_declined_card_is_reported_and_a_new_card_can_be_tried(
    localstripe: str, now: datetime
) -> None:
    made = make_top_up_booking(
        now=now, backend=STRIPE, payment_method_id=make_card(localstripe, "4000000000000341")
    )

    deliver_outbox(now)

    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.FAILED
    email = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "email"))
    assert email is not None
    assert email.payload["subject"] == "Your card was not accepted"
    assert made.booking.status == "requested"

    payments.submit_card(
        made.payment, payment_method_id=make_card(localstripe), actor=made.carer, now=now
    )
    deliver_outbox(now)

    db.session.refresh(made.payment)
    assert made.payment.attempt == 2
    assert made.payment.status is PaymentStatus.AUTHORISED


def test_a_retried_capture_after_a_timeout_captures_once(
    localstripe: str, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _authorised(localstripe, now, award_pence=3000, price_pence=5000)
    complete(made, charged_pence=5000, now=now, backend=STRIPE)

    original = stripe.RequestsClient.request
    capture_keys: list[str] = []

    def reaches_stripe_then_times_out(
        self: Any, method: str, url: str, headers: Any, post_data: Any = None
    ) -> Any:
        result = original(self, method, url, headers, post_data)
        if url.endswith("/capture"):
            capture_keys.append(headers["Idempotency-Key"])
            if len(capture_keys) == 1:
                # Stripe captured, but its answer never reaches us.
                raise stripe.APIConnectionError("Request timed out")
        return result

    monkeypatch.setattr(stripe.RequestsClient, "request", reaches_stripe_then_times_out)

    first = deliver_outbox(now)
    assert first["retry"] == 1
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "stripe.capture"))
    assert message is not None
    assert message.status is OutboxStatus.PENDING
    second = deliver_outbox(message.next_attempt_at)
    assert second["sent"] == 1

    # The same key both times, derived from our ids; Stripe took the money once.
    assert len(capture_keys) == 2
    assert capture_keys[0] == capture_keys[1] == f"payment-{made.payment.id}-attempt-1-capture"
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    remote = _intent(localstripe, intent_id)
    assert remote["status"] == "succeeded"
    assert remote["latest_charge"]["amount"] - remote["latest_charge"]["amount_refunded"] == 2000
    refunds = requests.get(
        f"{localstripe}/v1/refunds",
        auth=(STRIPE_TEST_KEY, ""),
        params={"charge": remote["latest_charge"]["id"]},
        timeout=5,
    ).json()
    assert refunds["data"] == []
    db.session.refresh(made.payment)
    assert made.payment.stripe_status == "succeeded"


def test_reconciliation_lists_what_stripe_and_we_disagree_on(
    localstripe: str, now: datetime
) -> None:
    made = _authorised(localstripe, now, award_pence=3000, price_pence=5000)
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    # Someone captured in Stripe's dashboard; we still hold it as only authorised.
    requests.post(
        f"{localstripe}/v1/payment_intents/{intent_id}/capture",
        auth=(STRIPE_TEST_KEY, ""),
        timeout=5,
    ).raise_for_status()

    gateway = make_gateway(db_config())
    assert reconciliation.reconcile(gateway=gateway, now=now)["differences"] == 1
    assert reconciliation.reconcile(gateway=gateway, now=now)["differences"] == 0  # same day

    difference = db.session.scalar(select(ReconciliationDifference))
    assert difference is not None
    assert (difference.kind, difference.ours, difference.theirs) == (
        "status",
        "authorised",
        "succeeded",
    )
    assert db.session.scalar(select(func.count(ReconciliationDifference.id))) == 1
