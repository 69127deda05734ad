"""PINs: Damm check digit, generation, HMAC storage, and mistyped PINs refused as
`invalid_pin` without looking up any card."""

from __future__ import annotations

from datetime import datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from emergency import services
from emergency.models import Card, PinAttempt
from emergency.pins import check_pin_format, damm_digit, generate_pin, pin_hmac
from tests.emergency.factories import make_card, make_plan, make_scene, pin_key
from tests.helpers import bearer, error_of


def _single_digit_errors(pin: str) -> list[str]:
    return [
        pin[:i] + str(d) + pin[i + 1 :]
        for i in range(len(pin))
        for d in range(10)
        if str(d) != pin[i]
    ]


def _adjacent_swaps(pin: str) -> list[str]:
    return [
        pin[:i] + pin[i + 1] + pin[i] + pin[i + 2 :]
        for i in range(len(pin) - 1)
        if pin[i] != pin[i + 1]
    ]


def test_damm_known_value() -> None:
    # Damm's worked example: 572 has check digit 4.
    assert damm_digit("572") == 4
    assert check_pin_format("5724") is False  # too short for a card PIN
    assert damm_digit("5724") == 0


def test_generated_pins_pass_and_differ() -> None:
    pins = {generate_pin() for _ in range(200)}
    assert len(pins) > 190
    assert all(len(p) == 8 and p.isdigit() and check_pin_format(p) for p in pins)


def test_format_rejects_every_single_digit_error_and_adjacent_swap() -> None:
    for _ in range(20):
        pin = generate_pin()
        for wrong in _single_digit_errors(pin) + _adjacent_swaps(pin):
            assert not check_pin_format(wrong), (pin, wrong)


def test_hmac_is_keyed_and_pin_is_not_stored(now: datetime) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    assert issued.card.pin_hmac == pin_hmac(issued.pin, pin_key())
    assert pin_hmac(issued.pin, "another-key") != issued.card.pin_hmac
    assert issued.pin not in issued.card.pin_hmac


def test_every_mistype_of_a_real_pin_is_invalid_pin_without_card_lookup(
    now: datetime, sql_count: list[str]
) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    wrongs = _single_digit_errors(issued.pin) + _adjacent_swaps(issued.pin)
    assert len(wrongs) >= 72 + 1
    for wrong in wrongs:
        del sql_count[:]
        # A fresh operator each time keeps the lockout out of this test.
        with pytest.raises(services.InvalidPin) as caught:
            services.lookup_pin(
                wrong,
                channel="console",
                operator=None,
                caller_number=None,
                ip_address="10.0.0.1",
                pin_key=pin_key(),
                now=now,
            )
        assert caught.value.code == "invalid_pin"
        assert caught.value.status == 422
        assert not any("emergency_cards" in s for s in sql_count), wrong
    misses = db.session.scalar(
        select(func.count(PinAttempt.id)).where(PinAttempt.outcome == "invalid")
    )
    assert misses == len(wrongs)
    assert db.session.get(Card, issued.card.id) is not None


def test_api_mistyped_pin_is_invalid_pin(client: FlaskClient, now: datetime) -> None:
    scene = make_scene()
    issued = make_card(scene, make_plan(scene, now=now), now=now)
    headers = bearer(scene.operator)
    wrong = issued.pin[1] + issued.pin[0] + issued.pin[2:]
    if wrong == issued.pin:
        wrong = issued.pin[:7] + str((int(issued.pin[7]) + 1) % 10)
    response = client.post("/api/v1/emergency/lookup", json={"pin": wrong}, headers=headers)
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_pin"
