"""Vetting: checks, the officer's decisions with history, two-year approval, and the daily
job that suspends lapsed workers and warns 30 days ahead, once per check."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.clock import london_today, utcnow
from app.extensions import db
from app.models import OutboxMessage, Role, User
from app.scheduler import run_job
from booking.models.workers import (
    CheckKind,
    DecisionKind,
    VettingDecision,
    VettingStatus,
    WorkerCheck,
)
from booking.services import vetting
from tests.booking.factories_workers import add_checks, make_worker, profile_for
from tests.factories import CouncilFactory, make_user
from tests.helpers import bearer, error_of, sign_in

NOW = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)


def test_approve_needs_every_check_and_lasts_two_years(app: Flask) -> None:
    council = CouncilFactory()
    officer = make_user(Role.COUNCIL_OFFICER, council=council)
    worker = make_worker(council, approved=False)
    profile = profile_for(worker)
    with pytest.raises(vetting.ChecksIncomplete) as caught:
        vetting.approve_worker(officer, worker.id, now=NOW)
    assert set(caught.value.fields) == {k.value for k in CheckKind}
    assert "2 more in-date references" in caught.value.fields["reference"]
    add_checks(profile, issued_on=date(2026, 6, 1), expires_on=date(2028, 6, 1))
    approved = vetting.approve_worker(officer, worker.id, now=NOW)
    assert approved.status == VettingStatus.APPROVED
    assert approved.reapproval_due == date(2029, 1, 10)
    assert vetting.is_bookable(approved, NOW)
    assert not vetting.is_bookable(approved, datetime(2029, 1, 10, 12, tzinfo=UTC))


def test_one_reference_is_not_enough() -> None:
    council = CouncilFactory()
    worker = make_worker(council)
    profile = profile_for(worker)
    reference = db.session.scalars(
        select(WorkerCheck).where(
            WorkerCheck.profile_id == profile.id, WorkerCheck.kind == CheckKind.REFERENCE
        )
    ).first()
    assert reference is not None
    db.session.delete(reference)
    db.session.commit()
    missing = vetting.missing_checks(vetting.checks_of(profile), london_today(utcnow()))
    assert missing == {"reference": "1 more in-date reference needed (2 in all)"}


def test_dbs_off_the_update_service_counts_for_three_years() -> None:
    council = CouncilFactory()
    worker = make_worker(council)
    profile = profile_for(worker)
    dbs = db.session.scalars(
        select(WorkerCheck).where(
            WorkerCheck.profile_id == profile.id, WorkerCheck.kind == CheckKind.DBS_ENHANCED
        )
    ).one()
    dbs.dbs_update_service = False
    dbs.issued_on = date(2024, 1, 5)
    dbs.expires_on = None
    db.session.commit()
    assert vetting.effective_expiry(dbs) == date(2027, 1, 5)
    assert "dbs_enhanced" in vetting.missing_checks(vetting.checks_of(profile), date(2027, 1, 5))


def test_reject_suspend_reinstate_with_history() -> None:
    council = CouncilFactory()
    officer = make_user(Role.COUNCIL_OFFICER, council=council)
    pending = make_worker(council, approved=False)
    with pytest.raises(vetting.VettingError):
        vetting.reject_worker(officer, pending.id, reason="  ", now=NOW)
    vetting.reject_worker(officer, pending.id, reason="References did not check out", now=NOW)
    assert profile_for(pending).status == VettingStatus.REJECTED

    worker = make_worker(council, today=NOW.date())
    vetting.suspend_worker(officer, worker.id, reason="Complaint being looked at", now=NOW)
    assert profile_for(worker).status == VettingStatus.SUSPENDED
    vetting.reinstate_worker(officer, worker.id, now=NOW + timedelta(days=1))
    assert profile_for(worker).status == VettingStatus.APPROVED
    history = vetting.decisions_of(profile_for(worker))
    assert [d.decision for d in history] == [DecisionKind.REINSTATED, DecisionKind.SUSPENDED]
    assert history[1].reason == "Complaint being looked at"
    assert history[1].decided_by_id == officer.id


def test_officer_of_another_council_cannot_see_worker() -> None:
    worker = make_worker(CouncilFactory(), approved=False)
    stranger = make_user(Role.COUNCIL_OFFICER, council=CouncilFactory())
    with pytest.raises(vetting.NotFound):
        vetting.approve_worker(stranger, worker.id, now=NOW)


def _outbox_count() -> int:
    return db.session.scalar(select(func.count(OutboxMessage.id))) or 0


def test_daily_job_suspends_lapsed_and_warns_once(app: Flask) -> None:
    council = CouncilFactory()
    today = NOW.date()
    fine = make_worker(council, today=today)
    lapsing = make_worker(council, today=today, checks_expire=today + timedelta(days=20))
    lapsed = make_worker(council, today=today)
    insurance = db.session.scalars(
        select(WorkerCheck).where(
            WorkerCheck.profile_id == profile_for(lapsed).id,
            WorkerCheck.kind == CheckKind.INSURANCE,
        )
    ).one()
    insurance.expires_on = today
    db.session.commit()

    result = run_job("vetting_expiry", now=NOW)
    assert result["suspended"] == 1
    assert profile_for(lapsed).status == VettingStatus.SUSPENDED
    assert profile_for(fine).status == VettingStatus.APPROVED
    assert profile_for(lapsing).status == VettingStatus.APPROVED
    # every check of `lapsing` runs out in 20 days: one warning per check (8 checks)
    assert result["warned"] == 8
    decision = db.session.scalars(
        select(VettingDecision).where(VettingDecision.profile_id == profile_for(lapsed).id)
    ).one()
    assert decision.decided_by_id is None
    assert "public liability insurance" in (decision.reason or "")
    sent = _outbox_count()
    again = run_job("vetting_expiry", now=NOW + timedelta(days=1))
    assert again == {"suspended": 0, "warned": 0}
    assert _outbox_count() == sent


def test_api_checks_and_approve(app: Flask) -> None:
    council = CouncilFactory()
    officer = make_user(Role.COUNCIL_OFFICER, council=council)
    worker = make_worker(council, approved=False)
    client = app.test_client()
    incomplete = client.post(f"/api/v1/workers/{worker.id}/approve", headers=bearer(officer))
    assert incomplete.status_code == 422
    error = error_of(incomplete)
    assert error["code"] == "checks_incomplete"
    assert "insurance" in error["fields"]
    assert "enhanced DBS" in error["message"]

    headers = bearer(worker)
    for kind in CheckKind:
        for n in range(2 if kind == CheckKind.REFERENCE else 1):
            response = client.post(
                f"/api/v1/workers/{worker.id}/checks",
                json={
                    "kind": kind.value,
                    "reference": f"{kind.value}-{n}",
                    "issued_on": "2026-05-01",
                    "expires_on": "2028-05-01",
                },
                headers=headers,
            )
            assert response.status_code == 201, response.get_json()
    assert response.get_json()["kind"] == "reference"
    approved = client.post(f"/api/v1/workers/{worker.id}/approve", headers=bearer(officer))
    assert approved.status_code == 200
    body = approved.get_json()
    assert body["status"] == "approved"
    assert (
        body["reapproval_due"]
        == (london_today(utcnow()).replace(year=london_today(utcnow()).year + 2)).isoformat()
    )

    bad = client.post(
        f"/api/v1/workers/{worker.id}/checks",
        json={"kind": "insurance", "reference": "P1", "issued_on": "2026-05-01"},
        headers=headers,
    )
    assert bad.status_code == 422
    assert "expires_on" in error_of(bad)["fields"]
    unknown = client.post(
        f"/api/v1/workers/{worker.id}/checks",
        json={"kind": "horoscope", "reference": "x", "issued_on": "2026-05-01"},
        headers=headers,
    )
    assert unknown.status_code == 422
    assert error_of(unknown)["code"] == "validation_failed"
    other = make_worker(council, approved=False)
    assert (
        client.post(
            f"/api/v1/workers/{other.id}/checks",
            json={"kind": "insurance", "reference": "P1", "issued_on": "2026-05-01"},
            headers=headers,
        ).status_code
        == 403
    )
    missing = client.post("/api/v1/workers/999999/approve", headers=bearer(officer))
    assert missing.status_code == 404


def test_vetting_pages(app: Flask) -> None:
    council = CouncilFactory()
    officer = make_user(Role.COUNCIL_OFFICER, council=council)
    worker = make_worker(council, approved=False)
    client = sign_in(app.test_client(), officer)
    queue = client.get("/workers/vetting")
    assert queue.status_code == 200
    assert profile_for(worker).display_name in queue.get_data(as_text=True)

    url = f"/workers/vetting/{worker.id}"
    no_reason = client.post(url, data={"action": "reject", "reason": ""})
    html = no_reason.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert "Enter the reason" in html
    assert profile_for(worker).status == VettingStatus.PENDING
    assert vetting.decisions_of(profile_for(worker)) == []

    cannot = client.post(url, data={"action": "approve"})
    html = cannot.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert "cannot be approved yet" in html
    assert profile_for(worker).status == VettingStatus.PENDING

    rejected = client.post(url, data={"action": "reject", "reason": "No right to work evidence"})
    assert rejected.status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert "Decision history" in page
    assert "No right to work evidence" in page
    assert client.get(f"/workers/vetting/{make_worker(CouncilFactory()).id}").status_code == 404


def test_officer_approves_suspends_and_reinstates_on_the_page(app: Flask) -> None:
    """Approval puts a worker in carers' search; suspension takes them out at once."""
    from booking.services.search import search_workers
    from tests.booking.factories_budgets import make_carer

    council = CouncilFactory()
    officer = make_user(Role.COUNCIL_OFFICER, council=council)
    worker = make_worker(council, approved=False)
    today = london_today(utcnow())
    add_checks(
        profile_for(worker),
        issued_on=today - timedelta(days=30),
        expires_on=today + timedelta(days=900),
    )
    carer = make_carer(council)
    now = utcnow()
    starts = (now + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)

    def found() -> bool:
        results = search_workers(
            carer=carer,
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            postcode="LS6 3AA",
            now=now,
        )
        return worker.id in {r.worker_id for r in results}

    assert not found()
    client = sign_in(app.test_client(), officer)
    url = f"/workers/vetting/{worker.id}"
    assert client.post(url, data={"action": "approve", "reason": ""}).status_code == 302
    profile = profile_for(worker)
    assert profile.status == VettingStatus.APPROVED
    assert profile.reapproval_due is not None
    assert found()

    no_reason = client.post(url, data={"action": "suspend", "reason": " "})
    assert "govuk-error-summary" in no_reason.get_data(as_text=True)
    assert profile_for(worker).status == VettingStatus.APPROVED

    suspended = client.post(url, data={"action": "suspend", "reason": "Concern raised by a carer"})
    assert suspended.status_code == 302
    assert profile_for(worker).status == VettingStatus.SUSPENDED
    assert not found()

    assert client.post(url, data={"action": "reinstate", "reason": ""}).status_code == 302
    assert profile_for(worker).status == VettingStatus.APPROVED
    assert found()
    page = client.get(url).get_data(as_text=True)
    assert "Concern raised by a carer" in page
    decisions = [d.decision for d in vetting.decisions_of(profile_for(worker))]
    assert decisions == [DecisionKind.REINSTATED, DecisionKind.SUSPENDED, DecisionKind.APPROVED]


def _queue_queries(app: Flask, n: int, sql_count: list[str]) -> int:
    council = CouncilFactory()
    officer = make_user(Role.COUNCIL_OFFICER, council=council)
    for i in range(n):
        make_worker(council, approved=i % 2 == 0)  # pending ones have no checks at all
    client = sign_in(app.test_client(), officer)
    db.session.expire_all()
    sql_count.clear()
    page = client.get("/workers/vetting")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count("All in date") == (n + 1) // 2
    assert html.count("7 missing or out of date") == n // 2
    return len(sql_count)


def test_vetting_queue_query_count_is_constant(app: Flask, sql_count: list[str]) -> None:
    few = _queue_queries(app, 2, sql_count)
    many = _queue_queries(app, 12, sql_count)
    assert few == many
    assert many <= 12


def test_vetting_queue_rows_say_what_is_missing(app: Flask) -> None:
    council = CouncilFactory()
    officer = make_user(Role.COUNCIL_OFFICER, council=council)
    ready = make_worker(council)
    waiting = make_worker(council, approved=False)
    make_worker(CouncilFactory())  # another council's worker is not in the queue
    rows = vetting.vetting_queue_rows(officer, today=london_today(utcnow()))
    by_worker = {profile.user_id: missing for profile, missing in rows}
    assert set(by_worker) == {ready.id, waiting.id}
    assert by_worker[ready.id] == {}
    assert set(by_worker[waiting.id]) == {k.value for k in CheckKind}
    assert rows[0][0].user_id == waiting.id  # pending first


def _checks_stored(worker: User) -> int:
    profile = profile_for(worker)
    return int(
        db.session.scalar(
            select(func.count(WorkerCheck.id)).where(WorkerCheck.profile_id == profile.id)
        )
        or 0
    )


@pytest.mark.parametrize(
    ("issued_on", "expires_on", "field", "words"),
    [
        (date(1, 1, 1), None, "issued_on", "1990 or later"),
        (date(1989, 12, 31), None, "issued_on", "1990 or later"),
        (date(2027, 1, 11), None, "issued_on", "today or in the past"),
        (date(2026, 5, 1), date(9999, 12, 31), "expires_on", "within 20 years"),
        (date(2026, 5, 1), date(2047, 1, 11), "expires_on", "by 10 January 2047"),
        (date(2026, 5, 1), date(2026, 4, 30), "expires_on", "after the issue date"),
    ],
)
def test_a_check_with_an_impossible_date_is_refused(
    issued_on: date, expires_on: date | None, field: str, words: str
) -> None:
    worker = make_worker(CouncilFactory(), approved=False)
    details = vetting.CheckDetails(
        kind=CheckKind.RIGHT_TO_WORK, reference="RTW-1", issued_on=issued_on, expires_on=expires_on
    )
    with pytest.raises(vetting.VettingError) as caught:
        vetting.record_check(worker, worker.id, details, now=NOW)
    assert caught.value.code == "validation_failed"
    assert set(caught.value.fields) == {field}
    assert words in caught.value.fields[field]
    db.session.rollback()
    assert _checks_stored(worker) == 0


def test_a_check_dated_at_the_limits_is_kept() -> None:
    worker = make_worker(CouncilFactory(), approved=False)
    for issued_on, expires_on in (
        (date(1990, 1, 1), None),
        (date(2027, 1, 10), date(2047, 1, 10)),  # issued today, runs out in 20 years
    ):
        details = vetting.CheckDetails(
            kind=CheckKind.INSURANCE if expires_on else CheckKind.REFERENCE,
            reference="REF-1",
            issued_on=issued_on,
            expires_on=expires_on,
        )
        vetting.record_check(worker, worker.id, details, now=NOW)
    assert _checks_stored(worker) == 2


def test_api_refuses_absurd_check_dates_with_the_fields(app: Flask) -> None:
    worker = make_worker(CouncilFactory(), approved=False)
    client = app.test_client()
    url = f"/api/v1/workers/{worker.id}/checks"
    year_one = client.post(
        url,
        json={
            "kind": "insurance",
            "reference": "P1",
            "issued_on": "0001-01-01",
            "expires_on": "9999-12-31",
        },
        headers=bearer(worker),
    )
    assert year_one.status_code == 422
    error = error_of(year_one)
    assert error["code"] == "validation_failed"
    assert set(error["fields"]) == {"issued_on", "expires_on"}
    assert "1990" in error["fields"]["issued_on"]
    assert "20 years" in error["fields"]["expires_on"]
    future = client.post(
        url,
        json={
            "kind": "reference",
            "reference": "R1",
            "issued_on": (london_today(utcnow()) + timedelta(days=1)).isoformat(),
        },
        headers=bearer(worker),
    )
    assert future.status_code == 422
    assert error_of(future)["code"] == "validation_failed"
    assert set(error_of(future)["fields"]) == {"issued_on"}
    assert _checks_stored(worker) == 0


def test_checks_page_shows_an_error_for_absurd_dates(app: Flask) -> None:
    worker = make_worker(CouncilFactory(), approved=False)
    client = sign_in(app.test_client(), worker)
    page = client.post(
        f"/workers/{worker.id}/checks",
        data={
            "kind": "insurance",
            "reference": "POL-9",
            "issued_on": ["1", "1", "0001"],
            "expires_on": ["31", "12", "9999"],
        },
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert "The issue date must be in 1990 or later" in html
    assert "The expiry date must be within 20 years from today" in html
    assert 'href="#issued_on' in html
    assert _checks_stored(worker) == 0
