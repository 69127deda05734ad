"""Bookings: the booking lifecycle columns, reviews, concerns, the waiting list,
iCalendar feed tokens, and the foreign key from ledger_entries.booking_id to bookings.

Merges the budgets and workers branches. Reviewed by hand: only this topic's tables.
Emergency (scheme-funded) bookings have no carer yet, so bookings.carer_id may be null.

Revision ID: 0006_bookings
Revises: 0002_budgets, 0003_workers
Create Date: 2026-11-22

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006_bookings"
down_revision = ("0002_budgets", "0003_workers")
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "calendar_feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_calendar_feeds_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_feeds_token_hash")),
    )
    with op.batch_alter_table("calendar_feeds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_feeds_user_id"), ["user_id"], unique=False)

    op.create_table(
        "waiting_list_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("carer_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "waiting", "offered", "withdrawn", name="waitstatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "ends_at > starts_at", name=op.f("ck_waiting_list_entries_ends_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["carer_id"], ["users.id"], name=op.f("fk_waiting_list_entries_carer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["council_id"],
            ["councils.id"],
            name=op.f("fk_waiting_list_entries_council_id_councils"),
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["users.id"], name=op.f("fk_waiting_list_entries_worker_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waiting_list_entries")),
    )
    with op.batch_alter_table("waiting_list_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_waiting_list_entries_carer_id"), ["carer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_waiting_list_entries_council_id"), ["council_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_waiting_list_entries_worker_id"), ["worker_id"], unique=False
        )

    op.create_table(
        "booking_concerns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("raised_by_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "closed", name="concernstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_booking_concerns_booking_id_bookings")
        ),
        sa.ForeignKeyConstraint(
            ["council_id"], ["councils.id"], name=op.f("fk_booking_concerns_council_id_councils")
        ),
        sa.ForeignKeyConstraint(
            ["raised_by_id"], ["users.id"], name=op.f("fk_booking_concerns_raised_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_concerns")),
    )
    with op.batch_alter_table("booking_concerns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_booking_concerns_booking_id"), ["booking_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_booking_concerns_council_id"), ["council_id"], unique=False
        )

    op.create_table(
        "booking_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("carer_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rating >= 1 AND rating <= 5", name=op.f("ck_booking_reviews_rating_in_range")
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_booking_reviews_booking_id_bookings")
        ),
        sa.ForeignKeyConstraint(
            ["carer_id"], ["users.id"], name=op.f("fk_booking_reviews_carer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["council_id"], ["councils.id"], name=op.f("fk_booking_reviews_council_id_councils")
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["users.id"], name=op.f("fk_booking_reviews_worker_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_reviews")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_booking_reviews_booking_id")),
    )
    with op.batch_alter_table("booking_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_booking_reviews_council_id"), ["council_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_booking_reviews_worker_id"), ["worker_id"], unique=False
        )

    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "funded_by",
                sa.Enum("budget", "scheme", name="fundedby", native_enum=False, length=32),
                nullable=False,
                server_default="budget",
            )
        )
        batch_op.add_column(sa.Column("budget_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("hold_pence", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("top_up_pence", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("rates", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("postcode", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("address", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("share_notes", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("support_kind", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("requested_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("respond_by", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("instant", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cancelled_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("fee_pence", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("actual_starts_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("actual_ends_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("charged_pence", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("extra_pence", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("extra_approved_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("dispute_closes_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("disputed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("dispute_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("dispute_resolved_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("refunded_pence", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("final_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("series_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("form_token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("incident_ref", sa.String(length=64), nullable=True))
        batch_op.alter_column("carer_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index(batch_op.f("ix_bookings_budget_id"), ["budget_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bookings_dispute_closes_at"), ["dispute_closes_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_bookings_respond_by"), ["respond_by"], unique=False)
        batch_op.create_index(batch_op.f("ix_bookings_series_key"), ["series_key"], unique=False)
        batch_op.create_index("ix_bookings_status_starts", ["status", "starts_at"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_bookings_form_token"), ["form_token"])
        batch_op.create_foreign_key(
            batch_op.f("fk_bookings_budget_id_budgets"), "budgets", ["budget_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_bookings_requested_by_id_users"), "users", ["requested_by_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_bookings_cancelled_by_id_users"), "users", ["cancelled_by_id"], ["id"]
        )
        batch_op.create_check_constraint(
            op.f("ck_bookings_amounts_not_negative"),
            "hold_pence >= 0 AND top_up_pence >= 0 AND fee_pence >= 0 AND extra_pence >= 0 "
            "AND refunded_pence >= 0",
        )
        batch_op.create_check_constraint(
            op.f("ck_bookings_charge_not_negative"), "charged_pence IS NULL OR charged_pence >= 0"
        )

    # The ledger's booking_id (a plain integer in 0002_budgets) now points at bookings.
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_ledger_entries_booking_id_bookings"), "bookings", ["booking_id"], ["id"]
        )

    # ### end Alembic commands ###


def downgrade():
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_ledger_entries_booking_id_bookings"), type_="foreignkey"
        )

    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_bookings_charge_not_negative"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_bookings_amounts_not_negative"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_bookings_cancelled_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_bookings_requested_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_bookings_budget_id_budgets"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_bookings_form_token"), type_="unique")
        batch_op.drop_index("ix_bookings_status_starts")
        batch_op.drop_index(batch_op.f("ix_bookings_series_key"))
        batch_op.drop_index(batch_op.f("ix_bookings_respond_by"))
        batch_op.drop_index(batch_op.f("ix_bookings_dispute_closes_at"))
        batch_op.drop_index(batch_op.f("ix_bookings_budget_id"))
        batch_op.drop_column("incident_ref")
        batch_op.drop_column("form_token")
        batch_op.drop_column("series_key")
        batch_op.drop_column("final_at")
        batch_op.drop_column("refunded_pence")
        batch_op.drop_column("dispute_resolved_at")
        batch_op.drop_column("dispute_reason")
        batch_op.drop_column("disputed_at")
        batch_op.drop_column("dispute_closes_at")
        batch_op.drop_column("extra_approved_at")
        batch_op.drop_column("extra_pence")
        batch_op.drop_column("charged_pence")
        batch_op.drop_column("completed_at")
        batch_op.drop_column("actual_ends_at")
        batch_op.drop_column("actual_starts_at")
        batch_op.drop_column("fee_pence")
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("cancelled_by_id")
        batch_op.drop_column("ended_at")
        batch_op.drop_column("instant")
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("respond_by")
        batch_op.drop_column("requested_by_id")
        batch_op.drop_column("support_kind")
        batch_op.drop_column("share_notes")
        batch_op.drop_column("notes")
        batch_op.drop_column("address")
        batch_op.drop_column("postcode")
        batch_op.drop_column("rates")
        batch_op.drop_column("top_up_pence")
        batch_op.drop_column("hold_pence")
        batch_op.drop_column("budget_id")
        batch_op.drop_column("funded_by")

    # Scheme-funded bookings have no carer; they cannot survive the older schema.
    op.execute("DELETE FROM bookings WHERE carer_id IS NULL")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.alter_column("carer_id", existing_type=sa.INTEGER(), nullable=False)

    op.drop_table("booking_reviews")
    op.drop_table("booking_concerns")
    op.drop_table("waiting_list_entries")
    op.drop_table("calendar_feeds")
