"""Test set-up: one database per run (SQLite, or a fresh PostgreSQL database when
TEST_DATABASE_URL is set), the schema made by `flask db upgrade`, and each test inside a
transaction that is rolled back, so commits in services stay invisible to other tests."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import scoped_session, sessionmaker

from app import create_app
from app.extensions import db
from tests import helpers

TEST_PG = os.environ.get("TEST_DATABASE_URL", "").strip()


def _pg_admin_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    if not TEST_PG:
        tmp = Path(tempfile.mkdtemp(prefix="carers-test-"))
        yield f"sqlite:///{tmp / 'test.db'}"
        return
    import psycopg

    name = f"test_run_{os.getpid()}_{secrets.token_hex(3)}"
    admin = _pg_admin_url(TEST_PG)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = TEST_PG.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def base_config(database_url: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "PLAN_ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
        "PIN_HMAC_KEY": "test-pin-hmac-key",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": "memory://",
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "PUBLIC_BASE_URL": "https://carers.example.org",
        "NOTIFY_BACKEND": "log",
        "PAYMENT_BACKEND": "ledger",
        "SERVER_NAME": None,
    }


class FreshRequestClient(FlaskClient):
    """Each test keeps one app context pushed, so Flask reuses it (and its `g`) for every
    request; forget the per-request values like a real server would."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        from flask import g

        for name in list(vars(g)):
            delattr(g, name)
        return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    from flask_migrate import upgrade

    application = create_app(base_config(database_url))
    application.test_client_class = FreshRequestClient
    with application.app_context():
        upgrade()
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
def postgres_only(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("needs PostgreSQL; runs in the PostgreSQL pass of make test")


@pytest.fixture(autouse=True)
def _db(request: pytest.FixtureRequest, app: Flask) -> Iterator[None]:
    """Each test runs in an outer transaction that is rolled back at the end.

    Tests marked `committing` (concurrency tests) use real commits instead, and every
    table is emptied afterwards.
    """
    ctx = app.app_context()
    ctx.push()
    if request.node.get_closest_marker("committing"):
        try:
            yield
        finally:
            db.session.remove()
            helpers.empty_all_tables()
            ctx.pop()
        return
    connection = db.engine.connect()
    outer = connection.begin()
    original = db.session
    db.session = scoped_session(  # type: ignore[assignment]
        sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    )
    try:
        yield
    finally:
        db.session.remove()
        db.session = original  # type: ignore[assignment]
        if outer.is_active:
            outer.rollback()
        connection.close()
        from app.extensions import limiter

        limiter.reset()
        ctx.pop()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def now() -> Any:
    from app.clock import utcnow

    return utcnow()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "committing: real commits; tables emptied afterwards")


@pytest.fixture
def sql_count(app: Flask) -> Iterator[list[str]]:
    """Collect the SQL statements run inside the test (for constant-query-count checks)."""
    from sqlalchemy import event

    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN")):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    yield statements
    event.remove(db.engine, "before_cursor_execute", before)


__all__ = ["text"]
