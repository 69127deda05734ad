"""join the two lines of work: the emergency card service and the breaks marketplace

Revision ID: 0008_merge
Revises: 0005_phone, 0007_payments
Create Date: 2026-11-22 21:00:00

No schema change: this revision only makes one head again, so `flask db upgrade` (without
"heads") takes a database all the way up.
"""

# revision identifiers, used by Alembic.
revision = "0008_merge"
down_revision = ("0005_phone", "0007_payments")
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
