"""Stripe and Twilio fail and time out.

Stripe: the real SDK talks to a small local server in front of localstripe that can
refuse to answer (a real client timeout), answer 500, or take the request and lose the
answer, and, like Stripe, replays its first answer to a repeated Idempotency-Key; a
closed port stands for Stripe being unreachable. A booking with a card part is made
whole while Stripe is down, the card calls wait in the outbox with backoff, and once
Stripe is back the card is reserved and charged exactly once.

Twilio: the real SDK with its HTTP caught by `responses` (500s, connect and read
timeouts): SMS and calls stay in the outbox, are retried on the backoff schedule (never
before), and go out exactly once when Twilio is back; two delivery workers never send
one message twice.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import time as clock_time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from flask import Flask
from sqlalchemy import select

from app import outbox
from app.clock import london_wall_clock, utcnow
from app.extensions import db
from app.models import OutboxMessage, OutboxStatus, User
from app.scheduler import run_job
from booking.models.bookings import Booking, BookingStatus
from booking.models.budgets import LedgerEntry
from booking.models.payments import PaymentStatus
from booking.services import bookings, ledger, payments
from emergency.models import Incident
from emergency.phone_models import CascadeCall
from emergency.services import start_cascade
from tests.booking.conftest import STRIPE_TEST_KEY
from tests.booking.factories_budgets import make_budget, make_carer
from tests.booking.factories_payments import make_card
from tests.booking.factories_workers import make_worker
from tests.emergency.factories_phone import make_plan_with_card
from tests.factories import CouncilFactory
from tests.helpers import bearer

STRIPE_TIMEOUT = 0.5
AWARD = 1500
RATE = 2000  # a 2-hour break costs £40: £15 from the budget, £25 by card
PRICE = 2 * RATE
CARD_PART = PRICE - AWARD


# --- a Stripe that misbehaves on demand -----------------------------------------------------


class FlakyStripe(ThreadingHTTPServer):
    """Forwards to localstripe in mode `pass`. `hang`: reads the request and never
    answers. `error`: answers 500. `lost`: forwards (Stripe acts) but the answer never
    comes back. POSTs with an Idempotency-Key seen before get the first answer again,
    as Stripe does, without reaching localstripe (which ignores the header)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _StripeHandler)
        self.upstream = upstream
        self.mode = "pass"
        self.seen: list[tuple[str, str, str | None]] = []
        self.forwarded: list[tuple[str, str, str | None]] = []
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StripeHandler(BaseHTTPRequestHandler):
    server: FlakyStripe

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        key = self.headers.get("Idempotency-Key")
        stripe = self.server
        stripe.seen.append((self.command, self.path.split("?")[0], key))
        if stripe.mode == "hang":
            stripe.release.wait(30)
            return
        if stripe.mode == "error":
            self._answer(500, b'{"error": {"type": "api_error", "message": "Server error"}}')
            return
        answer = stripe.answers.get(key) if key and self.command == "POST" else None
        if answer is None:
            headers = {
                name: value
                for name in ("Authorization", "Content-Type", "Stripe-Version")
                if (value := self.headers.get(name))
            }
            upstream = requests.request(
                self.command, stripe.upstream + self.path, data=body, headers=headers, timeout=10
            )
            answer = (upstream.status_code, upstream.content)
            stripe.forwarded.append((self.command, self.path.split("?")[0], key))
            if key and self.command == "POST":
                stripe.answers[key] = answer
        if stripe.mode == "lost":
            stripe.release.wait(30)
            return
        self._answer(*answer)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()


@pytest.fixture
def flaky_stripe(
    app: Flask, localstripe: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlakyStripe]:
    server = FlakyStripe(localstripe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", server.url)
    monkeypatch.setitem(app.config, "STRIPE_TIMEOUT_SECONDS", STRIPE_TIMEOUT)
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> str:
    """An address where nothing listens: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://127.0.0.1:{port}"


def _slot(now: datetime) -> tuple[datetime, datetime]:
    day = (now + timedelta(days=7)).date()
    day = day + timedelta(days=(1 - day.weekday()) % 7)  # a Tuesday
    return london_wall_clock(day, clock_time(10, 0)), london_wall_clock(day, clock_time(12, 0))


def _book_with_card(app: Flask, localstripe: str, now: datetime) -> tuple[Booking, str]:
    """POST /api/v1/bookings for a break the budget covers only in part, card for the rest."""
    carer = make_carer()
    assert carer.council is not None
    worker = make_worker(carer.council, rate=RATE, today=now.date())
    worker.phone = None  # no SMS: only Stripe's calls are in the outbox here
    make_budget(carer, award_pence=AWARD, now=now)
    card = make_card(localstripe)
    starts_at, ends_at = _slot(now)
    response = app.test_client().post(
        "/api/v1/bookings",
        json={
            "worker_id": worker.id,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
            "postcode": "LS6 2AB",
            "address": "1 Test Street",
            "top_up": True,
            "payment_method": card,
        },
        headers=bearer(carer),
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["top_up_pence"] == CARD_PART
    booking = db.session.get(Booking, response.get_json()["id"])
    assert booking is not None
    # A worker with no mobile is told by e-mail instead: set that aside, so only Stripe's
    # calls are counted here.
    for told in db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email")):
        told.status = OutboxStatus.SENT
    db.session.commit()
    return booking, card


def _money(booking: Booking) -> list[tuple[str, int]]:
    """The booking's budget ledger, oldest first."""
    db.session.expire_all()
    return [
        (str(entry.kind), entry.amount_pence)
        for entry in db.session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.budget_id == booking.budget_id)
            .order_by(LedgerEntry.id)
        )
    ]


def _intents_for(localstripe: str, card: str) -> list[dict[str, Any]]:
    """Every intent made with this card, read page by page (localstripe lists 10 at a
    time by default, so a plain list would miss ours once other tests made more)."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = requests.get(
            f"{localstripe}/v1/payment_intents",
            auth=(STRIPE_TEST_KEY, ""),
            params=params,
            timeout=5,
        ).json()
        found += [intent for intent in page["data"] if intent["payment_method"] == card]
        if not page["has_more"] or not page["data"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


def _message(kind: str) -> OutboxMessage:
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == kind))
    assert message is not None
    db.session.refresh(message)
    return message


def _deliver(at: datetime) -> dict[str, int]:
    result: dict[str, int] = run_job("deliver_outbox", now=at)
    db.session.expire_all()
    return result


def test_stripe_down_the_booking_is_whole_and_the_card_is_reserved_once_it_is_back(
    app: Flask,
    localstripe: str,
    flaky_stripe: FlakyStripe,
    closed_port: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flaky_stripe.mode = "hang"
    now = utcnow()

    booking, card = _book_with_card(app, localstripe, now)

    # Stripe is never called inside the booking's request: it answered at once, whole.
    assert flaky_stripe.seen == []
    assert booking.status is BookingStatus.REQUESTED
    ledger_after_booking = _money(booking)
    assert ledger_after_booking == [
        ("allocation", AWARD),
        ("top_up", CARD_PART),
        ("hold", -PRICE),
    ]
    assert ledger.balance(booking.budget_id).available_pence == 0
    payment = payments.payment_for_booking(booking.id)
    assert payment is not None
    assert payment.status is PaymentStatus.AUTHORISING

    # Stripe takes the request and never answers: the client gives up after its timeout.
    first_try = utcnow()
    started = time.monotonic()
    assert _deliver(first_try) == {"sent": 0, "retry": 1, "dead": 0}
    assert time.monotonic() - started >= STRIPE_TIMEOUT
    message = _message("stripe.authorise")
    assert (message.status, message.attempts) == (OutboxStatus.PENDING, 1)
    assert message.next_attempt_at == first_try + timedelta(seconds=30)
    # Not before the backoff is over.
    assert _deliver(first_try + timedelta(seconds=29)) == {"sent": 0, "retry": 0, "dead": 0}
    assert len(flaky_stripe.seen) == 1

    # Stripe unreachable: connection refused.
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", closed_port)
    second_try = first_try + timedelta(seconds=30)
    assert _deliver(second_try) == {"sent": 0, "retry": 1, "dead": 0}
    message = _message("stripe.authorise")
    assert message.attempts == 2
    assert message.next_attempt_at == second_try + timedelta(seconds=60)
    assert "APIConnectionError" in (message.last_error or "")

    # Nothing moved meanwhile, and Stripe holds nothing on the card.
    assert _money(booking) == ledger_after_booking
    assert _intents_for(localstripe, card) == []
    db.session.refresh(payment)
    assert payment.status is PaymentStatus.AUTHORISING

    # Stripe is back.
    flaky_stripe.mode = "pass"
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", flaky_stripe.url)
    assert _deliver(message.next_attempt_at) == {"sent": 1, "retry": 0, "dead": 0}
    assert _deliver(message.next_attempt_at + timedelta(days=1))["sent"] == 0

    db.session.refresh(payment)
    assert payment.status is PaymentStatus.AUTHORISED
    [intent] = _intents_for(localstripe, card)
    assert payment.stripe_payment_intent_id == intent["id"]
    assert intent["amount"] == CARD_PART
    assert intent["status"] == "requires_capture"
    creates = [key for method, path, key in flaky_stripe.seen if path == "/v1/payment_intents"]
    assert creates == [f"payment-{payment.id}-attempt-1-authorise"] * 2
    assert _money(booking) == ledger_after_booking
    db.session.refresh(booking)
    assert booking.status is BookingStatus.REQUESTED


def test_stripe_reserved_the_card_but_the_answer_was_lost_the_retry_reserves_nothing_more(
    app: Flask, localstripe: str, flaky_stripe: FlakyStripe
) -> None:
    now = utcnow()
    booking, card = _book_with_card(app, localstripe, now)
    payment = payments.payment_for_booking(booking.id)
    assert payment is not None

    flaky_stripe.mode = "lost"
    assert _deliver(utcnow()) == {"sent": 0, "retry": 1, "dead": 0}

    # Stripe did reserve the money; we do not know it yet.
    [intent] = _intents_for(localstripe, card)
    assert intent["status"] == "requires_capture"
    db.session.refresh(payment)
    assert payment.status is PaymentStatus.AUTHORISING
    assert payment.stripe_payment_intent_id is None

    flaky_stripe.mode = "pass"
    message = _message("stripe.authorise")
    assert _deliver(message.next_attempt_at) == {"sent": 1, "retry": 0, "dead": 0}

    # The retry carried the same key, so Stripe answered with the first reservation.
    db.session.refresh(payment)
    assert payment.status is PaymentStatus.AUTHORISED
    assert payment.stripe_payment_intent_id == intent["id"]
    assert [i["id"] for i in _intents_for(localstripe, card)] == [intent["id"]]
    creates = [(m, p) for m, p, _key in flaky_stripe.forwarded if p == "/v1/payment_intents"]
    assert creates == [("POST", "/v1/payment_intents")]
    assert _money(booking) == [("allocation", AWARD), ("top_up", CARD_PART), ("hold", -PRICE)]


def test_stripe_fails_at_completion_the_card_is_charged_once_when_it_is_back(
    app: Flask, localstripe: str, flaky_stripe: FlakyStripe
) -> None:
    now = utcnow()
    booking, card = _book_with_card(app, localstripe, now)
    assert _deliver(utcnow())["sent"] == 1  # reserved while Stripe is fine
    worker_user = db.session.get(User, booking.worker_id)
    assert worker_user is not None
    bookings.accept_booking(booking.id, worker=worker_user, now=now)

    flaky_stripe.mode = "error"
    bookings.complete_booking(
        booking.id,
        worker=worker_user,
        actual_starts_at=booking.starts_at,
        actual_ends_at=booking.ends_at,
        now=booking.ends_at,
        payment_backend=payments.STRIPE,
    )
    # The break is complete and the budget charged at once, whatever Stripe does.
    db.session.refresh(booking)
    assert booking.status is BookingStatus.COMPLETED
    settled = _money(booking)
    assert sum(amount for _kind, amount in settled) == 0
    assert [kind for kind, _amount in settled].count("capture") == 1

    when = booking.ends_at
    # Stripe answers 500 (the completion's SMS go out meanwhile).
    assert _deliver(when)["retry"] == 1
    flaky_stripe.mode = "hang"
    message = _message("stripe.capture")
    assert message.attempts == 1
    assert _deliver(message.next_attempt_at) == {"sent": 0, "retry": 1, "dead": 0}  # timeout
    message = _message("stripe.capture")
    assert message.attempts == 2
    [intent] = _intents_for(localstripe, card)
    assert intent["status"] == "requires_capture"  # nothing charged yet

    flaky_stripe.mode = "pass"
    assert _deliver(message.next_attempt_at) == {"sent": 1, "retry": 0, "dead": 0}
    assert _deliver(message.next_attempt_at + timedelta(days=1))["sent"] == 0

    remote = requests.get(
        f"{localstripe}/v1/payment_intents/{intent['id']}",
        auth=(STRIPE_TEST_KEY, ""),
        params={"expand[]": "latest_charge"},
        timeout=5,
    ).json()
    assert remote["status"] == "succeeded"
    assert remote["latest_charge"]["amount"] - remote["latest_charge"]["amount_refunded"] == (
        CARD_PART
    )
    captures = [p for m, p, _k in flaky_stripe.forwarded if p.endswith("/capture")]
    assert len(captures) == 1
    assert _money(booking) == settled


# --- Twilio ----------------------------------------------------------------------------------

TWILIO_SID = "AC" + "1" * 32
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
CALLS_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"
OUTAGE: list[dict[str, Any]] = [
    {"json": {"status": 500, "message": "Internal Server Error"}, "status": 500},
    {"body": requests.exceptions.ConnectTimeout("connect timed out")},
    {"body": requests.exceptions.ReadTimeout("read timed out")},
    {"json": {"status": 503, "message": "Service Unavailable"}, "status": 503},
    {"json": {"status": 429, "code": 20429, "message": "Too Many Requests"}, "status": 429},
]


@pytest.fixture
def twilio(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "NOTIFY_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": "twilio-test-auth-token",
        "TWILIO_FROM_NUMBER": "+447700900001",
        "TWILIO_MESSAGING_SERVICE_SID": "",
        "PUBLIC_BASE_URL": "https://carers.example.org",
        "OUTBOX_MAX_ATTEMPTS": 8,
        "OUTBOX_BASE_DELAY_SECONDS": 30,
    }.items():
        monkeypatch.setitem(app.config, key, value)


def _through_outage(
    url: str, message_id: int, start: datetime, *, others_sent: int = 0
) -> tuple[datetime, list[str]]:
    """Run the outbox through every kind of failure, each time exactly when the message
    is due (and once just before). Returns when it is due next and what Twilio got.
    `others_sent` SMS are due with it at the start and go through (Twilio answers them)."""
    bodies: list[str] = []
    when = start
    for attempt, failure in enumerate(OUTAGE, start=1):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as down:
            down.add(responses.POST, url, **failure)
            if url != MESSAGES_URL:
                down.add(responses.POST, MESSAGES_URL, json={"sid": "SM" + "d" * 32}, status=201)
            if attempt > 1:  # one second early: not tried
                assert _deliver(when - timedelta(seconds=1)) == {"sent": 0, "retry": 0, "dead": 0}
                assert len(down.calls) == 0
            sent = others_sent if attempt == 1 else 0
            assert _deliver(when) == {"sent": sent, "retry": 1, "dead": 0}
            ours = [call for call in down.calls if call.request.url == url]
            bodies += [str(call.request.body) for call in ours]
            assert len(ours) == 1
        message = db.session.get(OutboxMessage, message_id)
        assert message is not None
        assert (message.status, message.attempts) == (OutboxStatus.PENDING, attempt)
        assert message.provider_ref is None
        # 30 s, 1 min, 2 min, 4 min, 8 min.
        assert message.next_attempt_at == when + timedelta(seconds=30 * 2 ** (attempt - 1))
        when = message.next_attempt_at
    return when, bodies


def test_a_booking_sms_outlives_a_twilio_outage_and_goes_once(
    app: Flask, twilio: None, now: datetime
) -> None:
    carer = make_carer()
    assert carer.council is not None
    worker = make_worker(carer.council, rate=RATE, today=now.date())
    make_budget(carer, award_pence=10_000, now=now)
    starts_at, ends_at = _slot(now)
    booking = bookings.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=starts_at,
        ends_at=ends_at,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=carer,
        now=now,
    )
    [message] = db.session.scalars(select(OutboxMessage)).all()
    assert (message.kind, message.recipient) == ("sms", worker.phone)
    money = _money(booking)

    due, bodies = _through_outage(MESSAGES_URL, message.id, max(now, message.next_attempt_at))

    # Every try asked for the same text; the booking never noticed.
    assert len(set(bodies)) == 1
    assert parse_qs(bodies[0])["To"] == [worker.phone]
    db.session.refresh(booking)
    assert booking.status is BookingStatus.REQUESTED
    assert _money(booking) == money

    with responses.RequestsMock() as back:
        back.add(responses.POST, MESSAGES_URL, json={"sid": "SM" + "c" * 32, "status": "queued"})
        assert _deliver(due) == {"sent": 1, "retry": 0, "dead": 0}
        assert _deliver(due + timedelta(days=1)) == {"sent": 0, "retry": 0, "dead": 0}
        assert len(back.calls) == 1
        assert back.calls[0].request.body == bodies[0]
    message = db.session.get(OutboxMessage, message.id)
    assert message is not None
    assert (message.status, message.attempts) == (OutboxStatus.SENT, len(OUTAGE) + 1)
    assert message.provider_ref == "SM" + "c" * 32
    assert message.last_error is None


def test_a_cascade_call_outlives_a_twilio_outage_and_is_placed_once(
    app: Flask, twilio: None, now: datetime
) -> None:
    council = CouncilFactory()
    card = make_plan_with_card(council, now=now)
    incident = Incident(
        council_id=council.id,
        plan_id=card.plan.id,
        plan_version_id=card.version.id,
        source="phone",
        opened_at=now,
    )
    db.session.add(incident)
    db.session.commit()
    start_cascade(incident, now=now)
    assert run_job("phone_cascade_calls", now=now) == {"queued": 1}
    call = db.session.scalars(select(CascadeCall)).one()
    message = db.session.get(OutboxMessage, call.outbox_message_id)
    assert message is not None
    # The cascade also texted the contact: that SMS goes through, the call does not.
    sms = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sms")).one()
    start = max(message.next_attempt_at, sms.next_attempt_at)

    due, bodies = _through_outage(CALLS_URL, message.id, start, others_sent=1)

    assert len(set(bodies)) == 1
    assert parse_qs(bodies[0])["To"] == [card.contacts[0].phone]
    with responses.RequestsMock() as back:
        back.add(responses.POST, CALLS_URL, json={"sid": "CA" + "e" * 32, "status": "queued"})
        assert _deliver(due) == {"sent": 1, "retry": 0, "dead": 0}
        assert _deliver(due + timedelta(days=1))["sent"] == 0
        assert len(back.calls) == 1
    db.session.refresh(message)
    assert (message.status, message.provider_ref) == (OutboxStatus.SENT, "CA" + "e" * 32)
    assert db.session.scalars(select(CascadeCall)).all() == [call]
    db.session.refresh(sms)
    assert (sms.status, sms.attempts) == (OutboxStatus.SENT, 1)


@pytest.mark.committing
def test_two_delivery_workers_never_send_a_message_twice(app: Flask, twilio: None) -> None:
    """Two `deliver_outbox` processes at once while Twilio is slow: each message once."""
    now = utcnow()
    for n in range(6):
        outbox.enqueue(
            "sms",
            recipient=f"+44770090020{n}",
            payload={"body": f"Message {n}"},
            dedupe_key=f"two-workers-{n}",
            not_before=now,
        )
    db.session.commit()
    db.session.remove()
    sent_bodies: list[str] = []
    lock = threading.Lock()
    sids = iter(f"SM{n:032d}" for n in range(100))

    def slow_twilio(request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(0.15)
        with lock:
            sent_bodies.append(parse_qs(request.body)["Body"][0])
            sid = next(sids)
        return 201, {}, json.dumps({"sid": sid, "status": "queued"})

    barrier = threading.Barrier(2, timeout=30)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                barrier.wait()
                results.append(run_job("deliver_outbox", now=now))
                db.session.remove()
        except BaseException as exc:
            errors.append(exc)

    with responses.RequestsMock() as slow:
        slow.add_callback(responses.POST, MESSAGES_URL, callback=slow_twilio)
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    assert sorted(sent_bodies) == [f"Message {n}" for n in range(6)]
    assert sum(result["sent"] for result in results) == 6
    rows = db.session.scalars(select(OutboxMessage)).all()
    assert {row.status for row in rows} == {OutboxStatus.SENT}
    assert {row.attempts for row in rows} == {1}
    assert len({row.provider_ref for row in rows}) == 6
