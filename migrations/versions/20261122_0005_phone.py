"""phone line: operators' rota, automated cascade calls, yearly contact checks

Revision ID: 0005_phone
Revises: 0004_emergency
Create Date: 2026-11-22 19:50:40.596288

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_phone'
down_revision = '0004_emergency'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('phone_rota_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('on_duty', sa.Boolean(), nullable=False),
    sa.Column('is_backup', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("phone LIKE '+%'", name=op.f('ck_phone_rota_entries_phone_is_e164')),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_phone_rota_entries_council_id_councils')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_phone_rota_entries_updated_by_id_users')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_phone_rota_entries_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_phone_rota_entries')),
    sa.UniqueConstraint('user_id', name=op.f('uq_phone_rota_entries_user_id'))
    )
    with op.batch_alter_table('phone_rota_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_phone_rota_entries_council_id'), ['council_id'], unique=False)
        batch_op.create_index('ix_phone_rota_entries_duty', ['on_duty', 'is_backup', 'updated_at'], unique=False)

    op.create_table('phone_cascade_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('attempt_number', sa.Integer(), nullable=False),
    sa.Column('outbox_message_id', sa.Integer(), nullable=True),
    sa.Column('call_status', sa.String(length=32), nullable=False),
    sa.Column('answered_by', sa.String(length=32), nullable=True),
    sa.Column('digits', sa.String(length=8), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("outcome IN ('pending', 'confirmed', 'declined', 'not_reached')", name=op.f('ck_phone_cascade_calls_outcome_allowed')),
    sa.CheckConstraint('attempt_number >= 1', name=op.f('ck_phone_cascade_calls_attempt_positive')),
    sa.ForeignKeyConstraint(['contact_id'], ['emergency_contacts.id'], name=op.f('fk_phone_cascade_calls_contact_id_emergency_contacts')),
    sa.ForeignKeyConstraint(['incident_id'], ['emergency_incidents.id'], name=op.f('fk_phone_cascade_calls_incident_id_emergency_incidents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outbox_message_id'], ['outbox_messages.id'], name=op.f('fk_phone_cascade_calls_outbox_message_id_outbox_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_phone_cascade_calls')),
    sa.UniqueConstraint('incident_id', 'contact_id', 'attempt_number', name='uq_phone_cascade_calls_attempt')
    )
    with op.batch_alter_table('phone_cascade_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_phone_cascade_calls_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_phone_cascade_calls_outbox_message_id'), ['outbox_message_id'], unique=False)

    op.create_table('phone_contact_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reply_due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reply', sa.String(length=8), nullable=True),
    sa.Column('flagged_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['emergency_contacts.id'], name=op.f('fk_phone_contact_checks_contact_id_emergency_contacts')),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_phone_contact_checks_council_id_councils')),
    sa.ForeignKeyConstraint(['plan_id'], ['emergency_plans.id'], name=op.f('fk_phone_contact_checks_plan_id_emergency_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_phone_contact_checks'))
    )
    with op.batch_alter_table('phone_contact_checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_phone_contact_checks_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_phone_contact_checks_council_id'), ['council_id'], unique=False)
        batch_op.create_index('ix_phone_contact_checks_open', ['replied_at', 'reply_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_phone_contact_checks_phone'), ['phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_phone_contact_checks_plan_id'), ['plan_id'], unique=False)


def downgrade():
    with op.batch_alter_table('phone_contact_checks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_phone_contact_checks_plan_id'))
        batch_op.drop_index(batch_op.f('ix_phone_contact_checks_phone'))
        batch_op.drop_index('ix_phone_contact_checks_open')
        batch_op.drop_index(batch_op.f('ix_phone_contact_checks_council_id'))
        batch_op.drop_index(batch_op.f('ix_phone_contact_checks_contact_id'))

    op.drop_table('phone_contact_checks')

    with op.batch_alter_table('phone_cascade_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_phone_cascade_calls_outbox_message_id'))
        batch_op.drop_index(batch_op.f('ix_phone_cascade_calls_incident_id'))

    op.drop_table('phone_cascade_calls')

    with op.batch_alter_table('phone_rota_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_phone_rota_entries_duty')
        batch_op.drop_index(batch_op.f('ix_phone_rota_entries_council_id'))

    op.drop_table('phone_rota_entries')
