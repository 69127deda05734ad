"""Worker payouts: Connect Express onboarding, transfers after the dispute window, the
earnings page and the officer's report. Stripe's Connect API is stubbed with `responses`
using the JSON shapes in Stripe's API reference (localstripe has no Connect)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Role
from app.scheduler import run_job
from booking.models.payments import (
    Payout,
    PayoutAccountStatus,
    PayoutStatus,
    ReconciliationDifference,
    WorkerPayoutAccount,
)
from booking.services import payments, reconciliation
from booking.services.stripe_backend import make_gateway
from tests.booking.factories_payments import complete, make_top_up_booking
from tests.factories import CouncilFactory, make_user
from tests.helpers import sign_in

API = "https://api.stripe.com"
ACCOUNT_ID = "acct_1Nv0FGQ9RKHgCVdK"


def account_json(*, enabled: bool) -> dict[str, Any]:
    """An Account object as Stripe documents it (trimmed to what we read, plus context)."""
    return {
        "id": ACCOUNT_ID,
        "object": "account",
        "type": "express",
        "country": "GB",
        "default_currency": "gbp",
        "email": "worker@example.org",
        "business_type": "individual",
        "capabilities": {"transfers": "active" if enabled else "inactive"},
        "charges_enabled": enabled,
        "payouts_enabled": enabled,
        "details_submitted": enabled,
        "metadata": {},
        "created": 1700000000,
    }


def link_json() -> dict[str, Any]:
    return {
        "object": "account_link",
        "created": 1700000000,
        "expires_at": 1700000300,
        "url": "https://connect.stripe.com/setup/e/acct_1Nv0FGQ9RKHgCVdK/abc123",
    }


def transfer_json(amount: int, transfer_id: str = "tr_1MiN3gLkdIwHu7ixNCZvFdgA") -> dict[str, Any]:
    return {
        "id": transfer_id,
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "currency": "gbp",
        "destination": ACCOUNT_ID,
        "livemode": False,
        "metadata": {},
        "reversed": False,
        "transfer_group": "booking-1",
        "created": 1700000000,
    }


def _form(request: Any) -> dict[str, list[str]]:
    return parse_qs(request.body if isinstance(request.body, str) else request.body.decode())


@responses.activate
def test_a_worker_connects_a_bank_account(
    client: FlaskClient, stripe_config: dict[str, Any]
) -> None:
    worker = make_user(Role.WORKER)
    create = responses.post(f"{API}/v1/accounts", json=account_json(enabled=False))
    link = responses.post(f"{API}/v1/account_links", json=link_json())
    sign_in(client, worker)

    page = client.get("/payments/bank-account")
    assert page.status_code == 200
    assert b"Connect your bank account" in page.data
    response = client.post("/payments/bank-account")

    assert response.status_code == 302
    assert response.headers["Location"] == link_json()["url"]
    sent = _form(create.calls[0].request)
    assert sent["type"] == ["express"]
    assert sent["country"] == ["GB"]
    assert sent["capabilities[transfers][requested]"] == ["true"]
    assert (
        create.calls[0].request.headers["Idempotency-Key"] == f"worker-{worker.id}-payout-account"
    )
    link_sent = _form(link.calls[0].request)
    assert link_sent["account"] == [ACCOUNT_ID]
    assert link_sent["type"] == ["account_onboarding"]
    account = db.session.scalar(select(WorkerPayoutAccount))
    assert account is not None
    assert account.status is PayoutAccountStatus.ONBOARDING
    # The link's key is built from our ids (and the second of the click: a link works
    # once, so the next click needs a new one).
    link_key = link.calls[0].request.headers["Idempotency-Key"]
    prefix = f"worker-{worker.id}-payout-account-{account.id}-link-"
    assert link_key.startswith(prefix)
    assert link_key.removeprefix(prefix).replace("T", "").isdigit()

    # Back from Stripe: a second click makes a new link, never a second account.
    client.post("/payments/bank-account")
    assert len(create.calls) == 1
    assert len(link.calls) == 2

    responses.get(f"{API}/v1/accounts/{ACCOUNT_ID}", json=account_json(enabled=True))
    assert client.get("/payments/bank-account/done").status_code == 302
    db.session.refresh(account)
    assert account.status is PayoutAccountStatus.ACTIVE
    assert b"Your bank account is connected" in client.get("/payments/bank-account").data


def test_bank_connection_explains_itself_without_stripe(client: FlaskClient) -> None:
    sign_in(client, make_user(Role.WORKER))
    page = client.get("/payments/bank-account")
    assert b"The council pays you directly" in page.data


def _completed_break(now: datetime, worker: Any = None) -> Any:
    made = make_top_up_booking(now=now, award_pence=3000, price_pence=5000, worker=worker)
    complete(made, charged_pence=5000, now=now, backend=payments.LEDGER)
    return made


def _active_account(worker: Any) -> None:
    db.session.add(
        WorkerPayoutAccount(
            worker_id=worker.id,
            stripe_account_id=ACCOUNT_ID,
            status=PayoutAccountStatus.ACTIVE,
            payouts_enabled=True,
        )
    )
    db.session.commit()


@responses.activate
def test_payouts_wait_for_the_dispute_window_then_transfer_once(
    app: Any, stripe_config: dict[str, Any], now: datetime
) -> None:
    made = _completed_break(now)
    _active_account(made.worker)
    transfers = responses.post(f"{API}/v1/transfers", json=transfer_json(5000))

    assert run_job("pay_workers", now=now + timedelta(hours=47))["paid"] == 0
    assert run_job("pay_workers", now=now + timedelta(hours=48))["paid"] == 1
    assert run_job("pay_workers", now=now + timedelta(hours=49))["paid"] == 0

    assert len(transfers.calls) == 1
    sent = _form(transfers.calls[0].request)
    assert sent["amount"] == ["5000"]
    assert sent["currency"] == ["gbp"]
    assert sent["destination"] == [ACCOUNT_ID]
    payout = db.session.scalar(select(Payout))
    assert payout is not None
    assert transfers.calls[0].request.headers["Idempotency-Key"] == f"payout-{payout.id}-transfer"
    assert (payout.status, payout.stripe_transfer_id) == (PayoutStatus.PAID, transfer_json(0)["id"])

    # The daily check reads the transfer back and finds it matches.
    responses.get(f"{API}/v1/transfers/{payout.stripe_transfer_id}", json=transfer_json(5000))
    assert reconciliation.reconcile(gateway=make_gateway(dict(app.config)), now=now) == {
        "checked": 1,
        "differences": 0,
        "errors": 0,
    }
    responses.replace(
        responses.GET,
        f"{API}/v1/transfers/{payout.stripe_transfer_id}",
        json={**transfer_json(5000), "reversed": True, "amount_reversed": 5000},
    )
    assert (
        reconciliation.reconcile(gateway=make_gateway(dict(app.config)), now=now)["differences"]
        == 1
    )
    assert db.session.scalar(select(ReconciliationDifference.kind)) == "transfer"


@responses.activate
def test_disputed_breaks_and_workers_without_a_bank_account_are_not_paid(
    app: Any, stripe_config: dict[str, Any], now: datetime
) -> None:
    disputed = _completed_break(now)
    _active_account(disputed.worker)
    payments.on_booking_disputed(booking=disputed.booking, now=now)
    disputed.booking.disputed_at = now
    db.session.commit()
    unconnected = _completed_break(now)
    transfers = responses.post(f"{API}/v1/transfers", json=transfer_json(5000))

    result = run_job("pay_workers", now=now + timedelta(days=3))

    assert result == {"paid": 0, "waiting_for_bank": 1, "failed": 0}
    assert len(transfers.calls) == 0
    held = db.session.scalar(select(Payout).where(Payout.booking_id == disputed.booking.id))
    assert held is not None
    assert held.status is PayoutStatus.HELD
    waiting = db.session.scalar(select(Payout).where(Payout.booking_id == unconnected.booking.id))
    assert waiting is not None
    assert waiting.status is PayoutStatus.PENDING


@responses.activate
def test_a_failed_transfer_is_tried_again_with_the_same_key(
    app: Any, stripe_config: dict[str, Any], now: datetime
) -> None:
    made = _completed_break(now)
    _active_account(made.worker)
    transfers = responses.post(
        f"{API}/v1/transfers", status=500, json={"error": {"type": "api_error"}}
    )

    assert run_job("pay_workers", now=now + timedelta(days=2))["failed"] == 1
    responses.replace(responses.POST, f"{API}/v1/transfers", json=transfer_json(5000))
    assert run_job("pay_workers", now=now + timedelta(days=2, hours=1))["paid"] == 1

    keys = [call.request.headers["Idempotency-Key"] for call in responses.calls]
    assert len(keys) == 2
    assert len(set(keys)) == 1
    assert len(transfers.calls) >= 1
    payout = db.session.scalar(select(Payout))
    assert payout is not None
    assert (payout.status, payout.last_error) == (PayoutStatus.PAID, None)


def test_with_the_ledger_backend_payouts_are_recorded_as_paid(app: Any, now: datetime) -> None:
    _completed_break(now)
    assert run_job("pay_workers", now=now + timedelta(days=2))["paid"] == 1
    payout = db.session.scalar(select(Payout))
    assert payout is not None
    assert (payout.status, payout.backend, payout.stripe_transfer_id) == (
        PayoutStatus.PAID,
        "ledger",
        None,
    )


def test_earnings_page_lists_pending_and_paid(app: Any, client: FlaskClient, now: datetime) -> None:
    worker = make_user(Role.WORKER)
    _completed_break(now - timedelta(days=5), worker=worker)
    run_job("pay_workers", now=now)
    _completed_break(now, worker=worker)
    sign_in(client, worker)

    page = client.get("/payments/earnings").get_data(as_text=True)

    assert "Waiting to be paid: £50.00" in page
    assert "Paid: £50.00" in page


def test_officer_sees_payouts_by_worker_and_month_with_csv(app: Any, client: FlaskClient) -> None:
    council = CouncilFactory()
    able = make_user(Role.WORKER, council=council, name="Aisha Able")
    baker = make_user(Role.WORKER, council=council, name="Ben Baker")
    # Months are London months: 23:30 UTC on 31 July is already August (BST).
    july = datetime(2026, 7, 31, 21, 0, tzinfo=UTC)  # 22:00 on 31 July in London
    august_first = datetime(2026, 7, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 August
    august_later = datetime(2026, 8, 15, 9, 0, tzinfo=UTC)
    for when, worker in ((july, able), (august_first, able), (august_later, able)):
        _completed_break(when, worker=worker)
    _completed_break(august_later, worker=baker)
    other_council = _completed_break(august_later)
    # Paid once the 48 hours have passed: the two breaks of 31 July, not the later ones.
    assert run_job("pay_workers", now=datetime(2026, 8, 3, tzinfo=UTC))["paid"] == 2
    officer = make_user(Role.COUNCIL_OFFICER, council=council)
    sign_in(client, officer)

    page = client.get("/payments/payouts").get_data(as_text=True)
    download = client.get("/payments/payouts?format=csv")

    assert "Aisha Able" in page
    assert "Ben Baker" in page
    assert other_council.worker.name not in page
    assert download.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows == [
        ["month", "worker_id", "worker", "breaks", "paid_gbp", "pending_gbp"],
        ["2026-07", str(able.id), "Aisha Able", "1", "50.00", "0.00"],
        ["2026-08", str(able.id), "Aisha Able", "2", "50.00", "50.00"],
        ["2026-08", str(baker.id), "Ben Baker", "1", "0.00", "50.00"],
    ]


def test_differences_page_lists_open_differences(client: FlaskClient, now: datetime) -> None:
    officer = make_user(Role.COUNCIL_OFFICER)
    db.session.add(
        ReconciliationDifference(
            council_id=officer.council_id,
            found_on=now.date(),
            last_seen_on=now.date(),
            kind="status",
            object_ref="pi_3MtwBwLkdIwHu7ix28a3tqPa",
            ours="authorised",
            theirs="succeeded",
            message="We have this payment as authorised; Stripe has it as succeeded.",
        )
    )
    db.session.commit()
    sign_in(client, officer)

    page = client.get("/payments/differences").get_data(as_text=True)

    assert "pi_3MtwBwLkdIwHu7ix28a3tqPa" in page
    assert "Stripe has it as succeeded" in page
