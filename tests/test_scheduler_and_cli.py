"""CLI set-up commands, demo seeding, `flask jobs run`, and scheduler leadership."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import Base, Council, Role, User
from app.scheduler import JOBS, LeaderLoop, Leadership, build_scheduler


def _cli(app: Flask, *args: str):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def test_councils_and_users_create(app: Flask) -> None:
    result = _cli(
        app,
        "councils",
        "create",
        "--slug",
        "leeds",
        "--name",
        "Leeds City Council",
        "--emergency-phone",
        "+448000000000",
    )
    assert result.exit_code == 0, result.output
    council_id = int(result.output.strip().splitlines()[-1])
    assert db.session.get(Council, council_id).slug == "leeds"  # type: ignore[union-attr]
    result = _cli(
        app,
        "users",
        "create",
        "--email",
        "Nia@Example.org",
        "--password",
        "a-long-password",
        "--role",
        "carer",
        "--role",
        "representative",
        "--council",
        "leeds",
        "--name",
        "Nia",
        "--phone",
        "07911 123456",
        "--postcode",
        "LS6 2AB",
        "--date-of-birth",
        "2009-05-01",
    )
    assert result.exit_code == 0, result.output
    user = db.session.get(User, int(result.output.strip().splitlines()[-1]))
    assert user is not None
    assert user.email == "nia@example.org"
    assert user.roles == {Role.CARER, Role.REPRESENTATIVE}
    assert user.phone == "+447911123456"
    assert user.council_id == council_id


def test_users_create_with_totp_secret_is_ready_for_the_api(app: Flask) -> None:
    result = _cli(
        app,
        "users",
        "create",
        "--email",
        "op@example.org",
        "--password",
        "a-long-password",
        "--role",
        "operator",
        "--totp-secret",
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    )
    assert result.exit_code == 0, result.output
    user = db.session.get(User, int(result.output.strip().splitlines()[-1]))
    assert user is not None
    assert user.totp_confirmed_at is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "carer", "--council", "nowhere"], "No council"),
        (["--role", "carer", "--phone", "12"], "phone number"),
        (["--role", "carer", "--date-of-birth", "01/02/2000"], "YYYY-MM-DD"),
        (["--role", "wizard"], "Invalid value"),
    ],
)
def test_users_create_rejects_bad_input_and_writes_nothing(
    app: Flask, args: list[str], message: str
) -> None:
    result = _cli(
        app, "users", "create", "--email", "x@example.org", "--password", "a-long-password", *args
    )
    assert result.exit_code != 0
    assert message in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def _row_counts() -> dict[str, int]:
    return {
        table.name: db.session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


def test_demo_seed_twice_changes_nothing(app: Flask) -> None:
    first = _cli(app, "demo", "seed")
    assert first.exit_code == 0, first.output
    assert "carer@demo.example" in first.output
    assert "demo-password-1" in first.output
    counts = _row_counts()
    assert counts["users"] >= 12
    assert counts["representations"] == 1  # the demo representative helps Sam Carer
    second = _cli(app, "demo", "seed")
    assert second.exit_code == 0, second.output
    assert _row_counts() == counts


def test_demo_seed_refuses_to_run_in_production(app: Flask) -> None:
    app.config["APP_ENV"] = "production"
    try:
        result = _cli(app, "demo", "seed")
    finally:
        app.config["APP_ENV"] = "development"
    assert result.exit_code != 0
    assert "not for production" in result.output
    assert "demo-password-1" not in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_council_emergency_phone_is_stored_in_e164(app: Flask) -> None:
    result = _cli(
        app,
        "councils",
        "create",
        "--slug",
        "york",
        "--name",
        "York",
        "--emergency-phone",
        "0800 098 8234",
    )
    assert result.exit_code == 0, result.output
    council = db.session.get(Council, int(result.output.strip().splitlines()[-1]))
    assert council is not None
    assert council.emergency_phone == "+448000988234"


def test_council_with_a_number_that_is_not_real_is_refused(app: Flask) -> None:
    result = _cli(
        app, "councils", "create", "--slug", "york", "--name", "York", "--emergency-phone", "12"
    )
    assert result.exit_code != 0
    assert "real phone number" in result.output
    assert db.session.scalar(select(func.count()).select_from(Council)) == 0


def test_jobs_run_and_list(app: Flask) -> None:
    result = _cli(app, "jobs", "run", "deliver_outbox")
    assert result.exit_code == 0, result.output
    assert "deliver_outbox:" in result.output
    assert "deliver_outbox" in _cli(app, "jobs", "list").output
    unknown = _cli(app, "jobs", "run", "no-such-job")
    assert unknown.exit_code != 0
    assert "No job" in unknown.output


def test_scheduler_knows_every_job(app: Flask) -> None:
    scheduler = build_scheduler(app)
    names = {entry[0].id for entry in scheduler._pending_jobs}
    assert names == set(JOBS)


def test_only_one_scheduler_leads_on_postgresql(app: Flask, postgres_only: None) -> None:
    first, second = Leadership(app), Leadership(app)
    try:
        assert first.acquire() is True
        assert second.acquire() is False
        first.release()
        assert second.acquire() is True
    finally:
        first.release()
        second.release()


def _start_loop(app: Flask, schedulers: list[Any]) -> tuple[LeaderLoop, threading.Thread]:
    """A leader loop whose scheduler has no jobs, checking its lock every 50 ms and
    waiting a minute before trying to lead again (so only the test takes the lock)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    def make() -> BackgroundScheduler:
        schedulers.append(BackgroundScheduler(timezone="UTC"))
        return schedulers[-1]

    loop = LeaderLoop(app, poll_seconds=60, check_seconds=0.05, make_scheduler=make)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    return loop, thread


def test_the_leader_loop_runs_the_scheduler_until_stopped(app: Flask) -> None:
    schedulers: list[Any] = []
    loop, thread = _start_loop(app, schedulers)
    try:
        assert loop.leading.wait(10)
        assert schedulers[0].running
    finally:
        loop.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert not schedulers[0].running
    assert not loop.leading.is_set()


def test_a_leader_whose_lock_connection_dies_steps_down(app: Flask, postgres_only: None) -> None:
    schedulers: list[Any] = []
    loop, thread = _start_loop(app, schedulers)
    other = Leadership(app)
    try:
        assert loop.leading.wait(10)
        assert other.acquire() is False  # the loop leads
        with db.engine.connect() as conn:
            killed = conn.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": loop.leadership.backend_pid}
            ).scalar()
            conn.commit()
        assert killed is True
        assert loop.stepped_down.wait(10)
        assert not loop.leading.is_set()
        assert not schedulers[0].running  # no more jobs from this one
        assert other.acquire() is True  # another scheduler can take over
    finally:
        loop.stop()
        thread.join(10)
        other.release()
    assert not thread.is_alive()
    assert len(schedulers) == 1  # it did not lead again while the other one did
