"""The emergency endpoints of api.md: paths, fields, statuses, error codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask.testing import FlaskClient

from tests.emergency.factories import SECRET_MEDICINE, make_scene
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
