"""`python -m tests.browser.server PORT DB_PATH [stripe]`: the real app on loopback for
browser tests, with its own SQLite database migrated and seeded with the demo council.

With `stripe`, card top-ups are on (the Stripe backend, configured through the
environment as in production) and a carer whose budget is nearly spent is added. Nothing
may leave the machine: the Stripe API is a closed local port (the card page needs only
the publishable key), and the browser tests block js.stripe.com themselves."""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime, timedelta

from cryptography.fernet import Fernet
from werkzeug.serving import make_server

STANDBY_WORKER = "Kemi Standby"
SHORT_BUDGET_CARER = "short@demo.example"
SHORT_BUDGET_PENCE = 2000


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


def seed_short_budget_carer(now: datetime, password_method: str) -> str:
    """A demo carer with £20 left, so any break needs a card top-up. Idempotent."""
    from sqlalchemy import select

    from app.auth.services import create_user
    from app.clock import london_today
    from app.demo import DEMO_PASSWORD
    from app.extensions import db
    from app.models import Council, Role, User
    from booking.models.budgets import BudgetKind, TrancheSchedule
    from booking.services.budgets import allocate_budget

    if db.session.scalar(select(User.id).where(User.email == SHORT_BUDGET_CARER)) is None:
        council = db.session.scalars(select(Council).where(Council.slug == "demo")).one()
        officer = db.session.scalars(select(User).where(User.email == "officer@demo.example")).one()
        carer = create_user(
            email=SHORT_BUDGET_CARER,
            password=DEMO_PASSWORD,
            roles=[Role.CARER],
            name="Lee Short",
            council=council,
            phone="+447911100005",
            postcode="LS6 2AB",
            reference="CR-1005",
            password_method=password_method,
            now=now,
        )
        today = london_today(now)
        allocate_budget(
            council_id=council.id,
            carer_id=carer.id,
            kind=BudgetKind.DIRECT_PAYMENT,
            period_start=today,
            period_end=today + timedelta(days=364),
            award_pence=SHORT_BUDGET_PENCE,
            schedule=TrancheSchedule.WHOLE,
            actor=officer,
            reason="Nearly spent, for the card top-up journey",
            now=now,
        )
    return f"Carer with a nearly spent budget: {SHORT_BUDGET_CARER}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(port: int, db_path: str, *options: str) -> None:
    from flask_migrate import upgrade

    from app import create_app
    from app.clock import utcnow
    from app.demo import seed

    stripe = "stripe" in options
    if stripe:
        os.environ.update(
            {
                "PAYMENT_BACKEND": "stripe",
                "STRIPE_SECRET_KEY": "sk_test_browser",
                "STRIPE_PUBLISHABLE_KEY": "pk_test_browser",
                "STRIPE_WEBHOOK_SECRET": "whsec_browser",
                "STRIPE_API_BASE": f"http://127.0.0.1:{_closed_port()}",
            }
        )
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
        if stripe:
            line = seed_short_budget_carer(utcnow(), "pbkdf2:sha256:1000")
            print(f"seed: {line}", flush=True)
    server = make_server("127.0.0.1", port, app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], *sys.argv[3:])
