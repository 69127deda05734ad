"""Stripe down (500s, timeouts): the booking stays requested, the authorisation waits in
the outbox and is retried with the same idempotency key until Stripe answers."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests
import responses
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage, OutboxStatus
from booking.models.bookings import BookingStatus
from booking.models.payments import PaymentStatus
from booking.services import payments
from tests.booking.factories_payments import (
    deliver_outbox,
    intents_for_card,
    make_card,
    make_top_up_booking,
    remote_intent,
)


def test_stripe_down_then_back_authorises_once(localstripe: str, now: datetime) -> None:
    card = make_card(localstripe)
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id=card)
    seen_keys: list[str] = []

    with responses.RequestsMock() as stripe_down:
        stripe_down.add_callback(
            responses.POST,
            f"{localstripe}/v1/payment_intents",
            callback=lambda request: (
                seen_keys.append(request.headers["Idempotency-Key"])
                or (500, {}, '{"error": {"type": "api_error", "message": "Server error"}}')
            ),
        )
        first = deliver_outbox(now)
        message = db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.kind == "stripe.authorise")
        )
        assert message is not None
        stripe_down.replace(
            responses.POST,
            f"{localstripe}/v1/payment_intents",
            body=requests.exceptions.ReadTimeout("read timed out"),
        )
        second = deliver_outbox(message.next_attempt_at)

    assert (first["retry"], second["retry"]) == (1, 1)
    db.session.refresh(made.payment)
    db.session.refresh(message)
    assert made.payment.status is PaymentStatus.AUTHORISING
    assert made.booking.status is BookingStatus.REQUESTED
    assert message.status is OutboxStatus.PENDING
    assert message.attempts == 2
    assert "APIError" in (message.last_error or "") or "Timeout" in (message.last_error or "")

    recovered = deliver_outbox(message.next_attempt_at)

    assert recovered["sent"] == 1
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AUTHORISED
    assert seen_keys == [f"payment-{made.payment.id}-attempt-1-authorise"]
    # One reservation on the card, the one we stored (found by our id, and by the card
    # among every intent on the server, so the tests that ran before do not matter).
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    assert remote_intent(localstripe, intent_id)["status"] == "requires_capture"
    assert [i["id"] for i in intents_for_card(localstripe, card)] == [intent_id]
    assert made.booking.status is BookingStatus.REQUESTED


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(429, "rate_limit_error"), (502, "api_error"), (503, "api_error")],
)
def test_rate_limits_and_server_errors_are_retried(
    localstripe: str, now: datetime, status: int, error_type: str
) -> None:
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id="pm_card_visa")

    with responses.RequestsMock() as stripe_busy:
        stripe_busy.post(
            f"{localstripe}/v1/payment_intents",
            status=status,
            json={"error": {"type": error_type, "message": "Try again later"}},
        )
        result = deliver_outbox(now)

    assert result["retry"] == 1
    message = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.kind == "stripe.authorise")
    )
    assert message is not None
    assert message.status is OutboxStatus.PENDING
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AUTHORISING
    assert made.payment.failure_message is None
    assert db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "email")) is None
