"""Scheduled jobs: a registry each domain's `jobs.py` adds to, `flask jobs run NAME` to
run one once, and APScheduler with a SQLAlchemy job store to run them all on a timer.

Only one scheduler may run jobs: on PostgreSQL it must hold a session advisory lock
(the leader); others wait and take over if the leader dies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import text

from app.clock import utcnow

log = logging.getLogger("scheduler")

LEADER_LOCK_ID = 724_001  # any constant shared by every scheduler of this app


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[datetime], Any]
    trigger: str  # "interval" or "cron"
    trigger_args: dict[str, Any]
    description: str


JOBS: dict[str, Job] = {}


def job(
    name: str, *, trigger: str = "interval", description: str = "", **trigger_args: Any
) -> Callable[[Callable[[datetime], Any]], Callable[[datetime], Any]]:
    """Register `func(now)` as a job. It runs inside an app context and must be idempotent."""

    def decorator(func: Callable[[datetime], Any]) -> Callable[[datetime], Any]:
        JOBS[name] = Job(name, func, trigger, trigger_args, description or (func.__doc__ or ""))
        return func

    return decorator


def run_job(name: str, now: datetime | None = None) -> Any:
    """Run one job once in the current app context."""
    if name not in JOBS:
        raise KeyError(f"no job called {name!r}; known: {', '.join(sorted(JOBS))}")
    return JOBS[name].func(now or utcnow())


# APScheduler stores jobs by textual reference, so the callable must be importable.
_APP: Flask | None = None


def _scheduled_entry(name: str) -> None:
    assert _APP is not None
    with _APP.app_context():
        try:
            result = run_job(name)
            log.info("job %s: %s", name, result)
        except Exception:
            log.exception("job %s failed", name)
            from app.extensions import db

            db.session.rollback()


def build_scheduler(app: Flask, *, blocking: bool) -> Any:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    global _APP
    _APP = app
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    jobstores = {"default": SQLAlchemyJobStore(url=url, tablename="apscheduler_jobs")}
    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(
        jobstores=jobstores, timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1}
    )
    for entry in JOBS.values():
        scheduler.add_job(
            "app.scheduler:_scheduled_entry",
            entry.trigger,
            args=[entry.name],
            id=entry.name,
            name=entry.name,
            replace_existing=True,
            misfire_grace_time=300,
            **entry.trigger_args,
        )
    return scheduler


class Leadership:
    """A PostgreSQL session advisory lock held on its own connection for as long as
    this scheduler leads. On SQLite (one machine) the process is always the leader."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.connection: Any = None

    def acquire(self) -> bool:
        from app.extensions import db

        with self.app.app_context():
            if db.engine.dialect.name != "postgresql":
                return True
            if self.connection is None:
                self.connection = db.engine.connect()
            got = self.connection.execute(
                text("SELECT pg_try_advisory_lock(:id)"), {"id": LEADER_LOCK_ID}
            ).scalar()
            self.connection.commit()
            return bool(got)

    def release(self) -> None:
        if self.connection is not None:
            self.connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": LEADER_LOCK_ID})
            self.connection.commit()
            self.connection.close()
            self.connection = None


def run_forever(app: Flask, *, poll_seconds: float = 10.0) -> None:
    """`flask scheduler run`: wait to become leader, then run jobs until stopped."""
    leadership = Leadership(app)
    while not leadership.acquire():
        log.info("another scheduler leads; waiting")
        time.sleep(poll_seconds)
    log.info("this scheduler leads; starting %d jobs", len(JOBS))
    scheduler = build_scheduler(app, blocking=True)
    try:
        scheduler.start()
    finally:
        leadership.release()


def start_embedded(app: Flask) -> threading.Thread:
    """`make run`: the scheduler in a thread of the single development process."""

    def target() -> None:
        leadership = Leadership(app)
        if not leadership.acquire():
            log.warning("another scheduler leads; the embedded one will not run jobs")
            return
        scheduler = build_scheduler(app, blocking=False)
        scheduler.start()

    thread = threading.Thread(target=target, name="scheduler", daemon=True)
    thread.start()
    return thread


def app_config() -> dict[str, Any]:
    return dict(current_app.config)
