"""Statement rows name the break they paid for: its UK date and time and the worker,
looked up for every row in one query."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
import time_machine
from flask import Flask

from app.extensions import db
from booking.services import bookings as booking_service
from booking.services import budgets as budget_service
from tests.booking.factories_bookings import NOW, budget_of, council, make_carer, make_worker
from tests.helpers import sign_in


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _completed_breaks(carer, worker, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    """`count` breaks on successive days from Wednesday 25 November 2026, 10am UK time."""
    ids = []
    for n in range(count):
        starts = NOW + timedelta(days=2 + n, hours=1)
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
        ids.append(booking.id)
    return ids


def _statement(carer):  # type: ignore[no-untyped-def]
    return budget_service.statement(
        budget_of(carer), start=date(2026, 11, 1), end=date(2026, 12, 31)
    )


def test_rows_show_the_break_date_and_worker(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    c = council()
    carer, worker = make_carer(c), make_worker(c, name="Priya Shah")
    [booking_id] = _completed_breaks(carer, worker, 1)
    stmt = _statement(carer)
    break_rows = [row for row in stmt.rows if row.booking_id == booking_id]
    assert break_rows
    for row in break_rows:
        assert row.worker == "Priya Shah"
        assert row.break_starts_at is not None
        assert row.description.startswith("Break on 25 November 2026 at 10:00am with Priya Shah")

    text = budget_service.statement_csv(stmt)
    records = list(csv.DictReader(io.StringIO(text)))
    paid = [r for r in records if r["break"] == str(booking_id)]
    assert paid
    assert all(r["worker"] == "Priya Shah" for r in paid)
    assert all(r["break_starts"] == "2026-11-25 10:00" for r in paid)
    assert text.strip().endswith(f"{stmt.closing_pence // 100}.{stmt.closing_pence % 100:02d}")

    pdf = budget_service.statement_pdf(stmt, carer_name="Sam", council_name="Demo")
    assert pdf.startswith(b"%PDF")

    sign_in(client, carer)
    page = client.get("/budgets/statement").get_data(as_text=True)
    assert "Break on 25 November 2026 at 10:00am with Priya Shah" in page


def test_summer_time_dates_are_uk_time() -> None:
    detail = budget_service.BreakDetails(
        worker="Priya Shah",
        support_kind="General break",
        starts_at=NOW.replace(month=7, day=1, hour=9),  # 10am BST
    )
    assert budget_service._break_label(7, detail) == (
        "Break on 1 July 2026 at 10:00am with Priya Shah"
    )
    assert budget_service._break_label(7, None) == "Break 7"


def test_one_query_for_all_rows_however_many(sql_count: list[str]) -> None:
    def count_for(n: int) -> int:
        c = council()
        carer, worker = make_carer(c), make_worker(c)
        _completed_breaks(carer, worker, n)
        budget = budget_of(carer)
        db.session.expire_all()
        sql_count.clear()
        stmt = budget_service.statement(budget, start=date(2026, 11, 1), end=date(2026, 12, 31))
        assert sum(1 for row in stmt.rows if row.worker) >= n
        return len(sql_count)

    assert count_for(1) == count_for(4)
