"""Booking services, continued: the worker's travel radius, messages by e-mail for people
with no mobile, the balance after all the weeks of a regular booking, an unpaid card part
stopping the worker accepting, "the worker did not come", and the reminder jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, OutboxMessage, Role
from app.scheduler import JOBS, run_job
from booking.models.bookings import Booking, BookingStatus
from booking.models.budgets import LedgerEntry, LedgerKind
from booking.models.payments import PaymentStatus
from booking.models.workers import Favourite
from booking.services import bookings as service
from booking.services import ledger, payments
from booking.services.postcodes import PostcodeError
from tests.booking.factories_bookings import (
    NOW,
    RATE,
    budget_of,
    council,
    make_carer,
    make_worker,
)
from tests.factories import make_user

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday, 10:00 UK time (GMT)
END = START + timedelta(hours=3)
PRICE = 3 * RATE


def _book(carer, worker, *, starts_at=START, ends_at=END, postcode="LS6 2AB", **kw):
    return service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=starts_at,
        ends_at=ends_at,
        postcode=postcode,
        address="1 Test Street",
        notes=kw.pop("notes", None),
        actor=kw.pop("actor", carer),
        now=kw.pop("now", NOW),
        **kw,
    )


def _confirmed(carer, worker, **kw) -> Booking:
    booking = _book(carer, worker, **kw)
    return service.accept_booking(booking.id, worker=worker, now=NOW)


def _messages(kind: str, recipient: str | None) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == kind, OutboxMessage.recipient == recipient)
            .order_by(OutboxMessage.id)
        )
    )


def _sms_to(user) -> list[str]:
    return [m.payload["body"] for m in _messages("sms", user.phone)]


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
    return c, make_carer(c), make_worker(c, name="Priya Worker")


# --- the worker's travel radius ---------------------------------------------------------


def test_a_break_beyond_the_workers_travel_radius_is_refused_and_writes_nothing(people) -> None:
    _c, carer, worker = people  # the worker is in Leeds (LS6) and travels up to 20 km
    with pytest.raises(service.OutsideTravelRadius) as caught:
        service.quote_booking(
            carer=carer,
            worker_id=worker.id,
            starts_at=START,
            ends_at=END,
            postcode="TR1 1AA",
            now=NOW,
        )
    assert (caught.value.code, caught.value.status) == ("outside_travel_radius", 422)
    assert "TR1 1AA" in caught.value.fields["postcode"]
    assert "20 km" in caught.value.message
    with pytest.raises(service.OutsideTravelRadius):
        _book(carer, worker, postcode="TR1 1AA")
    # Bradford (BD1) is about 14 km from LS6: within the 20 km.
    nearby = _book(carer, worker, postcode="bd11aa")
    assert nearby.postcode == "BD1 1AA"
    assert db.session.scalar(select(func.count(Booking.id))) == 1
    assert ledger.balance(budget_of(carer)).held_pence == PRICE


def test_the_carers_own_postcode_is_checked_when_the_break_has_none(people) -> None:
    c, _carer, worker = people
    far_away = make_carer(c, postcode="TR1 1AA")
    with pytest.raises(service.OutsideTravelRadius):
        _book(far_away, worker, postcode=None)
    with pytest.raises(PostcodeError):
        _book(far_away, worker, postcode="not a postcode")
    assert ledger.balance(budget_of(far_away)).held_pence == 0


def test_regular_bookings_outside_the_radius_say_why_for_each_week(people) -> None:
    _c, carer, worker = people
    outcomes = service.request_regular_bookings(
        carer=carer,
        worker_id=worker.id,
        starts_at=START,
        ends_at=END,
        weeks=2,
        postcode="TR1 1AA",
        address="1 Test Street",
        notes=None,
        actor=carer,
        now=NOW,
    )
    assert [o.booking for o in outcomes] == [None, None]
    assert all("travels up to 20 km" in (o.reason or "") for o in outcomes)


# --- people with no mobile get e-mail ------------------------------------------------------


def test_a_carer_with_no_mobile_gets_the_booking_messages_by_email(people) -> None:
    c, _carer, worker = people
    carer = make_carer(c, phone=None)
    booking = _book(carer, worker)
    service.accept_booking(booking.id, worker=worker, now=NOW)
    run_job("booking_reminders", now=START - timedelta(hours=17))
    emails = _messages("email", carer.email)
    subjects = [m.payload["subject"] for m in emails]
    assert subjects == ["Your break is confirmed", "Reminder: your break is coming up"]
    assert "Priya Worker will come on" in emails[0].payload["body"]
    assert all(m.council_id == c.id for m in emails)
    # Nothing was lost to a missing number, and nothing went to the worker by e-mail:
    # the worker has a mobile, so the worker's messages are texts.
    assert _messages("sms", None) == []
    assert _messages("email", worker.email) == []
    assert any("New break request" in body for body in _sms_to(worker))
    # A second run sends nothing again.
    run_job("booking_reminders", now=START - timedelta(hours=16))
    assert len(_messages("email", carer.email)) == 2


def test_a_worker_with_no_mobile_gets_requests_and_cancellations_by_email(people) -> None:
    c, carer, _worker = people
    worker = make_worker(c)
    worker.phone = None
    db.session.commit()
    booking = _book(carer, worker)
    service.cancel_booking(booking.id, actor=carer, now=NOW)
    subjects = [m.payload["subject"] for m in _messages("email", worker.email)]
    assert subjects == ["New break request", "A break has been cancelled"]


# --- regular bookings: the balance after all the weeks -------------------------------------


def test_the_quote_for_regular_breaks_shows_the_balance_after_every_week(people) -> None:
    _c, carer, worker = people
    quote = service.quote_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=START,
        ends_at=END,
        postcode="LS6 2AB",
        now=NOW,
        weeks=3,
    )
    assert quote.price_pence == PRICE
    assert quote.total_price_pence == 3 * PRICE
    assert quote.balance_after_pence == 100_000 - 3 * PRICE
    assert quote.covered
    single = service.quote_booking(
        carer=carer, worker_id=worker.id, starts_at=START, ends_at=END, postcode=None, now=NOW
    )
    assert single.balance_after_pence == 100_000 - PRICE


def test_regular_breaks_the_budget_cannot_cover_are_not_shown_as_covered(people) -> None:
    c, _carer, worker = people
    carer = make_carer(c, award=2 * PRICE)
    quote = service.quote_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=START,
        ends_at=END,
        postcode="LS6 2AB",
        now=NOW,
        weeks=3,
    )
    assert not quote.covered
    assert quote.top_up_pence == PRICE
    assert quote.balance_after_pence == 0


# --- the card part must be secured before the worker accepts -------------------------------


def _with_card_part(c, worker, *, backend=payments.STRIPE, **kw):
    poor = make_carer(c, award=2000)
    booking = _book(poor, worker, top_up=True, payment_backend=backend, **kw)
    payment = payments.payment_for_booking(booking.id)
    assert payment is not None
    return booking, payment


@pytest.mark.parametrize(
    "status", [PaymentStatus.AWAITING_CARD, PaymentStatus.AUTHORISING, PaymentStatus.FAILED]
)
def test_the_worker_cannot_accept_while_the_card_part_is_not_secured(people, status) -> None:
    c, _carer, worker = people
    booking, payment = _with_card_part(c, worker)
    payment.status = status  # what Stripe has (not) said about the card so far
    db.session.commit()
    with pytest.raises(service.TopUpNotSecured) as caught:
        service.accept_booking(booking.id, worker=worker, now=NOW + timedelta(hours=1))
    assert (caught.value.code, caught.value.status) == ("top_up_not_secured", 409)
    assert "paying part of this break by card" in caught.value.message
    db.session.refresh(booking)
    assert booking.status is BookingStatus.REQUESTED
    assert booking.confirmed_at is None

    payment.status = PaymentStatus.AUTHORISED  # the card is reserved now
    db.session.commit()
    service.accept_booking(booking.id, worker=worker, now=NOW + timedelta(hours=2))
    assert booking.status is BookingStatus.CONFIRMED


def test_a_card_part_recorded_by_the_ledger_backend_is_secured(people) -> None:
    c, _carer, worker = people
    booking, payment = _with_card_part(c, worker, backend=payments.LEDGER)
    assert payment.status is PaymentStatus.RECORDED
    service.accept_booking(booking.id, worker=worker, now=NOW)
    assert booking.status is BookingStatus.CONFIRMED


def test_an_instant_booking_waits_for_the_worker_while_the_card_part_is_unsecured(
    people,
) -> None:
    c, _carer, _worker = people
    worker = make_worker(c, instant=True)
    poor = make_carer(c, award=2000)
    db.session.add(
        Favourite(council_id=poor.council_id, carer_id=poor.id, worker_id=worker.id, created_at=NOW)
    )
    db.session.commit()
    booking = _book(poor, worker, top_up=True, payment_backend=payments.STRIPE)
    assert booking.status is BookingStatus.REQUESTED
    assert not booking.instant
    assert booking.confirmed_at is None
    assert booking.respond_by == NOW + timedelta(hours=24)
    assert any("New break request" in body for body in _sms_to(worker))
    assert not any("confirmed" in body for body in _sms_to(poor))
    actions = db.session.scalars(
        select(AuditEntry.action).where(
            AuditEntry.subject_id == booking.id, AuditEntry.action.like("booking.%")
        )
    ).all()
    assert actions == ["booking.requested"]
    # Covered by the budget, the same favourite is still confirmed at once.
    rich = make_carer(c)
    db.session.add(
        Favourite(council_id=rich.council_id, carer_id=rich.id, worker_id=worker.id, created_at=NOW)
    )
    db.session.commit()
    instant = _book(
        rich,
        worker,
        starts_at=START + timedelta(days=1),
        ends_at=END + timedelta(days=1),
        payment_backend=payments.STRIPE,
    )
    assert instant.status is BookingStatus.CONFIRMED


# --- the worker did not come ---------------------------------------------------------------


def test_the_carer_records_that_the_worker_did_not_come(people) -> None:
    c, carer, worker = people
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    booking = _confirmed(carer, worker)
    with pytest.raises(service.WrongStatus):  # not before the break's end
        service.report_no_show(booking.id, actor=carer, now=END - timedelta(minutes=1))
    with pytest.raises(service.NotFound):  # never the worker
        service.report_no_show(booking.id, actor=worker, now=END)

    service.report_no_show(booking.id, actor=carer, now=END + timedelta(hours=1), reason="Nobody")
    db.session.refresh(booking)
    assert booking.status is BookingStatus.NO_SHOW
    assert booking.ended_at == END + timedelta(hours=1)
    assert _entries(booking) == [(LedgerKind.HOLD, -PRICE), (LedgerKind.RELEASE, PRICE)]
    balance = ledger.balance(budget_of(carer))
    assert (balance.held_pence, balance.spent_pence, balance.available_pence) == (0, 0, 100_000)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "booking.no_show"))
    assert entry.actor_id == carer.id
    assert entry.details["released_pence"] == PRICE
    assert entry.details["by"] == "carer"
    officer_email = _messages("email", officer.email)
    assert [m.payload["subject"] for m in officer_email] == [
        f"The worker did not come to break {booking.id}"
    ]
    assert any("did not come" in body for body in _sms_to(officer))
    assert any(m.recipient == c.duty_team_phone for m in _messages("sms", c.duty_team_phone))
    assert any("recorded as missed" in body for body in _sms_to(worker))

    # Once recorded, it cannot be recorded again, completed, or charged.
    with pytest.raises(service.WrongStatus):
        service.report_no_show(booking.id, actor=carer, now=END + timedelta(hours=2))
    with pytest.raises(service.WrongStatus):
        service.complete_booking(
            booking.id,
            worker=worker,
            actual_starts_at=START,
            actual_ends_at=END,
            now=END + timedelta(hours=2),
        )
    assert len(_entries(booking)) == 2


def test_a_council_officer_records_a_no_show_and_the_card_part_is_released(people) -> None:
    c, _carer, worker = people
    officer = make_user(Role.COUNCIL_OFFICER, council=c)
    booking, payment = _with_card_part(c, worker, backend=payments.LEDGER)
    service.accept_booking(booking.id, worker=worker, now=NOW)
    with pytest.raises(service.NotFound):
        service.report_no_show(
            booking.id, actor=make_user(Role.COUNCIL_OFFICER), now=END + timedelta(days=3)
        )
    service.report_no_show(booking.id, actor=officer, now=END + timedelta(days=3))
    db.session.refresh(payment)
    assert booking.status is BookingStatus.NO_SHOW
    assert payment.status is PaymentStatus.CANCELLED
    balance = ledger.balance(budget_of(booking.carer))
    assert (balance.held_pence, balance.available_pence) == (0, 2000)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "booking.no_show"))
    assert (entry.actor_id, entry.on_behalf_of_id, entry.details["by"]) == (
        officer.id,
        booking.carer_id,
        "council_officer",
    )
    assert any("did not come to your break" in body for body in _sms_to(booking.carer))


def test_the_worker_is_reminded_once_to_record_a_break_a_day_after_it_ended(people) -> None:
    _c, carer, worker = people
    forgotten = _confirmed(carer, worker)
    recorded = _confirmed(
        carer, worker, starts_at=START + timedelta(hours=4), ends_at=END + timedelta(hours=4)
    )
    service.complete_booking(
        recorded.id,
        worker=worker,
        actual_starts_at=recorded.starts_at,
        actual_ends_at=recorded.ends_at,
        now=recorded.ends_at,
    )
    assert "record_break_reminders" in JOBS
    run_job("record_break_reminders", now=END + timedelta(hours=23))
    assert not any("Please record" in body for body in _sms_to(worker))
    run_job("record_break_reminders", now=END + timedelta(hours=24, minutes=5))
    run_job("record_break_reminders", now=END + timedelta(hours=48))
    reminders = [body for body in _sms_to(worker) if "Please record" in body]
    assert len(reminders) == 1
    assert "Wed 25 Nov 10:00am" in reminders[0]
    db.session.refresh(forgotten)
    assert forgotten.record_reminder_sent_at == END + timedelta(hours=24, minutes=5)
    assert recorded.record_reminder_sent_at is None
    # The carer's money stays held until the worker records it or the carer says no-show.
    assert ledger.balance(budget_of(carer)).held_pence == PRICE


# --- the day-before reminder catches up after a missed run ---------------------------------


def _reminders(user) -> list[str]:
    return [body for body in _sms_to(user) if body.startswith("Reminder")]


def test_reminders_are_caught_up_when_the_scheduler_was_down_at_17(people) -> None:
    _c, carer, worker = people
    booking = _confirmed(carer, worker)
    assert JOBS["booking_reminders"].trigger_args == {"minute": 0}  # every hour
    run_job("booking_reminders", now=START - timedelta(hours=19))  # 15:00 the day before
    run_job("booking_reminders", now=START - timedelta(hours=18))  # 16:00
    assert _reminders(carer) == []
    # Down from 16:30 until 21:00: the first run after that sends the reminders.
    run_job("booking_reminders", now=START - timedelta(hours=13))
    assert len(_reminders(carer)) == len(_reminders(worker)) == 1
    db.session.refresh(booking)
    assert booking.reminder_sent_at == START - timedelta(hours=13)
    for hours in (12, 11, 2):
        run_job("booking_reminders", now=START - timedelta(hours=hours))
    assert len(_reminders(carer)) == len(_reminders(worker)) == 1
    # Even down until the morning of the break, the reminder still goes before it starts.
    late = _confirmed(
        carer, worker, starts_at=START + timedelta(days=1), ends_at=END + timedelta(days=1)
    )
    run_job("booking_reminders", now=late.starts_at - timedelta(hours=2))
    assert len(_reminders(carer)) == 2
    # Never after it has started.
    later = _confirmed(
        carer, worker, starts_at=START + timedelta(days=2), ends_at=END + timedelta(days=2)
    )
    run_job("booking_reminders", now=later.starts_at + timedelta(minutes=15))
    assert len(_reminders(carer)) == 2
    db.session.refresh(later)
    assert later.reminder_sent_at is None


def test_reminders_follow_uk_time_in_summer(people) -> None:
    c, _carer, _worker = people
    summer_now = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)
    carer = make_carer(c, now=summer_now)
    worker = make_worker(c, now=summer_now)
    starts = datetime(2027, 6, 3, 9, 0, tzinfo=UTC)  # 10:00 BST on Thursday 3 June
    booking = _book(
        carer, worker, starts_at=starts, ends_at=starts + timedelta(hours=2), now=summer_now
    )
    service.accept_booking(booking.id, worker=worker, now=summer_now)
    # 17:00 BST on Wednesday is 16:00 UTC.
    run_job("booking_reminders", now=datetime(2027, 6, 2, 15, 0, tzinfo=UTC))
    assert _reminders(carer) == []
    run_job("booking_reminders", now=datetime(2027, 6, 2, 16, 0, tzinfo=UTC))
    assert len(_reminders(carer)) == 1


def test_a_break_confirmed_after_its_reminder_was_due_gets_no_extra_reminder(people) -> None:
    _c, carer, worker = people
    booking = _book(carer, worker, now=START - timedelta(hours=20))
    # Accepted at 18:00 the evening before: the carer's confirmation is the reminder.
    service.accept_booking(booking.id, worker=worker, now=START - timedelta(hours=16))
    run_job("booking_reminders", now=START - timedelta(hours=15))
    assert _reminders(carer) == []
    assert any("Your break is confirmed" in body for body in _sms_to(carer))
