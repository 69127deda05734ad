"""Pages through the test client: console, incident, guided plan form, cards, figures,
audit log. Bad input re-renders with the GOV.UK error summary and writes nothing."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from reportlab.lib.units import mm
from sqlalchemy import func, select

from app.clock import utcnow
from app.extensions import db
from app.models import AuditEntry, OutboxMessage
from app.scheduler import run_job
from booking.models.bookings import Booking
from emergency import services
from emergency.models import Incident, Plan
from tests.emergency.factories import (
    KEY_SAFE,
    SECRET_MEDICINE,
    cipher,
    make_card,
    make_plan,
    make_scene,
    make_worker_free_now,
    pin_key,
    plan_answers,
)
from tests.factories import make_user
from tests.helpers import sign_in

SUMMARY = "govuk-error-summary"


def test_console_refuses_mistyped_pin_and_opens_incident_on_hit(
    client: FlaskClient, now: datetime
) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    sign_in(client, scene.operator)
    swapped = issued.pin[:6] + issued.pin[7] + issued.pin[6]
    if swapped == issued.pin:
        swapped = issued.pin[:7] + str((int(issued.pin[7]) + 1) % 10)
    page = client.post("/emergency/console", data={"pin": swapped})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert SUMMARY in html
    assert "mistyped" in html
    assert db.session.scalar(select(func.count(Incident.id))) == 0
    empty = client.post("/emergency/console", data={"pin": ""})
    assert SUMMARY in empty.get_data(as_text=True)
    hit = client.post("/emergency/console", data={"pin": issued.pin})
    assert hit.status_code == 302
    assert issued.pin not in hit.headers["Location"]
    incident_page = client.get(hit.headers["Location"])
    html = incident_page.get_data(as_text=True)
    # The order an operator needs: at risk, getting in, medication, contacts.
    positions = [
        html.index(h)
        for h in ("Who is at risk now", "How to get in", "Medication", "Who to call, in order")
    ]
    assert positions == sorted(positions)
    assert SECRET_MEDICINE in html
    assert KEY_SAFE not in html
    listing = client.get("/emergency/incidents").get_data(as_text=True)
    assert "Incident" in listing
    assert "0 h 0 min" in listing


def test_key_safe_reveal_is_audited_and_only_while_open(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    sign_in(client, scene.operator)
    location = client.post("/emergency/console", data={"pin": issued.pin}).headers["Location"]
    incident_id = int(location.rstrip("/").rsplit("/", 1)[1])
    page = client.post(f"/emergency/incidents/{incident_id}/key-safe")
    assert KEY_SAFE in page.get_data(as_text=True)
    reveal = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "emergency.key_safe_revealed")
    )
    assert reveal is not None
    assert reveal.actor_id == scene.operator.id
    assert reveal.reason == f"incident {incident_id}"
    bad_close = client.post(f"/emergency/incidents/{incident_id}/close", data={"outcome": ""})
    assert SUMMARY in bad_close.get_data(as_text=True)
    client.post(f"/emergency/incidents/{incident_id}/close", data={"outcome": "Daughter arrived"})
    after = client.post(f"/emergency/incidents/{incident_id}/key-safe", follow_redirects=True)
    assert KEY_SAFE not in after.get_data(as_text=True)


def test_incident_page_actions(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    worker = make_worker_free_now(scene.council, now=now, name="Priya Worker")
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    sign_in(client, scene.operator)
    location = client.post("/emergency/console", data={"pin": issued.pin}).headers["Location"]
    incident_id = int(location.rstrip("/").rsplit("/", 1)[1])
    before = client.get(location).get_data(as_text=True)
    assert "Priya Worker" in before
    assert "Free now" in before
    client.post(
        f"/emergency/incidents/{incident_id}/events",
        data={"kind": "handover", "text": "Night shift: daughter on her way"},
    )
    client.post(f"/emergency/incidents/{incident_id}/cascade")
    client.post(
        f"/emergency/incidents/{incident_id}/arrange-care", data={"worker_id": str(worker.id)}
    )
    html = client.get(location).get_data(as_text=True)
    assert "Handover notes" in html
    assert "daughter on her way" in html
    assert "Free replacement care ends" in html
    assert "Priya Worker" in html
    assert scene.council.duty_team_phone in html
    incident = db.session.get(Incident, incident_id)
    assert incident is not None
    assert incident.cascade_status.value == "running"
    assert incident.booking_id is not None
    assert f"booking {incident.booking_id}" in html
    client.post(f"/emergency/incidents/{incident_id}/care-arrived")
    assert "care_arrived" in [e.kind for e in services.events_of(incident)]


def test_guided_plan_form_with_check_your_answers(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    sign_in(client, scene.writer)
    start = client.post("/emergency/plans/new")
    assert start.status_code == 302
    person_url = start.headers["Location"]
    bad = client.post(
        person_url,
        data={
            "carer_id": "0",
            "name": "",
            "date_of_birth": "31 2 1940",
            "address": "",
            "postcode": "",
        },
    )
    assert SUMMARY in bad.get_data(as_text=True)
    base = person_url.rsplit("/", 1)[0]
    pages = {
        "person": {
            "carer_id": str(scene.carer.id),
            "name": "Joan Test",
            "date_of_birth": "3 4 1941",
            "address": "2 Road",
            "postcode": "ls6 2ab",
            "safe_alone": "Half an hour at most",
        },
        "access": {
            "key_safe_code": "5555",
            "key_safe_location": "Porch",
            "key_holder": "Mrs Patel at number 4",
            "notes": "Side gate sticks",
        },
        "needs": {"personal_care": "Help with washing", "faith_culture": "Halal food"},
        "medication": {
            "med1_name": "Aspirin",
            "med1_dose": "75 mg",
            "med1_times": "With breakfast",
            "med1_managed_by": "District nurse fills the dosette",
            "med1_stored_where": "Kitchen cupboard",
            "allergies": "Latex",
            "gp": "Hyde Park Surgery, 0113 496 0000",
            "professionals": "Social worker Dev Shah",
        },
        "contacts": {
            "c1_name": "Kim",
            "c1_relationship": "Son",
            "c1_phone": "07911 123456",
            "c1_availability": "Evenings and weekends",
            "c1_can_step_in": "y",
            "c1_has_key": "y",
            "c1_consent": "y",
            "c2_name": "Lee",
            "c2_relationship": "Neighbour",
            "c2_phone": "07911 123457",
            "c2_availability": "Weekdays 9 to 5",
            "c2_consent": "y",
        },
        "care": {"arrangements": "Home care", "hours": "48"},
        "consent": {
            "carer": "y",
            "cared_for": "best_interests",
            "best_interests_record": "MCA assessment by Dr Rao on 30 Oct: lacks capacity",
            "recorded_by": "Rita",
            "recorded_on": "1 11 2026",
        },
    }
    for step, data in pages.items():
        response = client.post(f"{base}/{step}", data=data)
        assert response.status_code == 302, (step, response.get_data(as_text=True)[:3000])
    check = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Check your answers" in check
    shown = [
        "Joan Test",
        "3 April 1941",
        "Half an hour at most",
        "Mrs Patel at number 4",
        "Side gate sticks",
        "Halal food",
        "With breakfast",
        "District nurse fills the dosette",
        "Kitchen cupboard",
        "Latex",
        "Hyde Park Surgery, 0113 496 0000",
        "Social worker Dev Shah",
        "Kim (Son)",
        "Evenings and weekends",
        "Lee (Neighbour)",
        "Weekdays 9 to 5",
        "Up to 48 hours",
        "Cannot decide: a best-interests decision was made",
        "MCA assessment by Dr Rao on 30 Oct: lacks capacity",
        "Rita on 1 November 2026",
    ]
    assert [text for text in shown if text not in check] == []
    assert "5555" not in check  # the key-safe code stays locked, even here
    # Per contact: can step in, holds a key, agreed to be named (Kim yes, yes; Lee no, no).
    kim = check[check.index("Kim (Son)") : check.index("Lee (Neighbour)")]
    lee = check[check.index("Lee (Neighbour)") :]
    assert "Can step in and care" in kim
    assert "Holds a key" in kim
    assert "Agreed to be named in this plan" in kim
    assert "Cannot step in" in lee
    assert "Does not hold a key" in lee
    assert "Agreed to be named in this plan" in lee
    assert "Test plan for drills" in check
    saved = client.post(response.headers["Location"])
    assert saved.status_code == 302
    plan = db.session.scalar(select(Plan).where(Plan.carer_id == scene.carer.id))
    assert plan is not None
    assert plan.is_test is False
    assert plan.review_due.year == 2027 or plan.review_due > now.date()
    view = services.view_plan(plan, viewer=scene.writer, cipher=cipher(), now=now)
    details = view.details
    assert details["cared_for"]["postcode"] == "LS6 2AB"
    assert details["cared_for"]["safe_alone"] == "Half an hour at most"
    assert details["access"]["key_holder"] == "Mrs Patel at number 4"
    assert details["needs"]["faith_culture"] == "Halal food"
    assert details["medication"][0]["managed_by"] == "District nurse fills the dosette"
    assert details["medication"][0]["stored_where"] == "Kitchen cupboard"
    assert details["gp"] == "Hyde Park Surgery, 0113 496 0000"
    assert details["professionals"] == "Social worker Dev Shah"
    assert details["best_interests_record"].startswith("MCA assessment by Dr Rao")
    assert view.version.consent_cared_for == "best_interests"
    contacts = services.plan_contacts(plan)
    assert [(c.phone, c.can_step_in, c.has_key, c.availability, c.consent) for c in contacts] == [
        ("+447911123456", True, True, "Evenings and weekends", True),
        ("+447911123457", False, False, "Weekdays 9 to 5", True),
    ]


def test_check_answers_shows_service_errors(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    sign_in(client, scene.writer)
    base = client.post("/emergency/plans/new").headers["Location"].rsplit("/", 1)[0]
    client.post(
        f"{base}/person",
        data={
            "carer_id": str(scene.carer.id),
            "name": "Joan",
            "date_of_birth": "3 4 1941",
            "address": "2 Road",
            "postcode": "LS6 2AB",
        },
    )
    client.post(
        f"{base}/contacts",
        data={"c1_name": "Kim", "c1_relationship": "Son", "c1_phone": "07911 123456"},
    )
    page = client.post(f"{base}/check")
    html = page.get_data(as_text=True)
    assert SUMMARY in html
    assert "agreed to be named" in html
    assert (
        db.session.scalar(select(func.count(Plan.id)).where(Plan.carer_id == scene.carer.id)) == 0
    )


def test_card_issue_shows_pin_once_and_pdf_is_credit_card_size(
    client: FlaskClient, now: datetime
) -> None:
    scene = make_scene()
    plan = make_plan(scene, now=now)
    sign_in(client, scene.writer)
    page = client.post(f"/emergency/plans/{plan.id}/cards")
    html = page.get_data(as_text=True)
    card = services.cards_of(plan)[0]
    pin = re.search(r'name="pin" value="(\d{8})"', html).group(1)  # type: ignore[union-attr]
    assert "only time the PIN is shown" in html
    assert pin not in client.get(f"/emergency/plans/{plan.id}").get_data(as_text=True)
    pdf = client.post(f"/emergency/cards/{card.id}/pdf", data={"pin": pin})
    assert pdf.mimetype == "application/pdf"
    raw = pdf.data.decode("latin-1")
    assert len(re.findall(r"/Type /Page\b", raw)) == 2  # front and back
    box = re.search(r"/MediaBox \[ 0 0 ([\d.]+) ([\d.]+) \]", raw)
    assert box is not None
    assert abs(float(box.group(1)) - 85.6 * mm) < 0.5
    assert abs(float(box.group(2)) - 54 * mm) < 0.5
    text = raw
    assert f"({pin[:4]} {pin[4:]})" in text
    assert "(Test Carers' Emergency Card)" in text  # the scheme's name …
    assert "(0800 098 8234)" in text  # … and its 24-hour number (+448000988234)
    assert "(In an emergency call \\(24 hours\\):)" in text
    assert "Margaret" not in text
    assert scene.carer.name not in text
    assert (
        client.post(f"/emergency/cards/{card.id}/pdf", data={"pin": "12345678"}).status_code == 404
    )
    client.post(f"/emergency/cards/{card.id}/lost")
    assert card.status.value == "lost"


def test_audit_search_and_figures(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    plan = make_plan(scene, now=now)
    services.view_plan(plan, viewer=scene.writer, cipher=cipher(), now=now)
    incident = services.lookup_pin(
        make_card(scene, plan, now=now).pin,
        channel="console",
        operator=scene.operator,
        caller_number=None,
        ip_address=None,
        pin_key=pin_key(),
        now=now,
    ).incident
    services.record_call_timing(
        incident, started_at=now - timedelta(seconds=90), answered_at=now - timedelta(seconds=20)
    )
    sign_in(client, scene.officer)
    html = client.get("/emergency/audit?action=emergency.plan_viewed&person=Rita").get_data(
        as_text=True
    )
    assert "emergency.plan_viewed" in html
    assert "emergency.pin_lookup_hit" not in html
    by_operator = client.get("/emergency/audit?person=Omar").get_data(as_text=True)
    assert "emergency.pin_lookup_hit" in by_operator
    bad = client.get("/emergency/audit?date_from=99+99+2026").get_data(as_text=True)
    assert SUMMARY in bad
    csv = client.get("/emergency/figures.csv").get_data(as_text=True)
    lines = csv.strip().splitlines()
    assert lines[0].startswith("week_start,incidents,calls,answered_within_60s_percent")
    assert lines[1].split(",")[1:5] == ["1", "1", "0.0", "100.0"]
    assert "below target" in client.get("/emergency/figures").get_data(as_text=True)


def test_carer_prints_own_plan(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    make_plan(scene, now=now)
    sign_in(client, scene.carer)
    html = client.get("/emergency/my-plan").get_data(as_text=True)
    assert SECRET_MEDICINE in html
    assert KEY_SAFE not in html


def test_plan_writer_edits_a_plan_into_a_new_version(client: FlaskClient, now: datetime) -> None:
    """Edit starts a draft from the current answers; saving makes version 2 and keeps 1."""
    from emergency.models import PlanVersion
    from emergency.services.plans import current_version

    scene = make_scene()
    plan = make_plan(scene, now=now)
    first = current_version(plan)
    sign_in(client, scene.writer)
    started = client.post(f"/emergency/plans/{plan.id}/edit")
    assert started.status_code == 302
    person_url = started.headers["Location"]
    prefilled = client.get(person_url).get_data(as_text=True)
    assert "Margaret" in prefilled  # the current answers, ready to change
    base = person_url.rsplit("/", 1)[0]
    changed = client.post(f"{base}/needs", data={"personal_care": "Needs two people to stand"})
    assert changed.status_code == 302
    check = client.get(f"{base}/check").get_data(as_text=True)
    assert "Needs two people to stand" in check
    assert client.post(f"{base}/check").status_code == 302
    db.session.refresh(plan)
    latest = current_version(plan)
    assert latest.id != first.id
    assert latest.number == first.number + 1
    versions = db.session.scalar(
        select(func.count(PlanVersion.id)).where(PlanVersion.plan_id == plan.id)
    )
    assert versions == 2
    view = services.view_plan(plan, viewer=scene.writer, cipher=cipher(), now=now)
    assert view.details["needs"]["personal_care"] == "Needs two people to stand"
    page = client.get(f"/emergency/plans/{plan.id}/print").get_data(as_text=True)
    assert "Needs two people to stand" in page
    assert KEY_SAFE not in page


def test_reissue_and_revoke_cards_on_the_plan_page(client: FlaskClient, now: datetime) -> None:
    """A new card cancels the old one; a cancelled card gets 'card cancelled' on the console."""
    scene = make_scene()
    plan = make_plan(scene, now=now)
    old = make_card(scene, plan, now=now)
    sign_in(client, scene.writer)
    html = client.post(f"/emergency/plans/{plan.id}/cards").get_data(as_text=True)
    new_pin = re.search(r'name="pin" value="(\d{8})"', html).group(1)  # type: ignore[union-attr]
    cards = {card.id: card for card in services.cards_of(plan)}
    assert cards[old.card.id].status.value == "revoked"
    live = [card for card in cards.values() if card.status.value == "live"]
    assert len(live) == 1
    revoked = client.post(f"/emergency/cards/{live[0].id}/revoke")
    assert revoked.status_code == 302
    assert live[0].status.value == "revoked"
    assert "will not work any more" in client.get(revoked.headers["Location"]).get_data(
        as_text=True
    )

    sign_in(client, scene.operator)
    for pin in (old.pin, new_pin):
        page = client.post("/emergency/console", data={"pin": pin})
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert SUMMARY in text
        assert "cancelled" in text
    assert db.session.scalar(select(func.count(Incident.id))) == 0


def test_operator_confirms_a_contact_and_closes_with_an_outcome(
    client: FlaskClient, now: datetime
) -> None:
    scene = make_scene()
    plan = make_plan(scene, now=now)
    issued = make_card(scene, plan, now=now)
    sign_in(client, scene.operator)
    location = client.post("/emergency/console", data={"pin": issued.pin}).headers["Location"]
    incident_id = int(location.rstrip("/").rsplit("/", 1)[1])
    client.post(f"/emergency/incidents/{incident_id}/cascade")
    second = services.plan_contacts(plan)[1]
    confirmed = client.post(f"/emergency/incidents/{incident_id}/contacts/{second.id}/confirm")
    assert confirmed.status_code == 302
    incident = db.session.get(Incident, incident_id)
    assert incident is not None
    assert incident.confirmed_contact_id == second.id
    assert incident.cascade_status.value == "confirmed"
    assert second.name in client.get(location).get_data(as_text=True)

    other_scene = make_scene()
    stranger = services.plan_contacts(make_plan(other_scene, now=now))[0]
    client.post(f"/emergency/incidents/{incident_id}/contacts/{stranger.id}/confirm")
    assert incident.confirmed_contact_id == second.id

    no_outcome = client.post(f"/emergency/incidents/{incident_id}/close", data={"outcome": ""})
    assert SUMMARY in no_outcome.get_data(as_text=True)
    assert incident.status.value == "open"
    closed = client.post(
        f"/emergency/incidents/{incident_id}/close",
        data={"outcome": "Son staying for three days; carer home on Friday"},
    )
    assert closed.status_code == 302
    db.session.refresh(incident)
    assert incident.status.value == "closed"
    assert "Son staying" in (incident.outcome or "")
    assert f"/emergency/incidents/{incident_id}" not in client.get("/emergency/incidents").get_data(
        as_text=True
    )


def _plan_on_pages(client: FlaskClient, scene: Any, *, is_test: bool, contacts: int = 3) -> Plan:
    """A plan writer (signed in) fills the guided form and saves it; the new plan."""
    base = client.post("/emergency/plans/new").headers["Location"].rsplit("/", 1)[0]
    person = {
        "carer_id": str(scene.carer.id),
        "name": "Joan Drill",
        "date_of_birth": "3 4 1941",
        "address": "2 Road",
        "postcode": "LS6 2AB",
    }
    if is_test:
        person["is_test"] = "y"
    people: dict[str, str] = {}
    for row in range(1, contacts + 1):
        people |= {
            f"c{row}_name": f"Real Person {row}",
            f"c{row}_relationship": "Friend",
            f"c{row}_phone": f"07911 12345{row}",
            f"c{row}_can_step_in": "y",
            f"c{row}_consent": "y",
        }
    pages = {
        "person": person,
        "contacts": people,
        "consent": {
            "carer": "y",
            "cared_for": "yes",
            "recorded_by": "Rita",
            "recorded_on": "1 11 2026",
        },
    }
    for step, data in pages.items():
        response = client.post(f"{base}/{step}", data=data)
        assert response.status_code == 302, (step, response.get_data(as_text=True)[:2000])
    assert client.post(f"{base}/check").status_code == 302
    plan = db.session.scalar(
        select(Plan).where(Plan.carer_id == scene.carer.id).order_by(Plan.id.desc())
    )
    assert plan is not None
    return plan


def test_a_test_plan_made_on_the_form_runs_a_drill_that_contacts_nobody_real(
    client: FlaskClient, now: datetime
) -> None:
    """The drill box on the plan form → a test plan → its card opens a drill: the cascade
    job runs to the end, yet no SMS or call goes out, nobody is booked, and the figures
    leave it out."""
    scene = make_scene(timeout_minutes=10)
    make_worker_free_now(scene.council, now=now)
    sign_in(client, scene.writer)
    plan = _plan_on_pages(client, scene, is_test=True)
    assert plan.is_test is True
    assert "test plan for drills" in client.get(f"/emergency/plans/{plan.id}").get_data(
        as_text=True
    )
    issued = client.post(f"/emergency/plans/{plan.id}/cards").get_data(as_text=True)
    pin = re.search(r'name="pin" value="(\d{8})"', issued).group(1)  # type: ignore[union-attr]
    assert services.cards_of(plan)[0].is_test is True

    sign_in(client, scene.operator)
    location = client.post("/emergency/console", data={"pin": pin}).headers["Location"]
    incident_id = int(location.rstrip("/").rsplit("/", 1)[1])
    incident = db.session.get(Incident, incident_id)
    assert incident is not None
    assert incident.is_drill is True
    assert "DRILL: nobody real is contacted" in client.get(location).get_data(as_text=True)
    client.post(f"/emergency/incidents/{incident_id}/cascade")
    started = utcnow()
    for minutes in (1, 11, 12, 22, 23, 33, 34):
        run_job("emergency_cascade", started + timedelta(minutes=minutes))
        run_job("phone_cascade_calls", started + timedelta(minutes=minutes))
    db.session.refresh(incident)
    assert incident.cascade_status.value == "exhausted"  # the whole path ran
    assert incident.care_arranged_at is not None
    assert db.session.scalars(select(OutboxMessage)).all() == []  # no SMS, no call, no e-mail
    assert db.session.scalar(select(func.count(Booking.id))) == 0
    drills = [e.text for e in services.events_of(incident) if e.kind == "drill_message"]
    assert any("Real Person 3" in text for text in drills)

    sign_in(client, scene.officer)
    csv_lines = client.get("/emergency/figures.csv").get_data(as_text=True).splitlines()
    assert csv_lines[1].split(",")[1:3] == ["0", "0"]  # no incident, no call this week


# --- the same number of queries however much there is to show ------------------------


def _queries(client: FlaskClient, url: str, sql_count: list[str]) -> list[str]:
    """The SQL one GET runs, starting from an empty session (nothing cached)."""
    db.session.expunge_all()
    start = len(sql_count)
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return sql_count[start:]


def _timeline_by_new_operators(incident_id: int, council_id: int, count: int) -> None:
    from app.models import Council, Role

    council = db.session.get(Council, council_id)
    incident = db.session.get(Incident, incident_id)
    assert council is not None
    assert incident is not None
    for n in range(count):
        person = make_user(Role.OPERATOR, council=council, name=f"Night Operator {n}")
        services.record_operator_event(
            incident, kind="note", text=f"Rang the GP ({n})", operator=person, now=utcnow()
        )


def test_incident_page_and_its_live_part_run_a_fixed_number_of_queries(
    client: FlaskClient, now: datetime, sql_count: list[str]
) -> None:
    """Timeline actors are loaded in one go; the self-updating part is no plan view (no
    audit entry), runs no worker search and holds no plan details."""
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    sign_in(client, scene.operator)
    location = client.post("/emergency/console", data={"pin": issued.pin}).headers["Location"]
    incident_id = int(location.rstrip("/").rsplit("/", 1)[1])
    council_id = scene.council.id
    live = f"{location}?live=1"
    _timeline_by_new_operators(incident_id, council_id, 2)
    client.get(location)  # warm up: the first request of a test loads more
    page_few, live_few = _queries(client, location, sql_count), _queries(client, live, sql_count)
    _timeline_by_new_operators(incident_id, council_id, 12)
    page_many, live_many = _queries(client, location, sql_count), _queries(client, live, sql_count)
    assert len(page_many) == len(page_few)
    assert len(live_many) == len(live_few)
    assert len(live_few) < len(page_few)
    assert not [s for s in live_many if "worker_profiles" in s]  # no search for workers
    assert [s for s in page_many if "worker_profiles" in s]  # the full page still offers it

    def plan_views() -> int:
        return len(
            db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "emergency.plan_viewed")
            ).all()
        )

    before = plan_views()
    fragment = client.get(live).get_data(as_text=True)
    assert plan_views() == before  # a refresh of the live part is not a plan view
    assert 'id="incident-live"' in fragment
    assert "Night Operator 11" in fragment
    assert SECRET_MEDICINE not in fragment
    assert "Margaret" not in fragment
    page = client.get(location).get_data(as_text=True)
    assert plan_views() == before + 1  # every view of the plan itself is audited
    assert f'data-app-refresh-url="/emergency/incidents/{incident_id}?live=1"' in page


def test_audit_log_and_plans_list_run_a_fixed_number_of_queries(
    client: FlaskClient, now: datetime, sql_count: list[str]
) -> None:
    from app.models import Council, Role, User

    scene = make_scene()
    council_id = scene.council.id
    officer_id = scene.officer.id

    def more_plans(count: int) -> None:
        council = db.session.get(Council, council_id)
        writer = db.session.scalar(
            select(User).where(User.council_id == council_id, User.name == "Rita Writer")
        )
        assert council is not None
        assert writer is not None
        for _ in range(count):
            carer = make_user(Role.CARER, council=council)
            plan = services.create_plan(
                council=council,
                carer=carer,
                writer=writer,
                answers=plan_answers(1),
                cipher=cipher(),
                now=now,
            )
            viewer = make_user(Role.PLAN_WRITER, council=council)
            services.view_plan(plan, viewer=viewer, cipher=cipher(), now=now)

    more_plans(2)
    officer = db.session.get(User, officer_id)
    assert officer is not None
    sign_in(client, officer)
    client.get("/emergency/plans")  # warm up
    plans_few = _queries(client, "/emergency/plans", sql_count)
    audit_few = _queries(client, "/emergency/audit", sql_count)
    more_plans(8)
    plans_many = _queries(client, "/emergency/plans", sql_count)
    audit_many = _queries(client, "/emergency/audit", sql_count)
    assert len(plans_many) == len(plans_few)
    assert len(audit_many) == len(audit_few)
    listing = client.get("/emergency/plans").get_data(as_text=True)
    assert listing.count('href="/emergency/plans/') == 10


def test_plans_list_flags_overdue_reviews(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    overdue = make_plan(scene, now=now)
    overdue.review_due = (now - timedelta(days=3)).date()  # a year on, not reviewed
    current = make_plan(scene, now=now)
    db.session.commit()
    sign_in(client, scene.writer)
    html = client.get("/emergency/plans").get_data(as_text=True)
    rows = {
        plan.id: html[html.index(f">Plan {plan.id}<") :].split("</tr>", 1)[0]
        for plan in (overdue, current)
    }
    assert "Overdue" in rows[overdue.id]
    assert "govuk-tag--red" in rows[overdue.id]
    assert "Overdue" not in rows[current.id]


def test_key_safe_code_shown_to_a_writer_editing_a_plan_is_audited(
    client: FlaskClient, now: datetime
) -> None:
    """The "Getting in" page of an edit shows the plan's key-safe code so it can be kept
    or changed: each showing is audited (who, which plan, "editing plan"). A new plan's
    draft is not a plan yet, and the code stays locked on every other page."""
    scene = make_scene()
    plan = make_plan(scene, now=now)
    sign_in(client, scene.writer)

    def reveals() -> list[AuditEntry]:
        return list(
            db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "emergency.key_safe_revealed")
            )
        )

    base = client.post(f"/emergency/plans/{plan.id}/edit").headers["Location"].rsplit("/", 1)[0]
    assert KEY_SAFE not in client.get(f"{base}/person").get_data(as_text=True)
    assert reveals() == []
    access = client.get(f"{base}/access").get_data(as_text=True)
    assert KEY_SAFE in access
    [entry] = reveals()
    assert entry.actor_id == scene.writer.id
    assert (entry.subject_type, entry.subject_id) == ("Plan", plan.id)
    assert entry.reason == "editing plan"
    assert entry.council_id == scene.council.id
    for page in (f"{base}/check", f"/emergency/plans/{plan.id}"):
        assert KEY_SAFE not in client.get(page).get_data(as_text=True)
    assert len(reveals()) == 1

    fresh = client.post("/emergency/plans/new").headers["Location"].rsplit("/", 1)[0]
    client.post(f"{fresh}/access", data={"key_safe_code": "1234"})
    assert "1234" in client.get(f"{fresh}/access").get_data(as_text=True)
    assert len(reveals()) == 1


def test_starting_an_edit_is_an_audited_plan_view(client: FlaskClient, now: datetime) -> None:
    """The edit's pages show the whole plan, so starting one is audited like any view."""
    scene = make_scene()
    plan = make_plan(scene, now=now)
    sign_in(client, scene.writer)
    assert client.post(f"/emergency/plans/{plan.id}/edit").status_code == 302
    [entry] = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "emergency.plan_viewed")
    ).all()
    assert entry.actor_id == scene.writer.id
    assert (entry.subject_type, entry.subject_id) == ("Plan", plan.id)
    assert entry.reason == "editing plan"
    assert entry.details["version"] == plan.current_version
