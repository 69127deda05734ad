"""Small helpers the whole suite uses: people, signing in, API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import text

from app.clock import utcnow
from app.extensions import db
from app.models import ApiToken, Base, Council, Role, User


def empty_all_tables() -> None:
    """Used after committing tests: remove every row, children first."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            # SQLite has no TRUNCATE, and DELETE fires the append-only triggers: lift
            # them for this one transaction.
            triggers = conn.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for name, _sql in triggers:
                conn.execute(text(f'DROP TRIGGER "{name}"'))
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
            for _name, sql in triggers:
                conn.execute(text(sql))


def sign_in(client: FlaskClient, user: User) -> FlaskClient:
    """Sign a test client in as `user` (staff second factor counted as passed)."""
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True
    return client


def api_token(user: User, *, hours: int = 12) -> str:
    token = secrets.token_urlsafe(24)
    db.session.add(
        ApiToken(
            user_id=user.id,
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            expires_at=utcnow() + timedelta(hours=hours),
        )
    )
    db.session.commit()
    return token


def bearer(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(user)}"}


def error_of(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert body is not None, response.get_data(as_text=True)
    assert "error" in body, body
    error: dict[str, Any] = body["error"]
    return error


__all__ = [
    "Council",
    "Role",
    "User",
    "api_token",
    "bearer",
    "empty_all_tables",
    "error_of",
    "sign_in",
]
