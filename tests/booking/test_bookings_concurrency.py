"""On PostgreSQL, 20 carers ask for one worker's slot at the same moment: exactly one
wins, the others get slot_taken, and no money stays held for them."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import User
from booking.models.bookings import Booking
from booking.services import bookings as service
from booking.services import ledger
from tests.booking.factories_bookings import NOW, RATE, budget_of, council, make_carer, make_worker

START = NOW + timedelta(days=2, hours=1)
END = START + timedelta(hours=3)
THREADS = 20


@pytest.mark.committing
def test_twenty_concurrent_requests_one_wins(app: Flask, postgres_only: None) -> None:
    c = council()
    worker = make_worker(c)
    carer_ids = [make_carer(c).id for _ in range(THREADS)]
    worker_id = worker.id
    db.session.remove()
    barrier = threading.Barrier(THREADS, timeout=60)
    outcomes: dict[int, str] = {}

    def attempt(carer_id: int) -> None:
        with app.app_context():
            carer = db.session.get(User, carer_id)
            # Give the connection back while waiting: the pool holds fewer than 20.
            db.session.commit()
            barrier.wait()
            try:
                service.request_booking(
                    carer=carer,
                    worker_id=worker_id,
                    starts_at=START,
                    ends_at=END,
                    postcode="LS6 2AB",
                    address="1 Test Street",
                    notes=None,
                    actor=carer,
                    now=NOW,
                )
                outcomes[carer_id] = "booked"
            except service.DomainError as exc:
                outcomes[carer_id] = exc.code
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(cid,)) for cid in carer_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values()) == ["booked"] + ["slot_taken"] * (THREADS - 1)
    assert db.session.scalar(select(func.count(Booking.id))) == 1
    for carer_id in carer_ids:
        held = ledger.balance(budget_of(db.session.get(User, carer_id))).held_pence
        assert held == (3 * RATE if outcomes[carer_id] == "booked" else 0)


@pytest.mark.committing
def test_one_idempotency_key_sent_eight_times_at_once_books_once(
    app: Flask, postgres_only: None
) -> None:
    """A client that retries too eagerly: the same request and key, eight times at once.
    One booking and one hold; every answer is the booking (replayed) or 'still working'."""
    import time_machine

    from tests.helpers import bearer

    c = council()
    worker = make_worker(c)
    carer = make_carer(c)
    headers = {**bearer(carer), "Idempotency-Key": "retry-storm-1"}
    body = {
        "worker_id": worker.id,
        "starts_at": START.isoformat(),
        "ends_at": END.isoformat(),
        "postcode": "LS6 2AB",
        "address": "1 Test Street",
        "top_up": False,
    }
    carer_id = carer.id
    db.session.remove()
    clients = 8
    barrier = threading.Barrier(clients, timeout=60)
    answers: list[tuple[int, str | None]] = []

    def attempt() -> None:
        client = app.test_client()
        barrier.wait()
        try:
            with app.app_context():
                response = client.post("/api/v1/bookings", json=body, headers=headers)
                db.session.remove()
        except Exception as exc:  # shown in the assertion below
            answers.append((0, repr(exc)))
            return
        payload = response.get_json() or {}
        answers.append((response.status_code, payload.get("error", {}).get("code")))

    with time_machine.travel(NOW, tick=False):
        threads = [threading.Thread(target=attempt) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert len(answers) == clients
    assert (201, None) in answers
    assert {a for a in answers if a != (201, None)} <= {(409, "idempotency_in_progress")}
    assert db.session.scalar(select(func.count(Booking.id))) == 1
    held = ledger.balance(budget_of(db.session.get(User, carer_id))).held_pence
    assert held == 3 * RATE
