"""`python -m tests.browser.server PORT DB_PATH`: the real app on loopback for browser
tests, with its own SQLite database migrated and seeded with the demo council."""

from __future__ import annotations

import sys
from datetime import datetime

from cryptography.fernet import Fernet
from werkzeug.serving import make_server

STANDBY_WORKER = "Kemi Standby"


def seed_standby_worker(now: datetime) -> str:
    """An approved worker near the demo plan's address (LS6 2AB) who has said they are
    free now and takes bookings at no notice, so an operator can book care at any hour.
    Idempotent, like the demo seed."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Council
    from booking.models.workers import WorkerProfile
    from tests.emergency.factories import make_worker_free_now

    exists = db.session.scalar(
        select(WorkerProfile.id).where(WorkerProfile.display_name == STANDBY_WORKER)
    )
    if exists is None:
        council = db.session.scalars(select(Council).where(Council.slug == "demo")).one()
        make_worker_free_now(council, now=now, name=STANDBY_WORKER)
    return f"Worker free now for emergencies: {STANDBY_WORKER}"


def main(port: int, db_path: str) -> None:
    from flask_migrate import upgrade

    from app import create_app
    from app.clock import utcnow
    from app.demo import seed

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}",
            "SECRET_KEY": "browser-test-secret-key-0123456789abcdef",
            "PLAN_ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
            "PIN_HMAC_KEY": "browser-test-pin-key",
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "RATELIMIT_ENABLED": False,
        }
    )
    with app.app_context():
        upgrade()
        for line in seed(now=utcnow(), password_method="pbkdf2:sha256:1000"):
            # The journeys read the demo card's PIN from here, as a person reads it
            # from `make run`'s output.
            print(f"seed: {line}", flush=True)
        print(f"seed: {seed_standby_worker(utcnow())}", flush=True)
    server = make_server("127.0.0.1", port, app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
