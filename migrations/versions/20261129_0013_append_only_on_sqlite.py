"""the audit log and the ledger refuse UPDATE and DELETE on SQLite too

Revision ID: 0013_append_only_on_sqlite
Revises: 0012_payment_differences
Create Date: 2026-11-29

PostgreSQL has had triggers for this since 0001_foundation (audit_entries) and
0002_budgets (ledger_entries, the marketplace's table; only the trigger is added
here). SQLite gets the same guard, so development and the SQLite test run refuse a
change to either table as production does.

Note for later migrations: on SQLite a batch operation that copies one of these tables
drops its triggers; tests/test_audit.py would then fail on SQLite.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = "0013_append_only_on_sqlite"
down_revision = "0012_payment_differences"
branch_labels = None
depends_on = None

TABLES = ("audit_entries", "ledger_entries")


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        for event in ("UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_{event.lower()}")
