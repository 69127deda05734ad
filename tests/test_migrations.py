"""Migrations are the only way the schema is made: after `upgrade heads`, the models and
the database agree (what `flask db check` reports)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from app.extensions import db
from app.models import Base


def test_models_and_migrations_agree(app: Flask) -> None:
    context = MigrationContext.configure(
        db.session.connection(),
        opts={
            "compare_type": True,
            "include_object": lambda obj, name, type_, reflected, compare_to: (
                not (type_ == "table" and name == "apscheduler_jobs")
            ),
        },
    )
    diff = compare_metadata(context, Base.metadata)
    assert diff == []
