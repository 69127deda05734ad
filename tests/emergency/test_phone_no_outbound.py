"""Twilio gives a webhook 15 seconds: every webhook answers from the database alone.
With the real Twilio backend configured and every outbound HTTP call caught, a whole
call (greeting, PIN, the operator's whisper left unanswered, no operator answering, the
cascade's automated call answered with a 2, a YES reply by SMS, a status callback)
makes no outbound request; what must be sent waits in the outbox."""

from __future__ import annotations

from datetime import datetime

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.clock import utcnow
from app.extensions import db
from app.models import OutboxMessage, OutboxStatus
from app.scheduler import run_job
from emergency.models import Incident
from emergency.phone_models import CascadeCall
from tests.emergency.factories_phone import (
    BASE,
    TOKEN,
    call_params,
    make_plan_with_card,
    operator_on_duty,
    signed_post,
)
from tests.factories import CouncilFactory

SID = "AC" + "1" * 32


@pytest.fixture(autouse=True)
def _real_twilio_backend(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "NOTIFY_BACKEND", "twilio")
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setitem(app.config, "TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setitem(app.config, "TWILIO_FROM_NUMBER", "+447700900001")
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", BASE)


def test_a_whole_call_makes_no_outbound_request(client: FlaskClient, now: datetime) -> None:
    council = CouncilFactory()
    operator_on_duty(council, "+447700900900")
    card = make_plan_with_card(council, now=now)
    parent = call_params()["CallSid"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as outbound:
        answers = [signed_post(client, "/twilio/voice", call_params())]
        answers.append(
            signed_post(client, "/twilio/voice/pin?attempt=1", call_params(Digits=card.pin))
        )
        incident = db.session.scalar(select(Incident).where(Incident.plan_id == card.plan.id))
        assert incident is not None
        screen = f"/twilio/voice/screen?stage=2&incident={incident.id}&parent={parent}"
        leg = {"CallSid": "CA" + "7" * 32, "ParentCallSid": parent, "AccountSid": SID}
        answers.append(signed_post(client, screen, leg))
        answers.append(signed_post(client, screen + "&step=key", {**leg, "Digits": "9"}))
        answers.append(
            signed_post(
                client,
                f"/twilio/voice/dial?stage=2&incident={incident.id}",
                call_params(DialCallStatus="no-answer", DialCallSid="CA" + "7" * 32),
            )
        )
        # The cascade's automated call to the first contact (queued by the job, which
        # only writes to the outbox): answered, and they press 2.
        run_job("phone_cascade_calls", now=utcnow())
        call = db.session.scalars(select(CascadeCall)).one()
        cascade = (
            f"/twilio/voice/cascade?incident={incident.id}&contact={call.contact_id}&call={call.id}"
        )
        contact_leg = {"CallSid": "CA" + "8" * 32, "AccountSid": SID, "AnsweredBy": "human"}
        answers.append(signed_post(client, cascade, contact_leg))
        answers.append(signed_post(client, cascade + "&step=key", {**contact_leg, "Digits": "2"}))
        answers.append(
            signed_post(
                client,
                "/twilio/sms",
                {
                    "MessageSid": "SM" + "3" * 32,
                    "AccountSid": SID,
                    "From": card.contacts[1].phone,
                    "To": "+447700900001",
                    "Body": "YES",
                },
            )
        )
        answers.append(
            signed_post(
                client,
                "/twilio/status",
                {"MessageSid": "SM" + "4" * 32, "AccountSid": SID, "MessageStatus": "delivered"},
            )
        )
        assert [c.request.url for c in outbound.calls] == []  # nothing left the building
    assert [a.status_code for a in answers] == [200] * 8 + [204]
    db.session.refresh(incident)
    assert incident.confirmed_contact_id == card.contacts[1].id
    waiting = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.PENDING)
    ).all()
    assert any(m.kind == "sms" for m in waiting)  # the cascade's SMS waits for the job
