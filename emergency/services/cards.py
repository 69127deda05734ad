"""Cards: issue (shown once), reissue, report lost, revoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.extensions import db
from app.models import User
from emergency.models import Card, CardStatus, Plan
from emergency.pins import generate_pin, pin_hmac
from emergency.services.errors import EmergencyError, RecordNotFound


@dataclass(frozen=True)
class IssuedCard:
    """A new card and its PIN: the only moment the plain PIN exists."""

    card: Card
    pin: str


def _end_card(card: Card, *, status: CardStatus, by: User, reason: str, now: datetime) -> None:
    card.status = status
    card.revoked_at = now
    card.revoked_reason = reason
    audit.record(
        "emergency.card_lost" if status is CardStatus.LOST else "emergency.card_revoked",
        actor=by,
        council_id=card.council_id,
        subject=card,
        reason=reason,
        details={"plan_id": card.plan_id},
    )


def issue_card(
    plan: Plan, *, by: User, pin_key: str, now: datetime, is_test: bool | None = None
) -> IssuedCard:
    """Issue a card with a fresh PIN and revoke the plan's older live card (a reissue).

    The PIN is stored only as an HMAC under a unique index; in the unlikely event that
    a random PIN is already taken, another is drawn."""
    for older in db.session.scalars(
        select(Card).where(Card.plan_id == plan.id, Card.status == CardStatus.LIVE)
    ):
        _end_card(older, status=CardStatus.REVOKED, by=by, reason="replaced by a new card", now=now)
    db.session.flush()
    for _ in range(20):
        pin = generate_pin()
        card = Card(
            council_id=plan.council_id,
            plan_id=plan.id,
            pin_hmac=pin_hmac(pin, pin_key),
            issued_by_id=by.id,
            issued_at=now,
            is_test=plan.is_test if is_test is None else is_test,
        )
        try:
            with db.session.begin_nested():
                db.session.add(card)
                db.session.flush()
        except IntegrityError:
            continue
        audit.record(
            "emergency.card_issued",
            actor=by,
            council_id=plan.council_id,
            subject=card,
            details={"plan_id": plan.id, "test": card.is_test},
        )
        db.session.commit()
        return IssuedCard(card=card, pin=pin)
    raise EmergencyError(
        "A new PIN could not be found. Try again.", code="pin_exhausted", status=503
    )


def get_card(card_id: int, *, council_id: int | None) -> Card:
    card = db.session.get(Card, card_id)
    if card is None or (council_id is not None and card.council_id != council_id):
        raise RecordNotFound("There is no card with that number.")
    return card


def revoke_card(card: Card, *, by: User, now: datetime, reason: str = "revoked") -> Card:
    """Stop a card working. Idempotent: revoking a revoked card changes nothing."""
    if card.status is CardStatus.LIVE:
        _end_card(card, status=CardStatus.REVOKED, by=by, reason=reason, now=now)
        db.session.commit()
    return card


def report_card_lost(card: Card, *, by: User, now: datetime) -> Card:
    """A lost card stops working at once; a replacement is a new card with a new PIN."""
    if card.status is CardStatus.LIVE:
        _end_card(card, status=CardStatus.LOST, by=by, reason="reported lost", now=now)
        db.session.commit()
    return card


def cards_of(plan: Plan) -> list[Card]:
    return list(
        db.session.scalars(select(Card).where(Card.plan_id == plan.id).order_by(Card.id.desc()))
    )
