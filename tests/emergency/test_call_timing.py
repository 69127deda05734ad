"""Time to answer, as the TSA standard counts it: from the moment a call reaches the line
to the moment an operator picks up, not to the PIN, and not to the end of the talk
(Twilio reports the transfer when it ends, with how long it lasted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Council
from emergency.models import Incident
from emergency.services.figures import weekly_figures
from tests.emergency.factories_phone import (
    BASE,
    TOKEN,
    call_params,
    make_plan_with_card,
    operator_on_duty,
    operator_takes_call,
    signed_post,
)
from tests.factories import CouncilFactory

MONDAY = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # a Monday morning, UK time = UTC


@pytest.fixture(autouse=True)
def _twilio_config(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", BASE)


def _call(
    client: FlaskClient,
    council: Council,
    *,
    arrives: datetime,
    pin_after: int,
    answered_after: int,
    talks_for: int,
    sid: str,
) -> Incident:
    """One caller: rings the line, keys the PIN, waits, talks, hangs up."""
    card = make_plan_with_card(council, now=arrives)
    params = call_params(CallSid=sid)
    with time_machine.travel(arrives, tick=False):
        signed_post(client, "/twilio/voice?attempt=1", params)
    with time_machine.travel(arrives + timedelta(seconds=pin_after), tick=False):
        signed_post(client, "/twilio/voice/pin?attempt=1", {**params, "Digits": card.pin})
    incident = db.session.scalar(select(Incident).where(Incident.plan_id == card.plan.id))
    assert incident is not None
    with time_machine.travel(arrives + timedelta(seconds=answered_after), tick=False):
        operator_takes_call(client, params, incident_id=incident.id)  # pressed 1
    ends = arrives + timedelta(seconds=answered_after + talks_for)
    with time_machine.travel(ends, tick=False):
        signed_post(
            client,
            f"/twilio/voice/dial?stage=1&incident={incident.id}",
            {**params, "DialCallStatus": "completed", "DialCallDuration": str(talks_for)},
        )
    db.session.refresh(incident)
    return incident


def test_the_wait_is_counted_from_arrival_to_pickup(client: FlaskClient, app: Flask) -> None:
    council: Council = CouncilFactory()
    operator_on_duty(council, "+447700900900")
    quick = _call(
        client,
        council,
        arrives=MONDAY,
        pin_after=20,
        answered_after=45,
        talks_for=600,
        sid="CA" + "1" * 32,
    )
    assert quick.call_started_at == MONDAY
    assert quick.call_answered_at == MONDAY + timedelta(seconds=45)
    slow = _call(
        client,
        council,
        arrives=MONDAY + timedelta(hours=2),
        pin_after=30,
        answered_after=100,
        talks_for=300,
        sid="CA" + "2" * 32,
    )
    assert slow.call_answered_at is not None
    assert slow.call_started_at is not None
    assert (slow.call_answered_at - slow.call_started_at).total_seconds() == 100

    week = weekly_figures(council.id, now=MONDAY + timedelta(days=1), weeks=1)[0]
    assert week.calls == 2
    assert week.answered_60s_percent == 50.0  # only the 45-second wait
    assert week.answered_180s_percent == 100.0  # both


def test_a_later_step_of_the_same_call_keeps_the_first_arrival(client: FlaskClient) -> None:
    """After three silences Twilio posts /twilio/voice again for the same call: the wait
    still counts from the first ring."""
    council: Council = CouncilFactory()
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=MONDAY)
    params = call_params(CallSid="CA" + "3" * 32)
    with time_machine.travel(MONDAY, tick=False):
        signed_post(client, "/twilio/voice?attempt=1", params)
    with time_machine.travel(MONDAY + timedelta(seconds=25), tick=False):
        signed_post(client, "/twilio/voice?attempt=2", params)
    with time_machine.travel(MONDAY + timedelta(seconds=40), tick=False):
        signed_post(client, "/twilio/voice/pin?attempt=2", {**params, "Digits": card.pin})
    incident = db.session.scalar(select(Incident).where(Incident.plan_id == card.plan.id))
    assert incident is not None
    assert incident.call_started_at == MONDAY


def test_a_report_without_a_duration_counts_pickup_as_the_report_time(
    client: FlaskClient,
) -> None:
    council: Council = CouncilFactory()
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=MONDAY)
    params = call_params(CallSid="CA" + "4" * 32)
    with time_machine.travel(MONDAY, tick=False):
        signed_post(client, "/twilio/voice?attempt=1", params)
        signed_post(client, "/twilio/voice/pin?attempt=1", {**params, "Digits": card.pin})
    incident = db.session.scalar(select(Incident).where(Incident.plan_id == card.plan.id))
    assert incident is not None
    with time_machine.travel(MONDAY + timedelta(seconds=30), tick=False):
        operator_takes_call(client, params, incident_id=incident.id)  # pressed 1
        signed_post(
            client,
            f"/twilio/voice/dial?stage=1&incident={incident.id}",
            {**params, "DialCallStatus": "completed", "DialCallDuration": "bogus"},
        )
    db.session.refresh(incident)
    assert incident.call_answered_at == MONDAY + timedelta(seconds=30)


def test_a_replayed_dial_report_keeps_the_first_pickup_time(client: FlaskClient) -> None:
    """Twilio may deliver the same report again later: `now` has moved on, the duration
    has not, and the pickup time must not move with it."""
    council: Council = CouncilFactory()
    operator_on_duty(council, "+447700900900")
    incident = _call(
        client,
        council,
        arrives=MONDAY,
        pin_after=20,
        answered_after=45,
        talks_for=600,
        sid="CA" + "5" * 32,
    )
    assert incident.call_answered_at == MONDAY + timedelta(seconds=45)
    params = call_params(CallSid="CA" + "5" * 32)
    with time_machine.travel(MONDAY + timedelta(seconds=45 + 600 + 90), tick=False):
        replay = signed_post(
            client,
            f"/twilio/voice/dial?stage=1&incident={incident.id}",
            {**params, "DialCallStatus": "completed", "DialCallDuration": "600"},
        )
    assert replay.status_code == 200
    db.session.refresh(incident)
    assert incident.call_answered_at == MONDAY + timedelta(seconds=45)
    answered = [e for e in incident.events if e.text.startswith("An operator answered")]
    assert len(answered) == 1
