"""`make bench`: the app under gunicorn on PostgreSQL with realistic data, driven on
loopback, with floors measured in the same run. Prints one table; asserts no timings.

    .venv/bin/python -m tests.bench.run            # the full run (about 6 to 9 minutes)
    .venv/bin/python -m tests.bench.run --quick    # fewer requests, same data

Steps: create a fresh database `bench_<pid>`, migrate it to head, load the demo council
and the bulk data (tests/bench/seed.py), ANALYZE, start gunicorn on a free loopback port,
drive each scenario with tests/bench/load.py, check the booking invariants in SQL, print
the table, then always stop gunicorn and drop the database.

Rate limits: Flask-Limiter stays on (RATELIMIT_ENABLED=true, as in production); no
measured endpoint carries a Flask-Limiter limit (only the sign-in POST, used once per
dashboard client). The PIN lookup's own database limits stay on too: they are part of
what a lookup costs, and they count misses only, so a load of real PINs never trips them.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from cryptography.fernet import Fernet

from tests.bench.load import Result, run_load, time_sql

ROOT = Path(__file__).resolve().parents[2]
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
BENCH_PASSWORD = "bench-password-1"
LIVE = ("requested", "confirmed", "completed")


def dsn(database: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@dataclass(frozen=True)
class Plan:
    """How hard each scenario is driven: (clients, requests per client, max seconds)."""

    floor: tuple[int, int, float]
    lookup: tuple[int, int, float]
    search: tuple[int, int, float]
    booking: tuple[int, int, float]
    dashboard: tuple[int, int, float]
    sql_repeats: int


FULL = Plan(
    floor=(8, 1000, 15),
    lookup=(8, 200, 60),
    search=(8, 80, 60),
    booking=(16, 25, 45),
    dashboard=(8, 300, 45),
    sql_repeats=300,
)
QUICK = Plan(
    floor=(8, 50, 5),
    lookup=(8, 10, 10),
    search=(8, 3, 15),
    booking=(16, 5, 15),
    dashboard=(8, 10, 10),
    sql_repeats=30,
)
CONTENDERS = 4  # booking clients that ask for each slot at about the same time


# --- PostgreSQL ------------------------------------------------------------------------


def pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(dsn("postgres"), autocommit=True, connect_timeout=5)


@contextlib.contextmanager
def fresh_database(*, keep: bool = False) -> Iterator[str]:
    name = f"bench_{os.getpid()}"
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        if keep:
            print(f"Kept database {name}: drop it with dropdb -h {PG_HOST} -U {PG_USER} {name}")
        else:
            with pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"Dropped database {name}.")


# --- gunicorn --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log_path: Path) -> Iterator[int]:
    """Start `gunicorn -w 2 --threads 4` on a free loopback port; always stop it."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "-w",
                "2",
                "--threads",
                "4",
                "-b",
                f"127.0.0.1:{port}",
                "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log_path}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_get(port, "/healthz")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /healthz in 90 s; see {log_path}")
            time.sleep(0.3)
        print(f"gunicorn (pid {process.pid}) answers on 127.0.0.1:{port}")
        yield port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: only gunicorn
                process.wait(timeout=10)
        print("gunicorn stopped.")


# --- signing in with a session cookie --------------------------------------------------

_CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
_VALUE = re.compile(r'value="([^"]+)"')


def csrf_token(html: str) -> str:
    tag = _CSRF.search(html)
    value = _VALUE.search(tag.group(0)) if tag else None
    if value is None:
        raise RuntimeError("no csrf_token field on the sign-in page")
    return value.group(1)


def _session_from(response: http.client.HTTPResponse, current: str | None) -> str | None:
    for header in response.headers.get_all("Set-Cookie") or []:
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        if "session" in cookie:
            return cookie["session"].value
    return current


def sign_in(port: int, email: str, password: str) -> str:
    """Sign in through /auth/sign-in like a browser; returns the session cookie."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/auth/sign-in")
        response = conn.getresponse()
        html = response.read().decode()
        session = _session_from(response, None)
        body = urlencode({"csrf_token": csrf_token(html), "email": email, "password": password})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if session:
            headers["Cookie"] = f"session={session}"
        conn.request("POST", "/auth/sign-in", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        session = _session_from(response, session)
        if response.status != 302 or not session:
            raise RuntimeError(f"signing in {email} gave {response.status}")
        return session
    finally:
        conn.close()


# --- the same queries in raw SQL -------------------------------------------------------


@contextlib.contextmanager
def captured_sql(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    """Every statement (with its driver-ready parameters) the app runs inside the block."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def pick(statements: list[tuple[str, Any]], *needles: str) -> tuple[str, Any]:
    for statement, parameters in statements:
        flat = " ".join(statement.split())
        if all(needle in flat for needle in needles):
            return statement, parameters
    raise RuntimeError(f"no captured statement contains {needles}")


def replay(conn: psycopg.Connection[Any], queries: list[tuple[str, Any]]) -> Callable[[int], None]:
    def run_once(n: int) -> None:
        statement, parameters = queries[n % len(queries)]
        conn.execute(statement, parameters).fetchall()

    return run_once


def booking_floor(
    conn: psycopg.Connection[Any], writes: list[tuple[str, Any]], *, first_starts: datetime
) -> Callable[[int], None]:
    """What a booking must write, in raw SQL, one committed transaction each time: lock
    the budget row, insert the booking, insert its hold (the app's own statements and
    values, each time for the next free slot of the same worker)."""
    (lock_sql, lock_params), (insert_sql, insert_params), (hold_sql, hold_params) = writes
    length = insert_params["ends_at"] - insert_params["starts_at"]

    def run_once(n: int) -> None:
        starts = first_starts + n * (length + timedelta(hours=1))
        with conn.transaction():
            conn.execute(lock_sql, lock_params).fetchall()
            row = conn.execute(
                insert_sql, {**insert_params, "starts_at": starts, "ends_at": starts + length}
            ).fetchone()
            assert row is not None
            conn.execute(
                hold_sql,
                {**hold_params, "booking_id": row[0], "idempotency_key": f"floor:{row[0]}:hold"},
            )

    return run_once


# --- printing --------------------------------------------------------------------------


def fmt_statuses(result: Result) -> str:
    if result.labels:
        return ", ".join(f"{k}: {v}" for k, v in sorted(result.labels.items()))
    return ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items()))


def print_table(rows: list[tuple[Result, Result | None, Result | None]]) -> str:
    header = (
        "scenario",
        "clients",
        "requests",
        "rps",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "statuses",
        "p50 x HTTP floor",
        "rps / HTTP floor",
        "SQL floor p50 ms",
        "p50 x SQL floor",
    )
    lines = []
    for result, floor, sql in rows:
        lines.append(
            (
                result.name,
                str(result.clients),
                str(result.count),
                f"{result.rps:.1f}",
                f"{result.p50:.1f}",
                f"{result.percentile(95):.1f}",
                f"{result.percentile(99):.1f}",
                fmt_statuses(result),
                f"{result.p50 / floor.p50:.1f}" if floor and floor.p50 else "-",
                f"{result.rps / floor.rps:.3f}" if floor and floor.rps else "-",
                f"{sql.p50:.2f}" if sql else "-",
                f"{result.p50 / sql.p50:.0f}" if sql and sql.p50 else "-",
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def row(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    text = "\n".join(
        [row(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(row, lines)]
    )
    print(text)
    return text


# --- the run ---------------------------------------------------------------------------


def json_code(status: int, body: bytes) -> str:
    """'201', or '409 slot_taken': the status with the API's error code."""
    if status < 400:
        return str(status)
    try:
        return f"{status} {json.loads(body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return str(status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, same data")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    try:
        with pg_admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}")
        return 2
    print(f"PostgreSQL {version[0] if version else '?'} at {PG_HOST}:{PG_PORT}")

    secrets_env = {
        "SECRET_KEY": secrets.token_hex(32),
        "PIN_HMAC_KEY": secrets.token_hex(32),
        "PLAN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "APP_ENV": "development",
        "RATELIMIT_ENABLED": "true",
        "NOTIFY_BACKEND": "log",
        "PAYMENT_BACKEND": "ledger",
        "SCHEDULER_EMBEDDED": "false",
    }
    with (
        fresh_database(keep=args.keep) as database,
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
    ):
        env = {
            **os.environ,
            **secrets_env,
            "DATABASE_URL": f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}",
        }
        # The in-process app (migrations, demo seed, capturing SQL) reads the same settings.
        os.environ.update({k: env[k] for k in (*secrets_env, "DATABASE_URL")})
        return _run(plan, database, env, Path(tmp))
    return 1


def _run(plan: Plan, database: str, env: dict[str, str], tmp: Path) -> int:
    import flask_migrate
    from werkzeug.security import generate_password_hash

    from app import create_app
    from app.clock import london_today, london_wall_clock, utcnow
    from app.demo import seed as demo_seed
    from app.extensions import db
    from emergency.crypto import cipher_from_config
    from emergency.pins import pin_hmac
    from tests.bench import seed

    app = create_app({"SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"]})
    started = time.perf_counter()
    with app.app_context():
        flask_migrate.upgrade()
    print(f"Migrated {database} to head in {time.perf_counter() - started:.1f} s")

    now = utcnow()
    today = london_today(now)
    started = time.perf_counter()
    with app.app_context():
        for _line in demo_seed(now=now, password_method="scrypt"):
            pass
        with psycopg.connect(dsn(database)) as conn:
            council_id, officer_id, writer_id = conn.execute(
                "SELECT c.id, o.id, w.id FROM councils c, users o, users w WHERE c.slug = 'demo'"
                " AND o.email = 'officer@demo.example' AND w.email = 'planwriter@demo.example'"
            ).fetchone() or (None, None, None)
        seeded = seed.load(
            dsn(database),
            council_id=council_id,
            officer_id=officer_id,
            writer_id=writer_id,
            password_hash=generate_password_hash(BENCH_PASSWORD, method="scrypt"),
            password=BENCH_PASSWORD,
            pin_key=env["PIN_HMAC_KEY"],
            cipher=cipher_from_config(app.config),
            now=now,
            today=today,
        )
    loaded = time.perf_counter() - started
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("ANALYZE")
        analyzed = time.perf_counter() - started
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]  # noqa: S608
            for table in (
                "users",
                "worker_profiles",
                "worker_checks",
                "availability_rules",
                "bookings",
                "budgets",
                "ledger_entries",
                "emergency_plans",
                "emergency_contacts",
                "emergency_cards",
            )
        }
    print(f"Loaded the demo council and the bulk data in {loaded:.1f} s; ANALYZE {analyzed:.1f} s")
    print("Rows: " + ", ".join(f"{table} {count:,}" for table, count in counts.items()))

    # Who drives what. Carers 1..10,000 have budgets; each scenario uses its own carers.
    search_carers = [seeded.carer_user(100 + n) for n in range(plan.search[0])]
    booking_carers = [seeded.carer_user(200 + n) for n in range(plan.booking[0])]
    dashboard_carers = [300 + n for n in range(plan.dashboard[0])]
    search_tokens = seed.bearer_tokens(dsn(database), search_carers, now=now)
    booking_tokens = seed.bearer_tokens(dsn(database), booking_carers, now=now)
    pins = seeded.pins[:-1]
    floor_pin = seeded.pins[-1]  # looked up only in-process, to capture the lookup's SQL

    def searches(count: int) -> list[str]:
        paths = []
        for n in range(count):
            day = today + timedelta(days=7 + (n * 3) % 35)
            while day.weekday() > 4:
                day += timedelta(days=1)
            starts = london_wall_clock(day, clock_time(10 + n % 4, 0))
            query = {
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "postcode": seeded.outcodes[n % len(seeded.outcodes)],
            }
            if n % 3 == 0:
                query["skills"] = "dementia"
            paths.append("/api/v1/workers/search?" + urlencode(query))
        return paths

    search_paths = searches(plan.search[0] * plan.search[1])

    # Booking slots: Saturday, when no bulk booking exists; workers with a Saturday
    # pattern and no travel buffer (g divisible by 6), four two-hour slots each.
    clients, per_client, _ = plan.booking
    groups = clients // CONTENDERS
    slot_count = groups * per_client
    slots: list[tuple[int, datetime, datetime]] = []
    g = 6
    while len(slots) < slot_count:
        for hour in (10, 12, 14, 16):
            starts = london_wall_clock(seeded.saturday, clock_time(hour, 0))
            slots.append((seeded.worker_user(g), starts, starts + timedelta(hours=2)))
        g += 6
    slots = slots[:slot_count]
    floor_worker = seeded.worker_user(6 * (len(slots) // 4 + 2))  # a Saturday pattern too
    # Each break is at the worker's own postcode: a break beyond their travel radius is
    # refused (422 outside_travel_radius), and the bulk workers live all over the UK.
    with psycopg.connect(dsn(database)) as conn:
        home = dict(
            conn.execute(
                "SELECT user_id, postcode FROM worker_profiles WHERE user_id = ANY(%s)",
                ([*{worker for worker, _, _ in slots}, floor_worker],),
            ).fetchall()
        )

    # --- floors captured in-process: the same statements the app runs ---------------
    # Requests from the test client run outside any app context of ours, so each has
    # its own `g` (and signed-in user), like the requests gunicorn serves.
    with app.app_context():
        engine = db.engine
    client = app.test_client()
    with captured_sql(engine) as statements:
        response = client.post(
            "/api/v1/emergency/lookup",
            json={"pin": floor_pin},
            headers={"Authorization": f"Bearer {seeded.operator_tokens[0]}"},
        )
    if response.status_code != 200:
        print(f"In-process PIN lookup gave {response.status_code}: {response.get_data()}")
        return 1
    card_sql, card_params = pick(statements, "FROM emergency_cards", "pin_hmac =")
    key = next(iter(card_params)) if isinstance(card_params, dict) else None
    card_queries = [
        (
            card_sql,
            {key: pin_hmac(pin, env["PIN_HMAC_KEY"])}
            if key
            else (pin_hmac(pin, env["PIN_HMAC_KEY"]),),
        )
        for pin in pins[:200]
    ]
    lookup_statements = len(statements)

    search_main: list[tuple[str, Any]] = []
    search_all: list[tuple[str, Any]] = []
    search_counts = []
    for path in search_paths[:8]:
        with captured_sql(engine) as statements:
            response = client.get(path, headers={"Authorization": f"Bearer {search_tokens[0]}"})
        if response.status_code != 200:
            print(f"In-process search gave {response.status_code}: {response.get_data()}")
            return 1
        search_main.append(pick(statements, "FROM worker_profiles", "BETWEEN"))
        selects = [s for s in statements if s[0].lstrip().upper().startswith("SELECT")]
        search_all.extend(selects)
        search_counts.append(len(response.get_json()["results"]))
    search_statements = len(statements)

    balance_queries: list[tuple[str, Any]] = []
    dashboard_all: list[tuple[str, Any]] = []
    for c in dashboard_carers[:4]:
        signer = app.test_client()
        page = signer.get("/auth/sign-in").get_data(as_text=True)
        signer.post(
            "/auth/sign-in",
            data={
                "csrf_token": csrf_token(page),
                "email": seeded.carer_email(c),
                "password": BENCH_PASSWORD,
            },
        )
        with captured_sql(engine) as statements:
            response = signer.get("/dashboard")
        html = response.get_data(as_text=True)
        if response.status_code != 200 or "app-balance" not in html:
            print(f"In-process dashboard gave {response.status_code} without a balance")
            return 1
        balance_queries.append(pick(statements, "FROM ledger_entries", "sum("))
        dashboard_all.extend(s for s in statements if s[0].lstrip().upper().startswith("SELECT"))
    dashboard_statements = len(statements)

    # The contended booking's database work: one booking made in-process, by a carer and
    # for a worker the load never uses, gives the statements it writes with. After the
    # load and its checks they are replayed in raw SQL (see booking_floor).
    floor_token = seed.bearer_tokens(dsn(database), [seeded.carer_user(450)], now=now)[0]
    floor_starts = london_wall_clock(seeded.saturday, clock_time(10, 0))
    with captured_sql(engine) as statements:
        response = client.post(
            "/api/v1/bookings",
            json={
                "worker_id": floor_worker,
                "starts_at": floor_starts.isoformat(),
                "ends_at": (floor_starts + timedelta(hours=2)).isoformat(),
                "postcode": home[floor_worker],
                "address": "1 Floor Street, Leeds",
            },
            headers={"Authorization": f"Bearer {floor_token}"},
        )
    if response.status_code != 201:
        print(f"In-process booking gave {response.status_code}: {response.get_data()}")
        return 1
    booking_writes = [
        pick(statements, "FROM budgets", "FOR UPDATE"),
        pick(statements, "INSERT INTO bookings", "RETURNING"),
        pick(statements, "INSERT INTO ledger_entries"),
    ]
    booking_statements = len(statements)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    print(
        f"Statements per request: PIN lookup {lookup_statements}, worker search "
        f"{search_statements}, dashboard {dashboard_statements}, booking "
        f"{booking_statements}. Search results per query "
        f"(first 8 searches): {search_counts}"
    )

    with psycopg.connect(dsn(database), autocommit=True) as conn:
        sql_card = time_sql(
            "SQL: card by PIN HMAC", replay(conn, card_queries), repeats=plan.sql_repeats
        )
        sql_search = time_sql(
            "SQL: search main query", replay(conn, search_main), repeats=plan.sql_repeats // 3
        )
        sql_search_all = time_sql(
            "SQL: all search SELECTs", replay(conn, search_all), repeats=len(search_all) * 3
        )
        sql_balance = time_sql(
            "SQL: balance query", replay(conn, balance_queries), repeats=plan.sql_repeats
        )
        sql_dashboard_all = time_sql(
            "SQL: all dashboard SELECTs", replay(conn, dashboard_all), repeats=plan.sql_repeats
        )
    # time_sql times one statement each: turn the "all" floors into per-request figures.
    for result, per_request in (
        (sql_search_all, len(search_all) / 8),
        (sql_dashboard_all, len(dashboard_all) / 4),
    ):
        result.latencies_ms = [ms * per_request for ms in result.latencies_ms]

    # --- the load ---------------------------------------------------------------------
    log_path = tmp / "gunicorn.log"
    try:
        with gunicorn(env, log_path) as port:
            sessions = [
                sign_in(port, seeded.carer_email(c), BENCH_PASSWORD) for c in dashboard_carers
            ]

            def warm(
                path: str, headers: dict[str, str], method: str = "GET", body: bytes | None = None
            ) -> None:
                for _ in range(4):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    conn.request(method, path, body=body, headers=headers)
                    conn.getresponse().read()
                    conn.close()

            warm("/healthz", {})
            warm(search_paths[-1], {"Authorization": f"Bearer {search_tokens[0]}"})
            warm("/dashboard", {"Cookie": f"session={sessions[0]}"})

            c, r, s = plan.floor
            floor = run_load(
                "HTTP floor: GET /healthz",
                port,
                lambda i, n: ("GET", "/healthz", None, {}),
                clients=c,
                requests_per_client=r,
                max_seconds=s,
            )
            floor_wide = run_load(
                "HTTP floor: GET /healthz",
                port,
                lambda i, n: ("GET", "/healthz", None, {}),
                clients=plan.booking[0],
                requests_per_client=r // 2,
                max_seconds=s,
            )

            c, r, s = plan.lookup

            def lookup(i: int, n: int) -> tuple[str, str, bytes, dict[str, str]]:
                pin = pins[(i * r + n) % len(pins)]
                return (
                    "POST",
                    "/api/v1/emergency/lookup",
                    json.dumps({"pin": pin}).encode(),
                    {
                        "Authorization": f"Bearer {seeded.operator_tokens[i % len(seeded.operator_tokens)]}",
                        "Content-Type": "application/json",
                    },
                )

            lookups = run_load(
                "PIN lookup: POST /api/v1/emergency/lookup",
                port,
                lookup,
                clients=c,
                requests_per_client=r,
                max_seconds=s,
                classify=json_code,
            )

            c, r, s = plan.search
            search_result = run_load(
                "Worker search: GET /api/v1/workers/search",
                port,
                lambda i, n: (
                    "GET",
                    search_paths[(i * r + n) % len(search_paths)],
                    None,
                    {"Authorization": f"Bearer {search_tokens[i]}"},
                ),
                clients=c,
                requests_per_client=r,
                max_seconds=s,
                classify=json_code,
            )

            c, r, s = plan.booking
            booking_started = utcnow()

            def book(i: int, n: int) -> tuple[str, str, bytes, dict[str, str]]:
                worker_id, starts, ends = slots[n * groups + i // CONTENDERS]
                body = {
                    "worker_id": worker_id,
                    "starts_at": starts.isoformat(),
                    "ends_at": ends.isoformat(),
                    "postcode": home[worker_id],
                    "address": f"{i} Bench Street, Leeds",
                }
                return (
                    "POST",
                    "/api/v1/bookings",
                    json.dumps(body).encode(),
                    {
                        "Authorization": f"Bearer {booking_tokens[i]}",
                        "Content-Type": "application/json",
                    },
                )

            bookings = run_load(
                "Booking: POST /api/v1/bookings (contended)",
                port,
                book,
                clients=c,
                requests_per_client=r,
                max_seconds=s,
                classify=json_code,
            )

            c, r, s = plan.dashboard
            dashboard = run_load(
                "Carer dashboard: GET /dashboard",
                port,
                lambda i, n: ("GET", "/dashboard", None, {"Cookie": f"session={sessions[i]}"}),
                clients=c,
                requests_per_client=r,
                max_seconds=s,
            )
    except Exception:
        if log_path.exists():
            print("--- last lines of the gunicorn log ---")
            print("\n".join(log_path.read_text(errors="replace").splitlines()[-40:]))
        raise

    # --- booking invariants, checked in SQL -------------------------------------------
    with psycopg.connect(dsn(database)) as conn:
        overlaps = conn.execute(
            """
            SELECT count(*) FROM bookings a JOIN bookings b
              ON a.worker_id = b.worker_id AND a.id < b.id
             AND a.status = ANY(%(live)s) AND b.status = ANY(%(live)s)
             AND tstzrange(a.starts_at, a.ends_at, '[)') && tstzrange(b.starts_at, b.ends_at, '[)')
            """,
            {"live": list(LIVE)},
        ).fetchone()[0]  # type: ignore[index]
        made = conn.execute(
            "SELECT count(*), count(DISTINCT (worker_id, starts_at)), coalesce(sum(price_pence), 0)"
            " FROM bookings WHERE carer_id = ANY(%s) AND created_at >= %s",
            (booking_carers, booking_started),
        ).fetchone()
        holds = conn.execute(
            """
            SELECT count(*), count(b.id), coalesce(sum(-l.amount_pence), 0)
            FROM ledger_entries l
            JOIN budgets bu ON bu.id = l.budget_id
            LEFT JOIN bookings b ON b.id = l.booking_id AND b.created_at >= %(since)s
            WHERE l.kind = 'hold' AND bu.carer_id = ANY(%(carers)s)
              AND l.created_at >= %(since)s
            """,
            {"carers": booking_carers, "since": booking_started},
        ).fetchone()
        negative = conn.execute(
            "SELECT count(*) FROM (SELECT budget_id FROM ledger_entries GROUP BY budget_id"
            " HAVING sum(amount_pence) < 0) x"
        ).fetchone()[0]  # type: ignore[index]
    assert made is not None
    assert holds is not None

    # Measured after the checks, so the rows it commits (on a Saturday a year ahead, for
    # a worker and a carer the load never used) change nothing that was checked.
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        sql_booking = time_sql(
            "SQL: booking lock, insert, hold",
            booking_floor(
                conn,
                booking_writes,
                first_starts=london_wall_clock(
                    seeded.saturday + timedelta(days=364), clock_time(0)
                ),
            ),
            repeats=plan.sql_repeats,
        )
    won = bookings.labels.get("201", 0)
    taken = bookings.labels.get("409 slot_taken", 0)

    print()
    print(
        f"Benchmark on {today.isoformat()}: {os.cpu_count()} cores; gunicorn -w 2 "
        "--threads 4; load generator on the same machine (loopback)."
    )
    print(
        f"Data: {seeded.counts['workers']:,} workers, {seeded.counts['bookings']:,} bookings, "
        f"{seeded.counts['budgets']:,} budgets, {seeded.counts['cards']:,} cards and plans; "
        f"loaded in {loaded:.1f} s."
    )
    print()
    table = print_table(
        [
            (floor, None, None),
            (floor_wide, None, None),
            (lookups, floor, sql_card),
            (search_result, floor, sql_search),
            (bookings, floor_wide, sql_booking),
            (dashboard, floor, sql_balance),
            (sql_card, None, None),
            (sql_search, None, None),
            (sql_search_all, None, None),
            (sql_booking, None, None),
            (sql_balance, None, None),
            (sql_dashboard_all, None, None),
        ]
    )
    print()
    print(
        f"Booking: {len(slots)} slots, {CONTENDERS} clients asking for each; {won} won (201), "
        f"{taken} got slot_taken (409), others: "
        f"{ {k: v for k, v in bookings.labels.items() if k not in ('201', '409 slot_taken')} }."
    )
    print(
        f"Checks in SQL: {overlaps} overlapping live bookings of one worker; {made[0]} bookings "
        f"made by the load on {made[1]} distinct slots (201s: {won}); {holds[0]} holds written "
        f"by the load, {holds[1]} of them on those bookings, holding {holds[2]} pence against "
        f"{made[2]} pence of prices (so {holds[0] - holds[1]} holds left by losing requests); "
        f"{negative} budgets below zero."
    )
    # Every slot has exactly one winner: a run where the bookings were refused for
    # another reason (a rule of the app the load does not meet) is not a pass.
    ok = overlaps == 0 and len(slots) == made[0] == won == made[1] == holds[0] == holds[1]
    ok = ok and negative == 0
    ok = ok and holds[2] == made[2]
    print("Booking invariants: " + ("held" if ok else "BROKEN"))
    (tmp / "table.md").write_text(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
