"""Scheduled jobs: a registry each domain's `jobs.py` adds to, `flask jobs run NAME` to
run one once, and APScheduler with a SQLAlchemy job store to run them all on a timer.

Only one scheduler may run jobs: on PostgreSQL it must hold a session advisory lock
(the leader); others wait and take over if the leader dies.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

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


def build_scheduler(app: Flask) -> Any:
    """A background scheduler with every job: `LeaderLoop` starts it while this process
    leads and shuts it down when it stops leading."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    global _APP
    _APP = app
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    jobstores = {"default": SQLAlchemyJobStore(url=url, tablename="apscheduler_jobs")}
    scheduler = BackgroundScheduler(
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
        self.backend_pid: int | None = None

    def _postgresql(self) -> bool:
        from app.extensions import db

        return bool(db.engine.dialect.name == "postgresql")

    def acquire(self) -> bool:
        from app.extensions import db

        with self.app.app_context():
            if not self._postgresql():
                return True
            try:
                if self.connection is None:
                    self.connection = db.engine.connect()
                    self.backend_pid = self.connection.execute(
                        text("SELECT pg_backend_pid()")
                    ).scalar()
                got = self.connection.execute(
                    text("SELECT pg_try_advisory_lock(:id)"), {"id": LEADER_LOCK_ID}
                ).scalar()
                self.connection.commit()
            except DBAPIError:
                log.warning("could not reach the database to take the scheduler lock")
                self._drop(broken=True)
                return False
            return bool(got)

    def holds(self) -> bool:
        """Is this still the leader? Asked on the lock's own connection: when that
        connection dies (a restart, a network cut, pg_terminate_backend) the lock goes
        with it, and another scheduler may already have taken over."""
        with self.app.app_context():
            if not self._postgresql():
                return True
            if self.connection is None:
                return False
            try:
                held = self.connection.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND classid::bigint = 0 AND objid::bigint = :id AND objsubid = 1 "
                        "AND pid = pg_backend_pid() AND granted"
                    ),
                    {"id": LEADER_LOCK_ID},
                ).scalar()
                self.connection.commit()
            except DBAPIError:
                self._drop(broken=True)
                return False
            return bool(held)

    def release(self) -> None:
        if self.connection is None:
            return
        try:
            self.connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": LEADER_LOCK_ID})
            self.connection.commit()
        except DBAPIError:
            self._drop(broken=True)
        else:
            self._drop(broken=False)

    def _drop(self, *, broken: bool) -> None:
        if self.connection is not None:
            if broken:
                self.connection.invalidate()  # never hand a dead connection back to the pool
            self.connection.close()
        self.connection = None
        self.backend_pid = None


class LeaderLoop:
    """Wait to lead, run the jobs while leading, and stop running them as soon as the
    lock is lost: leadership is checked again every `check_seconds`, so two schedulers
    never both run jobs for longer than that."""

    def __init__(
        self,
        app: Flask,
        *,
        poll_seconds: float = 10.0,
        check_seconds: float = 10.0,
        make_scheduler: Callable[[], Any] | None = None,
    ) -> None:
        self.app = app
        self.poll_seconds = poll_seconds
        self.check_seconds = check_seconds
        self.make_scheduler = make_scheduler or (lambda: build_scheduler(app))
        self.leadership = Leadership(app)
        self.leading = threading.Event()
        self.stepped_down = threading.Event()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.leadership.acquire():
                    self._lead()
                else:
                    log.info("another scheduler leads; waiting")
                if not self._stop.is_set():
                    self._stop.wait(self.poll_seconds)
        finally:
            self.leadership.release()

    def _lead(self) -> None:
        scheduler = self.make_scheduler()
        scheduler.start()
        self.stepped_down.clear()
        self.leading.set()
        log.info("this scheduler leads; running %d jobs", len(JOBS))
        lost = False
        try:
            while not self._stop.wait(self.check_seconds):
                if not self.leadership.holds():
                    lost = True
                    log.error("lost the scheduler lock (its connection is gone); stopping jobs")
                    break
        finally:
            scheduler.shutdown(wait=False)
            self.leading.clear()
            self.leadership.release()
            if lost:
                self.stepped_down.set()


def run_forever(app: Flask, *, poll_seconds: float = 10.0, check_seconds: float = 10.0) -> None:
    """`flask scheduler run`: wait to become leader, then run jobs until stopped
    (Ctrl+C or SIGTERM); step down and wait again if leadership is lost."""
    loop = LeaderLoop(app, poll_seconds=poll_seconds, check_seconds=check_seconds)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    try:
        loop.run()
    except KeyboardInterrupt:
        loop.stop()


def start_embedded(app: Flask) -> threading.Thread:
    """`make run`: the scheduler in a thread of the single development process."""
    thread = threading.Thread(target=LeaderLoop(app).run, name="scheduler", daemon=True)
    thread.start()
    return thread


def app_config() -> dict[str, Any]:
    return dict(current_app.config)
