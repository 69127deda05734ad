"""The audit log is append-only in the database itself, on PostgreSQL and SQLite alike:
a trigger refuses UPDATE and DELETE whoever runs them. The ledger has the same guard."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app import audit
from app.extensions import db
from app.models import AuditEntry, Role
from tests.factories import make_user


def test_an_entry_records_who_what_which_record_why_and_from_where() -> None:
    officer = make_user(Role.COUNCIL_OFFICER)
    carer = make_user(Role.CARER, council=officer.council)
    audit.record(
        "carer.updated",
        actor=officer,
        council_id=officer.council_id,
        subject=carer,
        reason="Moved house",
        ip_address="203.0.113.5",
        details={"field": "postcode"},
    )
    db.session.commit()
    entry = db.session.scalars(select(AuditEntry)).one()
    assert (entry.actor_id, entry.subject_type, entry.subject_id) == (officer.id, "User", carer.id)
    assert (entry.reason, entry.ip_address, entry.details) == (
        "Moved house",
        "203.0.113.5",
        {"field": "postcode"},
    )
    assert entry.created_at.tzinfo is not None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET action = 'nothing.happened' WHERE id = :id",
        "UPDATE audit_entries SET reason = NULL WHERE id = :id",
        "DELETE FROM audit_entries WHERE id = :id",
        "DELETE FROM audit_entries",
    ],
)
def test_the_database_refuses_to_change_or_remove_an_entry(statement: str) -> None:
    user = make_user(Role.CARER)
    entry = audit.record(
        "user.signed_in", actor=user, council_id=user.council_id, subject=user, reason="kept"
    )
    db.session.commit()
    with pytest.raises(DBAPIError, match="audit_entries is append-only"), db.session.begin_nested():
        db.session.execute(text(statement), {"id": entry.id})
    db.session.expire_all()
    kept = db.session.get(AuditEntry, entry.id)
    assert kept is not None
    assert (kept.action, kept.reason) == ("user.signed_in", "kept")
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) >= 1


def test_the_ledger_refuses_change_on_every_database() -> None:
    """The PostgreSQL guard is tested in tests/booking/test_ledger.py; this one also runs
    on SQLite, where the trigger comes from migration 0013."""
    from booking.services import ledger
    from tests.booking.factories_budgets import make_budget

    budget = make_budget(award_pence=1_000)
    for statement in (
        "UPDATE ledger_entries SET amount_pence = 999999 WHERE budget_id = :id",
        "DELETE FROM ledger_entries WHERE budget_id = :id",
    ):
        with (
            pytest.raises(DBAPIError, match="ledger_entries is append-only"),
            db.session.begin_nested(),
        ):
            db.session.execute(text(statement), {"id": budget.id})
    assert ledger.balance(budget).available_pence == 1_000
