"""The app is killed (SIGKILL) in the middle of a booking: the real app runs in a child
process against this run's database (a SQLite file, or PostgreSQL on the PostgreSQL
pass) and dies at a chosen moment. Then, in this process:

* killed before COMMIT, with the booking row, the hold and the SMS already flushed:
  nothing of it is left, the balance is untouched, and the same slot books once;
* killed after COMMIT but before the HTTP response: retrying the same request (same
  Idempotency-Key, or the same web form) never books or holds twice;
* the outbox job killed after Twilio accepted an SMS but before "sent" was committed:
  the message is still there and goes out on the next run (never lost).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import outbox
from app.extensions import db
from app.models import AuditEntry, Council, IdempotencyRecord, OutboxMessage, OutboxStatus, User
from app.scheduler import run_job
from booking.models.bookings import Booking
from booking.models.budgets import LedgerEntry, LedgerKind
from booking.services import ledger
from tests.booking.factories_bookings import NOW, RATE, budget_of, council, make_carer, make_worker
from tests.helpers import api_token, error_of, sign_in

pytestmark = pytest.mark.committing

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AWARD = 100_000
PRICE = 3 * RATE  # 10:00 to 13:00
BODY = {
    "starts_at": "2026-11-25T10:00:00+00:00",  # a Wednesday, inside the worker's hours
    "ends_at": "2026-11-25T13:00:00+00:00",
    "postcode": "LS6 2AB",
    "address": "1 Test Street",
    "notes": None,
    "top_up": False,
}
TWILIO_SID = "AC" + "1" * 32
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
TWILIO_CONFIG = {
    "NOTIFY_BACKEND": "twilio",
    "TWILIO_ACCOUNT_SID": TWILIO_SID,
    "TWILIO_AUTH_TOKEN": "twilio-test-auth-token",
    "TWILIO_FROM_NUMBER": "+447700900001",
}


class Seeded:
    def __init__(self, carer: User, worker: User, council: Council, token: str) -> None:
        self.carer_id = carer.id
        self.worker_id = worker.id
        self.council_id = council.id
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}
        self.body = {**BODY, "worker_id": worker.id}


@pytest.fixture
def seeded() -> Seeded:
    """A carer with a budget of £1,000 and an approved worker free that Wednesday."""
    c = council()
    worker = make_worker(c)
    carer = make_carer(c, award=AWARD)
    made = Seeded(carer, worker, c, api_token(carer))
    # On SQLite every transaction takes the write lock: hold none while the child runs.
    db.session.remove()
    return made


def run_child(database_url: str, **spec: Any) -> dict[str, Any]:
    """Run tests/faults/_crash_child.py; it must die by SIGKILL. Returns its last report."""
    spec = {"database_url": database_url, "now": NOW.isoformat(), **spec}
    db.session.remove()
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults._crash_child", json.dumps(spec)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr[-3000:])
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def counts() -> dict[str, int]:
    db.session.remove()

    def count(query: Any) -> int:
        return int(db.session.scalar(query) or 0)

    return {
        "bookings": count(select(func.count(Booking.id))),
        "holds": count(
            select(func.count(LedgerEntry.id)).where(LedgerEntry.kind == LedgerKind.HOLD)
        ),
        "outbox": count(select(func.count(OutboxMessage.id))),
        "booking_audit": count(
            select(func.count(AuditEntry.id)).where(AuditEntry.action == "booking.requested")
        ),
    }


def available(carer_id: int) -> int:
    carer = db.session.get(User, carer_id)
    assert carer is not None
    return ledger.balance(budget_of(carer)).available_pence


def post(client: FlaskClient, seeded: Seeded, *, key: str | None = None) -> Any:
    headers = dict(seeded.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    with time_machine.travel(NOW, tick=False):
        return client.post("/api/v1/bookings", json=seeded.body, headers=headers)


def test_killed_before_commit_leaves_nothing_and_the_slot_books_once(
    app: Flask, database_url: str, seeded: Seeded
) -> None:
    before = available(seeded.carer_id)
    assert before == AWARD

    report = run_child(
        database_url,
        action="api",
        kill_at="before_commit",
        path="/api/v1/bookings",
        json=seeded.body,
        headers=seeded.headers,
    )

    # The child really had written the booking, its hold and the worker's SMS...
    assert report["killed"] == "before_commit"
    assert report["in_flight"] == {"bookings": 1, "holds": 1, "outbox": 1}
    # ...and none of it survived the crash.
    assert counts() == {"bookings": 0, "holds": 0, "outbox": 0, "booking_audit": 0}
    assert available(seeded.carer_id) == before

    client = app.test_client()
    first = post(client, seeded)
    again = post(client, seeded)

    assert first.status_code == 201, first.get_json()
    assert again.status_code == 409
    assert error_of(again)["code"] == "slot_taken"
    assert counts() == {"bookings": 1, "holds": 1, "outbox": 1, "booking_audit": 1}
    booking = db.session.scalar(select(Booking))
    assert booking is not None
    assert booking.id == first.get_json()["id"]
    hold = db.session.scalar(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.HOLD))
    assert hold is not None
    assert (hold.booking_id, hold.amount_pence) == (booking.id, -PRICE)
    assert available(seeded.carer_id) == AWARD - PRICE


def test_killed_after_commit_a_retry_with_the_same_key_never_books_twice(
    app: Flask, database_url: str, seeded: Seeded
) -> None:
    key = "booking-attempt-7f3a"
    report = run_child(
        database_url,
        action="api",
        kill_at="after_commit",
        path="/api/v1/bookings",
        json=seeded.body,
        headers={**seeded.headers, "Idempotency-Key": key},
    )
    assert report == {"killed": "after_commit"}
    # The booking was committed; the client never heard back.
    assert counts() == {"bookings": 1, "holds": 1, "outbox": 1, "booking_audit": 1}
    booking = db.session.scalar(select(Booking))
    assert booking is not None
    claim = db.session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
    assert claim is not None
    assert claim.status_code is None  # the response was never stored

    client = app.test_client()
    retried = post(client, seeded, key=key)
    # Either "still being processed" or a replay of the same booking: never a second one.
    assert retried.status_code in (201, 409), retried.get_json()
    if retried.status_code == 409:
        assert error_of(retried)["code"] == "idempotency_in_progress"
    else:
        assert retried.get_json()["id"] == booking.id
    # A client that gives up on the key and sends the request afresh hits the slot rule.
    fresh = post(client, seeded, key="booking-attempt-new")
    assert fresh.status_code == 409
    assert error_of(fresh)["code"] == "slot_taken"

    assert counts() == {"bookings": 1, "holds": 1, "outbox": 1, "booking_audit": 1}
    assert available(seeded.carer_id) == AWARD - PRICE


def test_killed_before_commit_the_same_key_can_be_retried(
    app: Flask, database_url: str, seeded: Seeded
) -> None:
    key = "booking-attempt-crashed"
    run_child(
        database_url,
        action="api",
        kill_at="before_commit",
        path="/api/v1/bookings",
        json=seeded.body,
        headers={**seeded.headers, "Idempotency-Key": key},
    )
    assert counts()["bookings"] == 0

    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        retried = app.test_client().post(
            "/api/v1/bookings",
            json=seeded.body,
            headers={**seeded.headers, "Idempotency-Key": key},
        )

    assert retried.status_code == 201, retried.get_json()
    assert counts()["bookings"] == 1


def test_killed_after_commit_a_resubmitted_form_shows_the_same_booking(
    app: Flask, database_url: str, seeded: Seeded
) -> None:
    form = {
        "step": "confirm",
        "form_token": "crash-test-form-token-0001",
        "carer_id": seeded.carer_id,
        "worker_id": seeded.worker_id,
        "day": ["25", "11", "2026"],
        "start": "10:00",
        "end": "13:00",
        "weeks": "1",
        "postcode": "LS6 2AB",
        "address": "1 Test Street",
        "support_kind": "",
        "notes": "",
    }
    report = run_child(
        database_url,
        action="form",
        kill_at="after_commit",
        path="/bookings/new",
        data=form,
        user_id=seeded.carer_id,
    )
    assert report == {"killed": "after_commit"}
    booking = db.session.scalar(select(Booking))
    assert booking is not None

    # The browser never got the redirect; the carer presses "Confirm" again.
    client = app.test_client()
    carer = db.session.get(User, seeded.carer_id)
    assert carer is not None
    with time_machine.travel(NOW, tick=False):
        sign_in(client, carer)
        again = client.post("/bookings/new", data=form)

    assert again.status_code == 302
    assert again.headers["Location"].endswith(f"/bookings/{booking.id}")
    assert counts() == {"bookings": 1, "holds": 1, "outbox": 1, "booking_audit": 1}
    assert available(seeded.carer_id) == AWARD - PRICE


def test_outbox_job_killed_after_twilio_accepted_keeps_the_message(
    app: Flask, database_url: str, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = outbox.enqueue(
        "sms",
        recipient="+447700900123",
        payload={"body": "Your break is confirmed."},
        dedupe_key="crash-test-sms",
        not_before=NOW,
    )
    assert message is not None
    message_id = message.id
    db.session.commit()

    report = run_child(
        database_url,
        action="deliver",
        config=TWILIO_CONFIG,
        twilio_url=MESSAGES_URL,
        twilio_reply={"sid": "SM" + "a" * 32, "status": "queued"},
    )
    assert report == {"killed": "before_commit", "sent_in_flight": 1}

    row = db.session.get(OutboxMessage, message_id)
    assert row is not None
    # Not lost: still pending, as if this attempt never happened.
    assert (row.status, row.attempts, row.provider_ref) == (OutboxStatus.PENDING, 0, None)

    for config_key, value in TWILIO_CONFIG.items():
        monkeypatch.setitem(app.config, config_key, value)
    db.session.remove()
    with responses.RequestsMock() as twilio:
        twilio.add(
            responses.POST,
            MESSAGES_URL,
            json={"sid": "SM" + "b" * 32, "status": "queued"},
            status=201,
        )
        assert run_job("deliver_outbox", now=NOW + timedelta(minutes=1)) == {
            "sent": 1,
            "retry": 0,
            "dead": 0,
        }
        assert run_job("deliver_outbox", now=NOW + timedelta(days=1))["sent"] == 0
        assert len(twilio.calls) == 1

    row = db.session.get(OutboxMessage, message_id)
    assert row is not None
    assert (row.status, row.attempts, row.provider_ref) == (OutboxStatus.SENT, 1, "SM" + "b" * 32)
