"""payments: card top-ups, worker payout accounts, payouts, reconciliation differences

Revision ID: 0007_payments
Revises: 0006_bookings
Create Date: 2026-11-22

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_payments'
down_revision = '0006_bookings'
branch_labels = None
depends_on = None


def upgrade():
    # Reviewed by hand: only this topic's tables.
    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=False),
    sa.Column('budget_id', sa.Integer(), nullable=False),
    sa.Column('carer_id', sa.Integer(), nullable=False),
    sa.Column('backend', sa.String(length=16), nullable=False),
    sa.Column('status', sa.Enum('awaiting_card', 'authorising', 'requires_action', 'authorised', 'captured', 'cancelled', 'failed', 'recorded', name='paymentstatus', native_enum=False, length=32), nullable=False),
    sa.Column('amount_pence', sa.Integer(), nullable=False),
    sa.Column('captured_pence', sa.Integer(), nullable=False),
    sa.Column('refunded_pence', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('payment_method_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_status', sa.String(length=32), nullable=True),
    sa.Column('failure_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('authorised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('captured_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_pence > 0', name=op.f('ck_payments_amount_positive')),
    sa.CheckConstraint('attempt >= 1', name=op.f('ck_payments_attempt_positive')),
    sa.CheckConstraint('captured_pence >= 0 AND captured_pence <= amount_pence', name=op.f('ck_payments_captured_in_range')),
    sa.CheckConstraint('refunded_pence >= 0 AND refunded_pence <= captured_pence', name=op.f('ck_payments_refunded_in_range')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_payments_booking_id_bookings')),
    sa.ForeignKeyConstraint(['budget_id'], ['budgets.id'], name=op.f('fk_payments_budget_id_budgets')),
    sa.ForeignKeyConstraint(['carer_id'], ['users.id'], name=op.f('fk_payments_carer_id_users')),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_payments_council_id_councils')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('booking_id', name=op.f('uq_payments_booking_id')),
    sa.UniqueConstraint('stripe_payment_intent_id', name=op.f('uq_payments_stripe_payment_intent_id'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_budget_id'), ['budget_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_carer_id'), ['carer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_council_id'), ['council_id'], unique=False)

    op.create_table('worker_payout_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=True),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('stripe_account_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.Enum('onboarding', 'restricted', 'active', name='payoutaccountstatus', native_enum=False, length=32), nullable=False),
    sa.Column('details_submitted', sa.Boolean(), nullable=False),
    sa.Column('charges_enabled', sa.Boolean(), nullable=False),
    sa.Column('payouts_enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_worker_payout_accounts_council_id_councils')),
    sa.ForeignKeyConstraint(['worker_id'], ['users.id'], name=op.f('fk_worker_payout_accounts_worker_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_payout_accounts')),
    sa.UniqueConstraint('stripe_account_id', name=op.f('uq_worker_payout_accounts_stripe_account_id')),
    sa.UniqueConstraint('worker_id', name=op.f('uq_worker_payout_accounts_worker_id'))
    )
    with op.batch_alter_table('worker_payout_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_payout_accounts_council_id'), ['council_id'], unique=False)

    op.create_table('payouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('amount_pence', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'held', 'paid', 'cancelled', name='payoutstatus', native_enum=False, length=32), nullable=False),
    sa.Column('payable_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('backend', sa.String(length=16), nullable=True),
    sa.Column('stripe_transfer_id', sa.String(length=255), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_pence >= 0', name=op.f('ck_payouts_amount_not_negative')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_payouts_booking_id_bookings')),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_payouts_council_id_councils')),
    sa.ForeignKeyConstraint(['worker_id'], ['users.id'], name=op.f('fk_payouts_worker_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payouts')),
    sa.UniqueConstraint('booking_id', name=op.f('uq_payouts_booking_id')),
    sa.UniqueConstraint('stripe_transfer_id', name=op.f('uq_payouts_stripe_transfer_id'))
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payouts_council_id'), ['council_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payouts_payable_from'), ['payable_from'], unique=False)
        batch_op.create_index('ix_payouts_status_payable', ['status', 'payable_from'], unique=False)
        batch_op.create_index(batch_op.f('ix_payouts_worker_id'), ['worker_id'], unique=False)

    op.create_table('reconciliation_differences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=True),
    sa.Column('found_on', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('object_ref', sa.String(length=255), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('payout_id', sa.Integer(), nullable=True),
    sa.Column('ours', sa.String(length=255), nullable=False),
    sa.Column('theirs', sa.String(length=255), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_reconciliation_differences_council_id_councils')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_reconciliation_differences_payment_id_payments')),
    sa.ForeignKeyConstraint(['payout_id'], ['payouts.id'], name=op.f('fk_reconciliation_differences_payout_id_payouts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_differences')),
    sa.UniqueConstraint('found_on', 'object_ref', 'kind', name='uq_reconciliation_differences_day_object')
    )
    with op.batch_alter_table('reconciliation_differences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliation_differences_council_id'), ['council_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reconciliation_differences_found_on'), ['found_on'], unique=False)


def downgrade():
    with op.batch_alter_table('reconciliation_differences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliation_differences_found_on'))
        batch_op.drop_index(batch_op.f('ix_reconciliation_differences_council_id'))

    op.drop_table('reconciliation_differences')
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payouts_worker_id'))
        batch_op.drop_index('ix_payouts_status_payable')
        batch_op.drop_index(batch_op.f('ix_payouts_payable_from'))
        batch_op.drop_index(batch_op.f('ix_payouts_council_id'))

    op.drop_table('payouts')
    with op.batch_alter_table('worker_payout_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_payout_accounts_council_id'))

    op.drop_table('worker_payout_accounts')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_council_id'))
        batch_op.drop_index(batch_op.f('ix_payments_carer_id'))
        batch_op.drop_index(batch_op.f('ix_payments_budget_id'))

    op.drop_table('payments')
