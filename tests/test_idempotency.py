"""`Idempotency-Key`: a repeat with the same key and body gets the first response, also
when that response was the work refusing the request; refusals about who is asking
(401, 403), rate limits (429) and our own failures (5xx) are never kept."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import time_machine
from flask import Flask, Response
from sqlalchemy import func, select

from app import audit
from app.api.idempotency import run_idempotent
from app.errors import DomainError
from app.extensions import db
from app.models import AuditEntry, IdempotencyRecord, Role
from booking.models.bookings import Booking
from tests.booking.factories_bookings import NOW, council, make_carer, make_worker
from tests.factories import make_user
from tests.helpers import bearer, error_of


@pytest.fixture
def _frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def _booking(worker_id: int) -> dict[str, object]:
    return {
        "worker_id": worker_id,
        "starts_at": "2026-11-25T10:00:00+00:00",
        "ends_at": "2026-11-25T13:00:00+00:00",
        "postcode": "LS6 2AB",
        "address": "1 Test Street",
        "notes": "",
        "top_up": False,
    }


def _bookings_of(carer_id: int) -> int:
    return (
        db.session.scalar(select(func.count(Booking.id)).where(Booking.carer_id == carer_id)) or 0
    )


@pytest.mark.usefixtures("_frozen")
def test_a_slot_taken_answer_is_replayed_even_after_the_slot_comes_free(client) -> None:  # type: ignore[no-untyped-def]
    c = council()
    worker = make_worker(c)
    first_carer, second_carer = make_carer(c), make_carer(c)
    first_h = bearer(first_carer)
    made = client.post("/api/v1/bookings", json=_booking(worker.id), headers=first_h)
    assert made.status_code == 201, made.get_json()

    second_h = {**bearer(second_carer), "Idempotency-Key": "book-wed-1"}
    taken = client.post("/api/v1/bookings", json=_booking(worker.id), headers=second_h)
    assert (taken.status_code, error_of(taken)["code"]) == (409, "slot_taken")

    cancelled = client.post(f"/api/v1/bookings/{made.get_json()['id']}/cancel", headers=first_h)
    assert cancelled.status_code == 200, cancelled.get_json()

    again = client.post("/api/v1/bookings", json=_booking(worker.id), headers=second_h)
    assert again.status_code == 409
    assert again.get_json() == taken.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _bookings_of(second_carer.id) == 0

    # The slot really is free: a new key books it.
    fresh = client.post(
        "/api/v1/bookings",
        json=_booking(worker.id),
        headers={**second_h, "Idempotency-Key": "book-wed-2"},
    )
    assert fresh.status_code == 201, fresh.get_json()
    assert _bookings_of(second_carer.id) == 1


@pytest.mark.usefixtures("_frozen")
def test_an_insufficient_budget_answer_is_replayed(client) -> None:  # type: ignore[no-untyped-def]
    c = council()
    worker = make_worker(c)
    poor = make_carer(c, award=100)
    headers = {**bearer(poor), "Idempotency-Key": "broke-1"}
    broke = client.post("/api/v1/bookings", json=_booking(worker.id), headers=headers)
    assert (broke.status_code, error_of(broke)["code"]) == (402, "insufficient_budget")
    again = client.post("/api/v1/bookings", json=_booking(worker.id), headers=headers)
    assert (again.status_code, again.get_json()) == (402, broke.get_json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _bookings_of(poor.id) == 0


def _count_records() -> int:
    return db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0


def _audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_a_refusal_is_stored_but_the_work_before_it_is_rolled_back(app: Flask) -> None:
    user = make_user(Role.CARER)
    calls: list[int] = []
    audits_before = _audit_count()

    def work() -> Response:
        calls.append(1)
        audit.record("half.done", actor=user, council_id=user.council_id)
        db.session.flush()
        raise DomainError("That slot is taken.", code="slot_taken", status=409)

    headers = {"Idempotency-Key": "k-409"}
    with app.test_request_context("/api/v1/x", method="POST", json={"a": 1}, headers=headers):
        first = run_idempotent(user, work)
    with app.test_request_context("/api/v1/x", method="POST", json={"a": 1}, headers=headers):
        second = run_idempotent(user, work)
    assert calls == [1]
    assert first.status_code == second.status_code == 409
    assert json.loads(second.get_data()) == {
        "error": {"code": "slot_taken", "message": "That slot is taken."}
    }
    assert _count_records() == 1
    assert _audit_count() == audits_before  # the half-done work did not stay


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "invalid_token"), (403, "forbidden"), (429, "too_many_attempts"), (503, "down")],
)
def test_refusals_about_the_caller_or_the_moment_are_not_stored(
    app: Flask, status: int, code: str
) -> None:
    user = make_user(Role.CARER)
    calls: list[int] = []

    def work() -> Response:
        calls.append(1)
        raise DomainError("No.", code=code, status=status)

    for _ in range(2):
        with (
            app.test_request_context(
                "/api/v1/x", method="POST", json={}, headers={"Idempotency-Key": "k"}
            ),
            pytest.raises(DomainError),
        ):
            run_idempotent(user, work)
    assert calls == [1, 1]  # the repeat ran the work again
    assert _count_records() == 0


@pytest.mark.parametrize("status", [403, 429, 500])
def test_such_responses_returned_without_raising_are_not_stored_either(
    app: Flask, status: int
) -> None:
    user = make_user(Role.CARER)

    def work() -> Response:
        return Response("{}", status=status, mimetype="application/json")

    with app.test_request_context(
        "/api/v1/x", method="POST", json={}, headers={"Idempotency-Key": "k"}
    ):
        assert run_idempotent(user, work).status_code == status
    assert _count_records() == 0
