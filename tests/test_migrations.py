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


def test_council_ids_are_filled_from_each_parent(app: Flask, tmp_path: object) -> None:
    """0015 gives the twelve child tables council_id, copied from the parent of each row
    (a favourite's from its carer, or from the worker's profile when the carer has none);
    rows of two councils keep their own."""
    from datetime import date, datetime, time
    from pathlib import Path

    import sqlalchemy as sa
    from flask_migrate import upgrade

    from app import create_app
    from tests.conftest import base_config
    from tests.test_tenancy import ALSO_SAME_COUNCIL, PARENT_OF

    fillers = {
        sa.Integer: 1,
        sa.String: "x",
        sa.Text: "x",
        sa.Boolean: False,
        sa.DateTime: datetime(2026, 11, 1, 9, 0),  # noqa: DTZ001 - raw SQLite storage
        sa.Date: date(2026, 11, 1),
        sa.Time: time(9, 0),
        sa.JSON: "{}",
    }

    def insert(conn: sa.Connection, table: sa.Table, **values: object) -> int:
        """A row with `values`, and a plain value in every other required column."""
        for column in table.c:
            if column.name in values or column.nullable or column.primary_key:
                continue
            if column.server_default is not None:
                continue
            values[column.name] = next(v for t, v in fillers.items() if isinstance(column.type, t))
        return int(conn.execute(table.insert().values(**values)).inserted_primary_key[0])

    url = f"sqlite:///{Path(str(tmp_path)) / 'councils.db'}"
    other = create_app(base_config(url))
    with other.app_context():
        upgrade(revision="0014_forget_keyed_pins")
        meta = sa.MetaData()
        meta.reflect(db.engine)
        t = meta.tables
        councils = []
        with db.engine.begin() as conn:
            for n in (1, 2):
                council = insert(conn, t["councils"], slug=f"c{n}")
                councils.append(council)
                carer = insert(conn, t["users"], council_id=council, email=f"carer{n}@x")
                worker = insert(conn, t["users"], council_id=council, email=f"worker{n}@x")
                profile = insert(
                    conn,
                    t["worker_profiles"],
                    user_id=worker,
                    council_id=council,
                    min_session_minutes=60,
                )
                for name in ("worker_skills", "worker_languages", "worker_checks"):
                    insert(conn, t[name], profile_id=profile)
                insert(conn, t["vetting_decisions"], profile_id=profile)
                insert(
                    conn,
                    t["availability_rules"],
                    profile_id=profile,
                    weekday=0,
                    end_time=time(10, 0),
                )
                insert(
                    conn,
                    t["availability_exceptions"],
                    profile_id=profile,
                    ends_at=datetime(2026, 11, 2, 9, 0),  # noqa: DTZ001
                )
                insert(conn, t["favourites"], carer_id=carer, worker_id=worker)
                # A carer with no council: the favourite takes the worker's.
                loose = insert(conn, t["users"], council_id=None, email=f"loose{n}@x")
                insert(conn, t["favourites"], carer_id=loose, worker_id=worker)
                plan = insert(conn, t["emergency_plans"], council_id=council, carer_id=carer)
                version = insert(
                    conn, t["emergency_plan_versions"], plan_id=plan, consent_cared_for="yes"
                )
                contact = insert(conn, t["emergency_contacts"], plan_version_id=version)
                incident = insert(
                    conn,
                    t["emergency_incidents"],
                    council_id=council,
                    plan_id=plan,
                    plan_version_id=version,
                    source="console",
                )
                insert(conn, t["emergency_incident_events"], incident_id=incident)
                insert(
                    conn, t["emergency_cascade_attempts"], incident_id=incident, contact_id=contact
                )
                insert(
                    conn,
                    t["phone_cascade_calls"],
                    incident_id=incident,
                    contact_id=contact,
                    outcome="pending",
                )
        upgrade()
        found = {}
        with db.engine.connect() as conn:
            for table, column, parent, key in [
                (table, *PARENT_OF[table]) for table in PARENT_OF
            ] + ALSO_SAME_COUNCIL:
                found[(table, column)] = conn.execute(
                    sa.text(
                        f"SELECT c.council_id, p.council_id FROM {table} c "  # noqa: S608
                        f"LEFT JOIN {parent} p ON p.{key} = c.{column}"
                    )
                ).all()
        db.engine.dispose()
    for (table, column), rows in found.items():
        assert sorted({row[0] for row in rows}) == councils, table
        if table == "favourites" and column == "carer_id":
            # The loose carers have no council; their favourites took the worker's.
            assert [row for row in rows if row[0] != row[1]] == [(1, None), (2, None)]
        else:
            assert all(row[0] == row[1] for row in rows), (table, column, rows)
