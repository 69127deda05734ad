"""`python -m tests.faults._crash_child SPEC_JSON`: run the real app in this process and
kill it (SIGKILL, like the OOM killer or a pulled plug) at a chosen moment.

The parent test (tests/faults/test_killed_mid_booking.py) seeds the database, runs this,
and then checks what is left. SPEC_JSON says:

* `database_url`: the test run's database (SQLite file or PostgreSQL).
* `now`: the frozen time (ISO 8601) the request runs at.
* `action`: `api` (POST `path` with `json` and `headers`), `form` (POST `path` with `data`
  as the signed-in user `user_id`) or `deliver` (run the outbox job, Twilio answering
  through `responses`).
* `kill_at`: `before_commit` (the booking's rows are flushed inside the transaction, the
  COMMIT has not run) or `after_commit` (committed, the HTTP response not yet written);
  for `deliver`, `before_commit` means Twilio accepted the SMS and the outbox row's
  "sent" is not committed yet.

Before dying it prints one JSON line: what its own open transaction could see, so the
parent knows the rows really were written when the process died.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime
from typing import Any

import time_machine
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session


def _die(report: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _in_flight(session: Session) -> dict[str, int]:
    from app.models import OutboxMessage
    from booking.models.bookings import Booking
    from booking.models.budgets import LedgerEntry, LedgerKind

    def count(query: Any) -> int:
        return int(session.execute(query).scalar() or 0)

    return {
        "bookings": count(select(func.count(Booking.id))),
        "holds": count(
            select(func.count(LedgerEntry.id)).where(LedgerEntry.kind == LedgerKind.HOLD)
        ),
        "outbox": count(select(func.count(OutboxMessage.id))),
    }


def _arm_booking_kill(kill_at: str) -> None:
    """Kill the process at `kill_at` of the transaction that wrote a Booking row."""
    from booking.models.bookings import Booking

    wrote_booking = {"yes": False}

    @event.listens_for(Session, "after_flush")
    def _seen(session: Session, _ctx: Any) -> None:
        if any(isinstance(obj, Booking) for obj in session.new):
            wrote_booking["yes"] = True

    if kill_at == "before_commit":

        @event.listens_for(Session, "before_commit")
        def _before(session: Session) -> None:
            if wrote_booking["yes"]:
                session.flush()
                _die({"killed": "before_commit", "in_flight": _in_flight(session)})

    elif kill_at == "after_commit":

        @event.listens_for(Session, "after_commit")
        def _after(session: Session) -> None:
            if wrote_booking["yes"]:
                _die({"killed": "after_commit"})

    else:
        raise SystemExit(f"unknown kill_at {kill_at!r}")


def _arm_delivery_kill() -> None:
    """Kill the outbox job after the provider accepted a message, before it is marked sent."""
    from app.models import OutboxMessage, OutboxStatus

    @event.listens_for(Session, "before_commit")
    def _before(session: Session) -> None:
        session.flush()
        sent = session.execute(
            select(func.count(OutboxMessage.id)).where(OutboxMessage.status == OutboxStatus.SENT)
        ).scalar()
        if sent:
            _die({"killed": "before_commit", "sent_in_flight": int(sent)})


def main(spec: dict[str, Any]) -> int:
    from app import create_app
    from tests.conftest import base_config

    config = base_config(spec["database_url"])
    config.update(spec.get("config", {}))
    app = create_app(config)
    now = datetime.fromisoformat(spec["now"])
    with app.app_context(), time_machine.travel(now, tick=False):
        if spec["action"] == "deliver":
            import responses

            from app.scheduler import run_job

            _arm_delivery_kill()
            with responses.RequestsMock() as twilio:
                twilio.add(
                    responses.POST, spec["twilio_url"], json=spec["twilio_reply"], status=201
                )
                result = run_job("deliver_outbox", now=now)
            print(json.dumps({"survived": result}))
            return 0
        _arm_booking_kill(spec["kill_at"])
        client = app.test_client()
        if spec["action"] == "api":
            response = client.post(spec["path"], json=spec["json"], headers=spec["headers"])
        else:
            from app.extensions import db
            from app.models import User

            with client.session_transaction() as session:
                session["_user_id"] = db.session.get(User, spec["user_id"]).get_id()
                session["_fresh"] = True
            response = client.post(spec["path"], data=spec["data"])
        print(json.dumps({"survived": response.status_code}))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
