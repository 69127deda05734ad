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
