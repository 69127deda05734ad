"""The figures page: whose figures admins and officers see, and the time to care
arriving, which counts the first recorded arrival of each incident."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.models import Role
from emergency import services
from emergency.models import Incident
from tests.emergency.factories import make_card, make_plan, make_scene, pin_key
from tests.factories import make_user
from tests.helpers import sign_in


def _incident(scene: Any, now: datetime, *, answered_after: int) -> Incident:
    """An incident from a call that waited `answered_after` seconds for an operator."""
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    incident = services.lookup_pin(
        issued.pin,
        channel="console",
        operator=scene.operator,
        caller_number=None,
        ip_address=None,
        pin_key=pin_key(),
        now=now,
    ).incident
    started = now - timedelta(seconds=answered_after + 10)
    services.record_call_timing(
        incident, started_at=started, answered_at=started + timedelta(seconds=answered_after)
    )
    return incident


def _this_week(client: FlaskClient, url: str) -> list[str]:
    """incidents, calls, % within 60 s, % within 180 s, median minutes to contact, to care."""
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True).splitlines()[1].split(",")[1:]


def test_admins_see_every_council_together_or_choose_one(
    client: FlaskClient, now: datetime
) -> None:
    north, south = make_scene(), make_scene()
    _incident(north, now, answered_after=30)
    _incident(south, now, answered_after=100)
    sign_in(client, make_user(Role.ADMIN))
    assert _this_week(client, "/emergency/figures.csv")[:4] == ["2", "2", "50.0", "100.0"]
    page = client.get("/emergency/figures").get_data(as_text=True)
    assert "Emergency line figures: all councils" in page
    assert north.council.name in page
    assert south.council.name in page
    chosen = f"/emergency/figures.csv?council={north.council.id}"
    assert _this_week(client, chosen)[:4] == ["1", "1", "100.0", "100.0"]
    page = client.get(f"/emergency/figures?council={south.council.id}").get_data(as_text=True)
    assert f"Emergency line figures: {south.council.name}" in page
    assert f"figures.csv?council={south.council.id}" in page
    # An officer sees only their own council, whatever they ask for.
    sign_in(client, south.officer)
    asked = f"/emergency/figures.csv?council={north.council.id}"
    assert _this_week(client, asked)[:4] == ["1", "1", "0.0", "100.0"]
    assert north.council.name not in client.get("/emergency/figures").get_data(as_text=True)


def test_care_arrival_is_recorded_once_and_the_figures_use_the_first(
    client: FlaskClient, now: datetime
) -> None:
    scene = make_scene()
    incident = _incident(scene, now, answered_after=20)
    services.record_operator_event(
        incident,
        kind="care_arranged",
        text="The agency is sending a worker",
        operator=scene.operator,
        now=now + timedelta(minutes=5),
    )
    services.record_care_arrived(incident, by=scene.operator, now=now + timedelta(minutes=40))
    with pytest.raises(services.EmergencyError) as again:
        services.record_care_arrived(incident, by=scene.operator, now=now + timedelta(minutes=90))
    assert again.value.code == "already_recorded"
    assert again.value.status == 409

    sign_in(client, scene.operator)
    url = f"/emergency/incidents/{incident.id}"
    before = client.get(url).get_data(as_text=True)
    assert "The care worker arrived at" in before
    assert "The care worker has arrived</button>" not in before
    refused = client.post(f"{url}/care-arrived", follow_redirects=True).get_data(as_text=True)
    assert "already recorded" in refused
    arrivals = [e for e in services.events_of(incident) if e.kind == "care_arrived"]
    assert len(arrivals) == 1

    sign_in(client, scene.officer)
    assert _this_week(client, "/emergency/figures.csv")[5] == "40.0"


def test_care_arrival_needs_care_arranged_first(now: datetime) -> None:
    scene = make_scene()
    incident = _incident(scene, now, answered_after=20)
    with pytest.raises(services.EmergencyError) as refused:
        services.record_care_arrived(incident, by=scene.operator, now=now)
    assert refused.value.code == "care_not_arranged"
    assert services.care_arrived_at(incident) is None
