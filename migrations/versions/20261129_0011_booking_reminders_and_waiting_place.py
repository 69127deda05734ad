"""bookings: what the reminder jobs have sent, and where a waiting-list break would be

The reminder jobs run hourly and record each reminder, so a missed run is caught up and
nothing is sent twice; the waiting list keeps the postcode and address, so the offer's
"book it" link fills in the booking form.

Revision ID: 0011_booking_reminders
Revises: 0010_phone_missed_calls
Create Date: 2026-11-29 15:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0011_booking_reminders"
down_revision = "0010_phone_missed_calls"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reminder_sent_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("record_reminder_sent_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("waiting_list_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("postcode", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("address", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("waiting_list_entries", schema=None) as batch_op:
        batch_op.drop_column("address")
        batch_op.drop_column("postcode")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_column("record_reminder_sent_at")
        batch_op.drop_column("reminder_sent_at")
