"""every record of a council carries its id: council_id on the twelve tables that had
it only through a parent

Revision ID: 0015_council_on_every_record
Revises: 0014_forget_keyed_pins
Create Date: 2026-11-29

Issue 2: councils are tenants; every record that belongs to one carries its id, so a
query can be scoped by it. These tables were scoped only through a parent (a worker's
profile, a plan, a plan version, an incident, a carer). Each gets council_id, filled
from its parent, then made NOT NULL with a foreign key to councils and an index.

Where the parent is a profile, a plan, a plan version or an incident, the child's
foreign key becomes (parent_id, council_id) -> parent (id, council_id), under the same
name, so the database itself keeps the child in its parent's council; each such parent
gets a unique index on (id, council_id) for it to point at. favourites (whose parent is
a carer, a user whose council may be null) get council_id from the carer, or from the
worker's profile when the carer has none, and rely on the services.

SQLite: the NOT NULL and the new keys need batch mode to copy each table; migrations/
env.py turns foreign keys off around the migrations (a copied parent would otherwise
cascade-delete its children) and runs PRAGMA foreign_key_check before committing.
audit_entries and ledger_entries are not touched (copying them drops their triggers).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015_council_on_every_record"
down_revision = "0014_forget_keyed_pins"
branch_labels = None
depends_on = None

PROFILE = ("profile_id", "worker_profiles")
INCIDENT = ("incident_id", "emergency_incidents")

# (table, parent column, parent table, the old foreign key's ondelete), parents first so
# a parent's council_id is filled before its children copy it.
CHILDREN = [
    ("worker_skills", *PROFILE, "CASCADE"),
    ("worker_languages", *PROFILE, "CASCADE"),
    ("worker_checks", *PROFILE, "CASCADE"),
    ("vetting_decisions", *PROFILE, "CASCADE"),
    ("availability_rules", *PROFILE, "CASCADE"),
    ("availability_exceptions", *PROFILE, "CASCADE"),
    ("emergency_plan_versions", "plan_id", "emergency_plans", "CASCADE"),
    ("emergency_contacts", "plan_version_id", "emergency_plan_versions", "CASCADE"),
    ("emergency_incident_events", *INCIDENT, "CASCADE"),
    ("emergency_cascade_attempts", *INCIDENT, "CASCADE"),
    ("phone_cascade_calls", *INCIDENT, "CASCADE"),
]
PARENTS = ("worker_profiles", "emergency_plans", "emergency_plan_versions", "emergency_incidents")

FAVOURITES_COUNCIL = """
    UPDATE favourites SET council_id = COALESCE(
        (SELECT users.council_id FROM users WHERE users.id = favourites.carer_id),
        (SELECT worker_profiles.council_id FROM worker_profiles
         WHERE worker_profiles.user_id = favourites.worker_id))
"""


def _fk_name(table, column, parent):
    return f"fk_{table}_{column}_{parent}"


def _unique_name(parent):
    return f"uq_{parent}_id_council"


def upgrade():
    # Reviewed by hand: the twelve tables, and a unique index on four of their parents.
    tables = [table for table, *_ in CHILDREN] + ["favourites"]
    for table in tables:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("council_id", sa.Integer(), nullable=True))
    for table, column, parent, _ondelete in CHILDREN:
        op.execute(
            f"UPDATE {table} SET council_id = (SELECT {parent}.council_id FROM {parent} "
            f"WHERE {parent}.id = {table}.{column})"
        )
    op.execute(FAVOURITES_COUNCIL)

    for parent in PARENTS:
        with op.batch_alter_table(parent, schema=None) as batch_op:
            batch_op.create_index(_unique_name(parent), ["id", "council_id"], unique=True)

    for table, column, parent, ondelete in CHILDREN:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("council_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_index(f"ix_{table}_council_id", ["council_id"], unique=False)
            batch_op.create_foreign_key(
                f"fk_{table}_council_id_councils", "councils", ["council_id"], ["id"]
            )
            batch_op.drop_constraint(_fk_name(table, column, parent), type_="foreignkey")
            batch_op.create_foreign_key(
                _fk_name(table, column, parent),
                parent,
                [column, "council_id"],
                ["id", "council_id"],
                ondelete=ondelete,
            )
    with op.batch_alter_table("favourites", schema=None) as batch_op:
        batch_op.alter_column("council_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index("ix_favourites_council_id", ["council_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_favourites_council_id_councils", "councils", ["council_id"], ["id"]
        )


def downgrade():
    with op.batch_alter_table("favourites", schema=None) as batch_op:
        batch_op.drop_constraint("fk_favourites_council_id_councils", type_="foreignkey")
        batch_op.drop_index("ix_favourites_council_id")
        batch_op.drop_column("council_id")
    # Children before their parents: a parent's unique index goes once nothing points at
    # it, and before its own council_id (emergency_plan_versions is both).
    for table, column, parent, ondelete in reversed(CHILDREN):
        if table in PARENTS:
            with op.batch_alter_table(table, schema=None) as batch_op:
                batch_op.drop_index(_unique_name(table))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(_fk_name(table, column, parent), type_="foreignkey")
            batch_op.create_foreign_key(
                _fk_name(table, column, parent), parent, [column], ["id"], ondelete=ondelete
            )
            batch_op.drop_constraint(f"fk_{table}_council_id_councils", type_="foreignkey")
            batch_op.drop_index(f"ix_{table}_council_id")
            batch_op.drop_column("council_id")
    for parent in PARENTS:
        if parent not in {table for table, *_ in CHILDREN}:
            with op.batch_alter_table(parent, schema=None) as batch_op:
                batch_op.drop_index(_unique_name(parent))
