"""Budget pages through the test client: the live balance, the statement and its
downloads, and the officer's allocate, adjust, import and report pages."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.clock import utcnow
from app.extensions import db
from app.models import Representation, Role
from booking.models.budgets import Budget, LedgerEntry
from booking.services import ledger
from tests.booking.factories_budgets import make_budget, make_carer, make_officer
from tests.factories import CouncilFactory, make_user
from tests.helpers import sign_in


def _count(model: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def test_live_balance_is_at_the_top_of_every_carer_page(client: FlaskClient) -> None:
    carer = make_carer()
    budget = make_budget(carer, award_pence=50_000)
    ledger.hold(
        budget, 12_345, booking_id=None, actor=None, reason=None, idempotency_key="h", now=utcnow()
    )
    sign_in(client, carer)
    page = client.get("/dashboard").get_data(as_text=True)
    assert "Your budget" in page
    assert "£500.00" in page  # allocated
    assert "£123.45" in page  # held for upcoming breaks
    assert "£376.55" in page  # available
    assert "Your budget and statement" in page  # dashboard link


def test_a_representative_sees_the_carers_balance(client: FlaskClient) -> None:
    carer = make_carer(name="Sam Carer")
    make_budget(carer, award_pence=20_000)
    rep = make_user(Role.REPRESENTATIVE, council=carer.council)
    db.session.add(
        Representation(council_id=carer.council_id, carer_id=carer.id, representative_id=rep.id)
    )
    db.session.commit()
    sign_in(client, rep)
    page = client.get("/budgets/statement").get_data(as_text=True)
    assert "Budget for Sam Carer" in page
    assert "£200.00" in page


def test_officers_see_no_carer_balance_bar(client: FlaskClient) -> None:
    officer = make_officer(CouncilFactory())
    sign_in(client, officer)
    assert "app-balance" not in client.get("/dashboard").get_data(as_text=True)


def test_statement_lists_movements_and_downloads_csv_and_pdf(client: FlaskClient) -> None:
    carer = make_carer()
    budget = make_budget(carer, award_pence=10_000)
    ledger.capture(
        budget,
        2_000,
        booking_id=None,
        actor=None,
        reason="Tuesday sit",
        idempotency_key="c",
        now=utcnow(),
    )
    sign_in(client, carer)
    page = client.get("/budgets/statement").get_data(as_text=True)
    assert "Paid for a break" in page
    assert "Tuesday sit" in page
    assert "-£20.00" in page
    today = utcnow().date()
    query = {
        "start": ["1", "1", str(today.year)],
        "end": [str(today.day), str(today.month), str(today.year)],
    }
    csv_response = client.get("/budgets/statement.csv", query_string=query)
    assert csv_response.status_code == 200
    assert csv_response.mimetype == "text/csv"
    assert "Tuesday sit" in csv_response.get_data(as_text=True)
    pdf = client.get("/budgets/statement.pdf", query_string=query)
    assert pdf.status_code == 200
    assert pdf.data.startswith(b"%PDF")


def test_statement_with_a_bad_date_shows_the_error_summary(client: FlaskClient) -> None:
    carer = make_carer()
    make_budget(carer)
    sign_in(client, carer)
    response = client.get(
        "/budgets/statement", query_string={"start": ["40", "2", "2026"], "end": ["1", "3", "2026"]}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "There is a problem" in page
    assert "Enter the date as numbers" in page


def test_officer_allocates_and_bad_input_writes_nothing(client: FlaskClient) -> None:
    council = CouncilFactory()
    carer = make_carer(council)
    sign_in(client, make_officer(council))
    bad = client.post(
        "/budgets/allocate",
        data={
            "carer_id": carer.id,
            "kind": "direct_payment",
            "period_start": ["1", "4", "2026"],
            "period_end": ["31", "3", "2026"],
            "amount": "lots",
            "schedule": "whole",
            "reason": "",
        },
    )
    page = bad.get_data(as_text=True)
    assert bad.status_code == 200
    assert "There is a problem" in page
    assert "Enter the amount in pounds" in page or "Enter an amount in pounds" in page
    assert "The end date must be the same as or after the start date" in page
    assert _count(Budget) == 0

    good = client.post(
        "/budgets/allocate",
        data={
            "carer_id": carer.id,
            "kind": "mixed",
            "period_start": ["1", "4", "2026"],
            "period_end": ["31", "3", "2027"],
            "amount": "1,200.50",
            "schedule": "monthly",
            "reason": "Carer's assessment",
        },
    )
    assert good.status_code == 302
    budget = db.session.scalar(select(Budget))
    assert budget is not None
    assert budget.award_pence == 120_050
    assert ledger.balance(budget).allocated_pence > 0


def test_officer_adjusts_and_young_carer_warning_and_refusal(client: FlaskClient) -> None:
    council = CouncilFactory()
    young = make_carer(council, date_of_birth=date(2011, 5, 5), name="Jordan Lee")
    budget = make_budget(young, award_pence=50_000)
    sign_in(client, make_officer(council))
    page = client.get(f"/budgets/{budget.id}").get_data(as_text=True)
    assert "is a young carer" in page
    assert "govuk-warning-text" in page

    refused = client.post(
        f"/budgets/{budget.id}/adjust",
        data={
            "direction": "lower",
            "amount": "100",
            "tag": "caring_role",
            "reason": "less caring",
            "token": "t1",
        },
    )
    assert refused.status_code == 200
    assert "There is a problem" in refused.get_data(as_text=True)
    assert ledger.balance(budget.id).available_pence == 50_000

    done = client.post(
        f"/budgets/{budget.id}/adjust",
        data={
            "direction": "raise",
            "amount": "25.00",
            "tag": "assessment",
            "reason": "new assessment",
            "token": "t2",
        },
    )
    assert done.status_code == 302
    # A double-submitted form (same token) changes nothing twice.
    client.post(
        f"/budgets/{budget.id}/adjust",
        data={
            "direction": "raise",
            "amount": "25.00",
            "tag": "assessment",
            "reason": "new assessment",
            "token": "t2",
        },
    )
    assert ledger.balance(budget.id).available_pence == 52_500


def test_officer_cannot_open_another_councils_budget(client: FlaskClient) -> None:
    budget = make_budget()
    sign_in(client, make_officer(CouncilFactory()))
    assert client.get(f"/budgets/{budget.id}").status_code == 404
    assert client.post(f"/budgets/{budget.id}/adjust", data={}).status_code == 404


def test_balances_table_sorts_and_pages(client: FlaskClient) -> None:
    council = CouncilFactory()
    make_budget(make_carer(council, name="Alice"), award_pence=1_000)
    make_budget(make_carer(council, name="Bob"), award_pence=9_000)
    make_budget(make_carer(name="Not mine"), award_pence=5_000)
    sign_in(client, make_officer(council))
    page = client.get("/budgets/?sort=available&direction=desc").get_data(as_text=True)
    assert page.index("Bob") < page.index("Alice")
    assert "Not mine" not in page
    assert 'aria-sort="descending"' in page


def test_import_preview_then_confirm(client: FlaskClient) -> None:
    council = CouncilFactory()
    carer = make_carer(council)
    sign_in(client, make_officer(council))
    csv_text = f"carer_reference,period_start,period_end,amount,kind\n{carer.reference},2026-04-01,2027-03-31,800,mixed\n"
    preview = client.post(
        "/budgets/import",
        data={"file": (io.BytesIO(csv_text.encode()), "alloc.csv")},
        content_type="multipart/form-data",
    )
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "Import these allocations" in page
    assert _count(Budget) == 0
    confirmed = client.post("/budgets/import/confirm", data={"content": csv_text})
    assert confirmed.status_code == 302
    assert _count(Budget) == 1


def test_import_of_a_bad_file_names_the_rows_and_writes_nothing(client: FlaskClient) -> None:
    council = CouncilFactory()
    sign_in(client, make_officer(council))
    csv_text = "carer_reference,period_start,period_end,amount,kind\nNOPE,2026-04-01,2027-03-31,800,mixed\nNOPE2,x,y,z,w\n"
    response = client.post(
        "/budgets/import",
        data={"file": (io.BytesIO(csv_text.encode()), "alloc.csv")},
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    assert "Line 2:" in page
    assert "Line 3:" in page
    assert "Import these allocations" not in page
    missing = client.post("/budgets/import", data={}, content_type="multipart/form-data")
    assert "Choose a CSV file to upload" in missing.get_data(as_text=True)
    assert _count(Budget) == 0
    assert _count(LedgerEntry) == 0


def test_spend_report_table_chart_and_csv(client: FlaskClient) -> None:
    council = CouncilFactory()
    budget = make_budget(make_carer(council), award_pence=50_000)
    ledger.capture(
        budget, 4_200, booking_id=None, actor=None, reason=None, idempotency_key="c", now=utcnow()
    )
    sign_in(client, make_officer(council))
    page = client.get("/budgets/report").get_data(as_text=True)
    assert "<svg" in page
    assert 'role="img"' in page
    assert "Spend by month" in page
    assert "£42.00" in page
    report_csv = client.get("/budgets/report.csv")
    assert report_csv.mimetype == "text/csv"
    assert "42.00" in report_csv.get_data(as_text=True)


def test_a_date_sent_as_one_empty_box_is_a_form_error_not_a_crash(client: FlaskClient) -> None:
    council = CouncilFactory()
    sign_in(client, make_officer(council))
    response = client.post(
        "/budgets/allocate", data={"period_start": "", "period_end": "1", "amount": "1E30"}
    )
    assert response.status_code == 200
    assert "Enter the start of the period" in response.get_data(as_text=True)
    assert "Enter an amount in pounds" in response.get_data(as_text=True)
    assert _count(Budget) == 0
