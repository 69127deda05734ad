"""PIN guessing is locked out on every way in: the API (tests/emergency/test_lookup.py),
the operator's console page and the phone line (tests/emergency/test_phone.py); here the
console, as a person at a keyboard would meet it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from emergency.models import Incident, PinAttempt
from tests.emergency.factories import make_card, make_plan, make_scene
from tests.emergency.test_lookup import _valid_unknown_pins
from tests.helpers import sign_in

SUMMARY = "govuk-error-summary"


def test_console_locks_an_operator_out_after_twenty_wrong_pins(
    client: FlaskClient, now: datetime
) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    sign_in(client, scene.operator)
    for pin in _valid_unknown_pins(20, avoid=issued.pin):
        page = client.post("/emergency/console", data={"pin": pin})
        assert page.status_code == 200
        assert "No card has that PIN" in page.get_data(as_text=True)
    locked = client.post("/emergency/console", data={"pin": issued.pin})
    html = locked.get_data(as_text=True)
    assert locked.status_code == 429
    assert SUMMARY in html
    # Even the right PIN opens nothing while the lockout lasts.
    assert db_count(Incident) == 0
    misses = db_count(PinAttempt, PinAttempt.outcome != "hit")
    assert misses >= 20


def db_count(model: type, *where: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
