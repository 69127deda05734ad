"""Stripe down (500s, timeouts): the booking stays requested, the authorisation waits in
the outbox and is retried with the same idempotency key until Stripe answers."""

from __future__ import annotations

from datetime import datetime

import requests
import responses
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage, OutboxStatus
from booking.models.bookings import BookingStatus
from booking.models.payments import PaymentStatus
from booking.services import payments
from tests.booking.factories_payments import deliver_outbox, make_card, make_top_up_booking


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
    intents = requests.get(
        f"{localstripe}/v1/payment_intents", auth=("sk_test_localstripe", ""), timeout=5
    ).json()["data"]
    ours = [i for i in intents if i["payment_method"] == card]
    assert len(ours) == 1
    assert made.booking.status is BookingStatus.REQUESTED
