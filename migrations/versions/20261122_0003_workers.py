"""workers: provider organisations, worker profiles, skills, languages, checks,
vetting decisions, availability, favourites, and the core bookings table

Revision ID: 0003_workers
Revises: 0001_foundation
Create Date: 2026-11-22 19:46:43.179711

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003_workers'
down_revision = '0001_foundation'
branch_labels = None
depends_on = None


def upgrade():
    # Reviewed by hand: only this topic's tables; on PostgreSQL the bookings overlap rule
    # is also an exclusion constraint (architecture.md, Booking lifecycle).
    op.create_table('provider_organisations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_provider_organisations_council_id_councils')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_organisations'))
    )
    with op.batch_alter_table('provider_organisations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_organisations_council_id'), ['council_id'], unique=False)

    op.create_table('bookings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=False),
    sa.Column('carer_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('requested', 'confirmed', 'completed', 'declined', 'expired', 'cancelled', 'no_show', name='bookingstatus', native_enum=False, length=32), nullable=False),
    sa.Column('price_pence', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_bookings_ends_after_start')),
    sa.CheckConstraint('price_pence >= 0', name=op.f('ck_bookings_price_not_negative')),
    sa.ForeignKeyConstraint(['carer_id'], ['users.id'], name=op.f('fk_bookings_carer_id_users')),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_bookings_council_id_councils')),
    sa.ForeignKeyConstraint(['worker_id'], ['users.id'], name=op.f('fk_bookings_worker_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bookings'))
    )
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bookings_carer_id'), ['carer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bookings_council_id'), ['council_id'], unique=False)
        batch_op.create_index('ix_bookings_worker_starts', ['worker_id', 'starts_at'], unique=False)

    op.create_table('favourites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('carer_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['carer_id'], ['users.id'], name=op.f('fk_favourites_carer_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['worker_id'], ['users.id'], name=op.f('fk_favourites_worker_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_favourites')),
    sa.UniqueConstraint('carer_id', 'worker_id', name='uq_favourites_pair')
    )
    op.create_table('provider_admins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['provider_organisations.id'], name=op.f('fk_provider_admins_organisation_id_provider_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_provider_admins_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_admins')),
    sa.UniqueConstraint('user_id', name=op.f('uq_provider_admins_user_id'))
    )
    with op.batch_alter_table('provider_admins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_admins_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('worker_profiles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('council_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('bio', sa.Text(), nullable=False),
    sa.Column('photo', sa.LargeBinary(), nullable=True),
    sa.Column('photo_content_type', sa.String(length=32), nullable=True),
    sa.Column('gender', sa.String(length=32), nullable=True),
    sa.Column('postcode', sa.String(length=10), nullable=True),
    sa.Column('latitude', sa.Double(), nullable=True),
    sa.Column('longitude', sa.Double(), nullable=True),
    sa.Column('travel_radius_km', sa.Integer(), nullable=False),
    sa.Column('hourly_rate_pence', sa.Integer(), nullable=False),
    sa.Column('evening_premium_percent', sa.Integer(), nullable=False),
    sa.Column('weekend_premium_percent', sa.Integer(), nullable=False),
    sa.Column('bank_holiday_premium_percent', sa.Integer(), nullable=False),
    sa.Column('min_notice_minutes', sa.Integer(), nullable=False),
    sa.Column('min_session_minutes', sa.Integer(), nullable=False),
    sa.Column('max_hours_per_week', sa.Integer(), nullable=False),
    sa.Column('buffer_minutes', sa.Integer(), nullable=False),
    sa.Column('favourites_instant_book', sa.Boolean(), nullable=False),
    sa.Column('response_deadline_hours', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'approved', 'rejected', 'suspended', name='vettingstatus', native_enum=False, length=32), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reapproval_due', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('buffer_minutes >= 0', name=op.f('ck_worker_profiles_buffer_not_negative')),
    sa.CheckConstraint('evening_premium_percent >= 0 AND weekend_premium_percent >= 0 AND bank_holiday_premium_percent >= 0', name=op.f('ck_worker_profiles_premiums_not_negative')),
    sa.CheckConstraint('hourly_rate_pence >= 0', name=op.f('ck_worker_profiles_rate_not_negative')),
    sa.CheckConstraint('max_hours_per_week > 0', name=op.f('ck_worker_profiles_max_hours_positive')),
    sa.CheckConstraint('min_notice_minutes >= 0', name=op.f('ck_worker_profiles_notice_not_negative')),
    sa.CheckConstraint('min_session_minutes >= 60', name=op.f('ck_worker_profiles_session_at_least_an_hour')),
    sa.CheckConstraint('travel_radius_km >= 0', name=op.f('ck_worker_profiles_radius_not_negative')),
    sa.ForeignKeyConstraint(['council_id'], ['councils.id'], name=op.f('fk_worker_profiles_council_id_councils')),
    sa.ForeignKeyConstraint(['organisation_id'], ['provider_organisations.id'], name=op.f('fk_worker_profiles_organisation_id_provider_organisations')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_worker_profiles_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_profiles')),
    sa.UniqueConstraint('user_id', name=op.f('uq_worker_profiles_user_id'))
    )
    with op.batch_alter_table('worker_profiles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_profiles_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index('ix_worker_profiles_search', ['council_id', 'status', 'latitude', 'longitude'], unique=False)

    op.create_table('availability_exceptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.Enum('unavailable', 'extra', name='exceptionkind', native_enum=False, length=32), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_availability_exceptions_ends_after_start')),
    sa.ForeignKeyConstraint(['profile_id'], ['worker_profiles.id'], name=op.f('fk_availability_exceptions_profile_id_worker_profiles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_availability_exceptions'))
    )
    with op.batch_alter_table('availability_exceptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_availability_exceptions_profile_id'), ['profile_id'], unique=False)

    op.create_table('availability_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.CheckConstraint('end_time > start_time', name=op.f('ck_availability_rules_ends_after_start')),
    sa.CheckConstraint('weekday >= 0 AND weekday <= 6', name=op.f('ck_availability_rules_weekday_in_range')),
    sa.ForeignKeyConstraint(['profile_id'], ['worker_profiles.id'], name=op.f('fk_availability_rules_profile_id_worker_profiles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_availability_rules'))
    )
    with op.batch_alter_table('availability_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_availability_rules_profile_id'), ['profile_id'], unique=False)

    op.create_table('vetting_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.Enum('approved', 'rejected', 'suspended', 'reinstated', name='decisionkind', native_enum=False, length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_vetting_decisions_decided_by_id_users')),
    sa.ForeignKeyConstraint(['profile_id'], ['worker_profiles.id'], name=op.f('fk_vetting_decisions_profile_id_worker_profiles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vetting_decisions'))
    )
    with op.batch_alter_table('vetting_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vetting_decisions_profile_id'), ['profile_id'], unique=False)

    op.create_table('worker_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('dbs_enhanced', 'right_to_work', 'insurance', 'training_moving_handling', 'training_first_aid', 'training_safeguarding', 'reference', name='checkkind', native_enum=False, length=32), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('dbs_update_service', sa.Boolean(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('expires_on IS NULL OR expires_on > issued_on', name=op.f('ck_worker_checks_expires_after_issue')),
    sa.ForeignKeyConstraint(['profile_id'], ['worker_profiles.id'], name=op.f('fk_worker_checks_profile_id_worker_profiles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_worker_checks_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_checks'))
    )
    with op.batch_alter_table('worker_checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_checks_profile_id'), ['profile_id'], unique=False)

    op.create_table('worker_languages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['profile_id'], ['worker_profiles.id'], name=op.f('fk_worker_languages_profile_id_worker_profiles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_languages')),
    sa.UniqueConstraint('profile_id', 'language', name='uq_worker_languages_profile_language')
    )
    with op.batch_alter_table('worker_languages', schema=None) as batch_op:
        batch_op.create_index('ix_worker_languages_language', ['language', 'profile_id'], unique=False)

    op.create_table('worker_skills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=False),
    sa.Column('skill', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['profile_id'], ['worker_profiles.id'], name=op.f('fk_worker_skills_profile_id_worker_profiles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_skills')),
    sa.UniqueConstraint('profile_id', 'skill', name='uq_worker_skills_profile_skill')
    )
    with op.batch_alter_table('worker_skills', schema=None) as batch_op:
        batch_op.create_index('ix_worker_skills_skill', ['skill', 'profile_id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE EXTENSION IF NOT EXISTS btree_gist')
        op.execute(
            "ALTER TABLE bookings ADD CONSTRAINT ex_bookings_no_overlap "
            "EXCLUDE USING gist (worker_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&) "
            "WHERE (status IN ('requested','confirmed','completed'))"
        )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE bookings DROP CONSTRAINT IF EXISTS ex_bookings_no_overlap')
        op.execute('DROP EXTENSION IF EXISTS btree_gist')
    with op.batch_alter_table('worker_skills', schema=None) as batch_op:
        batch_op.drop_index('ix_worker_skills_skill')
    op.drop_table('worker_skills')
    with op.batch_alter_table('worker_languages', schema=None) as batch_op:
        batch_op.drop_index('ix_worker_languages_language')
    op.drop_table('worker_languages')
    with op.batch_alter_table('worker_checks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_checks_profile_id'))
    op.drop_table('worker_checks')
    with op.batch_alter_table('vetting_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vetting_decisions_profile_id'))
    op.drop_table('vetting_decisions')
    with op.batch_alter_table('availability_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_availability_rules_profile_id'))
    op.drop_table('availability_rules')
    with op.batch_alter_table('availability_exceptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_availability_exceptions_profile_id'))
    op.drop_table('availability_exceptions')
    with op.batch_alter_table('worker_profiles', schema=None) as batch_op:
        batch_op.drop_index('ix_worker_profiles_search')
        batch_op.drop_index(batch_op.f('ix_worker_profiles_organisation_id'))
    op.drop_table('worker_profiles')
    with op.batch_alter_table('provider_admins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_admins_organisation_id'))
    op.drop_table('provider_admins')
    op.drop_table('favourites')
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_bookings_worker_starts')
        batch_op.drop_index(batch_op.f('ix_bookings_council_id'))
        batch_op.drop_index(batch_op.f('ix_bookings_carer_id'))
    op.drop_table('bookings')
    with op.batch_alter_table('provider_organisations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_organisations_council_id'))
    op.drop_table('provider_organisations')
