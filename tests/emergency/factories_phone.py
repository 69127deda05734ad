"""Plans, cards and signed Twilio requests for the phone line's tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from xml.etree import ElementTree

from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import Council, Role, User
from emergency.models import Card, Contact, Plan, PlanVersion
from emergency.pins import generate_pin, pin_hmac
from tests.factories import make_user

TOKEN = "phone-line-test-auth-token"
BASE = "https://carers.example.org"
PIN_KEY = "test-pin-hmac-key"


@dataclass
class PlanWithCard:
    plan: Plan
    version: PlanVersion
    contacts: list[Contact]
    pin: str


def make_plan_with_card(
    council: Council,
    *,
    now: datetime,
    contacts: list[tuple[str, str]] | None = None,
    approved_at: datetime | None = None,
) -> PlanWithCard:
    """A plan with contacts in cascade order and a live card; returns the plain PIN."""
    carer = make_user(Role.CARER, council=council)
    plan = Plan(
        council_id=council.id,
        carer_id=carer.id,
        approved_at=approved_at or now,
        review_due=date(now.year + 1, 1, 1),
        current_version=1,
    )
    db.session.add(plan)
    db.session.flush()
    version = PlanVersion(
        plan_id=plan.id,
        council_id=council.id,
        number=1,
        details_encrypted="not-read-by-the-phone-line",
        consent_carer=True,
        consent_cared_for="yes",
        consent_recorded_by="Test writer",
        consent_recorded_on=now.date(),
    )
    db.session.add(version)
    db.session.flush()
    rows = []
    for position, (name, phone) in enumerate(
        contacts or [("Sam Contact", "+447911100111"), ("Alex Contact", "+447911100222")],
        start=1,
    ):
        contact = Contact(
            plan_version_id=version.id,
            council_id=council.id,
            position=position,
            name=name,
            relationship_to_carer="Neighbour",
            phone=phone,
            can_step_in=True,
            consent=True,
        )
        db.session.add(contact)
        rows.append(contact)
    pin = generate_pin()
    db.session.add(Card(council_id=council.id, plan_id=plan.id, pin_hmac=pin_hmac(pin, PIN_KEY)))
    db.session.commit()
    return PlanWithCard(plan=plan, version=version, contacts=rows, pin=pin)


def mistype(pin: str) -> str:
    """The same PIN with its last digit changed: the check digit no longer fits."""
    return pin[:-1] + str((int(pin[-1]) + 1) % 10)


def signature(path: str, params: dict[str, str], *, token: str = TOKEN, base: str = BASE) -> str:
    """Exactly what Twilio puts in X-Twilio-Signature for a POST to base + path."""
    return RequestValidator(token).compute_signature(base + path, params)


def signed_post(client: FlaskClient, path: str, params: dict[str, str]) -> TestResponse:
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature(path, params)})


def twiml(response: TestResponse) -> ElementTree.Element:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    root = ElementTree.fromstring(response.get_data())  # noqa: S314  (our own TwiML)
    assert root.tag == "Response"
    return root


def call_params(**extra: str) -> dict[str, str]:
    params = {
        "CallSid": "CA" + "9" * 32,
        "AccountSid": "AC" + "1" * 32,
        "From": "+447700900555",
        "To": "+448000988234",
        "CallStatus": "in-progress",
        "Direction": "inbound",
    }
    params.update(extra)
    return params


def operator_takes_call(
    client: FlaskClient,
    params: dict[str, str],
    *,
    stage: int = 1,
    incident_id: int | None = None,
) -> TestResponse:
    """The operator's phone rang, the whisper asked for 1, and they pressed it: what
    Twilio posts to the whisper's action for the caller's call (`params["CallSid"]`)."""
    path = f"/twilio/voice/screen?step=key&stage={stage}"
    if incident_id is not None:
        path += f"&incident={incident_id}"
    path += f"&parent={params['CallSid']}"
    leg = {
        "CallSid": "CA" + "6" * 32,
        "ParentCallSid": params["CallSid"],
        "AccountSid": params.get("AccountSid", "AC" + "1" * 32),
        "From": params.get("From", ""),
        "To": "+447700900900",
        "Digits": "1",
    }
    return signed_post(client, path, leg)


def operator_on_duty(council: Council, phone: str, *, backup: bool = False) -> User:
    from emergency.phone_models import RotaEntry

    user = make_user(Role.OPERATOR, council=council)
    db.session.add(
        RotaEntry(
            user_id=user.id, council_id=council.id, phone=phone, on_duty=True, is_backup=backup
        )
    )
    db.session.commit()
    return user


__all__ = ["Any"]
