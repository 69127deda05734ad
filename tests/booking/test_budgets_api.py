"""The budgets API as api.md describes it: fields, roles, status codes."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.clock import utcnow
from app.extensions import db
from app.models import Role
from booking.models.budgets import Budget
from booking.services import ledger
from tests.booking.factories_budgets import make_budget, make_carer, make_officer
from tests.factories import CouncilFactory, make_user
from tests.helpers import bearer, error_of


def _body(carer_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "carer_id": carer_id,
        "period_start": "2026-04-01",
        "period_end": "2027-03-31",
        "allocated_pence": 150_000,
        "kind": "direct_payment",
    }
    return {**body, **overrides}


def _budgets() -> int:
    return int(db.session.scalar(select(func.count()).select_from(Budget)) or 0)


def test_officer_creates_a_budget_and_a_replay_changes_nothing(client: FlaskClient) -> None:
    carer = make_carer()
    headers = {**bearer(make_officer(carer.council)), "Idempotency-Key": "alloc-1"}
    first = client.post("/api/v1/budgets", json=_body(carer.id), headers=headers)
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["carer_id"] == carer.id
    assert body["kind"] == "direct_payment"
    assert (body["allocated_pence"], body["available_pence"], body["held_pence"]) == (
        150_000,
        150_000,
        0,
    )
    assert body["period_start"] == "2026-04-01"
    again = client.post("/api/v1/budgets", json=_body(carer.id), headers=headers)
    assert again.status_code == 201
    assert again.get_json()["id"] == body["id"]
    assert _budgets() == 1
    assert ledger.balance(body["id"]).allocated_pence == 150_000


def test_create_budget_errors(client: FlaskClient) -> None:
    carer = make_carer()
    headers = bearer(make_officer(carer.council))
    bad = client.post(
        "/api/v1/budgets", json=_body(carer.id, kind="cash", allocated_pence=-1), headers=headers
    )
    assert bad.status_code == 422
    assert set(error_of(bad)["fields"]) >= {"kind", "allocated_pence"}
    backwards = client.post(
        "/api/v1/budgets", json=_body(carer.id, period_end="2026-01-01"), headers=headers
    )
    assert backwards.status_code == 422
    stranger = make_carer()  # another council's carer is invisible
    assert (
        client.post("/api/v1/budgets", json=_body(stranger.id), headers=headers).status_code == 404
    )
    assert client.post("/api/v1/budgets", json=_body(carer.id), headers=headers).status_code == 201
    overlap = client.post(
        "/api/v1/budgets",
        json=_body(carer.id, period_start="2027-01-01", period_end="2027-12-31"),
        headers=headers,
    )
    assert overlap.status_code == 409
    assert error_of(overlap)["code"] == "budget_overlaps"
    assert _budgets() == 1


def test_only_officers_create_budgets(client: FlaskClient) -> None:
    carer = make_carer()
    response = client.post("/api/v1/budgets", json=_body(carer.id), headers=bearer(carer))
    assert response.status_code == 403
    assert _budgets() == 0


def test_carer_reads_their_current_budget(client: FlaskClient) -> None:
    carer = make_carer()
    budget = make_budget(carer, award_pence=10_000)
    ledger.hold(
        budget, 2_500, booking_id=None, actor=None, reason=None, idempotency_key="h", now=utcnow()
    )
    response = client.get("/api/v1/budget", headers=bearer(carer))
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == budget.id
    assert (
        body["allocated_pence"],
        body["held_pence"],
        body["spent_pence"],
        body["available_pence"],
    ) == (
        10_000,
        2_500,
        0,
        7_500,
    )
    assert body["period_end"] == budget.period_end.isoformat()


def test_carer_without_a_budget_gets_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/budget", headers=bearer(make_carer()))
    assert response.status_code == 404
    assert error_of(response)["code"] == "no_budget"


def test_ledger_is_visible_to_its_carer_and_their_councils_officers_only(
    client: FlaskClient,
) -> None:
    carer = make_carer()
    budget = make_budget(carer, award_pence=10_000, start=date(2026, 1, 1), end=date(2026, 12, 31))
    ledger.capture(
        budget, 1_000, booking_id=None, actor=None, reason=None, idempotency_key="c", now=utcnow()
    )
    own = client.get(f"/api/v1/budgets/{budget.id}/ledger", headers=bearer(carer))
    assert own.status_code == 200
    entries = own.get_json()["entries"]
    assert [(e["kind"], e["amount_pence"], e["booking_id"]) for e in entries] == [
        ("allocation", 10_000, None),
        ("capture", -1_000, None),
    ]
    assert entries[0]["created_at"].endswith("Z")
    assert (
        client.get(
            f"/api/v1/budgets/{budget.id}/ledger", headers=bearer(make_officer(carer.council))
        ).status_code
        == 200
    )
    assert (
        client.get(
            f"/api/v1/budgets/{budget.id}/ledger", headers=bearer(make_carer(carer.council))
        ).status_code
        == 404
    )
    assert (
        client.get(
            f"/api/v1/budgets/{budget.id}/ledger", headers=bearer(make_officer(CouncilFactory()))
        ).status_code
        == 404
    )
    worker = make_user(Role.WORKER, council=carer.council)
    assert (
        client.get(f"/api/v1/budgets/{budget.id}/ledger", headers=bearer(worker)).status_code == 403
    )


@pytest.mark.parametrize("tranches", ["monthly", "four_weekly", "whole"])
@pytest.mark.parametrize(
    ("start", "end", "fields"),
    [
        ("9999-01-01", "9999-12-31", {"period_start", "period_end"}),
        ("2100-06-01", "2101-05-31", {"period_end"}),
        ("0001-01-01", "0001-12-31", {"period_start", "period_end"}),
    ],
)
def test_a_period_outside_2000_to_2100_is_validation_failed(
    client: FlaskClient, tranches: str, start: str, end: str, fields: set[str]
) -> None:
    carer = make_carer()
    response = client.post(
        "/api/v1/budgets",
        json=_body(carer.id, period_start=start, period_end=end, tranches=tranches),
        headers={**bearer(make_officer(carer.council)), "Idempotency-Key": "far-future"},
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    error = error_of(response)
    assert error["code"] == "validation_failed"
    assert set(error["fields"]) == fields
    assert "between 1 January 2000 and 31 December 2100" in error["message"]
    assert _budgets() == 0
