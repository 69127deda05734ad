"""Bookings with a card top-up, moved through the same ledger steps and payment hooks,
in the same order, as `booking.services.bookings` does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests

from app.extensions import db
from app.models import Role, User
from booking.models.bookings import Booking, BookingStatus
from booking.models.budgets import Budget
from booking.models.payments import Payment
from booking.services import ledger, payments
from tests.booking.conftest import STRIPE_TEST_KEY
from tests.booking.factories_budgets import make_budget, make_carer
from tests.factories import make_user


@dataclass
class TopUpBooking:
    booking: Booking
    budget: Budget
    payment: Payment
    carer: User
    worker: User


def make_card(localstripe_url: str, number: str = "4242424242424242") -> str:
    """A PaymentMethod on the local Stripe server (what Stripe Elements makes in a browser)."""
    response = requests.post(
        f"{localstripe_url}/v1/payment_methods",
        auth=(STRIPE_TEST_KEY, ""),
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        },
        timeout=5,
    )
    response.raise_for_status()
    return str(response.json()["id"])


def list_all(localstripe_url: str, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every object of a list on the local Stripe server, read page by page: it lists 10
    by default, oldest first, so a plain list misses ours once earlier tests made more."""
    found: list[dict[str, Any]] = []
    query: dict[str, Any] = {**params, "limit": 100}
    while True:
        page = requests.get(
            f"{localstripe_url}{path}", auth=(STRIPE_TEST_KEY, ""), params=query, timeout=5
        )
        page.raise_for_status()
        body = page.json()
        found += body["data"]
        if not body["has_more"] or not body["data"]:
            return found
        query["starting_after"] = body["data"][-1]["id"]


def intents_for_card(localstripe_url: str, payment_method_id: str) -> list[dict[str, Any]]:
    """Every PaymentIntent on the local Stripe server made with this card."""
    return [
        intent
        for intent in list_all(localstripe_url, "/v1/payment_intents")
        if intent["payment_method"] == payment_method_id
    ]


def remote_intent(localstripe_url: str, intent_id: str) -> dict[str, Any]:
    """One PaymentIntent as the local Stripe server has it, with its charge."""
    response = requests.get(
        f"{localstripe_url}/v1/payment_intents/{intent_id}",
        auth=(STRIPE_TEST_KEY, ""),
        params={"expand[]": "latest_charge"},
        timeout=5,
    )
    response.raise_for_status()
    return dict(response.json())


def make_top_up_booking(
    *,
    now: datetime,
    award_pence: int = 3000,
    price_pence: int = 5000,
    backend: str = payments.LEDGER,
    payment_method_id: str | None = None,
    worker: User | None = None,
    carer: User | None = None,
) -> TopUpBooking:
    """A requested break costing more than the budget holds, the rest by card. A new
    carer (in a new council) unless one is given; the worker is in the carer's council."""
    carer = carer or make_carer(council=worker.council if worker is not None else None)
    budget = make_budget(carer, award_pence=award_pence, now=now)
    worker = worker or make_user(Role.WORKER, council=carer.council)
    top_up = price_pence - ledger.balance(budget).available_pence
    booking = Booking(
        council_id=carer.council_id,
        carer_id=carer.id,
        worker_id=worker.id,
        starts_at=now + timedelta(days=3),
        ends_at=now + timedelta(days=3, hours=2),
        status=BookingStatus.REQUESTED,
        price_pence=price_pence,
        budget_id=budget.id,
        hold_pence=price_pence,
        top_up_pence=top_up,
        created_at=now,
    )
    db.session.add(booking)
    db.session.flush()
    payment = payments.prepare_top_up(
        booking=booking,
        budget=budget,
        top_up_pence=top_up,
        payment_method_id=payment_method_id,
        actor=carer,
        now=now,
        backend=backend,
    )
    ledger.hold(
        budget,
        price_pence,
        booking_id=booking.id,
        actor=carer,
        reason="test break",
        idempotency_key=f"booking:{booking.id}:hold",
        now=now,
        commit=False,
    )
    db.session.commit()
    return TopUpBooking(booking, budget, payment, carer, worker)


def complete(made: TopUpBooking, *, charged_pence: int, now: datetime, backend: str) -> None:
    booking = made.booking
    ledger.release(
        made.budget,
        booking.hold_pence,
        booking_id=booking.id,
        actor=None,
        reason="completed",
        idempotency_key=f"booking:{booking.id}:release",
        now=now,
        commit=False,
    )
    ledger.capture(
        made.budget,
        charged_pence,
        booking_id=booking.id,
        actor=None,
        reason="completed",
        idempotency_key=f"booking:{booking.id}:capture",
        now=now,
        commit=False,
    )
    booking.status = BookingStatus.COMPLETED
    booking.charged_pence = charged_pence
    booking.completed_at = now
    payments.on_booking_completed(
        booking=booking, charged_pence=charged_pence, now=now, backend=backend
    )
    db.session.commit()


def cancel(made: TopUpBooking, *, now: datetime, backend: str) -> None:
    booking = made.booking
    ledger.release(
        made.budget,
        booking.hold_pence,
        booking_id=booking.id,
        actor=None,
        reason="cancelled",
        idempotency_key=f"booking:{booking.id}:release",
        now=now,
        commit=False,
    )
    booking.status = BookingStatus.CANCELLED
    payments.on_booking_ended_unpaid(booking=booking, now=now, backend=backend)
    db.session.commit()


def refund(made: TopUpBooking, *, refund_pence: int, now: datetime, backend: str) -> None:
    booking = made.booking
    ledger.refund(
        made.budget,
        refund_pence,
        booking_id=booking.id,
        actor=None,
        reason="dispute",
        idempotency_key=f"booking:{booking.id}:refund",
        now=now,
        commit=False,
    )
    payments.on_booking_refunded(
        booking=booking, refund_pence=refund_pence, now=now, backend=backend
    )
    db.session.commit()


def deliver_outbox(now: datetime) -> dict[str, Any]:
    """Run the outbox job at `now` (or the real time, if later: rows are due from then)."""
    from app.clock import utcnow
    from app.scheduler import run_job

    result: dict[str, Any] = run_job("deliver_outbox", now=max(now, utcnow()))
    return result
