"""The bookings API of api.md: fields, roles, status and error codes, idempotency, and the
full journey search → book → accept → complete → the statement shows the charge."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from app.clock import iso_z
from app.extensions import db
from app.models import Role
from booking.models.bookings import Booking
from booking.models.budgets import LedgerEntry, LedgerKind
from booking.services import ledger
from tests.booking.factories_bookings import NOW, RATE, budget_of, council, make_carer, make_worker
from tests.factories import make_user
from tests.helpers import bearer, error_of

START = NOW + timedelta(days=2, hours=1)  # Wednesday 10:00 UK time
END = START + timedelta(hours=3)


def _body(worker, **changes):
    body = {
        "worker_id": worker.id,
        "starts_at": "2026-11-25T10:00:00+00:00",
        "ends_at": "2026-11-25T13:00:00+00:00",
        "postcode": "LS6 2AB",
        "address": "1 Test Street",
        "notes": "Likes tea",
        "top_up": False,
    }
    body.update(changes)
    return body


@pytest.fixture
def setup():
    c = council()
    return c, make_carer(c), make_worker(c)


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def test_full_journey_through_the_api(client, setup) -> None:
    _c, carer, worker = setup
    carer_h, worker_h = bearer(carer), bearer(worker)
    found = client.get(
        "/api/v1/workers/search",
        query_string={"starts_at": iso_z(START), "ends_at": iso_z(END), "postcode": "LS6 2AB"},
        headers=carer_h,
    )
    assert found.status_code == 200, found.get_json()
    assert [r["worker_id"] for r in found.get_json()["results"]] == [worker.id]

    made = client.post("/api/v1/bookings", json=_body(worker), headers=carer_h)
    assert made.status_code == 201, made.get_json()
    created = made.get_json()
    assert created == {
        "id": created["id"],
        "status": "requested",
        "price_pence": 3 * RATE,
        "budget_pence": 3 * RATE,
        "top_up_pence": 0,
    }
    booking_id = created["id"]
    seen_by_worker = client.get(f"/api/v1/bookings/{booking_id}", headers=worker_h).get_json()
    assert seen_by_worker["notes"] is None  # not shared
    assert client.post(f"/api/v1/bookings/{booking_id}/accept", headers=worker_h).get_json() == {
        "status": "confirmed"
    }
    with time_machine.travel(END + timedelta(minutes=5), tick=False):
        done = client.post(
            f"/api/v1/bookings/{booking_id}/complete",
            json={"actual_starts_at": iso_z(START), "actual_ends_at": iso_z(END)},
            headers=bearer(worker),  # tokens last 12 hours: one from that day
        )
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "completed"
    assert done.get_json()["charged_pence"] == 3 * RATE
    budget = budget_of(carer)
    with time_machine.travel(END + timedelta(minutes=10), tick=False):
        statement = client.get(f"/api/v1/budgets/{budget.id}/ledger", headers=bearer(carer))
    entries = statement.get_json()["entries"]
    captures = [e for e in entries if e["kind"] == "capture" and e["booking_id"] == booking_id]
    assert [e["amount_pence"] for e in captures] == [-3 * RATE]
    listed = client.get("/api/v1/bookings", headers=carer_h).get_json()["bookings"]
    assert [b["id"] for b in listed] == [booking_id]


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"ends_at": "2026-11-25T10:30:00+00:00"}, 422, "too_short"),
        (
            {"starts_at": "2026-11-23T10:00:00+00:00", "ends_at": "2026-11-23T12:00:00+00:00"},
            422,
            "too_late",
        ),
        (
            {"starts_at": "2027-03-01T10:00:00+00:00", "ends_at": "2027-03-01T12:00:00+00:00"},
            422,
            "too_far_ahead",
        ),
        (
            {"starts_at": "2026-11-25T21:00:00+00:00", "ends_at": "2026-11-25T23:00:00+00:00"},
            422,
            "outside_availability",
        ),
        ({"starts_at": "2026-11-25T10:00:00"}, 422, "validation_failed"),
    ],
)
def test_error_codes(client, setup, changes, status, code) -> None:
    _c, carer, worker = setup
    response = client.post("/api/v1/bookings", json=_body(worker, **changes), headers=bearer(carer))
    assert response.status_code == status
    assert error_of(response)["code"] == code
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_slot_taken_worker_not_bookable_and_insufficient_budget(client, setup) -> None:
    c, carer, worker = setup
    assert (
        client.post("/api/v1/bookings", json=_body(worker), headers=bearer(carer)).status_code
        == 201
    )
    other = make_carer(c)
    taken = client.post("/api/v1/bookings", json=_body(worker), headers=bearer(other))
    assert (taken.status_code, error_of(taken)["code"]) == (409, "slot_taken")
    stranger = make_user(Role.WORKER, council=c)
    refused = client.post("/api/v1/bookings", json=_body(stranger), headers=bearer(other))
    assert (refused.status_code, error_of(refused)["code"]) == (422, "worker_not_bookable")
    poor = make_carer(c, award=100)
    broke = client.post(
        "/api/v1/bookings",
        json=_body(
            worker, starts_at="2026-11-26T10:00:00+00:00", ends_at="2026-11-26T12:00:00+00:00"
        ),
        headers=bearer(poor),
    )
    assert (broke.status_code, error_of(broke)["code"]) == (402, "insufficient_budget")
    assert ledger.balance(budget_of(poor)).held_pence == 0


def test_idempotency_key_books_once(client, setup) -> None:
    _c, carer, worker = setup
    headers = {**bearer(carer), "Idempotency-Key": "abc-123"}
    first = client.post("/api/v1/bookings", json=_body(worker), headers=headers)
    second = client.post("/api/v1/bookings", json=_body(worker), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert db.session.scalar(select(func.count(Booking.id))) == 1


def test_decline_and_cancel_responses(client, setup) -> None:
    _c, carer, worker = setup
    carer_h, worker_h = bearer(carer), bearer(worker)
    first = client.post("/api/v1/bookings", json=_body(worker), headers=carer_h).get_json()["id"]
    assert client.post(f"/api/v1/bookings/{first}/decline", headers=worker_h).get_json() == {
        "status": "declined"
    }
    second = client.post("/api/v1/bookings", json=_body(worker), headers=carer_h).get_json()["id"]
    cancelled = client.post(f"/api/v1/bookings/{second}/cancel", headers=carer_h)
    assert cancelled.get_json() == {
        "status": "cancelled",
        "fee_pence": 0,
        "released_pence": 3 * RATE,
        "alternatives": [],
    }
    assert ledger.balance(budget_of(carer)).held_pence == 0


def test_not_yours_is_404_and_officer_sees_council_bookings(client, setup) -> None:
    c, carer, worker = setup
    booking_id = client.post(
        "/api/v1/bookings", json=_body(worker), headers=bearer(carer)
    ).get_json()["id"]
    other = make_carer(c)
    assert client.get(f"/api/v1/bookings/{booking_id}", headers=bearer(other)).status_code == 404
    assert (
        client.post(
            f"/api/v1/bookings/{booking_id}/accept", headers=bearer(make_worker(c))
        ).status_code
        == 404
    )
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    assert client.get(f"/api/v1/bookings/{booking_id}", headers=bearer(officer)).status_code == 200
    outsider = make_user(Role.COUNCIL_OFFICER)
    assert client.get(f"/api/v1/bookings/{booking_id}", headers=bearer(outsider)).status_code == 404


def test_a_retried_answer_with_its_idempotency_key_gets_the_first_response(client, setup) -> None:
    """A worker's phone that loses the answer to "decline" and sends it again must hear
    "declined", not "wrong status", and the hold is released once."""
    _c, carer, worker = setup
    carer_h = bearer(carer)
    worker_h = {**bearer(worker), "Idempotency-Key": "decline-retry-1"}
    first = client.post("/api/v1/bookings", json=_body(worker), headers=carer_h).get_json()["id"]
    declined = client.post(f"/api/v1/bookings/{first}/decline", headers=worker_h)
    again = client.post(f"/api/v1/bookings/{first}/decline", headers=worker_h)
    assert (declined.status_code, again.status_code) == (200, 200)
    assert again.get_json() == {"status": "declined"}
    assert again.headers.get("Idempotent-Replayed") == "true"
    releases = db.session.scalar(
        select(func.count(LedgerEntry.id)).where(
            LedgerEntry.booking_id == first, LedgerEntry.kind == LedgerKind.RELEASE
        )
    )
    assert releases == 1

    second = client.post("/api/v1/bookings", json=_body(worker), headers=carer_h).get_json()["id"]
    accept_h = {**bearer(worker), "Idempotency-Key": "accept-retry-1"}
    accepted = client.post(f"/api/v1/bookings/{second}/accept", headers=accept_h)
    retried = client.post(f"/api/v1/bookings/{second}/accept", headers=accept_h)
    assert accepted.get_json() == retried.get_json() == {"status": "confirmed"}
    assert retried.status_code == 200
    without_key = client.post(f"/api/v1/bookings/{second}/accept", headers=bearer(worker))
    assert (without_key.status_code, error_of(without_key)["code"]) == (409, "wrong_status")


@pytest.mark.parametrize("number", [2**31, 10**20])
def test_a_worker_id_too_big_for_the_database_is_422_never_500(client, setup, number) -> None:
    _c, carer, _worker = setup
    response = client.post(
        "/api/v1/bookings", json=_body(_worker, worker_id=number), headers=bearer(carer)
    )
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_failed"
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_a_place_beyond_the_workers_travel_radius_is_422(client, setup) -> None:
    _c, carer, worker = setup
    response = client.post(
        "/api/v1/bookings", json=_body(worker, postcode="TR1 1AA"), headers=bearer(carer)
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "outside_travel_radius"
    assert "postcode" in error["fields"]
    assert db.session.scalar(select(func.count(Booking.id))) == 0
    assert ledger.balance(budget_of(carer)).held_pence == 0
    unknown = client.post(
        "/api/v1/bookings", json=_body(worker, postcode="ZZ9 9ZZ"), headers=bearer(carer)
    )
    assert (unknown.status_code, error_of(unknown)["code"]) == (422, "unknown_postcode")
    documented = client.get("/api/v1/openapi.json").get_json()
    assert "outside_travel_radius" in str(documented["paths"]["/api/v1/bookings"]["post"])


def test_a_payment_method_not_shaped_pm_is_a_documented_422(client, setup) -> None:
    c, _carer, worker = setup
    poor = make_carer(c, award=2000)  # the break costs more: the rest is paid by card
    response = client.post(
        "/api/v1/bookings",
        json=_body(worker, top_up=True, payment_method="tok_visa"),
        headers=bearer(poor),
    )
    assert (response.status_code, error_of(response)["code"]) == (422, "invalid_payment_method")
    assert db.session.scalar(select(func.count(Booking.id))) == 0
    documented = client.get("/api/v1/openapi.json").get_json()
    unprocessable = documented["paths"]["/api/v1/bookings"]["post"]["responses"]["422"]
    assert "invalid_payment_method" in unprocessable["description"]


def test_accepting_while_the_card_part_is_not_secured_is_409(client, setup) -> None:
    from booking.models.payments import PaymentStatus
    from booking.services import bookings as service
    from booking.services import payments

    c, _carer, worker = setup
    poor = make_carer(c, award=2000)
    booking = service.request_booking(
        carer=poor,
        worker_id=worker.id,
        starts_at=START,
        ends_at=END,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=poor,
        now=NOW,
        top_up=True,
        payment_backend=payments.STRIPE,
    )
    refused = client.post(f"/api/v1/bookings/{booking.id}/accept", headers=bearer(worker))
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "top_up_not_secured"
    assert client.get(f"/api/v1/bookings/{booking.id}", headers=bearer(worker)).get_json()[
        "status"
    ] == ("requested")
    payment = payments.payment_for_booking(booking.id)
    payment.status = PaymentStatus.AUTHORISED
    db.session.commit()
    accepted = client.post(f"/api/v1/bookings/{booking.id}/accept", headers=bearer(worker))
    assert (accepted.status_code, accepted.get_json()) == (200, {"status": "confirmed"})
