"""payment differences: one open row per object, last seen, resolved by staff

Revision ID: 0012_payment_differences
Revises: 0011_booking_reminders
Create Date: 2026-11-29

reconciliation_differences had one row per day, object and kind, so an unresolved
difference added a row every night. Now there is one open row per object and kind
(a partial unique index over the rows not resolved) whose last_seen_on moves on, and
staff mark it resolved (resolved_by_id, resolution_note). Rows the old key had already
repeated are merged into the first one of each object and kind.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012_payment_differences"
down_revision = "0011_booking_reminders"
branch_labels = None
depends_on = None

OPEN_ONLY = sa.text("resolved_at IS NULL")


def upgrade():
    # Reviewed by hand: reconciliation_differences only.
    with op.batch_alter_table("reconciliation_differences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("resolved_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("resolution_note", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_reconciliation_differences_resolved_by_id_users"),
            "users",
            ["resolved_by_id"],
            ["id"],
        )
        batch_op.drop_constraint("uq_reconciliation_differences_day_object", type_="unique")
    # Each open difference was last seen on the newest day it was found; the older
    # copies of it are closed as merged, so one open row per object and kind remains.
    op.execute(
        "UPDATE reconciliation_differences SET last_seen_on = COALESCE(("
        " SELECT MAX(o.found_on) FROM reconciliation_differences o"
        " WHERE o.object_ref = reconciliation_differences.object_ref"
        " AND o.kind = reconciliation_differences.kind AND o.resolved_at IS NULL"
        " AND reconciliation_differences.resolved_at IS NULL), found_on)"
    )
    op.execute(
        "UPDATE reconciliation_differences SET resolved_at = created_at,"
        " resolution_note = 'Merged into the first report of the same difference.'"
        " WHERE resolved_at IS NULL AND id <> ("
        " SELECT MIN(o.id) FROM reconciliation_differences o"
        " WHERE o.object_ref = reconciliation_differences.object_ref"
        " AND o.kind = reconciliation_differences.kind AND o.resolved_at IS NULL)"
    )
    with op.batch_alter_table("reconciliation_differences", schema=None) as batch_op:
        batch_op.alter_column("last_seen_on", existing_type=sa.Date(), nullable=False)
    op.create_index(
        "uq_reconciliation_differences_open",
        "reconciliation_differences",
        ["object_ref", "kind"],
        unique=True,
        sqlite_where=OPEN_ONLY,
        postgresql_where=OPEN_ONLY,
    )


def downgrade():
    op.drop_index("uq_reconciliation_differences_open", table_name="reconciliation_differences")
    # The old key allowed one row per day, object and kind: keep the first of any
    # same-day rows (a difference resolved and found again on one day).
    op.execute(
        "DELETE FROM reconciliation_differences WHERE id NOT IN ("
        " SELECT MIN(id) FROM reconciliation_differences GROUP BY found_on, object_ref, kind)"
    )
    with op.batch_alter_table("reconciliation_differences", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_reconciliation_differences_day_object", ["found_on", "object_ref", "kind"]
        )
        batch_op.drop_constraint(
            batch_op.f("fk_reconciliation_differences_resolved_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("resolution_note")
        batch_op.drop_column("resolved_by_id")
        batch_op.drop_column("last_seen_on")
