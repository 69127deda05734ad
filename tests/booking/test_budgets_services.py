"""Budget services: allocation, one budget at a time, tranches, the young-carer rule,
CSV import (all or nothing), statements and the spend report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.errors import DomainError, NotFound
from app.extensions import db
from app.models import AuditEntry
from booking.models.budgets import (
    AdjustmentTag,
    Budget,
    BudgetTranche,
    LedgerEntry,
    TrancheSchedule,
)
from booking.services import budgets as service
from booking.services import ledger
from tests.booking.factories_budgets import make_budget, make_carer, make_officer
from tests.factories import CouncilFactory

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _count(model: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def test_allocation_credits_the_ledger_and_is_audited() -> None:
    carer = make_carer()
    officer = make_officer(carer.council)
    budget = service.allocate_budget(
        council_id=carer.council_id,
        carer_id=carer.id,
        kind=service.BudgetKind.MIXED,
        period_start=date(2026, 4, 1),
        period_end=date(2027, 3, 31),
        award_pence=120_000,
        actor=officer,
        reason="assessment",
        now=NOW,
    )
    assert ledger.balance(budget).allocated_pence == 120_000
    assert ledger.balance(budget).available_pence == 120_000
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "budget.allocated"))
    assert audit is not None
    assert audit.subject_id == budget.id
    assert audit.actor_id == officer.id


def test_periods_of_one_carer_never_overlap() -> None:
    carer = make_carer()
    make_budget(carer, start=date(2026, 4, 1), end=date(2027, 3, 31), now=NOW)
    with pytest.raises(service.BudgetOverlaps):
        make_budget(carer, start=date(2027, 3, 31), end=date(2028, 3, 30), now=NOW)
    db.session.rollback()
    make_budget(carer, start=date(2027, 4, 1), end=date(2028, 3, 31), now=NOW)
    assert _count(Budget) == 2


def test_officers_cannot_allocate_to_another_councils_carer() -> None:
    carer = make_carer()
    other = CouncilFactory()
    with pytest.raises(NotFound):
        service.allocate_budget(
            council_id=other.id,
            carer_id=carer.id,
            kind=service.BudgetKind.DIRECT_PAYMENT,
            period_start=date(2026, 4, 1),
            period_end=date(2027, 3, 31),
            award_pence=1,
            actor=None,
            now=NOW,
        )


def test_four_weekly_tranches_add_up_and_are_released_once_each() -> None:
    start = date(2026, 11, 1)
    budget = make_budget(
        award_pence=100_001,
        start=start,
        end=date(2027, 10, 31),
        schedule=TrancheSchedule.FOUR_WEEKLY,
        now=NOW,
    )
    tranches = db.session.scalars(
        select(BudgetTranche)
        .where(BudgetTranche.budget_id == budget.id)
        .order_by(BudgetTranche.sequence)
    ).all()
    assert len(tranches) == 13  # 365 days: 13 four-week steps
    assert sum(t.amount_pence for t in tranches) == 100_001
    assert [t.due_on for t in tranches[:2]] == [start, start + timedelta(days=28)]
    # Due by 22 November: only the first.
    assert ledger.balance(budget).allocated_pence == tranches[0].amount_pence

    later = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)  # 1, 29 Nov, 27 Dec are due
    assert service.release_due_tranches(now=later) == 2
    assert service.release_due_tranches(now=later) == 0  # idempotent
    assert ledger.balance(budget).allocated_pence == sum(t.amount_pence for t in tranches[:3])


def test_release_tranches_job_runs_through_the_scheduler(app: Any) -> None:
    from app.scheduler import run_job

    budget = make_budget(
        award_pence=12_000,
        start=date(2026, 11, 15),
        end=date(2027, 11, 14),
        schedule=TrancheSchedule.MONTHLY,
        now=NOW,
    )
    assert ledger.balance(budget).allocated_pence == 1_000
    run_job("release_tranches", now=datetime(2026, 12, 15, 1, 0, tzinfo=UTC))
    run_job("release_tranches", now=datetime(2026, 12, 15, 2, 0, tzinfo=UTC))
    assert ledger.balance(budget).allocated_pence == 2_000


def test_monthly_tranches_clamp_to_the_end_of_short_months() -> None:
    dates = service.tranche_dates(TrancheSchedule.MONTHLY, date(2027, 1, 31), date(2027, 4, 30))
    assert dates == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]


def _young_carer_budget() -> tuple[Budget, Any]:
    carer = make_carer(date_of_birth=date(2010, 2, 20), name="Jordan Lee")
    return make_budget(carer, award_pence=50_000, now=NOW), make_officer(carer.council)


def test_a_young_carers_budget_is_never_reduced_because_of_their_caring_role() -> None:
    budget, officer = _young_carer_budget()
    assert service.is_young_carer(budget.carer, today=NOW.date())
    with pytest.raises(service.YoungCarerProtected) as caught:
        service.adjust_budget(
            budget,
            amount_pence=-10_000,
            tag=AdjustmentTag.CARING_ROLE,
            reason="does less caring",
            actor=officer,
            now=NOW,
            idempotency_key="a1",
        )
    db.session.rollback()
    assert "young carer" in caught.value.message
    assert ledger.balance(budget).available_pence == 50_000
    # Other reasons, and raising it, are allowed and recorded with who and why.
    entry = service.adjust_budget(
        budget,
        amount_pence=-5_000,
        tag=AdjustmentTag.CORRECTION,
        reason="typo in award",
        actor=officer,
        now=NOW,
        idempotency_key="a2",
    )
    assert (entry.actor_id, entry.reason, entry.tag) == (officer.id, "typo in award", "correction")
    assert ledger.balance(budget).available_pence == 45_000


def test_an_adult_carers_budget_may_be_adjusted_for_their_caring_role() -> None:
    carer = make_carer(date_of_birth=date(1970, 1, 1))
    budget = make_budget(carer, award_pence=50_000, now=NOW)
    service.adjust_budget(
        budget,
        amount_pence=-10_000,
        tag=AdjustmentTag.CARING_ROLE,
        reason="reassessed",
        actor=make_officer(carer.council),
        now=NOW,
        idempotency_key="a1",
    )
    assert ledger.balance(budget).available_pence == 40_000


def test_an_adjustment_needs_a_reason() -> None:
    budget, officer = _young_carer_budget()
    with pytest.raises(DomainError) as caught:
        service.adjust_budget(
            budget,
            amount_pence=100,
            tag=AdjustmentTag.OTHER,
            reason="  ",
            actor=officer,
            now=NOW,
            idempotency_key="a",
        )
    assert "reason" in caught.value.fields


# --- CSV import -----------------------------------------------------------------------


def _csv(*rows: str) -> str:
    return "\n".join(["carer_reference,period_start,period_end,amount,kind", *rows]) + "\n"


def test_import_previews_then_writes_every_row() -> None:
    council = CouncilFactory()
    first, second = make_carer(council), make_carer(council)
    text = _csv(
        f"{first.reference},2026-04-01,2027-03-31,1200.00,direct_payment",
        f"{second.reference},01/04/2026,31/03/2027,£950.50,council_managed",
    )
    preview = service.preview_import(council.id, text)
    assert preview.ok
    assert preview.total_pence == 215_050
    assert _count(Budget) == 0  # a preview writes nothing
    budgets = service.import_allocations(council.id, text, actor=None, now=NOW)
    assert sorted(ledger.balance(b).allocated_pence for b in budgets) == [95_050, 120_000]


def test_a_malformed_csv_writes_nothing_and_names_every_bad_row() -> None:
    council = CouncilFactory()
    good, also_good = make_carer(council), make_carer(council)
    outsider = make_carer()  # another council
    text = _csv(
        f"{good.reference},2026-04-01,2027-03-31,1200.00,direct_payment",  # line 2: fine
        "CR-NOPE,2026-04-01,2027-03-31,100,mixed",  # 3: unknown carer
        f"{also_good.reference},2026-13-01,2027-03-31,100,mixed",  # 4: bad date
        f"{also_good.reference},2026-04-01,2027-03-31,ten pounds,mixed",  # 5: bad amount
        f"{also_good.reference},2026-04-01,2027-03-31,100,sometimes",  # 6: bad kind
        f"{good.reference},2026-06-01,2026-12-31,100,mixed",  # 7: overlaps line 2
        f"{outsider.reference},2026-04-01,2027-03-31,100,mixed",  # 8: not this council
        f"{also_good.reference},2027-03-31,2026-04-01,100,mixed",  # 9: ends before start
        f"{also_good.reference},2028-04-01,2029-03-31,1E30,mixed",  # 10: absurd amount
    )
    with pytest.raises(service.ImportInvalid) as caught:
        service.import_allocations(council.id, text, actor=None, now=NOW)
    db.session.rollback()
    lines = {error.line: error.message for error in caught.value.errors}
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "CR-NOPE" in lines[3]
    assert "period start" in lines[4]
    assert "amount" in lines[5]
    assert "kind" in lines[6]
    assert "line 2" in lines[7]
    assert "ends before it starts" in lines[9]
    assert _count(Budget) == 0
    assert _count(LedgerEntry) == 0


def test_import_refuses_a_file_without_the_columns() -> None:
    preview = service.preview_import(CouncilFactory().id, "name,amount\nSam,10\n")
    assert not preview.ok
    assert "carer_reference" in preview.errors[0].message


def test_import_refuses_rows_overlapping_an_existing_budget() -> None:
    council = CouncilFactory()
    carer = make_carer(council)
    make_budget(carer, start=date(2026, 4, 1), end=date(2027, 3, 31), now=NOW)
    preview = service.preview_import(
        council.id, _csv(f"{carer.reference},2027-01-01,2027-12-31,10,mixed")
    )
    assert [e.line for e in preview.errors] == [2]
    assert "already has a budget" in preview.errors[0].message


# --- statements and reports -----------------------------------------------------------


def test_statement_for_a_date_range_has_opening_rows_and_closing() -> None:
    budget = make_budget(
        award_pence=10_000,
        start=date(2026, 1, 1),
        end=date(2026, 12, 31),
        now=datetime(2026, 1, 1, 9, tzinfo=UTC),
    )
    ledger.capture(
        budget,
        1_000,
        booking_id=None,
        actor=None,
        reason="March break",
        idempotency_key="c1",
        now=datetime(2026, 3, 10, 9, tzinfo=UTC),
    )
    ledger.capture(
        budget,
        2_000,
        booking_id=None,
        actor=None,
        reason="April break",
        idempotency_key="c2",
        now=datetime(2026, 4, 10, 9, tzinfo=UTC),
    )
    stmt = service.statement(budget, start=date(2026, 4, 1), end=date(2026, 4, 30))
    assert stmt.opening_pence == 9_000
    assert [row.amount_pence for row in stmt.rows] == [-2_000]
    assert stmt.rows[0].description == "April break"
    assert stmt.closing_pence == 7_000
    csv_text = service.statement_csv(stmt)
    assert "Opening balance" in csv_text
    assert "-20.00" in csv_text
    assert csv_text.strip().endswith("70.00")
    pdf = service.statement_pdf(stmt, carer_name="Sam", council_name="Demo")
    assert pdf.startswith(b"%PDF")


def test_spend_report_groups_spend_by_uk_month() -> None:
    budget = make_budget(
        award_pence=100_000,
        start=date(2026, 1, 1),
        end=date(2026, 12, 31),
        now=datetime(2026, 1, 1, 9, tzinfo=UTC),
    )
    # 31 March 23:30 UTC is 1 April 00:30 in London (BST): an April spend.
    ledger.capture(
        budget,
        1_000,
        booking_id=None,
        actor=None,
        reason=None,
        idempotency_key="a",
        now=datetime(2026, 3, 31, 23, 30, tzinfo=UTC),
    )
    ledger.capture(
        budget,
        2_500,
        booking_id=None,
        actor=None,
        reason=None,
        idempotency_key="b",
        now=datetime(2026, 3, 15, 12, tzinfo=UTC),
    )
    ledger.refund(
        budget,
        500,
        booking_id=None,
        actor=None,
        reason=None,
        idempotency_key="c",
        now=datetime(2026, 3, 20, 12, tzinfo=UTC),
    )
    other = make_budget(award_pence=9_000, now=datetime(2026, 1, 1, 9, tzinfo=UTC))  # other council
    ledger.capture(
        other,
        9_000,
        booking_id=None,
        actor=None,
        reason=None,
        idempotency_key="d",
        now=datetime(2026, 3, 15, 12, tzinfo=UTC),
    )

    report = service.spend_report(budget.council_id, start=date(2026, 2, 1), end=date(2026, 4, 30))
    assert [(row.label, row.spent_pence) for row in report.by_month] == [
        ("February 2026", 0),
        ("March 2026", 2_000),
        ("April 2026", 1_000),
    ]
    assert report.total_pence == 3_000
    assert [(row.label, row.spent_pence) for row in report.by_worker] == [
        (service.NOT_RECORDED, 3_000)
    ]
    assert "month,March 2026,20.00" in service.spend_report_csv(report)


def test_spend_report_reads_workers_and_kinds_from_the_registered_lookup() -> None:
    budget = make_budget(award_pence=10_000, now=NOW)
    ledger.capture(
        budget, 1_000, booking_id=None, actor=None, reason=None, idempotency_key="a", now=NOW
    )
    calls: list[Any] = []

    def lookup(ids: Any) -> dict[int, service.BreakDetails]:
        calls.append(list(ids))
        return {}

    registered = service._break_details[0]
    service.register_break_details(lookup)
    try:
        report = service.spend_report(budget.council_id, start=NOW.date(), end=NOW.date())
    finally:
        service.register_break_details(registered)
    assert calls == [[]]  # entries with no booking are never looked up
    assert [(row.label, row.breaks) for row in report.by_support] == [(service.NOT_RECORDED, 0)]


def test_carer_balances_table_sorts_pages_and_keeps_queries_constant(sql_count: list[str]) -> None:
    council = CouncilFactory()
    for n, award in enumerate([30_000, 10_000, 20_000]):
        make_budget(make_carer(council, name=f"Carer {'CAB'[n]}"), award_pence=award, now=NOW)
    make_carer(council, name="Carer D")  # no budget yet
    make_budget(make_carer(), now=NOW)  # another council: never listed

    sql_count.clear()
    page = service.carer_balances(council.id, today=NOW.date(), sort="available", direction="desc")
    queries = len(sql_count)
    assert [row.carer.name for row in page.rows] == ["Carer C", "Carer B", "Carer A", "Carer D"]
    assert page.rows[0].balance.available_pence == 30_000  # type: ignore[union-attr]
    assert page.rows[-1].budget is None
    assert page.total == 4

    for n in range(6):
        make_budget(make_carer(council, name=f"More {n}"), now=NOW)
    sql_count.clear()
    service.carer_balances(council.id, today=NOW.date(), sort="name")
    assert len(sql_count) == queries  # no N+1

    second = service.carer_balances(council.id, today=NOW.date(), sort="name", page=2, per_page=4)
    assert second.pages == 3
    assert [row.carer.name for row in second.rows] == ["More 0", "More 1", "More 2", "More 3"]


# --- dates outside the years we accept ------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "bad"),
    [
        (date(9999, 1, 1), date(9999, 12, 31), {"period_start", "period_end"}),
        (date(2100, 6, 1), date(2101, 5, 31), {"period_end"}),
        (date(1, 1, 1), date(1, 12, 31), {"period_start", "period_end"}),
    ],
)
@pytest.mark.parametrize("schedule", list(TrancheSchedule))
def test_a_period_outside_2000_to_2100_is_refused_with_a_message(
    start: date, end: date, bad: set[str], schedule: TrancheSchedule
) -> None:
    carer = make_carer()
    with pytest.raises(DomainError) as caught:
        service.allocate_budget(
            council_id=carer.council_id,
            carer_id=carer.id,
            kind=service.BudgetKind.MIXED,
            period_start=start,
            period_end=end,
            award_pence=12_000,
            schedule=schedule,
            actor=None,
            now=NOW,
        )
    db.session.rollback()
    assert caught.value.code == "validation_failed"
    assert caught.value.status == 422
    assert set(caught.value.fields) == bad
    assert "between 1 January 2000 and 31 December 2100" in caught.value.message
    assert _count(Budget) == 0


def test_the_last_accepted_period_still_has_its_monthly_tranches() -> None:
    budget = make_budget(
        award_pence=12_000,
        start=date(2100, 1, 1),
        end=date(2100, 12, 31),
        schedule=TrancheSchedule.MONTHLY,
        now=NOW,
    )
    assert len(budget.tranches) == 12
    assert sum(t.amount_pence for t in budget.tranches) == 12_000
    # Even unchecked, the schedule stops at year 9999 instead of failing.
    dates = service.tranche_dates(TrancheSchedule.MONTHLY, date(9999, 11, 1), date(9999, 12, 31))
    assert dates == [date(9999, 11, 1), date(9999, 12, 1)]


def test_preview_refuses_what_the_import_would_refuse() -> None:
    council = CouncilFactory()
    carer, other = make_carer(council), make_carer(council)
    text = _csv(
        f"{carer.reference},9999-01-01,9999-12-31,1200,mixed,monthly",
        f"{other.reference},01/01/1999,31/12/1999,1200,mixed",
    ).replace("kind\n", "kind,tranches\n", 1)
    preview = service.preview_import(council.id, text)
    assert [error.line for error in preview.errors] == [2, 3]
    assert all("between 1 January 2000 and 31 December 2100" in e.message for e in preview.errors)
    with pytest.raises(service.ImportInvalid) as caught:
        service.import_allocations(council.id, text, actor=None, now=NOW)
    db.session.rollback()
    assert [error.line for error in caught.value.errors] == [2, 3]
    assert _count(Budget) == 0


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (date(2026, 1, 1), date(9999, 12, 31), "end"),
        (date(1, 1, 1), date(2026, 1, 1), "start"),
    ],
)
def test_statement_and_report_refuse_dates_outside_the_years(
    start: date, end: date, field: str
) -> None:
    budget = make_budget(now=NOW)
    for call in (
        lambda: service.statement(budget, start=start, end=end),
        lambda: service.spend_report(budget.council_id, start=start, end=end),
    ):
        with pytest.raises(DomainError) as caught:
            call()
        assert caught.value.code == "validation_failed"
        assert set(caught.value.fields) == {field}


def test_a_report_covers_at_most_sixty_months() -> None:
    council_id = make_budget(now=NOW).council_id
    longest = service.spend_report(council_id, start=date(2022, 1, 1), end=date(2026, 12, 31))
    assert len(longest.by_month) == service.MAX_REPORT_MONTHS == 60
    with pytest.raises(DomainError, match="at most 60 months"):
        service.spend_report(council_id, start=date(2021, 12, 31), end=date(2026, 12, 31))


def test_the_balances_table_clamps_the_page_number() -> None:
    council = CouncilFactory()
    for n in range(5):
        make_carer(council, name=f"Carer {n}")
    last = service.carer_balances(council.id, today=NOW.date(), page=10**20, per_page=2)
    assert (last.page, last.pages) == (3, 3)
    assert [row.carer.name for row in last.rows] == ["Carer 4"]
    first = service.carer_balances(council.id, today=NOW.date(), page=-5, per_page=2)
    assert first.page == 1
    assert [row.carer.name for row in first.rows] == ["Carer 0", "Carer 1"]


def test_carer_budgets_lists_one_carers_periods_latest_first() -> None:
    carer = make_carer()
    old = make_budget(carer, start=date(2025, 1, 1), end=date(2025, 12, 31), now=NOW)
    new = make_budget(carer, start=date(2026, 1, 1), end=date(2026, 12, 31), now=NOW)
    make_budget(now=NOW)  # someone else's
    assert [b.id for b in service.carer_budgets(carer.id)] == [new.id, old.id]
