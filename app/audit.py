"""The append-only audit log. Callers add an entry inside their own transaction."""

from __future__ import annotations

from typing import Any

from app.extensions import db
from app.models import AuditEntry, User


def record(
    action: str,
    *,
    actor: User | None,
    council_id: int | None,
    subject: Any | None = None,
    subject_type: str | None = None,
    subject_id: int | None = None,
    reason: str | None = None,
    ip_address: str | None = None,
    on_behalf_of: User | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to the session (the caller's commit makes it permanent)."""
    if subject is not None:
        subject_type = subject_type or type(subject).__name__
        subject_id = subject_id if subject_id is not None else subject.id
    entry = AuditEntry(
        action=action,
        actor_id=actor.id if actor is not None else None,
        council_id=council_id,
        subject_type=subject_type,
        subject_id=subject_id,
        reason=reason,
        ip_address=ip_address,
        on_behalf_of_id=on_behalf_of.id if on_behalf_of is not None else None,
        details=details or {},
    )
    db.session.add(entry)
    return entry
