"""Budget pages through the test client: the live balance, the statement and its
downloads, and the officer's allocate, adjust, import and report pages."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.clock import utcnow
from app.extensions import db
from app.models import Representation, Role
from booking.models.budgets import Budget, LedgerEntry
from booking.services import bookings as booking_service
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


def _completed_break(carer: Any, worker: Any, *, days: int) -> int:
    """A break with `worker` `days` after NOW, booked, accepted and completed."""
    from tests.booking.factories_bookings import NOW

    starts = NOW + timedelta(days=days, hours=1)
    ends = starts + timedelta(hours=2)
    booking = booking_service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=starts,
        ends_at=ends,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=carer,
        now=NOW,
    )
    booking_service.accept_booking(booking.id, worker=worker, now=NOW)
    booking_service.complete_booking(
        booking.id,
        worker=worker,
        actual_starts_at=starts,
        actual_ends_at=ends,
        now=ends + timedelta(minutes=5),
    )
    return booking.id


def test_spend_report_table_chart_and_csv(client: FlaskClient) -> None:
    from tests.booking import factories_bookings

    council = CouncilFactory()
    budget = make_budget(make_carer(council), award_pence=50_000)
    ledger.capture(
        budget, 4_200, booking_id=None, actor=None, reason=None, idempotency_key="c", now=utcnow()
    )
    # Two workers who share a name: the report keeps them apart (grouped by worker id).
    carer = factories_bookings.make_carer(council)
    first = factories_bookings.make_worker(council, name="Sam Smith", rate=2_000)
    second = factories_bookings.make_worker(council, name="Sam Smith", rate=3_000)
    _completed_break(carer, first, days=2)
    _completed_break(carer, second, days=3)
    _completed_break(carer, second, days=4)
    sign_in(client, make_officer(council))
    query = {"start": ["1", "1", "2026"], "end": ["31", "12", "2026"]}
    page = client.get("/budgets/report", query_string=query).get_data(as_text=True)
    # Three accessible charts (named by their title and description; the tables follow).
    assert page.count('<svg role="img"') == 3
    for chart in ("month", "worker", "support"):
        assert f'aria-labelledby="spend-{chart}-title spend-{chart}-desc"' in page
    for title in ("Spend by month", "Spend by worker", "Spend by kind of support"):
        assert f">{title}</title>" in page
        assert f">{title}</caption>" in page
    assert "£42.00" in page
    # 2 hours at £20 and 2 × 2 hours at £30, each its own row, named and told apart.
    assert f"Sam Smith (worker {first.id})" in page
    assert f"Sam Smith (worker {second.id})" in page
    worker_table = page[page.index(">Spend by worker</caption>") :]
    worker_table = worker_table[: worker_table.index("</table>")]
    assert worker_table.count("Sam Smith") == 2
    report_csv = client.get("/budgets/report.csv", query_string=query)
    assert report_csv.mimetype == "text/csv"
    text = report_csv.get_data(as_text=True)
    assert "42.00" in text
    assert f"worker,Sam Smith (worker {second.id}),120.00,2" in text
    assert f"worker,Sam Smith (worker {first.id}),40.00,1" in text


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


# --- bad input is a message on the page, never a 500 ----------------------------------

FAR_FUTURE = {"start": ["1", "1", "2026"], "end": ["31", "12", "9999"]}
YEAR_ONE = {"start": ["1", "1", "0001"], "end": ["2", "1", "2026"]}
BETWEEN = "between 1 January 2000 and 31 December 2100"


def test_statement_dates_outside_the_years_are_an_error_message(client: FlaskClient) -> None:
    carer = make_carer()
    make_budget(carer)
    sign_in(client, carer)
    for query in (FAR_FUTURE, YEAR_ONE):
        page = client.get("/budgets/statement", query_string=query)
        text = page.get_data(as_text=True)
        assert page.status_code == 200
        assert "There is a problem" in text
        assert BETWEEN in text
        assert "Every payment from" not in text  # no statement for wrong dates
        for download in ("/budgets/statement.csv", "/budgets/statement.pdf"):
            response = client.get(download, query_string=query)
            assert response.status_code == 302
            assert response.headers["Location"].startswith("/budgets/statement?")
            shown = client.get(response.headers["Location"]).get_data(as_text=True)
            assert BETWEEN in shown


def test_report_dates_outside_the_years_or_too_long_are_an_error_message(
    client: FlaskClient,
) -> None:
    council = CouncilFactory()
    make_budget(make_carer(council))
    sign_in(client, make_officer(council))
    too_long = {"start": ["1", "1", "2000"], "end": ["31", "12", "2100"]}
    for query, message in (
        (FAR_FUTURE, BETWEEN),
        (YEAR_ONE, BETWEEN),
        (too_long, "at most 60 months"),
    ):
        page = client.get("/budgets/report", query_string=query)
        text = page.get_data(as_text=True)
        assert page.status_code == 200
        assert "There is a problem" in text
        assert message in text
        assert 'role="img"' not in text  # no chart for wrong dates
        download = client.get("/budgets/report.csv", query_string=query)
        assert download.status_code == 302
        assert download.headers["Location"].startswith("/budgets/report?")
    five_years = {"start": ["1", "1", "2022"], "end": ["31", "12", "2026"]}
    page = client.get("/budgets/report", query_string=five_years).get_data(as_text=True)
    assert "There is a problem" not in page
    assert page.count("December 2026") >= 2  # the chart and the table reach the last month


def test_balances_table_page_number_past_the_end_shows_the_last_page(
    client: FlaskClient,
) -> None:
    council = CouncilFactory()
    make_budget(make_carer(council, name="Only Carer"))
    sign_in(client, make_officer(council))
    for page in ("99999999999999999999", "-5", "0", "abc"):
        response = client.get(f"/budgets/?page={page}")
        assert response.status_code == 200, page
        assert "Only Carer" in response.get_data(as_text=True)


def test_ids_too_large_for_the_database_are_not_found(client: FlaskClient) -> None:
    council = CouncilFactory()
    carer = make_carer(council)
    make_budget(carer)
    huge = "99999999999999999999"
    sign_in(client, make_officer(council))
    assert client.get(f"/budgets/{huge}").status_code == 404
    assert client.post(f"/budgets/{huge}/adjust", data={}).status_code == 404
    sign_in(client, carer)
    assert client.get(f"/budgets/statement?budget={huge}").status_code == 404
    assert client.get(f"/budgets/statement?carer={huge}").status_code == 404
    assert client.get("/budgets/statement?budget=-1").status_code == 404


def test_allocating_a_period_in_year_9999_is_a_form_error(client: FlaskClient) -> None:
    council = CouncilFactory()
    carer = make_carer(council)
    sign_in(client, make_officer(council))
    response = client.post(
        "/budgets/allocate",
        data={
            "carer_id": carer.id,
            "kind": "mixed",
            "period_start": ["1", "1", "9999"],
            "period_end": ["31", "12", "9999"],
            "amount": "1200",
            "schedule": "monthly",
            "reason": "Assessment",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "There is a problem" in page
    assert f"The start of the period must be {BETWEEN}" in page
    assert f"The end of the period must be {BETWEEN}" in page
    assert _count(Budget) == 0


def test_import_of_a_year_9999_schedule_is_refused_by_preview_and_confirm_alike(
    client: FlaskClient,
) -> None:
    council = CouncilFactory()
    carer = make_carer(council)
    sign_in(client, make_officer(council))
    csv_text = (
        "carer_reference,period_start,period_end,amount,kind,tranches\n"
        f"{carer.reference},9999-01-01,9999-12-31,1200,mixed,monthly\n"
    )
    preview = client.post(
        "/budgets/import",
        data={"file": (io.BytesIO(csv_text.encode()), "alloc.csv")},
        content_type="multipart/form-data",
    )
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "Line 2:" in page
    assert BETWEEN in page
    assert "Import these allocations" not in page
    confirmed = client.post("/budgets/import/confirm", data={"content": csv_text})
    page = confirmed.get_data(as_text=True)
    assert confirmed.status_code == 200
    assert "Line 2:" in page
    assert BETWEEN in page
    assert _count(Budget) == 0
    assert _count(LedgerEntry) == 0


# --- the statement of a past budget period ----------------------------------------------


def test_a_carer_chooses_a_past_budget_periods_statement(client: FlaskClient) -> None:
    today = utcnow().date()
    carer = make_carer()
    last_year = make_budget(
        carer,
        award_pence=30_000,
        start=date(today.year - 1, 1, 1),
        end=date(today.year - 1, 12, 31),
        now=datetime(today.year - 1, 6, 1, 12, tzinfo=UTC),
    )
    make_budget(carer, award_pence=70_000)
    sign_in(client, carer)
    current = client.get("/budgets/statement").get_data(as_text=True)
    assert "Budget periods" in current
    assert f"/budgets/statement?budget={last_year.id}" in current
    assert "£700.00" in current

    past = client.get(f"/budgets/statement?budget={last_year.id}")
    page = past.get_data(as_text=True)
    assert past.status_code == 200
    assert f"Budget period: 1 January {today.year - 1} to 31 December {today.year - 1}" in page
    assert f"Every payment from 1 January {today.year - 1} to 31 December {today.year - 1}" in page
    assert "£300.00" in page
    assert f'name="budget" value="{last_year.id}"' in page  # the date form keeps the choice
    csv_response = client.get(f"/budgets/statement.csv?budget={last_year.id}")
    assert csv_response.status_code == 200
    assert "300.00" in csv_response.get_data(as_text=True)
    assert f"{today.year - 1}-12-31" in csv_response.headers["Content-Disposition"]

    someone_else = make_budget(make_carer(carer.council))
    assert client.get(f"/budgets/statement?budget={someone_else.id}").status_code == 404
    assert client.get(f"/budgets/statement.csv?budget={someone_else.id}").status_code == 404
    assert client.get(f"/budgets/statement.pdf?budget={someone_else.id}").status_code == 404


def test_a_representative_chooses_among_the_carers_budgets_only(client: FlaskClient) -> None:
    today = utcnow().date()
    carer = make_carer(name="Sam Carer")
    past = make_budget(
        carer,
        award_pence=30_000,
        start=date(today.year - 1, 1, 1),
        end=date(today.year - 1, 12, 31),
        now=datetime(today.year - 1, 6, 1, 12, tzinfo=UTC),
    )
    rep = make_user(Role.REPRESENTATIVE, council=carer.council)
    db.session.add(
        Representation(council_id=carer.council_id, carer_id=carer.id, representative_id=rep.id)
    )
    db.session.commit()
    sign_in(client, rep)
    page = client.get(f"/budgets/statement?carer={carer.id}&budget={past.id}")
    assert page.status_code == 200
    assert "£300.00" in page.get_data(as_text=True)
    other = make_budget(make_carer(carer.council))
    assert client.get(f"/budgets/statement?budget={other.id}").status_code == 404
    assert client.get(f"/budgets/statement?carer={other.carer_id}").status_code == 404
