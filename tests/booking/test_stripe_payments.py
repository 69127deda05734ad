"""Card top-ups with the `stripe` backend against a real local Stripe server (localstripe):
authorise at request, capture the actual amount, cancel, refund, retries and timeouts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
import responses
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
    assert result == {"checked": 1, "differences": 0, "errors": 0}


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


def _outbox(kind: str) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        )
    )


def test_a_refused_card_is_not_captured_at_completion(localstripe: str, now: datetime) -> None:
    made = make_top_up_booking(
        now=now, backend=STRIPE, payment_method_id=make_card(localstripe, "4000000000000341")
    )
    deliver_outbox(now)
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.FAILED

    complete(made, charged_pence=5000, now=now, backend=STRIPE)
    deliver_outbox(now)

    db.session.refresh(made.payment)
    assert _outbox("stripe.capture") == []
    assert made.payment.failure_message == payments.NOT_COLLECTED
    assert payments.not_collected(made.payment)
    # The card part is owed: staff see it as not collected, once.
    result = reconciliation.reconcile(gateway=make_gateway(db_config()), now=now)
    assert result["differences"] == 1
    difference = db.session.scalar(select(ReconciliationDifference))
    assert difference is not None
    assert difference.kind == "not_collected"


def test_a_card_waiting_for_the_banks_check_is_released_not_captured(
    localstripe: str, now: datetime
) -> None:
    made = make_top_up_booking(
        now=now, backend=STRIPE, payment_method_id=make_card(localstripe, "4000002500003155")
    )
    deliver_outbox(now)
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.REQUIRES_ACTION
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id

    complete(made, charged_pence=5000, now=now, backend=STRIPE)
    deliver_outbox(now)

    assert _outbox("stripe.capture") == []
    [cancelled] = _outbox("stripe.cancel")
    assert cancelled.status is OutboxStatus.SENT
    assert _intent(localstripe, intent_id)["status"] == "canceled"
    db.session.refresh(made.payment)
    assert payments.not_collected(made.payment)


def test_a_payment_method_stripe_does_not_know_is_refused_once_and_the_carer_told(
    localstripe: str, now: datetime
) -> None:
    # Shaped like an id, but Stripe has no such PaymentMethod: it answers 400/404 every
    # time, so asking again 8 times would change nothing.
    made = make_top_up_booking(now=now, backend=STRIPE, payment_method_id="pm_1NoSuchCard00")

    result = deliver_outbox(now)

    [authorise] = _outbox("stripe.authorise")
    assert authorise.attempts == 1
    assert authorise.status is OutboxStatus.SENT
    assert result["retry"] == 0
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.FAILED
    assert made.payment.failure_message == (
        "We could not use that card. Please enter your card details again."
    )
    [email] = _outbox("email")
    assert email.payload["subject"] == "Your card was not accepted"
    assert email.recipient == made.carer.email


def test_a_capture_stripe_refuses_is_not_retried(localstripe: str, now: datetime) -> None:
    made = _authorised(localstripe, now)
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    # Someone released the reservation in Stripe's dashboard before the break ended.
    requests.post(
        f"{localstripe}/v1/payment_intents/{intent_id}/cancel",
        auth=(STRIPE_TEST_KEY, ""),
        timeout=5,
    ).raise_for_status()
    complete(made, charged_pence=5000, now=now, backend=STRIPE)

    # localstripe captures a cancelled intent's charge anyway; Stripe refuses with a 400
    # of this documented shape, so the capture call alone gets Stripe's real answer.
    with responses.RequestsMock() as stripe_api:
        stripe_api.add_passthru(localstripe)
        stripe_api.post(
            f"{localstripe}/v1/payment_intents/{intent_id}/capture",
            status=400,
            json={
                "error": {
                    "code": "payment_intent_unexpected_state",
                    "type": "invalid_request_error",
                    "message": (
                        "This PaymentIntent could not be captured because it has a status of "
                        "canceled. Only a PaymentIntent with one of the following statuses "
                        "may be captured: requires_capture."
                    ),
                }
            },
        )
        result = deliver_outbox(now)

    [capture] = _outbox("stripe.capture")
    assert (capture.status, capture.attempts) == (OutboxStatus.DEAD, 1)
    assert "Stripe refused the capture" in (capture.last_error or "")
    assert result["retry"] == 0
    # Staff see it as a difference: we think we took the money, Stripe has it cancelled.
    reconciliation.reconcile(gateway=make_gateway(db_config()), now=now)
    difference = db.session.scalar(
        select(ReconciliationDifference).where(ReconciliationDifference.kind == "status")
    )
    assert difference is not None
    assert (difference.ours, difference.theirs) == ("captured", "canceled")


def test_reconcile_payments_job_lists_the_differences(localstripe: str, now: datetime) -> None:
    from app.scheduler import run_job

    made = _authorised(localstripe, now)
    intent_id = made.payment.stripe_payment_intent_id
    requests.post(
        f"{localstripe}/v1/payment_intents/{intent_id}/capture",
        auth=(STRIPE_TEST_KEY, ""),
        timeout=5,
    ).raise_for_status()

    result = run_job("reconcile_payments", now=now)

    assert result == {"checked": 1, "differences": 1, "errors": 0}
    difference = db.session.scalar(select(ReconciliationDifference))
    assert difference is not None
    assert (difference.object_ref, difference.ours, difference.theirs) == (
        intent_id,
        "authorised",
        "succeeded",
    )
    assert difference.payment_id == made.payment.id
    assert difference.council_id == made.payment.council_id


def test_reconcile_payments_job_does_nothing_with_the_ledger_backend(
    app: Any, now: datetime
) -> None:
    from app.scheduler import run_job

    assert app.config["PAYMENT_BACKEND"] == "ledger"
    assert run_job("reconcile_payments", now=now) == {"checked": 0, "differences": 0}
