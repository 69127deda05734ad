"""The emergency endpoints of api.md: paths, fields, statuses, error codes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, OutboxMessage
from app.scheduler import run_job
from booking.models.bookings import Booking
from emergency import services
from emergency.models import CascadeStatus, Incident, Plan
from tests.emergency.factories import SECRET_MEDICINE, make_plan, make_scene, make_worker_free_now
from tests.helpers import bearer, error_of


def _body(carer_id: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "carer_id": carer_id,
        "cared_for": {
            "name": "Margaret Example",
            "date_of_birth": "1940-02-29",
            "address": "1 Test Road, Leeds",
            "needs": "Help to wash and dress",
            "medication": [{"name": SECRET_MEDICINE, "dose": "5 mg", "times": "8am"}],
            "allergies": "None known",
            "communication": "Speak slowly",
            "routines": "Bed at 9",
            "gp": "Test Surgery",
        },
        "contacts": [
            {
                "name": "Helen",
                "relationship": "Daughter",
                "phone": "07911 123456",
                "can_step_in": True,
                "has_key": True,
            }
        ],
        "replacement_care": {"hours": 48},
        "consent": {
            "carer": True,
            "cared_for": "best_interests",
            "best_interests_record": "MCA assessment by GP, 1 Nov",
            "recorded_by": "Rita",
            "recorded_on": "2026-11-01",
        },
    }
    body.update(changes)
    return body


def test_full_api_path(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    writer = bearer(scene.writer)
    operator = bearer(scene.operator)
    created = client.post("/api/v1/emergency/plans", json=_body(scene.carer.id), headers=writer)
    assert created.status_code == 201, created.get_json()
    plan = created.get_json()
    assert plan["version"] == 1
    assert plan["review_due"]
    updated = client.put(
        f"/api/v1/emergency/plans/{plan['id']}", json=_body(scene.carer.id), headers=writer
    )
    assert updated.status_code == 200
    assert updated.get_json()["version"] == 2
    card = client.post(f"/api/v1/emergency/plans/{plan['id']}/cards", headers=writer)
    assert card.status_code == 201
    pin = card.get_json()["pin"]
    assert len(pin) == 8
    found = client.post("/api/v1/emergency/lookup", json={"pin": pin}, headers=operator)
    assert found.status_code == 200, found.get_json()
    payload = found.get_json()
    assert payload["card_id"] == card.get_json()["card_id"]
    assert payload["plan"]["version"] == 2
    assert payload["plan"]["medication"][0]["name"] == SECRET_MEDICINE
    assert "key_safe_code" not in payload["plan"]["access"]
    assert payload["plan"]["contacts"][0]["phone"] == "+447911123456"
    incident_id = payload["incident_id"]
    event = client.post(
        f"/api/v1/emergency/incidents/{incident_id}/events",
        json={"kind": "call", "text": "Called Helen"},
        headers=operator,
    )
    assert event.status_code == 201
    bad = client.post(
        f"/api/v1/emergency/incidents/{incident_id}/events",
        json={"kind": "party", "text": "x"},
        headers=operator,
    )
    assert bad.status_code == 422
    assert error_of(bad)["code"] == "validation_failed"
    detail = client.get(f"/api/v1/emergency/incidents/{incident_id}", headers=operator).get_json()
    assert detail["status"] == "open"
    assert detail["plan_id"] == plan["id"]
    assert "call" in [e["kind"] for e in detail["events"]]
    closed = client.post(
        f"/api/v1/emergency/incidents/{incident_id}/close",
        json={"outcome": "Helen is caring"},
        headers=operator,
    )
    assert closed.status_code == 200
    assert closed.get_json()["status"] == "closed"
    again = client.post(
        f"/api/v1/emergency/incidents/{incident_id}/close", json={"outcome": "x"}, headers=operator
    )
    assert again.status_code == 409
    revoked = client.post(
        f"/api/v1/emergency/cards/{card.get_json()['card_id']}/revoke", headers=writer
    )
    assert revoked.get_json() == {"status": "revoked"}


def test_bad_plan_is_422_with_fields(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    body = _body(scene.carer.id)
    body["contacts"][0]["phone"] = "not a phone"
    body["consent"]["carer"] = False
    response = client.post("/api/v1/emergency/plans", json=body, headers=bearer(scene.writer))
    assert response.status_code == 422
    fields = error_of(response)["fields"]
    assert "contacts.0.phone" in fields
    assert "consent.carer" in fields


def test_other_councils_records_are_404(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    other = make_scene()
    created = client.post(
        "/api/v1/emergency/plans", json=_body(scene.carer.id), headers=bearer(scene.writer)
    )
    plan_id = created.get_json()["id"]
    response = client.post(f"/api/v1/emergency/plans/{plan_id}/cards", headers=bearer(other.writer))
    assert response.status_code == 404
    wrong_carer = client.post(
        "/api/v1/emergency/plans", json=_body(scene.carer.id), headers=bearer(other.writer)
    )
    assert wrong_carer.status_code == 422


def _contacts(*consents: bool | None) -> list[dict[str, Any]]:
    """Contacts in the shape of api.md; `None` leaves `consent` out, as api.md does."""
    people = []
    for n, consent in enumerate(consents, start=1):
        person: dict[str, Any] = {
            "name": f"Contact {n}",
            "relationship": "Friend",
            "phone": f"07911 12345{n}",
            "can_step_in": True,
            "has_key": False,
        }
        if consent is not None:
            person["consent"] = consent
        people.append(person)
    return people


def _sms_to(phone: str) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.recipient == phone, OutboxMessage.kind == "sms"
            )
        )
    )


def _open_incident(client: FlaskClient, scene: Any, body: dict[str, Any]) -> Incident:
    created = client.post("/api/v1/emergency/plans", json=body, headers=bearer(scene.writer))
    assert created.status_code == 201, created.get_json()
    card = client.post(
        f"/api/v1/emergency/plans/{created.get_json()['id']}/cards", headers=bearer(scene.writer)
    )
    found = client.post(
        "/api/v1/emergency/lookup",
        json={"pin": card.get_json()["pin"]},
        headers=bearer(scene.operator),
    )
    assert found.status_code == 200, found.get_json()
    incident = db.session.get(Incident, found.get_json()["incident_id"])
    assert incident is not None
    return incident


def test_contact_confirmed_by_the_api_stops_the_cascade(client: FlaskClient, now: datetime) -> None:
    """An operator's `contact_confirmed` (the body of api.md, no contact named) stops the
    cascade like a YES by SMS: the jobs text nobody else and book no care."""
    scene = make_scene(timeout_minutes=10)
    make_worker_free_now(scene.council, now=now)  # someone the job could book
    incident = _open_incident(
        client, scene, _body(scene.carer.id, contacts=_contacts(None, None, None))
    )
    contacts = services.plan_contacts(incident.plan)
    services.start_cascade(incident, now=now)
    assert [len(_sms_to(c.phone)) for c in contacts] == [1, 0, 0]
    confirmed = client.post(
        f"/api/v1/emergency/incidents/{incident.id}/events",
        json={"kind": "contact_confirmed", "text": "Contact 1 rang back: on her way"},
        headers=bearer(scene.operator),
    )
    assert confirmed.status_code == 201, confirmed.get_json()
    assert confirmed.get_json()["kind"] == "contact_confirmed"
    db.session.refresh(incident)
    assert incident.cascade_status is CascadeStatus.CONFIRMED
    assert incident.confirmed_contact_id == contacts[0].id
    for minutes in (11, 22, 33, 44, 120):
        run_job("emergency_cascade", now + timedelta(minutes=minutes))
    assert [len(_sms_to(c.phone)) for c in contacts] == [1, 0, 0]
    db.session.refresh(incident)
    assert incident.care_arranged_at is None
    assert incident.booking_id is None
    assert db.session.scalar(select(func.count(Booking.id))) == 0
    assert "agreed to step in" in _sms_to(scene.carer.phone)[0].payload["body"]


def test_contact_confirmed_names_the_contact_or_is_refused(
    client: FlaskClient, now: datetime
) -> None:
    """Naming the contact works before the cascade starts (it then never starts); a
    contact of another plan is refused with the field named."""
    scene = make_scene(timeout_minutes=10)
    incident = _open_incident(client, scene, _body(scene.carer.id, contacts=_contacts(None, None)))
    second = services.plan_contacts(incident.plan)[1]
    stranger = services.plan_contacts(make_plan(make_scene(), now=now))[0]
    url = f"/api/v1/emergency/incidents/{incident.id}/events"
    refused = client.post(
        url,
        json={"kind": "contact_confirmed", "text": "x", "contact_id": stranger.id},
        headers=bearer(scene.operator),
    )
    assert refused.status_code == 422
    assert "contact_id" in error_of(refused)["fields"]
    ok = client.post(
        url,
        json={"kind": "contact_confirmed", "text": "Contact 2 is going", "contact_id": second.id},
        headers=bearer(scene.operator),
    )
    assert ok.status_code == 201
    db.session.refresh(incident)
    assert incident.confirmed_contact_id == second.id
    services.start_cascade(incident, now=now)
    run_job("emergency_cascade", now + timedelta(minutes=30))
    assert (
        db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient != scene.carer.phone)
        ).all()
        == []
    )


def test_contact_consent_in_the_api_and_the_cascade_skips_who_has_not_agreed(
    client: FlaskClient, now: datetime
) -> None:
    """`consent: false` keeps the contact but the cascade never messages them; an
    omitted `consent` (api.md) is recorded as given, vouched for by the plan writer."""
    scene = make_scene(timeout_minutes=10)
    body = _body(scene.carer.id, contacts=_contacts(False, None, True))
    created = client.post("/api/v1/emergency/plans", json=body, headers=bearer(scene.writer))
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["contacts_without_consent"] == [1]
    plan = db.session.get(Plan, created.get_json()["id"])
    assert plan is not None
    contacts = services.plan_contacts(plan)
    assert [c.consent for c in contacts] == [False, True, True]
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "emergency.plan_created")
    )
    assert entry is not None
    assert entry.actor_id == scene.writer.id
    assert entry.details["contact_consent_by_default"] == [2]
    assert entry.details["contact_consent_recorded_by"] == scene.writer.name
    assert entry.details["contacts_without_consent"] == [1]

    incident = _open_incident_for(client, scene, plan.id)
    services.start_cascade(incident, now=now)
    for minutes in (11, 22, 33):
        run_job("emergency_cascade", now + timedelta(minutes=minutes))
    assert [len(_sms_to(c.phone)) for c in contacts] == [0, 1, 1]
    skipped = [e.text for e in services.events_of(incident) if e.kind == "cascade_skipped"]
    assert skipped == ["Skipped Contact 1: no consent recorded."]
    spec = client.get("/api/v1/openapi.json").get_json()
    described = spec["paths"]["/api/v1/emergency/plans"]["post"]["description"]
    assert "recorded as given" in described


def _open_incident_for(client: FlaskClient, scene: Any, plan_id: int) -> Incident:
    card = client.post(f"/api/v1/emergency/plans/{plan_id}/cards", headers=bearer(scene.writer))
    found = client.post(
        "/api/v1/emergency/lookup",
        json={"pin": card.get_json()["pin"]},
        headers=bearer(scene.operator),
    )
    incident = db.session.get(Incident, found.get_json()["incident_id"])
    assert incident is not None
    return incident


def test_test_plan_flag_in_the_api(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    writer = bearer(scene.writer)
    created = client.post(
        "/api/v1/emergency/plans", json=_body(scene.carer.id, test_plan=True), headers=writer
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["test_plan"] is True
    plan_id = created.get_json()["id"]
    incident = _open_incident_for(client, scene, plan_id)
    assert incident.is_drill is True
    changed = client.put(
        f"/api/v1/emergency/plans/{plan_id}",
        json=_body(scene.carer.id, test_plan=False),
        headers=writer,
    )
    assert changed.status_code == 422
    assert "test_plan" in error_of(changed)["fields"]
    kept = client.put(
        f"/api/v1/emergency/plans/{plan_id}", json=_body(scene.carer.id), headers=writer
    )
    assert kept.status_code == 200
    assert kept.get_json()["test_plan"] is True
    real = client.post("/api/v1/emergency/plans", json=_body(scene.carer.id), headers=writer)
    assert real.get_json()["test_plan"] is False
