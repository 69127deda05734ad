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


def test_the_keyed_pins_kept_in_clear_are_forgotten(app: Flask, tmp_path: object) -> None:
    """0014 removes replay notes that end in the digits a caller keyed, and keeps the ones
    that end in the PIN's HMAC (what the phone line writes now)."""
    from pathlib import Path

    import sqlalchemy as sa
    from flask_migrate import upgrade

    from app import create_app
    from tests.conftest import base_config

    url = f"sqlite:///{Path(str(tmp_path)) / 'pins.db'}"
    other = create_app(base_config(url))
    hmac_hex = "ab" * 32
    with other.app_context():
        upgrade(revision="0013_append_only_on_sqlite")
        with db.engine.begin() as conn:
            for event_id in (
                "voice-pin:CA0123:12345670",
                "voice-pin-miss:CA0123:2:99999990",
                f"voice-pin:CA0456:{hmac_hex}",
                "voice-dial:CA0123",
            ):
                conn.execute(
                    sa.text(
                        "INSERT INTO processed_webhooks (provider, event_id, event_type,"
                        " received_at) VALUES ('twilio', :e, 'x', CURRENT_TIMESTAMP)"
                    ),
                    {"e": event_id},
                )
        upgrade()
        with db.engine.connect() as conn:
            left = set(conn.scalars(sa.text("SELECT event_id FROM processed_webhooks")))
        db.engine.dispose()
    assert left == {f"voice-pin:CA0456:{hmac_hex}", "voice-dial:CA0123"}
