"""3-D Secure: when the bank wants the carer to confirm, the card page offers Stripe.js
`handleNextAction` with the intent's client secret, then asks Stripe how it ended and
updates our record. Against localstripe, whose 3-D Secure test cards stop at
`requires_action` until `/_authenticate` (what the bank's page does in a browser)."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage
from booking.models.payments import PaymentStatus
from booking.services import payments
from tests.booking.conftest import STRIPE_TEST_KEY
from tests.booking.factories_payments import (
    TopUpBooking,
    deliver_outbox,
    make_card,
    make_top_up_booking,
    remote_intent,
)
from tests.helpers import sign_in

THREE_D_SECURE_CARD = "4000002500003155"


def _needs_confirming(localstripe: str, now: datetime) -> TopUpBooking:
    made = make_top_up_booking(
        now=now,
        backend=payments.STRIPE,
        payment_method_id=make_card(localstripe, THREE_D_SECURE_CARD),
    )
    deliver_outbox(now)
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.REQUIRES_ACTION
    return made


def _bank_answers(localstripe: str, intent_id: str, *, success: bool) -> None:
    """What the bank's page does in the carer's browser after handleNextAction."""
    secret = remote_intent(localstripe, intent_id)["client_secret"]
    requests.post(
        f"{localstripe}/v1/payment_intents/{intent_id}/_authenticate",
        auth=(STRIPE_TEST_KEY, ""),
        data={"client_secret": secret, "success": "true" if success else "false"},
        timeout=5,
    ).raise_for_status()


def test_the_carer_is_told_and_the_card_page_offers_the_banks_check(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    made = _needs_confirming(localstripe, now)
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    sign_in(client, made.carer)

    page = client.get(f"/payments/bookings/{made.booking.id}/card").get_data(as_text=True)

    email = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "email"))
    assert email is not None
    assert email.payload["subject"] == "Your bank needs you to confirm a card payment"
    assert "Confirm the payment with your bank" in page
    secret = remote_intent(localstripe, intent_id)["client_secret"]
    assert f'data-client-secret="{secret}"' in page
    assert 'id="confirm-with-bank"' in page
    assert "handleNextAction" in page
    assert f'action="/payments/bookings/{made.booking.id}/card/check"' in page
    # Without JavaScript, or when Stripe's script cannot load: what to do instead.
    assert "<noscript>" in page
    assert 'id="stripe-unavailable"' in page
    assert "call your council's carers team" in page
    assert 'id="card-form"' not in page  # no new card is asked for while the bank checks
    detail = client.get(f"/bookings/{made.booking.id}").get_data(as_text=True)
    assert "Your bank needs you to confirm the card payment." in detail
    assert "Confirm the card payment" in detail


def test_the_banks_check_script_finds_every_element_it_uses(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    """The inline script runs as the page is read, so each element it looks up (the
    check form it submits after the bank answers, too) must come before it."""
    made = _needs_confirming(localstripe, now)
    sign_in(client, made.carer)

    page = client.get(f"/payments/bookings/{made.booking.id}/card").get_data(as_text=True)

    looked_up = set(re.findall(r'getElementById\("([\w-]+)"\)', page))
    assert {"confirm-with-bank", "check-form", "stripe-unavailable"} <= looked_up
    for element_id in looked_up:
        assert page.index(f'id="{element_id}"') < page.index(f'getElementById("{element_id}")'), (
            element_id
        )


def test_after_the_bank_says_yes_the_check_marks_the_card_reserved(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    made = _needs_confirming(localstripe, now)
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    sign_in(client, made.carer)
    _bank_answers(localstripe, intent_id, success=True)

    response = client.post(f"/payments/bookings/{made.booking.id}/card/check")

    assert response.status_code == 302
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AUTHORISED
    assert made.payment.stripe_status == "requires_capture"
    assert payments.top_up_secured(made.booking)
    page = client.get(f"/payments/bookings/{made.booking.id}/card").get_data(as_text=True)
    assert "Your bank has confirmed it" in page
    assert "Your card has been accepted. The money is reserved." in page
    assert 'id="confirm-with-bank"' not in page


def test_after_the_bank_says_no_the_carer_can_try_another_card(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    made = _needs_confirming(localstripe, now)
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    sign_in(client, made.carer)
    _bank_answers(localstripe, intent_id, success=False)

    client.post(f"/payments/bookings/{made.booking.id}/card/check")

    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.FAILED
    page = client.get(f"/payments/bookings/{made.booking.id}/card").get_data(as_text=True)
    assert "Your bank did not confirm the payment" in page
    assert 'id="card-form"' in page
    payments.submit_card(
        made.payment, payment_method_id=make_card(localstripe), actor=made.carer, now=now
    )
    deliver_outbox(now)
    db.session.refresh(made.payment)
    assert (made.payment.status, made.payment.attempt) == (PaymentStatus.AUTHORISED, 2)


def test_checking_before_the_bank_answered_changes_nothing(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    made = _needs_confirming(localstripe, now)
    sign_in(client, made.carer)

    client.post(f"/payments/bookings/{made.booking.id}/card/check")

    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.REQUIRES_ACTION
    page = client.get(f"/payments/bookings/{made.booking.id}/card").get_data(as_text=True)
    assert "still waiting for you to confirm" in page


def test_the_webhook_after_the_banks_check_also_marks_it_reserved(
    localstripe: str, now: datetime
) -> None:
    made = _needs_confirming(localstripe, now)
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    _bank_answers(localstripe, intent_id, success=True)
    intent = remote_intent(localstripe, intent_id)

    payments.handle_stripe_event(
        {
            "id": "evt_3ds_done",
            "type": "payment_intent.amount_capturable_updated",
            "data": {"object": intent},
        },
        now=now,
    )

    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AUTHORISED


def test_when_stripe_cannot_be_reached_the_page_says_what_to_do(
    app: Flask,
    client: FlaskClient,
    localstripe: str,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = _needs_confirming(localstripe, now)
    sign_in(client, made.carer)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", "http://127.0.0.1:9")  # nothing there

    page = client.get(f"/payments/bookings/{made.booking.id}/card")
    checked = client.post(f"/payments/bookings/{made.booking.id}/card/check")

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "We could not reach our card payment provider just now" in text
    assert 'id="confirm-with-bank"' not in text
    assert checked.status_code == 302
    follow = client.get(f"/payments/bookings/{made.booking.id}/card").get_data(as_text=True)
    assert "We could not check with your bank just now" in follow
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.REQUIRES_ACTION


def test_another_carer_cannot_check_the_payment(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    made = _needs_confirming(localstripe, now)
    other = make_top_up_booking(now=now, backend=payments.STRIPE)
    sign_in(client, other.carer)

    assert client.post(f"/payments/bookings/{made.booking.id}/card/check").status_code == 404
