"""PIN lookup: hits open an incident, revoked and unknown cards, the lockout after
repeated misses (counted in the database), and the audit trail."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, OutboxMessage, Role
from emergency import services
from emergency.models import IncidentStatus
from emergency.pins import damm_digit
from tests.emergency.factories import make_card, make_plan, make_scene, pin_key
from tests.factories import make_user
from tests.helpers import bearer, error_of, sign_in


def _valid_unknown_pins(count: int, avoid: str) -> list[str]:
    pins = []
    n = 1000000
    while len(pins) < count:
        body = f"{n:07d}"
        pin = body + str(damm_digit(body))
        if pin != avoid:
            pins.append(pin)
        n += 1
    return pins


def test_lookup_opens_incident_and_returns_it_again(now: datetime) -> None:
    scene = make_scene()
    plan = make_plan(scene, now=now)
    issued = make_card(scene, plan, now=now)
    kwargs = dict(
        channel="console",
        operator=scene.operator,
        caller_number=None,
        ip_address="10.1.1.1",
        pin_key=pin_key(),
    )
    first = services.lookup_pin(issued.pin, now=now, **kwargs)  # type: ignore[arg-type]
    assert first.incident.status is IncidentStatus.OPEN
    assert first.incident.plan_id == plan.id
    assert first.incident.card_id == issued.card.id
    assert first.incident.source == "console"
    assert first.plan_version.number == 1
    again = services.lookup_pin(issued.pin[:4] + " " + issued.pin[4:], now=now, **kwargs)  # type: ignore[arg-type]
    assert again.incident.id == first.incident.id
    hits = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "emergency.pin_lookup_hit")
    ).all()
    assert len(hits) == 2
    assert hits[0].actor_id == scene.operator.id
    assert hits[0].ip_address == "10.1.1.1"
    assert hits[0].reason == f"incident {first.incident.id}"


def test_revoked_card_gives_card_revoked(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    services.revoke_card(issued.card, by=scene.writer, now=now)
    response = client.post(
        "/api/v1/emergency/lookup", json={"pin": issued.pin}, headers=bearer(scene.operator)
    )
    assert response.status_code == 410
    assert error_of(response)["code"] == "card_revoked"


def test_another_councils_cancelled_card_looks_unknown(client: FlaskClient, now: datetime) -> None:
    """An operator must not learn that a PIN belongs to another scheme, live or not."""
    scene = make_scene()
    elsewhere = make_scene()
    issued = make_card(elsewhere, make_plan(elsewhere, now=now), now=now)
    services.revoke_card(issued.card, by=elsewhere.writer, now=now)
    response = client.post(
        "/api/v1/emergency/lookup", json={"pin": issued.pin}, headers=bearer(scene.operator)
    )
    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_pin"


def test_reissue_revokes_old_card_and_lost_card_stops_working(now: datetime) -> None:
    scene = make_scene()
    plan = make_plan(scene, now=now)
    old = make_card(scene, plan, now=now)
    new = make_card(scene, plan, now=now)
    assert old.card.status.value == "revoked"
    assert new.pin != old.pin
    with pytest.raises(services.CardRevoked):
        services.lookup_pin(
            old.pin,
            channel="api",
            operator=scene.operator,
            caller_number=None,
            ip_address=None,
            pin_key=pin_key(),
            now=now,
        )
    services.report_card_lost(new.card, by=scene.writer, now=now)
    assert new.card.status.value == "lost"
    with pytest.raises(services.CardRevoked):
        services.lookup_pin(
            new.pin,
            channel="api",
            operator=scene.operator,
            caller_number=None,
            ip_address=None,
            pin_key=pin_key(),
            now=now,
        )


def test_unknown_pin_is_404(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    [pin] = _valid_unknown_pins(1, avoid="")
    response = client.post(
        "/api/v1/emergency/lookup", json={"pin": pin}, headers=bearer(scene.operator)
    )
    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_pin"
    miss = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "emergency.pin_lookup_miss")
    )
    assert miss is not None
    assert miss.actor_id == scene.operator.id
    assert miss.reason == "unknown"


def test_twenty_wrong_pins_lock_the_operator_out(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    headers = bearer(scene.operator)
    for pin in _valid_unknown_pins(20, avoid=issued.pin):
        response = client.post("/api/v1/emergency/lookup", json={"pin": pin}, headers=headers)
        assert response.status_code == 404
    # Now even the right PIN is refused until the lockout ends.
    response = client.post("/api/v1/emergency/lookup", json={"pin": issued.pin}, headers=headers)
    assert response.status_code == 429
    assert error_of(response)["code"] == "too_many_attempts"
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60 + 1
    # The council's officer was alerted, and another operator is not locked out.
    alert = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == scene.officer.email)
    )
    assert alert is not None
    assert "locked" in alert.payload["subject"]
    other = services.lookup_pin(
        issued.pin,
        channel="api",
        operator=scene.writer,
        caller_number=None,
        ip_address=None,
        pin_key=pin_key(),
        now=datetime.now(now.tzinfo),
    )
    assert other.card.id == issued.card.id


def test_lockout_ends_after_fifteen_minutes(now: datetime) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    kwargs = dict(
        channel="console",
        operator=scene.operator,
        caller_number=None,
        ip_address=None,
        pin_key=pin_key(),
    )
    for pin in _valid_unknown_pins(20, avoid=issued.pin):
        with pytest.raises(services.UnknownPin):
            services.lookup_pin(pin, now=now, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(services.TooManyAttempts):
        services.lookup_pin(issued.pin, now=now + timedelta(minutes=14), **kwargs)  # type: ignore[arg-type]
    result = services.lookup_pin(issued.pin, now=now + timedelta(minutes=16), **kwargs)  # type: ignore[arg-type]
    assert result.card.id == issued.card.id


def test_caller_number_is_limited_too(now: datetime) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    kwargs = dict(
        channel="phone",
        operator=None,
        caller_number="+447911000111",
        ip_address=None,
        pin_key=pin_key(),
    )
    for pin in _valid_unknown_pins(5, avoid=issued.pin):
        with pytest.raises(services.UnknownPin):
            services.lookup_pin(pin, now=now, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(services.TooManyAttempts) as caught:
        services.lookup_pin(issued.pin, now=now, **kwargs)  # type: ignore[arg-type]
    assert caught.value.retry_after > 0


def _lookup(pin: str, now: datetime, *, operator: Any = None, caller: str | None = None) -> Any:
    return services.lookup_pin(
        pin,
        channel="phone" if operator is None else "console",
        operator=operator,
        caller_number=caller,
        ip_address=None,
        pin_key=pin_key(),
        now=now,
    )


def test_guessing_on_the_phone_line_pauses_the_keypad_but_not_the_operators(
    now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anonymous callers flooding the keypad with wrong PINs pause keypad lookups for
    everyone (and alert once), while operators in every council carry on."""
    from emergency.services import lookup

    monkeypatch.setattr(lookup, "GLOBAL_MISS_LIMIT", 6)
    scene = make_scene()
    elsewhere = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    other = make_card(elsewhere, make_plan(elsewhere, now=now), now=now)
    # Six different callers, one wrong PIN each: no single caller is locked out.
    for n, pin in enumerate(_valid_unknown_pins(6, avoid=issued.pin)):
        with pytest.raises(services.UnknownPin):
            _lookup(pin, now, caller=f"+4479110009{n:02d}")
    with pytest.raises(services.TooManyAttempts) as paused:
        _lookup(issued.pin, now, caller="+447911000999")
    assert 0 < paused.value.retry_after <= 10 * 60 + 1
    # The operators of both councils still find their cards.
    assert _lookup(issued.pin, now, operator=scene.operator).card.id == issued.card.id
    assert _lookup(other.pin, now, operator=elsewhere.operator).card.id == other.card.id
    alerts = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == scene.officer.email)
    ).all()
    assert len(alerts) == 1
    assert "phone line" in alerts[0].payload["subject"]
    assert "operators' lookups carry on" in alerts[0].payload["body"]
    # After the window, the keypad works again.
    later = _lookup(issued.pin, now + timedelta(minutes=11), caller="+447911000999")
    assert later.card.id == issued.card.id


def test_guessing_by_staff_pauses_staff_lookups_with_something_to_do(
    client: FlaskClient, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many wrong PINs from staff accounts pause the console: the operator is told how
    long for, and who to call meanwhile (the council's duty team)."""
    from emergency.services import lookup

    monkeypatch.setattr(lookup, "GLOBAL_MISS_LIMIT", 6)
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    operators = [make_user(Role.OPERATOR, council=scene.council) for _ in range(6)]
    started = datetime.now(now.tzinfo)
    for operator, pin in zip(operators, _valid_unknown_pins(6, avoid=issued.pin), strict=True):
        with pytest.raises(services.UnknownPin):
            _lookup(pin, started, operator=operator)
    sign_in(client, scene.operator)
    page = client.post("/emergency/console", data={"pin": issued.pin})
    assert page.status_code == 429
    html = page.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert re.search(r"paused across the service for about \d+ minutes \(until \d", html)
    assert "Try the PIN again then" in html
    assert scene.council.duty_team_phone in html
    assert "plan search" not in html
    api = client.post(
        "/api/v1/emergency/lookup", json={"pin": issued.pin}, headers=bearer(scene.operator)
    )
    assert api.status_code == 429
    assert 0 < int(api.headers["Retry-After"]) <= 10 * 60 + 1
    # The phone line's keypad is counted apart, so callers still get through.
    assert _lookup(issued.pin, started, caller="+447911000111").card.id == issued.card.id
    assert _lookup(issued.pin, now + timedelta(minutes=11), operator=scene.operator)


def test_an_operator_locked_out_is_told_how_long_and_what_to_do(
    client: FlaskClient, now: datetime
) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    started = datetime.now(now.tzinfo)
    for pin in _valid_unknown_pins(20, avoid=issued.pin):
        with pytest.raises(services.UnknownPin):
            _lookup(pin, started, operator=scene.operator)
    sign_in(client, scene.operator)
    html = client.post("/emergency/console", data={"pin": issued.pin}).get_data(as_text=True)
    assert re.search(r"paused for about \d+ minutes \(until \d", html)
    assert "Ask another operator" in html
    assert scene.council.duty_team_phone in html


def test_a_lookup_refused_by_a_lockout_is_audited_and_does_not_extend_it(
    client: FlaskClient, now: datetime
) -> None:
    """A PIN tried while locked out is not checked, but it is still a lookup: audited
    (who, from where, refused), and the lockout ends when it would have."""
    from emergency.models import PinAttempt

    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    for pin in _valid_unknown_pins(5, avoid=issued.pin):
        with pytest.raises(services.UnknownPin):
            _lookup(pin, now, caller="+447911000111")
    attempts = db.session.query(PinAttempt).count()
    with pytest.raises(services.TooManyAttempts):
        _lookup(issued.pin, now + timedelta(minutes=14), caller="+447911000111")
    refused = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "emergency.pin_lookup_miss", AuditEntry.reason == "refused"
        )
    ).all()
    assert len(refused) == 1
    assert refused[0].details["caller_number"] == "+447911000111"
    assert refused[0].details["channel"] == "phone"
    assert db.session.query(PinAttempt).count() == attempts
    later = _lookup(issued.pin, now + timedelta(minutes=16), caller="+447911000111")
    assert later.card.id == issued.card.id

    for pin in _valid_unknown_pins(20, avoid=issued.pin):
        client.post("/api/v1/emergency/lookup", json={"pin": pin}, headers=bearer(scene.operator))
    response = client.post(
        "/api/v1/emergency/lookup", json={"pin": issued.pin}, headers=bearer(scene.operator)
    )
    assert response.status_code == 429
    [by_operator] = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.reason == "refused", AuditEntry.actor_id == scene.operator.id
        )
    ).all()
    assert by_operator.details["channel"] == "api"
    assert by_operator.council_id == scene.council.id
