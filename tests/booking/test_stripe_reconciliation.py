"""The nightly reconciliation against localstripe: one open row per difference (seen
again, not repeated), staff mark differences resolved (audited), a Stripe error on one
object does not stop the others, and only what can still change is read from Stripe."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import requests
import stripe
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.clock import to_london
from app.extensions import db
from app.models import AuditEntry, Role
from booking.models.payments import PaymentStatus, ReconciliationDifference
from booking.services import payments, reconciliation
from booking.services.stripe_backend import Intent, make_gateway
from tests.booking.conftest import STRIPE_TEST_KEY
from tests.booking.factories_payments import (
    TopUpBooking,
    cancel,
    deliver_outbox,
    make_card,
    make_top_up_booking,
)
from tests.factories import make_user
from tests.helpers import sign_in


class Watching:
    """The real gateway, noting which intents are read; some can be made to fail."""

    def __init__(self, real: Any, *, down_for: tuple[str, ...] = ()) -> None:
        self.real = real
        self.read: list[str] = []
        self.down_for = set(down_for)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def retrieve_intent(self, intent_id: str) -> Intent:
        self.read.append(intent_id)
        if intent_id in self.down_for:
            raise stripe.APIConnectionError("Stripe did not answer")
        intent: Intent = self.real.retrieve_intent(intent_id)
        return intent


def _gateway() -> Any:
    from flask import current_app

    return make_gateway(dict(current_app.config))


def _authorised(localstripe: str, now: datetime) -> TopUpBooking:
    made = make_top_up_booking(
        now=now, backend=payments.STRIPE, payment_method_id=make_card(localstripe)
    )
    deliver_outbox(now)
    db.session.refresh(made.payment)
    assert made.payment.status is PaymentStatus.AUTHORISED
    return made


def _captured_in_stripes_dashboard(localstripe: str, made: TopUpBooking) -> str:
    intent_id = made.payment.stripe_payment_intent_id
    assert intent_id
    requests.post(
        f"{localstripe}/v1/payment_intents/{intent_id}/capture",
        auth=(STRIPE_TEST_KEY, ""),
        timeout=5,
    ).raise_for_status()
    return intent_id


def _rows() -> list[ReconciliationDifference]:
    return list(
        db.session.scalars(select(ReconciliationDifference).order_by(ReconciliationDifference.id))
    )


def test_an_open_difference_is_one_row_seen_again_each_night(
    localstripe: str, now: datetime
) -> None:
    made = _authorised(localstripe, now)
    intent_id = _captured_in_stripes_dashboard(localstripe, made)
    officer = make_user(Role.COUNCIL_OFFICER, council=made.carer.council)

    first = reconciliation.reconcile(gateway=_gateway(), now=now)
    again_today = reconciliation.reconcile(gateway=_gateway(), now=now)
    tomorrow = reconciliation.reconcile(gateway=_gateway(), now=now + timedelta(days=1))

    assert (first["differences"], again_today["differences"], tomorrow["differences"]) == (1, 0, 1)
    [row] = _rows()
    assert (row.object_ref, row.kind) == (intent_id, "status")
    assert row.found_on == to_london(now).date()
    assert row.last_seen_on == to_london(now + timedelta(days=1)).date()

    reconciliation.resolve_difference(
        row.id, actor=officer, note="Captured by hand; the carer agreed.", now=now
    )
    assert reconciliation.open_differences(council_id=officer.council_id) == []
    # Still wrong the night after: a new row, as it was dealt with and has come back.
    reconciliation.reconcile(gateway=_gateway(), now=now + timedelta(days=2))
    rows = _rows()
    assert len(rows) == 2
    assert [r.resolved_at is None for r in rows] == [False, True]


def test_staff_mark_a_difference_resolved_on_the_page(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    made = _authorised(localstripe, now)
    intent_id = _captured_in_stripes_dashboard(localstripe, made)
    reconciliation.reconcile(gateway=_gateway(), now=now)
    [row] = _rows()
    officer = make_user(Role.COUNCIL_OFFICER, council=made.carer.council)
    stranger = make_user(Role.COUNCIL_OFFICER)

    sign_in(client, stranger)
    assert intent_id not in client.get("/payments/differences").get_data(as_text=True)
    assert client.post(f"/payments/differences/{row.id}/resolve").status_code == 404
    db.session.refresh(row)
    assert row.resolved_at is None

    sign_in(client, officer)
    page = client.get("/payments/differences").get_data(as_text=True)
    assert intent_id in page
    assert f'action="/payments/differences/{row.id}/resolve"' in page
    assert "Mark as resolved" in page
    assert f'<label class="govuk-label govuk-label--s" for="note-{row.id}">' in page
    assert f'id="note-{row.id}" name="note"' in page
    done = client.post(
        f"/payments/differences/{row.id}/resolve", data={"note": "Refunded by hand."}
    )

    assert done.status_code == 302
    db.session.refresh(row)
    assert row.resolved_at is not None
    assert (row.resolved_by_id, row.resolution_note) == (officer.id, "Refunded by hand.")
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "reconciliation.difference_resolved")
    )
    assert entry is not None
    assert (entry.actor_id, entry.subject_id, entry.council_id) == (
        officer.id,
        row.id,
        made.carer.council_id,
    )
    after = client.get("/payments/differences").get_data(as_text=True)
    assert f"The difference for {intent_id} is marked as resolved." in after
    assert f'action="/payments/differences/{row.id}/resolve"' not in after
    assert "There are no differences" in after
    # Pressing the button again changes nothing more.
    client.post(f"/payments/differences/{row.id}/resolve")
    assert (
        db.session.scalar(
            select(func.count(AuditEntry.id)).where(
                AuditEntry.action == "reconciliation.difference_resolved"
            )
        )
        == 1
    )


def test_admins_resolve_any_councils_difference(
    client: FlaskClient, localstripe: str, now: datetime
) -> None:
    made = _authorised(localstripe, now)
    _captured_in_stripes_dashboard(localstripe, made)
    reconciliation.reconcile(gateway=_gateway(), now=now)
    [row] = _rows()
    sign_in(client, make_user(Role.ADMIN))

    assert client.post(f"/payments/differences/{row.id}/resolve").status_code == 302

    db.session.refresh(row)
    assert row.resolved_at is not None


def test_a_stripe_404_on_one_intent_is_listed_and_the_rest_still_reconciled(
    localstripe: str, now: datetime
) -> None:
    lost = _authorised(localstripe, now)
    lost.payment.stripe_payment_intent_id = "pi_3NoSuchIntent0000"
    db.session.commit()
    other = _authorised(localstripe, now)
    other_intent = _captured_in_stripes_dashboard(localstripe, other)

    result = reconciliation.reconcile(gateway=_gateway(), now=now)

    assert result == {"checked": 2, "differences": 2, "errors": 0}
    found = {(r.object_ref, r.kind, r.theirs) for r in _rows()}
    assert found == {
        ("pi_3NoSuchIntent0000", "missing", "not found"),
        (other_intent, "status", "succeeded"),
    }


def test_an_outage_on_one_object_leaves_the_others_checked(localstripe: str, now: datetime) -> None:
    unlucky = _authorised(localstripe, now)
    unlucky_intent = unlucky.payment.stripe_payment_intent_id
    assert unlucky_intent
    other = _authorised(localstripe, now)
    other_intent = _captured_in_stripes_dashboard(localstripe, other)
    gateway = Watching(_gateway(), down_for=(unlucky_intent,))

    result = reconciliation.reconcile(gateway=gateway, now=now)

    assert result == {"checked": 1, "differences": 1, "errors": 1}
    assert [r.object_ref for r in _rows()] == [other_intent]
    assert sorted(gateway.read) == sorted([unlucky_intent, other_intent])


def test_only_payments_that_can_still_change_are_read_from_stripe(
    localstripe: str, now: datetime
) -> None:
    long_ago = now - reconciliation.FINAL_FOR - timedelta(days=1)
    old_final = _authorised(localstripe, now)
    cancel(old_final, now=now, backend=payments.STRIPE)
    old_final_with_difference = _authorised(localstripe, now)
    cancel(old_final_with_difference, now=now, backend=payments.STRIPE)
    recent_final = _authorised(localstripe, now)
    cancel(recent_final, now=now, backend=payments.STRIPE)
    deliver_outbox(now)
    old_open = _authorised(localstripe, now)
    for made in (old_final, old_final_with_difference, old_open):
        made.payment.updated_at = long_ago
    db.session.add(
        ReconciliationDifference(
            council_id=old_final_with_difference.payment.council_id,
            found_on=long_ago.date(),
            last_seen_on=long_ago.date(),
            kind="amount",
            object_ref=old_final_with_difference.payment.stripe_payment_intent_id,
            payment_id=old_final_with_difference.payment.id,
            ours="0p",
            theirs="100p",
            message="An old difference nobody has resolved.",
        )
    )
    db.session.commit()
    gateway = Watching(_gateway())

    result = reconciliation.reconcile(gateway=gateway, now=now)

    assert sorted(gateway.read) == sorted(
        [
            old_final_with_difference.payment.stripe_payment_intent_id,
            recent_final.payment.stripe_payment_intent_id,
            old_open.payment.stripe_payment_intent_id,
        ]
    )
    assert old_final.payment.stripe_payment_intent_id not in gateway.read
    assert result == {"checked": 3, "differences": 0, "errors": 0}
