"""phone line: missed calls from callers no operator answered and whose plan was not found

Revision ID: 0010_phone_missed_calls
Revises: 0009_sessions_and_totp
Create Date: 2026-11-29 12:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0010_phone_missed_calls"
down_revision = "0009_sessions_and_totp"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "phone_missed_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=True),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("caller_number", sa.String(length=32), nullable=True),
        sa.Column("line_number", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dealt_with_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dealt_with_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["council_id"], ["councils.id"], name=op.f("fk_phone_missed_calls_council_id_councils")
        ),
        sa.ForeignKeyConstraint(
            ["dealt_with_by_id"],
            ["users.id"],
            name=op.f("fk_phone_missed_calls_dealt_with_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_missed_calls")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_phone_missed_calls_call_sid")),
    )
    with op.batch_alter_table("phone_missed_calls", schema=None) as batch_op:
        batch_op.create_index(
            "ix_phone_missed_calls_open",
            ["council_id", "dealt_with_at", "called_at"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("phone_missed_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_phone_missed_calls_open")

    op.drop_table("phone_missed_calls")
