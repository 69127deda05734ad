"""budgets, tranches and the append-only ledger

Revision ID: 0002_budgets
Revises: 0001_foundation
Create Date: 2026-11-22 19:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002_budgets'
down_revision = '0001_foundation'
branch_labels = None
depends_on = None


def upgrade():
    # Reviewed by hand. On PostgreSQL also: a trigger that refuses UPDATE and DELETE on
    # ledger_entries (reusing refuse_change() from the foundation), and an exclusion
    # constraint so one carer's budget periods can never overlap.
    op.create_table('budgets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=False),
    sa.Column('carer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('direct_payment', 'council_managed', 'mixed', name='budgetkind', native_enum=False, length=32), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('award_pence', sa.Integer(), nullable=False),
    sa.Column('tranche_schedule', sa.Enum('whole', 'four_weekly', 'monthly', name='trancheschedule', native_enum=False, length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('award_pence >= 0', name=op.f('ck_budgets_award_not_negative')),
    sa.CheckConstraint('period_end >= period_start', name=op.f('ck_budgets_period_in_order')),
    sa.ForeignKeyConstraint(['carer_id'], ['users.id'], name=op.f('fk_budgets_carer_id_users')),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_budgets_council_id_councils')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_budgets_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budgets'))
    )
    with op.batch_alter_table('budgets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_budgets_carer_id'), ['carer_id'], unique=False)
        batch_op.create_index('ix_budgets_carer_period', ['carer_id', 'period_start', 'period_end'], unique=False)
        batch_op.create_index(batch_op.f('ix_budgets_council_id'), ['council_id'], unique=False)

    op.create_table('budget_tranches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=False),
    sa.Column('budget_id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('amount_pence', sa.Integer(), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_pence >= 0', name=op.f('ck_budget_tranches_amount_not_negative')),
    sa.ForeignKeyConstraint(['budget_id'], ['budgets.id'], name=op.f('fk_budget_tranches_budget_id_budgets')),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_budget_tranches_council_id_councils')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_tranches')),
    sa.UniqueConstraint('budget_id', 'sequence', name='uq_budget_tranches_budget_sequence')
    )
    with op.batch_alter_table('budget_tranches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_budget_tranches_budget_id'), ['budget_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_budget_tranches_council_id'), ['council_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_budget_tranches_due_on'), ['due_on'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=False),
    sa.Column('budget_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('allocation', 'hold', 'release', 'capture', 'refund', 'top_up', 'adjustment', name='ledgerkind', native_enum=False, length=32), nullable=False),
    sa.Column('amount_pence', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('tag', sa.String(length=32), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind IN ('allocation', 'top_up', 'release', 'refund') AND amount_pence >= 0) OR (kind IN ('hold', 'capture') AND amount_pence <= 0) OR (kind = 'adjustment' AND amount_pence <> 0)", name=op.f('ck_ledger_entries_sign_matches_kind')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_ledger_entries_actor_id_users')),
    sa.ForeignKeyConstraint(['budget_id'], ['budgets.id'], name=op.f('fk_ledger_entries_budget_id_budgets')),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_ledger_entries_council_id_councils')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_entries_idempotency_key'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_booking_id'), ['booking_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_budget_id'), ['budget_id'], unique=False)
        batch_op.create_index('ix_ledger_entries_budget_created', ['budget_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_council_id'), ['council_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_created_at'), ['created_at'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
            "FOR EACH ROW EXECUTE FUNCTION refuse_change()"
        )
        # Left in place on downgrade: the bookings migration uses it too.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE budgets ADD CONSTRAINT budgets_one_period_at_a_time "
            "EXCLUDE USING gist (carer_id WITH =, daterange(period_start, period_end, '[]') WITH &&)"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE budgets DROP CONSTRAINT IF EXISTS budgets_one_period_at_a_time")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries")
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_created_at'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_council_id'))
        batch_op.drop_index('ix_ledger_entries_budget_created')
        batch_op.drop_index(batch_op.f('ix_ledger_entries_budget_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_booking_id'))

    op.drop_table('ledger_entries')
    with op.batch_alter_table('budget_tranches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_budget_tranches_due_on'))
        batch_op.drop_index(batch_op.f('ix_budget_tranches_council_id'))
        batch_op.drop_index(batch_op.f('ix_budget_tranches_budget_id'))

    op.drop_table('budget_tranches')
    with op.batch_alter_table('budgets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_budgets_council_id'))
        batch_op.drop_index('ix_budgets_carer_period')
        batch_op.drop_index(batch_op.f('ix_budgets_carer_id'))

    op.drop_table('budgets')
