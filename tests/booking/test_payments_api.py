"""POST /api/v1/bookings with a card top-up: a `payment_method` that is not shaped like a
Stripe PaymentMethod id is refused with 422 before anything is written (Stripe would
refuse it later, after the booking was made, with nobody there to hear it)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.clock import london_wall_clock
from app.extensions import db
from app.models import OutboxMessage
from booking.models.bookings import Booking
from booking.models.budgets import LedgerEntry
from booking.models.payments import Payment, PaymentStatus
from tests.booking.factories_budgets import make_budget, make_carer
from tests.booking.factories_workers import make_worker
from tests.helpers import bearer, error_of


def _body(worker_id: int, now: datetime, payment_method: str) -> dict[str, Any]:
    day = (now + timedelta(days=7)).date()
    day = day + timedelta(days=(1 - day.weekday()) % 7)  # a Tuesday
    return {
        "worker_id": worker_id,
        "starts_at": london_wall_clock(day, time(10, 0)).isoformat(),
        "ends_at": london_wall_clock(day, time(12, 0)).isoformat(),
        "postcode": "LS6 2AB",
        "address": "1 Test Street",
        "top_up": True,
        "payment_method": payment_method,
    }


def _count(model: Any) -> int:
    return int(db.session.scalar(select(func.count(model.id))) or 0)


@pytest.mark.parametrize(
    "payment_method",
    ["tok_visa", "4242424242424242", "pm_", "pm_card visa", "pm_1;DROP", "card_1Nv0FG"],
)
def test_a_payment_method_not_shaped_like_stripes_is_refused_with_422(
    client: FlaskClient, stripe_config: dict[str, Any], now: datetime, payment_method: str
) -> None:
    carer = make_carer()
    assert carer.council is not None
    worker = make_worker(carer.council, rate=2000, today=now.date())
    make_budget(carer, award_pence=1500, now=now)
    ledger_before = _count(LedgerEntry)

    response = client.post(
        "/api/v1/bookings", json=_body(worker.id, now, payment_method), headers=bearer(carer)
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_payment_method"
    assert "payment_method" in error["fields"]
    assert (_count(Booking), _count(Payment), _count(OutboxMessage)) == (0, 0, 0)
    assert _count(LedgerEntry) == ledger_before


def test_a_stripe_payment_method_id_is_queued_for_authorisation(
    client: FlaskClient, stripe_config: dict[str, Any], now: datetime
) -> None:
    carer = make_carer()
    assert carer.council is not None
    worker = make_worker(carer.council, rate=2000, today=now.date())
    make_budget(carer, award_pence=1500, now=now)

    response = client.post(
        "/api/v1/bookings",
        json=_body(worker.id, now, "pm_1Nv0FGQ9RKHgCVdKabc"),
        headers=bearer(carer),
    )

    assert response.status_code == 201, response.get_json()
    payment = db.session.scalar(select(Payment))
    assert payment is not None
    assert (payment.status, payment.payment_method_id) == (
        PaymentStatus.AUTHORISING,
        "pm_1Nv0FGQ9RKHgCVdKabc",
    )
