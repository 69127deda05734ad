"""The database connection drops: the app reconnects by itself, and while the database is
unreachable people get a clear 503 with nothing half-saved, never a crash page. On
PostgreSQL the connection is also killed in the middle of a booking's transaction
(between the hold and the COMMIT): nothing of the booking is left, and the retry books
once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import IdempotencyRecord, OutboxMessage, Role
from booking.models.bookings import Booking
from booking.models.budgets import LedgerEntry, LedgerKind
from tests.factories import make_user
from tests.faults.test_killed_mid_booking import (
    AWARD,
    PRICE,
    Seeded,
    available,
    counts,
    post,
    seeded,
)
from tests.helpers import bearer, error_of, sign_in


@pytest.mark.committing
def test_app_reconnects_after_postgres_kills_its_connections(
    app: Flask, postgres_only: None
) -> None:
    carer = make_user(Role.CARER)
    headers = bearer(carer)
    client = app.test_client()
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    db.session.remove()
    with db.engine.connect() as admin:
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        admin.commit()
    # Every pooled connection is dead now; pre-ping replaces them transparently.
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["id"] == carer.id


def _unreachable(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_database_outage_gives_a_clear_503(app: Flask, client: Any) -> None:
    carer = make_user(Role.CARER)
    headers = bearer(carer)
    sign_in(client, carer)
    with (
        mock.patch.object(db.session, "get", side_effect=_unreachable),
        mock.patch.object(db.session, "scalar", side_effect=_unreachable),
    ):
        page = client.get("/dashboard")
        api = client.get("/api/v1/me", headers=headers)
    assert page.status_code == 503
    assert "the service is unavailable" in page.get_data(as_text=True)
    assert api.status_code == 503
    assert api.get_json()["error"]["code"] == "service_unavailable"
    assert api.headers["Retry-After"] == "30"
    # And once it is back, all is well.
    assert client.get("/api/v1/me", headers=headers).status_code == 200


@contextmanager
def connection_dropped_before_the_booking_commits() -> Iterator[dict[str, Any]]:
    """The first transaction that writes a Booking has its PostgreSQL backend killed
    (pg_terminate_backend, from another connection) after the booking, its hold and its
    SMS are flushed and before COMMIT: what a database restart or failover does. Yields
    what that transaction could see just before."""
    seen: dict[str, Any] = {}
    wrote_booking = {"yes": False}

    def after_flush(session: Session, _context: Any) -> None:
        if any(isinstance(row, Booking) for row in session.new):
            wrote_booking["yes"] = True

    def before_commit(session: Session) -> None:
        if not wrote_booking["yes"] or seen:
            return
        session.flush()
        connection = session.connection()
        seen["in_flight"] = {
            "bookings": connection.scalar(select(func.count(Booking.id))),
            "holds": connection.scalar(
                select(func.count(LedgerEntry.id)).where(LedgerEntry.kind == LedgerKind.HOLD)
            ),
            "outbox": connection.scalar(select(func.count(OutboxMessage.id))),
        }
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with db.engine.connect() as admin:
            # Waits (up to 5 s) until the backend has really gone.
            seen["terminated"] = admin.scalar(
                text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
            )

    event.listen(Session, "after_flush", after_flush)
    event.listen(Session, "before_commit", before_commit)
    try:
        yield seen
    finally:
        event.remove(Session, "before_commit", before_commit)
        event.remove(Session, "after_flush", after_flush)


@pytest.mark.committing
def test_connection_dropped_between_the_hold_and_the_commit_leaves_nothing_half_made(
    app: Flask, postgres_only: None, seeded: Seeded
) -> None:
    key = "booking-while-the-database-restarts"
    client = app.test_client()
    with connection_dropped_before_the_booking_commits() as seen:
        dropped = post(client, seeded, key=key)

    # The booking, its hold and the worker's SMS were written in that transaction...
    assert seen == {
        "in_flight": {"bookings": 1, "holds": 1, "outbox": 1},
        "terminated": True,
    }
    # ...the carer is told plainly that nothing was saved...
    assert dropped.status_code == 503, dropped.get_json()
    assert error_of(dropped)["code"] == "service_unavailable"
    assert dropped.headers["Retry-After"] == "30"
    # ...and nothing of it is left: no booking, no hold, no message, no claim on the key.
    assert counts() == {"bookings": 0, "holds": 0, "outbox": 0, "booking_audit": 0}
    assert available(seeded.carer_id) == AWARD
    assert db.session.scalar(select(func.count(IdempotencyRecord.id))) == 0

    # The app's next requests get a live connection; the retry books once, and a repeat
    # of it is the first answer replayed.
    retried = post(client, seeded, key=key)
    repeated = post(client, seeded, key=key)
    assert retried.status_code == 201, retried.get_json()
    assert repeated.status_code == 201
    assert repeated.headers["Idempotent-Replayed"] == "true"
    assert repeated.get_json()["id"] == retried.get_json()["id"]
    assert counts() == {"bookings": 1, "holds": 1, "outbox": 1, "booking_audit": 1}
    assert available(seeded.carer_id) == AWARD - PRICE


__all__ = ["seeded"]  # the fixture, shared with test_killed_mid_booking
