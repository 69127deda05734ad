"""forget the PINs the phone line kept in clear in its webhook replay notes

Revision ID: 0014_forget_keyed_pins
Revises: 0013_append_only_on_sqlite
Create Date: 2026-11-29

Until now /twilio/voice/pin recorded a replayed request as
"voice-pin:<CallSid>:<digits>" (and "voice-pin-miss:<CallSid>:<try>:<digits>") in
processed_webhooks, so the digits a caller keyed were stored in clear. The code now
stores the PIN's HMAC there instead. This removes the old rows: they only guard
against Twilio re-sending a request of a call that has long ended, so nothing is lost.
Rows already in the new form (a 64-character HMAC at the end) are kept. There is no
way back: downgrade() leaves the table as it is.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0014_forget_keyed_pins"
down_revision = "0013_append_only_on_sqlite"
branch_labels = None
depends_on = None

webhooks = sa.table(
    "processed_webhooks",
    sa.column("id", sa.Integer),
    sa.column("provider", sa.String),
    sa.column("event_id", sa.String),
)


def _holds_plain_digits(event_id: str) -> bool:
    last = event_id.rsplit(":", 1)[-1]
    return last.isdigit() and len(last) < 64


def upgrade():
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(webhooks.c.id, webhooks.c.event_id).where(
            webhooks.c.provider == "twilio",
            sa.or_(
                webhooks.c.event_id.like("voice-pin:%"),
                webhooks.c.event_id.like("voice-pin-miss:%"),
            ),
        )
    ).all()
    old = [row.id for row in rows if _holds_plain_digits(row.event_id)]
    for start in range(0, len(old), 500):
        bind.execute(sa.delete(webhooks).where(webhooks.c.id.in_(old[start : start + 500])))


def downgrade():
    # The deleted rows held PINs in clear; they are not brought back.
    pass
