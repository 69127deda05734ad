"""The database connection drops: the app reconnects by itself, and while the database is
unreachable people get a clear 503 with nothing half-saved, never a crash page."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models import Role
from tests.factories import make_user
from tests.helpers import bearer, sign_in


@pytest.mark.committing
def test_app_reconnects_after_postgres_kills_its_connections(
    app: Flask, postgres_only: None
) -> None:
    carer = make_user(Role.CARER)
    headers = bearer(carer)
    client = app.test_client()
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    db.session.remove()
    with db.engine.connect() as admin:
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        admin.commit()
    # Every pooled connection is dead now; pre-ping replaces them transparently.
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["id"] == carer.id


def _unreachable(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_database_outage_gives_a_clear_503(app: Flask, client: Any) -> None:
    carer = make_user(Role.CARER)
    headers = bearer(carer)
    sign_in(client, carer)
    with (
        mock.patch.object(db.session, "get", side_effect=_unreachable),
        mock.patch.object(db.session, "scalar", side_effect=_unreachable),
    ):
        page = client.get("/dashboard")
        api = client.get("/api/v1/me", headers=headers)
    assert page.status_code == 503
    assert "the service is unavailable" in page.get_data(as_text=True)
    assert api.status_code == 503
    assert api.get_json()["error"]["code"] == "service_unavailable"
    assert api.headers["Retry-After"] == "30"
    # And once it is back, all is well.
    assert client.get("/api/v1/me", headers=headers).status_code == 200
