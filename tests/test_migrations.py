"""Migrations are the only way the schema is made: after `flask db upgrade`, the models and
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


def test_there_is_one_head_so_plain_upgrade_reaches_it(app: Flask) -> None:
    """`make run` runs `flask db upgrade`; with two heads it would stop with an error."""
    from alembic.script import ScriptDirectory
    from flask_migrate import Migrate

    migrate: Migrate = app.extensions["migrate"].migrate
    script = ScriptDirectory.from_config(migrate.get_config())
    assert len(script.get_heads()) == 1, script.get_heads()
