"""Booking services: rules, money in the ledger, the lifecycle, and what carers expect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, OutboxMessage, Role
from booking.models.bookings import (
    Booking,
    BookingConcern,
    BookingStatus,
    FundedBy,
    WaitingListEntry,
    WaitStatus,
)
from booking.models.budgets import LedgerEntry, LedgerKind
from booking.models.workers import Favourite
from booking.services import bookings as service
from booking.services import budgets as budget_services
from booking.services import ledger
from booking.services.ledger import InsufficientBudget
from booking.services.workers import OutsideAvailability, WorkerNotBookable, profile_of
from tests.booking.factories_bookings import (
    NOW,
    RATE,
    budget_of,
    council,
    make_carer,
    make_representative,
    make_worker,
)
from tests.factories import make_user

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday, 10:00 UK time
END = START + timedelta(hours=3)
PRICE = 3 * RATE


def _book(carer, worker, *, starts_at=START, ends_at=END, actor=None, now=NOW, **kw):
    return service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=starts_at,
        ends_at=ends_at,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=kw.pop("notes", "Likes tea. Has diabetes."),
        actor=actor or carer,
        now=now,
        **kw,
    )


def _sms_to(user) -> list[str]:
    return [
        m.payload["body"]
        for m in db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == user.phone)
        )
    ]


def _entries(booking) -> list[tuple[LedgerKind, int]]:
    return [
        (e.kind, e.amount_pence)
        for e in db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.booking_id == booking.id).order_by(LedgerEntry.id)
        )
    ]


@pytest.fixture
def people():
    c = council()
    return c, make_carer(c), make_worker(c)


# --- request -----------------------------------------------------------------------------


def test_request_freezes_price_holds_budget_and_tells_worker(people) -> None:
    _c, carer, worker = people
    booking = _book(carer, worker)
    assert booking.status is BookingStatus.REQUESTED
    assert booking.price_pence == PRICE
    assert booking.respond_by == NOW + timedelta(hours=24)
    assert _entries(booking) == [(LedgerKind.HOLD, -PRICE)]
    assert ledger.balance(budget_of(carer)).available_pence == 100_000 - PRICE
    assert any("New break request" in body for body in _sms_to(worker))
    # A later change of the worker's rate does not change the frozen price or rates.
    profile_of(worker.id).hourly_rate_pence = 9999
    db.session.commit()
    assert service.price_for_time(booking, START, END) == PRICE


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "code"),
    [
        (START, START + timedelta(minutes=45), "too_short"),
        (START, START + timedelta(minutes=70), "not_quarter_hour"),
        (NOW + timedelta(hours=1), NOW + timedelta(hours=3), "too_late"),
        (NOW + timedelta(days=91), NOW + timedelta(days=91, hours=2), "too_far_ahead"),
    ],
)
def test_rules_refuse_with_api_codes_and_write_nothing(people, starts_at, ends_at, code) -> None:
    _c, carer, worker = people
    with pytest.raises(service.BookingError) as caught:
        _book(carer, worker, starts_at=starts_at, ends_at=ends_at)
    assert caught.value.code == code
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_workers_own_notice_when_longer(people) -> None:
    c, carer, _ = people
    fussy = make_worker(c, min_notice_minutes=48 * 60)
    with pytest.raises(service.TooLate):
        _book(carer, fussy, starts_at=NOW + timedelta(hours=24), ends_at=NOW + timedelta(hours=26))


def test_outside_availability_and_unbookable_worker(people) -> None:
    _c, carer, worker = people
    with pytest.raises(OutsideAvailability):
        _book(carer, worker, starts_at=START.replace(hour=20), ends_at=START.replace(hour=23))
    profile = profile_of(worker.id)
    profile.status = profile.status.SUSPENDED
    db.session.commit()
    with pytest.raises(WorkerNotBookable) as caught:
        _book(carer, worker)
    assert caught.value.code == "worker_not_bookable"


def test_overlap_is_slot_taken_and_leaves_no_hold(people) -> None:
    c, carer, worker = people
    _book(carer, worker)
    other = make_carer(c)
    with pytest.raises(service.SlotTaken) as caught:
        _book(other, worker, starts_at=START + timedelta(hours=1), ends_at=END + timedelta(hours=1))
    assert caught.value.status == 409
    assert ledger.balance(budget_of(other)).held_pence == 0


def test_insufficient_budget_then_top_up_by_card(people) -> None:
    c, _, worker = people
    poor = make_carer(c, award=2000)
    with pytest.raises(InsufficientBudget) as caught:
        _book(poor, worker)
    assert caught.value.status == 402
    booking = _book(poor, worker, top_up=True, payment_method_id="pm_card_visa")
    assert booking.top_up_pence == PRICE - 2000
    assert booking.budget_pence == 2000
    assert ledger.balance(budget_of(poor)).available_pence == 0


def test_a_few_pence_short_pays_stripes_smallest_charge_by_card(people) -> None:
    """Stripe refuses card charges under 30p: the card part is at least that, and the
    budget pays a few pence less, so the carer is never stuck re-entering a card."""
    c, _, worker = people
    poor = make_carer(c, award=PRICE - 10)
    quote = service.quote_booking(
        carer=poor,
        worker_id=worker.id,
        starts_at=START,
        ends_at=END,
        postcode="LS6 2AB",
        now=NOW,
    )
    assert quote.top_up_pence == 30
    booking = _book(poor, worker, top_up=True, payment_method_id="pm_card_visa")
    assert booking.top_up_pence == 30
    assert booking.budget_pence == PRICE - 30
    assert ledger.balance(budget_of(poor)).available_pence == 20


def test_instant_booking_for_favourite(people) -> None:
    c, carer, _ = people
    worker = make_worker(c, instant=True)
    db.session.add(
        Favourite(
            council_id=carer.council_id, carer_id=carer.id, worker_id=worker.id, created_at=NOW
        )
    )
    db.session.commit()
    booking = _book(carer, worker)
    assert booking.status is BookingStatus.CONFIRMED
    assert booking.instant
    assert any("confirmed" in body for body in _sms_to(carer))


def test_notes_reach_worker_only_when_shared(people) -> None:
    _c, carer, worker = people
    private = _book(carer, worker)
    shared = _book(
        carer,
        worker,
        starts_at=START + timedelta(days=1),
        ends_at=END + timedelta(days=1),
        share_notes=True,
    )
    assert service.worker_notes(private) is None
    assert service.worker_notes(shared) == "Likes tea. Has diabetes."
    # Messages never carry details about the person cared for.
    assert not any("diabetes" in body for body in _sms_to(worker))


def test_same_form_token_books_once(people) -> None:
    _c, carer, worker = people
    token = service.new_form_token()
    first = _book(carer, worker, form_token=token)
    second = _book(carer, worker, form_token=token)
    assert first.id == second.id
    assert db.session.scalar(select(func.count(Booking.id))) == 1


# --- on someone's behalf -------------------------------------------------------------------


def test_representative_books_for_carer_and_audit_says_so(people) -> None:
    _c, carer, worker = people
    rep = make_representative(carer)
    booking = _book(carer, worker, actor=rep)
    entry = db.session.scalar(
        select(AuditEntry).where(
            AuditEntry.action == "booking.requested", AuditEntry.subject_id == booking.id
        )
    )
    assert entry.actor_id == rep.id
    assert entry.on_behalf_of_id == carer.id
    assert entry.details["by_role"] == "representative"
    stranger = make_user(Role.REPRESENTATIVE, council=carer.council)
    with pytest.raises(service.NotActingForCarer):
        _book(
            carer,
            worker,
            actor=stranger,
            starts_at=START + timedelta(days=2),
            ends_at=END + timedelta(days=2),
        )


def test_council_officer_books_by_phone(people) -> None:
    c, carer, worker = people
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    booking = _book(carer, worker, actor=officer)
    entry = db.session.scalar(
        select(AuditEntry).where(
            AuditEntry.action == "booking.requested", AuditEntry.subject_id == booking.id
        )
    )
    assert (entry.actor_id, entry.on_behalf_of_id, entry.details["by_role"]) == (
        officer.id,
        carer.id,
        "council_by_phone",
    )
    other_officer = make_user(Role.COUNCIL_OFFICER)
    with pytest.raises(service.NotActingForCarer):
        _book(
            carer,
            worker,
            actor=other_officer,
            starts_at=START + timedelta(days=2),
            ends_at=END + timedelta(days=2),
        )


# --- answers and expiry -----------------------------------------------------------------


def test_accept_confirms_and_tells_carer(people) -> None:
    _c, carer, worker = people
    booking = _book(carer, worker)
    service.accept_booking(booking.id, worker=worker, now=NOW + timedelta(hours=1))
    assert booking.status is BookingStatus.CONFIRMED
    assert any("confirmed" in body for body in _sms_to(carer))
    other = make_worker(_c)
    with pytest.raises(service.NotFound):
        service.accept_booking(booking.id, worker=other, now=NOW)


def test_decline_releases_hold(people) -> None:
    _c, carer, worker = people
    booking = _book(carer, worker)
    service.decline_booking(booking.id, worker=worker, now=NOW + timedelta(hours=1))
    assert booking.status is BookingStatus.DECLINED
    assert _entries(booking) == [(LedgerKind.HOLD, -PRICE), (LedgerKind.RELEASE, PRICE)]
    assert ledger.balance(budget_of(carer)).available_pence == 100_000


def test_unanswered_requests_expire_at_deadline_once(app, people) -> None:
    _c, carer, worker = people
    booking = _book(carer, worker)
    from app.scheduler import run_job

    run_job("expire_booking_requests", now=NOW + timedelta(hours=23))
    assert booking.status is BookingStatus.REQUESTED
    run_job("expire_booking_requests", now=NOW + timedelta(hours=24))
    run_job("expire_booking_requests", now=NOW + timedelta(hours=25))
    db.session.refresh(booking)
    assert booking.status is BookingStatus.EXPIRED
    assert _entries(booking) == [(LedgerKind.HOLD, -PRICE), (LedgerKind.RELEASE, PRICE)]
    with pytest.raises(service.WrongStatus):
        service.accept_booking(booking.id, worker=worker, now=NOW + timedelta(hours=25))


# --- cancelling ---------------------------------------------------------------------------


def _confirmed(carer, worker, **kw):
    booking = _book(carer, worker, **kw)
    return service.accept_booking(booking.id, worker=worker, now=NOW)


def test_carer_cancels_free_more_than_24_hours_before(people) -> None:
    _c, carer, worker = people
    booking = _confirmed(carer, worker)
    policy = service.cancellation_policy(booking, by=carer, now=NOW)
    assert policy.free
    assert policy.free_until == START - timedelta(hours=24)
    result = service.cancel_booking(booking.id, actor=carer, now=NOW)
    assert (result.fee_pence, result.released_pence) == (0, PRICE)
    assert ledger.balance(budget_of(carer)).available_pence == 100_000
    assert any("cancelled" in body for body in _sms_to(worker))


def test_late_cancellation_charges_council_fee_in_ledger(people) -> None:
    c, carer, worker = people
    booking = _confirmed(carer, worker)
    late = START - timedelta(hours=5)
    assert (
        service.cancellation_policy(booking, by=carer, now=late).fee_pence
        == c.cancellation_fee_pence
    )
    result = service.cancel_booking(booking.id, actor=carer, now=late)
    assert result.fee_pence == 1500
    assert result.released_pence == PRICE - 1500
    assert _entries(booking) == [
        (LedgerKind.HOLD, -PRICE),
        (LedgerKind.RELEASE, PRICE),
        (LedgerKind.CAPTURE, -1500),
    ]
    assert ledger.balance(budget_of(carer)).spent_pence == 1500


def test_worker_cancels_carer_offered_other_workers_at_once(people) -> None:
    c, carer, worker = people
    spare = make_worker(c, name="Spare Worker")
    booking = _confirmed(carer, worker)
    result = service.cancel_booking(booking.id, actor=worker, now=START - timedelta(hours=3))
    assert result.fee_pence == 0
    assert result.released_pence == PRICE
    assert [alt.worker_id for alt in result.alternatives] == [spare.id]
    assert any("1 other workers are free" in body for body in _sms_to(carer))


# --- completion, disputes, reviews, concerns ---------------------------------------------


def test_completion_charges_actual_time_never_more_than_hold(people) -> None:
    _c, carer, worker = people
    booking = _confirmed(carer, worker)
    finish = END + timedelta(hours=1)
    service.complete_booking(
        booking.id,
        worker=worker,
        actual_starts_at=START + timedelta(minutes=30),
        actual_ends_at=END - timedelta(minutes=30),
        now=finish,
    )
    assert booking.charged_pence == 2 * RATE
    assert _entries(booking) == [
        (LedgerKind.HOLD, -PRICE),
        (LedgerKind.RELEASE, PRICE),
        (LedgerKind.CAPTURE, -2 * RATE),
    ]
    assert booking.dispute_closes_at == finish + timedelta(hours=48)


def test_overrun_waits_for_carers_approval(people) -> None:
    _c, carer, worker = people
    booking = _confirmed(carer, worker)
    service.complete_booking(
        booking.id,
        worker=worker,
        actual_starts_at=START,
        actual_ends_at=END + timedelta(hours=1),
        now=END + timedelta(hours=1),
    )
    assert (booking.charged_pence, booking.extra_pence) == (PRICE, RATE)
    assert ledger.balance(budget_of(carer)).spent_pence == PRICE
    service.approve_extra(booking.id, actor=carer, now=END + timedelta(hours=2))
    assert booking.charged_pence == PRICE + RATE
    assert ledger.balance(budget_of(carer)).spent_pence == PRICE + RATE


def test_complete_rejects_bad_times(people) -> None:
    _c, carer, worker = people
    booking = _confirmed(carer, worker)
    with pytest.raises(service.BookingError) as caught:
        service.complete_booking(
            booking.id,
            worker=worker,
            actual_starts_at=END,
            actual_ends_at=START,
            now=END,
        )
    assert "actual_ends_at" in caught.value.fields
    assert booking.status is BookingStatus.CONFIRMED


def _completed(carer, worker):
    booking = _confirmed(carer, worker)
    return service.complete_booking(
        booking.id, worker=worker, actual_starts_at=START, actual_ends_at=END, now=END
    )


def test_dispute_within_48_hours_then_refund(people) -> None:
    c, carer, worker = people
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    booking = _completed(carer, worker)
    service.dispute_booking(
        booking.id, actor=carer, reason="They left early", now=END + timedelta(hours=47)
    )
    assert any("disputed" in body for body in _sms_to(officer))
    service.resolve_dispute(
        booking.id, officer=officer, refund_pence=1000, note="Fair", now=END + timedelta(days=3)
    )
    assert ledger.balance(budget_of(carer)).spent_pence == PRICE - 1000
    assert booking.final_at is not None


def test_dispute_window_closes_after_48_hours(app, people) -> None:
    from app.scheduler import run_job

    _c, carer, worker = people
    booking = _completed(carer, worker)
    run_job("close_dispute_windows", now=END + timedelta(hours=47))
    assert booking.final_at is None
    run_job("close_dispute_windows", now=END + timedelta(hours=48))
    run_job("close_dispute_windows", now=END + timedelta(hours=49))
    db.session.refresh(booking)
    assert booking.final_at == END + timedelta(hours=48)
    with pytest.raises(service.WrongStatus):
        service.dispute_booking(
            booking.id, actor=carer, reason="Late", now=END + timedelta(hours=49)
        )


def test_good_rating_makes_a_favourite_and_officers_see_reviews(people) -> None:
    c, carer, worker = people
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    booking = _completed(carer, worker)
    service.review_booking(booking.id, actor=carer, rating=5, text="Lovely", now=END)
    assert db.session.scalar(
        select(Favourite).where(Favourite.carer_id == carer.id, Favourite.worker_id == worker.id)
    )
    assert [r.text for r in service.reviews_for(officer)] == ["Lovely"]
    with pytest.raises(service.Conflict):
        service.review_booking(booking.id, actor=carer, rating=4, text=None, now=END)


def test_low_rating_does_not_make_a_favourite(people) -> None:
    _c, carer, worker = people
    booking = _completed(carer, worker)
    service.review_booking(booking.id, actor=carer, rating=2, text=None, now=END)
    assert db.session.scalar(select(func.count(Favourite.id))) == 0


def test_concern_alerts_officers_at_once(people) -> None:
    c, carer, worker = people
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    booking = _confirmed(carer, worker)
    concern = service.report_concern(booking.id, actor=carer, text="Bruise on arm", now=NOW)
    assert db.session.get(BookingConcern, concern.id).text == "Bruise on arm"
    alerts = _sms_to(officer)
    assert any("safeguarding concern" in body for body in alerts)
    assert not any("Bruise" in body for body in alerts)
    assert any(m.recipient == c.duty_team_phone for m in db.session.scalars(select(OutboxMessage)))


# --- regular bookings, waiting list ----------------------------------------------------


def test_regular_bookings_show_which_weeks_failed_and_why(people) -> None:
    c, carer, worker = people
    other = make_carer(c)
    _book(other, worker, starts_at=START + timedelta(days=14), ends_at=END + timedelta(days=14))
    outcomes = service.request_regular_bookings(
        carer=carer,
        worker_id=worker.id,
        starts_at=START,
        ends_at=END,
        weeks=4,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=carer,
        now=NOW,
    )
    assert [o.booking is not None for o in outcomes] == [True, True, False, True]
    assert "someone has just booked" in outcomes[2].reason
    series = {o.booking.series_key for o in outcomes if o.booking}
    assert len(series) == 1
    assert None not in series
    with pytest.raises(service.BookingError):
        service.request_regular_bookings(
            carer=carer,
            worker_id=worker.id,
            starts_at=START,
            ends_at=END,
            weeks=5,
            postcode="LS6 2AB",
            address="x",
            notes=None,
            actor=carer,
            now=NOW,
        )


def test_waiting_list_offers_freed_favourite_slot(people) -> None:
    c, carer, worker = people
    other = make_carer(c)
    taken = _book(other, worker)
    with pytest.raises(service.BookingError):  # only for favourites
        service.join_waiting_list(
            carer=carer, worker_id=worker.id, starts_at=START, ends_at=END, actor=carer, now=NOW
        )
    db.session.add(
        Favourite(
            council_id=carer.council_id, carer_id=carer.id, worker_id=worker.id, created_at=NOW
        )
    )
    db.session.commit()
    entry = service.join_waiting_list(
        carer=carer, worker_id=worker.id, starts_at=START, ends_at=END, actor=carer, now=NOW
    )
    assert entry.status is WaitStatus.WAITING
    service.cancel_booking(taken.id, actor=other, now=NOW + timedelta(hours=1))
    db.session.refresh(entry)
    assert entry.status is WaitStatus.OFFERED
    assert any("is now free" in body for body in _sms_to(carer))
    assert service.offer_waiting_list(now=NOW + timedelta(hours=2)) == 0


def test_waiting_list_job_offers_free_slots(app, people) -> None:
    c, carer, worker = people
    db.session.add(
        WaitingListEntry(
            council_id=c.id,
            carer_id=carer.id,
            worker_id=worker.id,
            starts_at=START,
            ends_at=END,
            created_at=NOW,
        )
    )
    db.session.commit()
    from app.scheduler import run_job

    run_job("waiting_list_offers", now=NOW)
    run_job("waiting_list_offers", now=NOW)
    assert len([b for b in _sms_to(carer) if "is now free" in b]) == 1


# --- reminders, emergency, spend report, clock changes -----------------------------------


def test_reminders_the_day_before_to_both_once(app, people) -> None:
    from app.scheduler import run_job

    _c, carer, worker = people
    _confirmed(carer, worker)
    run_job("booking_reminders", now=START - timedelta(days=2))
    assert not any("Reminder" in b for b in _sms_to(carer))
    run_job("booking_reminders", now=START - timedelta(hours=17))
    run_job("booking_reminders", now=START - timedelta(hours=16))
    assert len([b for b in _sms_to(carer) if "Reminder" in b]) == 1
    assert len([b for b in _sms_to(worker) if "Reminder" in b]) == 1


def test_emergency_booking_is_scheme_funded_and_still_no_overlap(people) -> None:
    c, _carer, worker = people
    operator = make_user(Role.OPERATOR, council=c)
    booking = service.make_emergency_booking(
        worker_id=worker.id,
        council_id=c.id,
        starts_at=NOW + timedelta(minutes=30),
        ends_at=NOW + timedelta(hours=4),
        postcode="LS6 2AB",
        address="1 Test Street",
        notes="Key in key safe",
        incident_ref="INC-1",
        actor=operator,
        now=NOW,
    )
    assert booking.status is BookingStatus.CONFIRMED
    assert booking.funded_by is FundedBy.SCHEME
    assert booking.carer_id is None
    assert _entries(booking) == []
    with pytest.raises(service.SlotTaken):
        service.make_emergency_booking(
            worker_id=worker.id,
            council_id=c.id,
            starts_at=NOW + timedelta(hours=1),
            ends_at=NOW + timedelta(hours=2),
            postcode=None,
            address=None,
            notes=None,
            incident_ref="INC-2",
            actor=operator,
            now=NOW,
        )


def test_spend_report_has_worker_and_kind_of_support(people) -> None:
    c, carer, worker = people
    booking = _book(carer, worker, support_kind="dementia")
    service.accept_booking(booking.id, worker=worker, now=NOW)
    service.complete_booking(
        booking.id, worker=worker, actual_starts_at=START, actual_ends_at=END, now=END
    )
    report = budget_services.spend_report(
        c.id, start=NOW.date(), end=(END + timedelta(days=1)).date()
    )
    assert [(r.label, r.spent_pence) for r in report.by_worker] == [
        (profile_of(worker.id).display_name, PRICE)
    ]
    assert [(r.label, r.spent_pence) for r in report.by_support] == [("Dementia", PRICE)]


@pytest.mark.parametrize(
    ("day", "hours"),
    [(datetime(2027, 3, 28, tzinfo=UTC), 3), (datetime(2027, 10, 31, tzinfo=UTC), 5)],
)
def test_clock_change_day_has_right_length_and_price(day, hours) -> None:
    from datetime import time

    from app.clock import london_wall_clock

    c = council()
    now = day - timedelta(days=10)
    carer = make_carer(c, now=now)
    worker = make_worker(c, start=time(0, 0), end=time(23, 45), now=now)
    starts_at = london_wall_clock(day.date(), time(0, 0))
    ends_at = london_wall_clock(day.date(), time(4, 0))  # 00:00 to 04:00 on the wall clock
    booking = _book(carer, worker, starts_at=starts_at, ends_at=ends_at, now=now)
    assert booking.minutes == hours * 60
    assert booking.price_pence == hours * RATE


def test_emergency_booking_can_join_the_callers_transaction(people) -> None:
    c, carer, worker = people
    booking = service.make_emergency_booking(
        worker_id=worker.id,
        council_id=c.id,
        starts_at=NOW + timedelta(minutes=15),
        ends_at=NOW + timedelta(hours=3),
        postcode="LS6 2AB",
        address=None,
        notes=None,
        incident_ref="incident 42",
        actor=None,
        now=NOW,
        carer_id=carer.id,
        commit=False,
    )
    assert booking.id is not None
    assert booking.carer_id == carer.id
    assert booking.funded_by is FundedBy.SCHEME
    assert ledger.balance(budget_of(carer)).held_pence == 0
    with pytest.raises(service.SlotTaken):
        service.make_emergency_booking(
            worker_id=worker.id,
            council_id=c.id,
            starts_at=NOW + timedelta(hours=1),
            ends_at=NOW + timedelta(hours=2),
            postcode=None,
            address=None,
            notes=None,
            incident_ref="incident 43",
            actor=None,
            now=NOW,
            commit=False,
        )
    db.session.commit()  # the caller's commit keeps the first booking
    assert db.session.get(Booking, booking.id).status is BookingStatus.CONFIRMED
