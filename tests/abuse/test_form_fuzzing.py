"""Hypothesis-driven form input on every HTML form of the app.

A realistic council is seeded: the demo council (bookings requested, confirmed, waiting
to be recorded as done and completed; budgets; plans with cards; approved workers with
their checks), plus a break in every other state (declined, expired, cancelled, no-show,
completed with extra time to approve, disputed, with a concern), a plan draft, open
incidents (one with care arranged), a card top-up waiting for the card (on the local
Stripe server), a worker waiting for vetting, a provider admin with no organisation yet,
a dead outbox message and a worker's time off.

Every person is then signed in and walks the pages by following links (signed-out
people, and staff half-way through their second factor, too), and a few forms that only
appear in answer to a POST are reached the same way (an uploaded allocations file, a
taken slot of a favourite worker, a newly issued card). Every POST form met on the way
is filled by hypothesis with the form's own values mixed with hostile ones (empty,
huge, unicode, numbers, dates, injections, files of junk) for exactly the fields the
form declares, and posted by the person who was shown it. Each example starts from the
same data (a savepoint, rolled back afterwards).

Asserted:
- no page or form answers with a server error (or raises);
- an answer that reports an error (4xx, an error summary or an inline error, or an
  error flashed before a redirect) leaves the row count of every table as it was:
  nothing is half-written;
- the forms found cover every POST route of the HTML blueprints but `EXCLUDED`.
"""

from __future__ import annotations

import base64
import io
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException

from app.api.core import ApiBlueprint
from app.auth.services import make_reset_token
from app.auth.views import PENDING_KEY
from app.clock import london_today, london_wall_clock, to_london, utcnow
from app.demo import PEOPLE, seed
from app.extensions import db, limiter
from app.models import AuditEntry, Base, Council, OutboxMessage, OutboxStatus, Role, User
from booking.models.bookings import Booking, BookingStatus
from booking.models.payments import PaymentStatus, ReconciliationDifference
from booking.models.workers import AvailabilityException, ExceptionKind
from booking.services import bookings as booking_service
from booking.services import payments
from booking.services.workers import profile_of, sign_up_worker, toggle_favourite
from emergency import services as emergency
from emergency.crypto import cipher_from_config
from emergency.forms import STEPS
from emergency.models import Card, Plan
from emergency.phone_models import MissedCall
from emergency.services.incidents import open_incident_for_card
from tests.booking.factories_bookings import make_worker
from tests.booking.factories_payments import make_top_up_booking
from tests.emergency.factories import make_worker_free_now
from tests.factories import make_user
from tests.helpers import sign_in

# POST routes of the HTML blueprints that are not forms a person fills in: the providers'
# webhooks (signed by Stripe or Twilio, never filled in by a person; every one is
# delivered twice in tests/faults/test_webhook_replay.py), and sign-out.
WEBHOOK_PREFIXES = ("/stripe/", "/twilio/")
EXCLUDED = {
    "auth.sign_out": "ends the session the walk runs in; tests/test_auth.py covers it",
}

# Writes an error answer makes on purpose, not half-made work.
ERROR_WRITES = {
    # A wrong PIN is counted (that is the lockout) and a lockout alerts the officer.
    "emergency.console": {"emergency_pin_attempts", "outbox_messages"},
}
# Audit entries an error answer may add: a page shown again with its error that shows a
# plan logs that the plan was seen; a wrong PIN is logged.
LOGGED_ON_ERROR = {"emergency.plan_viewed", "emergency.pin_lookup_miss"}

EXAMPLES = 6  # per form
FORMS_PER_ROUTE = 1
PAGES_PER_ROUTE = 12  # per person, when following links

NASTY = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "99999999999999999999",
            "1e309",
            "NaN",
            "2027-02-30",
            "31/12/2027",
            "25:61",
            "£-5",
            "'; DROP TABLE users; --",
            "<script>alert(1)</script>",
            "\x00",
            "A" * 5000,
            "ZZ99 9ZZ",
            "+44 7911 123456",
            "on",
            # Plausible answers, so some examples get past the first check.
            "1",
            "12.50",
            "10:00",
            "LS6 2AB",
            "07911 123 456",
            "someone@example.org",
        ]
    ),
)

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
ERROR_MARKS = ("govuk-error-summary", "govuk-form-group--error")


# --- reading pages -----------------------------------------------------------------


@dataclass
class Field:
    """What a browser would send for one name, and the other values the page offers."""

    file: bool = False
    sent: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, Field] = field(default_factory=dict)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: tuple[Field, bool] | None = None  # field, an option was selected
        self._option: dict[str, str | None] | None = None
        self._textarea: tuple[Field, list[str]] | None = None

    def _field(self, name: str) -> Field:
        assert self._form is not None
        return self._form.fields.setdefault(name, Field())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        elif tag == "form":
            method = (a.get("method") or "get").lower()
            self._form = Form(method, a.get("action") or "")
            self.forms.append(self._form)
        elif self._form is None:
            return
        name = a.get("name")
        if tag == "input" and name and name != "csrf_token":
            kind = (a.get("type") or "text").lower()
            value = a.get("value")
            item = self._field(name)
            if kind == "file":
                item.file = True
            elif kind in {"checkbox", "radio"}:
                item.choices.append(value or "on")
                if "checked" in a:
                    item.sent.append(value or "on")
            elif kind in {"submit", "image", "reset", "button"}:
                item.choices.append(value or "")
            else:
                item.sent.append(value or "")
        elif tag == "button" and name:
            self._field(name).choices.append(a.get("value") or "")
        elif tag == "select" and name:
            self._select = (self._field(name), False)
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "selected": "x" if "selected" in a else None}
            self._option["text"] = ""
        elif tag == "textarea" and name:
            self._textarea = (self._field(name), [])

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option["text"] = (self._option["text"] or "") + data
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "option" and self._option is not None and self._select is not None:
            value = self._option["value"]
            if value is None:
                value = (self._option["text"] or "").strip()
            item, chosen = self._select
            item.choices.append(value)
            if self._option["selected"] and not chosen:
                item.sent = [value]
                self._select = (item, True)
            elif not item.sent and not chosen:
                item.sent = [value]  # a browser sends the first option
            self._option = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            item, parts = self._textarea
            item.sent.append("".join(parts).removeprefix("\n"))
            self._textarea = None


# --- the council ------------------------------------------------------------------


@dataclass
class Scene:
    people: dict[str, User]
    card_pages: dict[int, str]  # carer id: their card page
    worker_without_vetting: User
    admin_without_organisation: User
    officer_setting_up_2fa: User
    officer_at_2fa: User
    extra_booking: Booking
    favourite_worker: User
    taken_slot: tuple[date, str, str]
    draft_id: int
    plan_id: int
    reset_token: str
    import_csv: bytes


def _user(email: str) -> User:
    return db.session.scalars(select(User).where(User.email == email)).one()


def _past_booking(
    carer: User, worker: User, *, booked_at: datetime, day: date, start: time
) -> Booking:
    """A break booked days ago for a slot now past, confirmed by the worker."""
    booking = booking_service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=london_wall_clock(day, start),
        ends_at=london_wall_clock(day, start) + timedelta(hours=2),
        postcode=carer.postcode,
        address="12 Demo Street, Leeds",
        notes=None,
        share_notes=False,
        support_kind="sitting_service",
        actor=carer,
        now=booked_at,
        form_token=booking_service.new_form_token(),
    )
    if booking.status is BookingStatus.REQUESTED:
        booking_service.accept_booking(booking.id, worker=worker, now=booked_at)
    return booking


def _seed(app: Flask, now: datetime) -> Scene:
    lines = list(seed(now=now, password_method="pbkdf2:sha256:1000"))
    assert any("Emergency card PIN" in line for line in lines), lines
    people = {person.key: _user(person.email) for person in PEOPLE}
    council = db.session.scalars(select(Council).where(Council.slug == "demo")).one()
    carer, writer = people["carer"], people["plan_writer"]

    # Breaks in the states the demo has not got.
    for status in (
        BookingStatus.DECLINED,
        BookingStatus.EXPIRED,
        BookingStatus.CANCELLED,
        BookingStatus.NO_SHOW,
    ):
        db.session.add(
            Booking(
                council_id=council.id,
                carer_id=carer.id,
                worker_id=people["worker2"].id,
                starts_at=now + timedelta(days=20),
                ends_at=now + timedelta(days=20, hours=2),
                status=status,
                price_pence=3400,
                created_at=now - timedelta(days=1),
                ended_at=now - timedelta(hours=1),
            )
        )
    db.session.commit()
    booked_at = now - timedelta(days=3)
    helper = make_worker(council, name="Fuzz Worker", now=booked_at, min_notice_minutes=0)
    yesterday = london_today(now) - timedelta(days=1)
    extra = _past_booking(carer, helper, booked_at=booked_at, day=yesterday, start=time(9, 0))
    disputed = _past_booking(carer, helper, booked_at=booked_at, day=yesterday, start=time(12))
    for booking, overrun in ((extra, timedelta(hours=1)), (disputed, timedelta(0))):
        booking_service.complete_booking(
            booking.id,
            worker=helper,
            actual_starts_at=booking.starts_at,
            actual_ends_at=booking.ends_at + overrun,
            now=now,
        )
    booking_service.dispute_booking(
        disputed.id, actor=carer, reason="The worker left early.", now=now
    )
    booking_service.report_concern(
        extra.id, actor=carer, text="The worker was on the phone a lot.", now=now
    )
    # A favourite worker whose upcoming confirmed break is a taken slot (the waiting list).
    upcoming = db.session.scalars(
        select(Booking)
        .where(
            Booking.carer_id == carer.id,
            Booking.status == BookingStatus.CONFIRMED,
            Booking.starts_at > now,
        )
        .order_by(Booking.starts_at)
    ).first()
    assert upcoming is not None
    favourite = db.session.get(User, upcoming.worker_id)
    assert favourite is not None
    toggle_favourite(carer, favourite.id, now=now)
    slot = (
        to_london(upcoming.starts_at).date(),
        f"{to_london(upcoming.starts_at):%H:%M}",
        f"{to_london(upcoming.ends_at):%H:%M}",
    )
    # Time off the worker can remove.
    profile = profile_of(people["worker"].id)
    assert profile is not None
    db.session.add(
        AvailabilityException(
            profile_id=profile.id,
            council_id=profile.council_id,
            starts_at=now + timedelta(days=30),
            ends_at=now + timedelta(days=30, hours=8),
            kind=ExceptionKind.UNAVAILABLE,
        )
    )
    # A dead message an admin can send again.
    db.session.add(
        OutboxMessage(
            council_id=council.id,
            kind="sms",
            recipient=carer.phone,
            payload={"body": "Your break is confirmed."},
            status=OutboxStatus.DEAD,
            attempts=5,
            last_error="HTTP 500 from the provider",
        )
    )
    db.session.commit()

    # Emergency: a draft, an incident on the real card and a drill with care arranged.
    cipher = cipher_from_config(app.config)
    plans = list(db.session.scalars(select(Plan).order_by(Plan.id)))
    draft = emergency.start_draft(writer=writer, cipher=cipher, now=now, plan=plans[0])
    standby = make_worker_free_now(council, now=now, name="Fuzz Standby")
    operator = people["operator"]
    for card in db.session.scalars(select(Card).order_by(Card.id)):
        incident = open_incident_for_card(card, source="console", operator=operator, now=now)
        db.session.commit()
        if incident.is_drill:  # chosen from the list, as the operator does
            emergency.arrange_replacement_care(incident, by=operator, now=now, worker_id=standby.id)
            assert incident.care_arranged_at is not None, [
                e.text for e in emergency.events_of(incident)
            ]

    # A missed call on the 24-hour line for an operator to deal with.
    db.session.add(
        MissedCall(
            council_id=council.id,
            call_sid="CA" + "f" * 32,
            caller_number="+447911100077",
            line_number=council.emergency_phone,
            reason="no_pin",
            called_at=now - timedelta(minutes=20),
        )
    )
    db.session.commit()

    # Card top-ups: one waiting for the card, one waiting for the bank's answer; a
    # difference between our records and Stripe's; a worker's photo.
    top_up = make_top_up_booking(now=now, backend=payments.STRIPE)
    checking = make_top_up_booking(now=now, backend=payments.STRIPE)
    checking.payment.status = PaymentStatus.AUTHORISING
    checking.payment.stripe_payment_intent_id = "pi_fuzz_checking"
    db.session.add(
        ReconciliationDifference(
            council_id=council.id,
            found_on=london_today(now),
            last_seen_on=london_today(now),
            kind="amount",
            object_ref="pi_fuzz_difference",
            ours="5000",
            theirs="4000",
            message="Stripe holds a different amount",
        )
    )
    photographed = profile_of(people["worker"].id)
    assert photographed is not None
    photographed.photo = PNG_1PX
    photographed.photo_content_type = "image/png"
    db.session.commit()

    # Marketplace people the demo has not got.
    pending = sign_up_worker(
        council=council,
        name="Nina Newcomer",
        email="nina@demo.example",
        password="a-long-password-1",
        phone="+447911100099",
        postcode="LS6 3AA",
        now=now,
        password_method="pbkdf2:sha256:1000",
    )
    lonely_admin = make_user(Role.PROVIDER_ADMIN, council=council)
    setting_up = make_user(Role.COUNCIL_OFFICER, council=council, totp_secret=None)
    at_2fa = make_user(
        Role.COUNCIL_OFFICER,
        council=council,
        totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        totp_confirmed_at=now,
    )
    next_april = date(london_today(now).year + 1, 4, 1)
    csv = (
        "carer_reference,period_start,period_end,amount,kind\n"
        f"CR-1003,{next_april},{next_april.replace(year=next_april.year + 1) - timedelta(1)},"
        "450.00,direct_payment\n"
    )
    return Scene(
        people=people,
        card_pages={
            made.carer.id: f"/payments/bookings/{made.booking.id}/card"
            for made in (top_up, checking)
        },
        worker_without_vetting=pending,
        admin_without_organisation=lonely_admin,
        officer_setting_up_2fa=setting_up,
        officer_at_2fa=at_2fa,
        extra_booking=extra,
        favourite_worker=favourite,
        taken_slot=slot,
        draft_id=draft.id,
        plan_id=plans[-1].id,
        reset_token=make_reset_token(carer, secret_key=app.config["SECRET_KEY"]),
        import_csv=csv.encode(),
    )


# --- walking the pages ----------------------------------------------------------------


@dataclass
class Seen:
    """A POST form, who was shown it and where."""

    endpoint: str
    who: str
    page: str
    form: Form


@dataclass
class Walk:
    forms: dict[str, list[Seen]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    pages: int = 0


def _html_endpoint(app: Flask, path: str, method: str) -> str | None:
    adapter = app.url_map.bind("localhost")
    try:
        endpoint, _args = adapter.match(path, method=method)
    except HTTPException:
        return None
    blueprint = endpoint.split(".", 1)[0]
    if isinstance(app.blueprints.get(blueprint), ApiBlueprint):
        return None
    if endpoint == "static" or (endpoint.startswith("main.") and "static" in endpoint):
        return None
    return str(endpoint)


def _read(app: Flask, walk: Walk, who: str, url: str, body: str) -> list[str]:
    """Note the page's POST forms; return its links."""
    page = _Page()
    page.feed(body)
    for form in page.forms:
        if form.method != "post":
            continue
        action = urljoin(url, form.action or url)
        form.action = action
        endpoint = _html_endpoint(app, urlsplit(action).path, "POST")
        if endpoint is None:
            walk.failures.append(f"{who} on {url}: a form posts to {action}, which takes no POST")
            continue
        walk.forms.setdefault(endpoint, []).append(Seen(endpoint, who, url, form))
    return [urljoin(url, link).split("#")[0] for link in page.links]


def _visit(app: Flask, walk: Walk, who: str, client: FlaskClient, starts: list[str]) -> None:
    todo = list(starts)
    seen: set[str] = set()
    per_route: dict[str, int] = {}
    while todo:
        url = todo.pop(0)
        if url in seen or not url.startswith("/") or url.startswith("//"):
            continue
        seen.add(url)
        endpoint = _html_endpoint(app, urlsplit(url).path, "GET")
        if endpoint is None:
            continue
        per_route[endpoint] = per_route.get(endpoint, 0) + 1
        if per_route[endpoint] > PAGES_PER_ROUTE:
            continue
        response = _request(client, "GET", url)
        walk.pages += 1
        if isinstance(response, str):
            walk.failures.append(f"{who}: GET {url} {response}")
            continue
        if response.status_code >= 500:
            walk.failures.append(f"{who}: GET {url} -> {response.status_code}")
        if response.status_code in {301, 302, 303, 307, 308}:
            todo.append(urljoin(url, response.headers["Location"]))
        if response.status_code == 200 and response.mimetype == "text/html":
            todo.extend(_read(app, walk, who, url, response.get_data(as_text=True)))


def _request(client: FlaskClient, method: str, url: str, **kwargs: Any) -> Any:
    """The response, or a one-line account of the exception the app let out."""
    try:
        return client.open(url, method=method, **kwargs)
    except Exception as exc:  # any exception the app lets out is the finding
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/work/" in f.filename]
        app_frames = [
            f for f in frames if "/tests/" not in f.filename and ".venv" not in f.filename
        ]
        where = app_frames[-1] if app_frames else (frames[-1] if frames else None)
        place = f" at {where.filename}:{where.lineno}" if where else ""
        return f"raised {type(exc).__name__}: {exc}"[:300] + place


def _client_for(app: Flask, who: str) -> FlaskClient:
    client = app.test_client()
    if who == "signed out":
        return client
    kind, _, user_id = who.partition(":")
    if kind == "second factor":
        with client.session_transaction() as session:
            session[PENDING_KEY] = int(user_id)
        return client
    user = db.session.get(User, int(user_id))
    assert user is not None
    return sign_in(client, user)


def _people(scene: Scene) -> dict[str, list[str]]:
    """Everyone who walks the pages, with where they start."""
    starts: dict[str, list[str]] = {}
    for user in db.session.scalars(select(User).order_by(User.id)):
        starts[f"user:{user.id}"] = ["/", "/dashboard"]
    day, start, end = scene.taken_slot
    carer = scene.people["carer"]
    starts[f"user:{carer.id}"] += [
        "/bookings/new?"
        + urlencode(
            {
                "worker_id": scene.favourite_worker.id,
                "start": start,
                "end": end,
                "postcode": carer.postcode,
                "address": "12 Demo Street, Leeds",
                "carer_id": carer.id,
            }
        )
        + f"&day={day.day}&day={day.month}&day={day.year}",
    ]
    searching = london_today(utcnow()) + timedelta(days=10)
    starts[f"user:{carer.id}"].append(
        "/workers/find?"
        + urlencode({"start": "10:00", "end": "13:00", "postcode": carer.postcode})
        + f"&day={searching.day}&day={searching.month}&day={searching.year}"
    )
    for carer_id, url in scene.card_pages.items():
        starts[f"user:{carer_id}"].append(url)
    for key in ("officer", "admin"):
        starts[f"user:{scene.people[key].id}"].append("/staff/outbox?status=dead")
    writer = scene.people["plan_writer"]
    steps = [name for name, _title, _form in STEPS]
    starts[f"user:{writer.id}"] += [f"/emergency/drafts/{scene.draft_id}/{s}" for s in steps]
    starts[f"user:{writer.id}"].append(f"/emergency/drafts/{scene.draft_id}/check")
    starts["signed out"] = [
        "/",
        "/auth/sign-in",
        "/auth/reset",
        "/workers/sign-up",
        f"/auth/reset/new-password?token={scene.reset_token}",
    ]
    starts[f"second factor:{scene.officer_setting_up_2fa.id}"] = ["/auth/second-factor/set-up"]
    starts[f"second factor:{scene.officer_at_2fa.id}"] = ["/auth/second-factor"]
    return starts


def _page_text(response: Any) -> str:
    assert not isinstance(response, str), response
    assert response.status_code == 200, response
    return str(response.get_data(as_text=True))


def _answers_to_posts(app: Flask, walk: Walk, scene: Scene) -> None:
    """Forms that only appear in answer to a POST: reach them as a person would."""
    officer = f"user:{scene.people['officer'].id}"
    client = _client_for(app, officer)
    upload = {"file": (io.BytesIO(scene.import_csv), "allocations.csv")}
    response = _request(client, "POST", "/budgets/import", data=upload)
    _read(app, walk, officer, "/budgets/import", _page_text(response))

    carer = f"user:{scene.people['carer'].id}"
    client = _client_for(app, carer)
    booking_form = next(
        seen.form
        for seen in walk.forms["bookings.new"]
        if seen.who == carer and f"worker_id={scene.favourite_worker.id}" in seen.page
    )
    data = {name: item.sent for name, item in booking_form.fields.items() if item.sent}
    response = _request(client, "POST", booking_form.action, data=data)
    _read(app, walk, carer, booking_form.action, _page_text(response))

    writer = f"user:{scene.people['plan_writer'].id}"
    client = _client_for(app, writer)
    url = f"/emergency/plans/{scene.plan_id}/cards"
    response = _request(client, "POST", url)
    _read(app, walk, writer, url, _page_text(response))


# --- fuzzing ------------------------------------------------------------------------


def _values(item: Field) -> st.SearchStrategy[Any]:
    if item.file:
        samples = [b"", PNG_1PX, b"carer_reference,period_start\n\xff\xfe,,,\n"]
        return st.one_of(st.sampled_from(samples), st.binary(max_size=300)).map(
            lambda content: (io.BytesIO(content), "upload.csv")
        )
    if item.sent or not item.choices:
        browser: st.SearchStrategy[list[str]] = st.just(item.sent)
    else:
        browser = st.sampled_from(item.choices).map(lambda value: [value])
    shape = max(1, len(item.sent))
    options = [browser]
    if item.choices:
        options.append(st.lists(st.sampled_from(item.choices), min_size=1, max_size=3))
    options.append(st.lists(NASTY, min_size=shape, max_size=shape))
    options.append(st.lists(NASTY, max_size=2))
    return st.one_of(*options)


def _row_counts() -> dict[str, int]:
    tables = Base.metadata.sorted_tables
    counts = [select(func.count()).select_from(table).scalar_subquery() for table in tables]
    row = db.session.execute(select(*counts)).one()
    db.session.remove()
    return dict(zip([table.name for table in tables], row, strict=True))


def _audit_actions_since(count: int) -> set[str]:
    actions = db.session.scalars(
        select(AuditEntry.action).order_by(AuditEntry.id).offset(count)
    ).all()
    db.session.remove()
    return set(actions)


@contextmanager
def _rolled_back() -> Iterator[None]:
    """Everything inside is undone, so each example starts from the same data."""
    db.session.remove()
    connection: Any = db.session.get_bind()
    savepoint = connection.begin_nested()
    try:
        yield
    finally:
        db.session.remove()
        savepoint.rollback()
        limiter.reset()


def _reports_an_error(response: Any, client: FlaskClient) -> bool:
    with client.session_transaction() as session:
        flashes = session.pop("_flashes", [])
    if response.status_code >= 400 or any(category == "error" for category, _ in flashes):
        return True
    if response.mimetype != "text/html":
        return False
    body = response.get_data(as_text=True)
    return any(mark in body for mark in ERROR_MARKS)


def _fuzz(app: Flask, seen: Seen) -> None:
    client = _client_for(app, seen.who)
    strategies = {name: _values(item) for name, item in seen.form.fields.items()}
    allowed = ERROR_WRITES.get(seen.endpoint, set())

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(values=st.fixed_dictionaries(strategies))
    def post(values: dict[str, Any]) -> None:
        with _rolled_back():
            data = {name: value for name, value in values.items() if value != []}
            shown = {k: (v if not isinstance(v, tuple) else "<file>") for k, v in data.items()}
            before = _row_counts()
            response = _request(client, "POST", seen.form.action, data=data)
            where = f"{seen.who} POST {seen.form.action} (form on {seen.page}) {shown!r}"
            assert not isinstance(response, str), f"{where} {response}"
            assert response.status_code < 500, f"{where} -> {response.status_code}"
            db.session.remove()  # as at the end of a real request
            if _reports_an_error(response, client):
                after = _row_counts()
                changed = {name for name in before if before[name] != after[name]} - allowed
                if "audit_entries" in changed:
                    logged = _audit_actions_since(before["audit_entries"])
                    if logged <= LOGGED_ON_ERROR:
                        changed.discard("audit_entries")
                assert not changed, (
                    f"{where} -> {response.status_code}, an error, but rows were written to "
                    f"{sorted(changed)}"
                )

    post()


def _html_post_routes(app: Flask) -> tuple[set[str], set[str]]:
    """The POST routes of the HTML blueprints: (forms, webhooks)."""
    forms, webhooks = set(), set()
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".", 1)[0]
        if "POST" not in (rule.methods or set()) or isinstance(
            app.blueprints.get(blueprint), ApiBlueprint
        ):
            continue
        (webhooks if rule.rule.startswith(WEBHOOK_PREFIXES) else forms).add(rule.endpoint)
    return forms, webhooks


@pytest.fixture
def stripe_on_loopback(app: Flask, localstripe: str) -> str:
    """Card top-ups on: the card page shows its form (Stripe is the local server)."""
    return localstripe


def test_every_form_takes_hostile_input_without_a_crash_or_a_half_written_record(
    app: Flask, stripe_on_loopback: str
) -> None:
    scene = _seed(app, utcnow())
    walk = Walk()
    for who, starts in _people(scene).items():
        _visit(app, walk, who, _client_for(app, who), starts)
    _answers_to_posts(app, walk, scene)

    routes, webhooks = _html_post_routes(app)
    assert {"payments.stripe_webhook", "phone.voice"} <= webhooks
    assert set(EXCLUDED) <= routes, f"stale exclusions: {sorted(set(EXCLUDED) - routes)}"
    covered = set(walk.forms) - set(EXCLUDED)
    missing = sorted(routes - set(EXCLUDED) - covered)
    assert missing == [], f"no form found for {missing} ({walk.pages} pages walked)"
    assert len(covered) == len(routes) - len(EXCLUDED)

    failures = list(walk.failures)
    for endpoint in sorted(covered):
        for seen in _pick(walk.forms[endpoint]):
            try:
                _fuzz(app, seen)
            except AssertionError as exc:
                failures.append(str(exc).split("\n")[0][:700])
    assert failures == [], "\n".join(failures)


def _pick(found: list[Seen]) -> list[Seen]:
    """Up to FORMS_PER_ROUTE forms, shown to different people or on different records;
    those the page filled in most first (their first example is a real submission)."""

    def filled(seen: Seen) -> int:
        return sum(any(value for value in item.sent) for item in seen.form.fields.values())

    chosen: list[Seen] = []
    for seen in sorted(found, key=filled, reverse=True):
        if any(c.who == seen.who and c.form.action == seen.form.action for c in chosen):
            continue
        chosen.append(seen)
        if len(chosen) == FORMS_PER_ROUTE:
            break
    return chosen
