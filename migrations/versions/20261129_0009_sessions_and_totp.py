"""sessions end on the server; second-factor codes counted per account and used once

Revision ID: 0009_sessions_and_totp
Revises: 0008_merge
Create Date: 2026-11-29

users.session_generation is part of every session cookie's id: bumping it (sign-out,
password reset) ends the person's sessions everywhere. users.failed_totp_codes counts
wrong TOTP codes apart from wrong passwords, and users.totp_last_step stops a code
being used twice within its 30-second window.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009_sessions_and_totp"
down_revision = "0008_merge"
branch_labels = None
depends_on = None


def upgrade():
    # Reviewed by hand: three columns on users, nothing else.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("failed_totp_codes", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("failed_totp_codes")
        batch_op.drop_column("session_generation")
