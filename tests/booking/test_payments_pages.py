"""The card entry page (Stripe Elements, with a fallback when Stripe's script cannot
load), and Stripe's CSP sources only with the Stripe backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from app.config import load_config
from app.extensions import db
from app.models import OutboxMessage, Role
from booking.models.payments import PaymentStatus
from booking.services import payments
from tests.booking.factories_payments import make_top_up_booking
from tests.factories import make_user
from tests.helpers import sign_in


def test_card_page_mounts_stripe_elements_with_a_fallback(
    client: FlaskClient, stripe_config: dict[str, Any], now: datetime
) -> None:
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id=None)
    assert made.payment.status is PaymentStatus.AWAITING_CARD
    sign_in(client, made.carer)

    page = client.get(f"/payments/bookings/{made.booking.id}/card").get_data(as_text=True)

    assert "Pay the rest by card" in page
    assert "£20.00" in page
    assert 'src="https://js.stripe.com/v3/"' in page
    assert 'data-publishable-key="pk_test_localstripe"' in page
    assert "<noscript>" in page
    assert 'id="stripe-unavailable"' in page  # shown by the page's script if Stripe is missing


def test_submitting_a_card_queues_its_authorisation(
    client: FlaskClient, stripe_config: dict[str, Any], now: datetime
) -> None:
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id=None)
    sign_in(client, made.carer)

    empty = client.post(f"/payments/bookings/{made.booking.id}/card", data={})
    assert empty.status_code == 200
    assert "We could not read the card details" in empty.get_data(as_text=True)

    done = client.post(
        f"/payments/bookings/{made.booking.id}/card", data={"payment_method": "pm_card_visa"}
    )

    assert done.status_code == 302
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AUTHORISING
    assert made.payment.payment_method_id == "pm_card_visa"
    assert db.session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.kind == "stripe.authorise")
    )


def test_card_page_explains_when_card_payments_are_off(client: FlaskClient, now: datetime) -> None:
    made = make_top_up_booking(now=now, backend=payments.STRIPE, payment_method_id=None)
    sign_in(client, made.carer)

    page = client.get(f"/payments/bookings/{made.booking.id}/card").get_data(as_text=True)
    refused = client.post(
        f"/payments/bookings/{made.booking.id}/card", data={"payment_method": "pm_card_visa"}
    )

    assert "Card payments are not available at the moment" in page
    assert "js.stripe.com" not in page
    assert refused.status_code == 200
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AWAITING_CARD


def test_another_carer_cannot_see_the_card_page(client: FlaskClient, now: datetime) -> None:
    made = make_top_up_booking(now=now)
    sign_in(client, make_user(Role.CARER, council=made.carer.council))
    assert client.get(f"/payments/bookings/{made.booking.id}/card").status_code == 404


def test_stripe_csp_sources_only_with_the_stripe_backend(tmp_path: Any) -> None:
    stripe_on = load_config(str(tmp_path), {"PAYMENT_BACKEND": "stripe"})
    stripe_off = load_config(str(tmp_path), {})

    assert "https://js.stripe.com" in stripe_on["CSP_EXTRA_SCRIPT_SRC"]
    assert "https://js.stripe.com" in stripe_on["CSP_EXTRA_FRAME_SRC"]
    assert "https://api.stripe.com" in stripe_on["CSP_EXTRA_CONNECT_SRC"]
    assert "CSP_EXTRA_SCRIPT_SRC" not in stripe_off


def test_admins_find_payment_differences_on_their_dashboard(client: FlaskClient) -> None:
    sign_in(client, make_user(Role.ADMIN))

    page = client.get("/dashboard").get_data(as_text=True)

    assert 'href="/payments/differences"' in page
    assert client.get("/payments/differences").status_code == 200
