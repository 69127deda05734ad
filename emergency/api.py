"""The emergency endpoints of api.md (`/api/v1/emergency/...`)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from flask import current_app, request
from pydantic import BaseModel, Field

from app.api.core import ApiBlueprint
from app.api.schemas import ApiModel
from app.clock import iso_z, utcnow
from app.extensions import db
from app.models import Role, User
from emergency import services
from emergency.crypto import cipher_from_config
from emergency.models import Incident, Plan

api = ApiBlueprint("emergency_api", __name__, tag="emergency")

CONTACT_CONSENT_DOC = (
    "Consent is recorded for each named contact. The body of api.md has no per-contact "
    "consent, so a contact sent without `consent` is recorded as given, recorded by the "
    "plan writer who sends the body (the version's author; the audit entry lists these "
    "contacts). Send `consent: false` for a contact who has not agreed: they stay in the "
    "plan for operators to see, are listed in `contacts_without_consent`, and the contact "
    "cascade never messages them. `test_plan: true` makes a test plan for drills."
)


class MedicationIn(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    dose: str = Field(default="", max_length=200)
    times: str = Field(default="", max_length=200)
    managed_by: str = Field(default="", max_length=200)
    stored_where: str = Field(default="", max_length=200)


class CaredForIn(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    date_of_birth: date
    address: str = Field(min_length=1, max_length=500)
    postcode: str = Field(default="", max_length=10)
    needs: dict[str, str] | str = ""
    medication: list[MedicationIn] = Field(default_factory=list, max_length=30)
    allergies: str = ""
    communication: str = ""
    routines: str = ""
    gp: str = ""
    professionals: str = ""
    safe_alone: str = ""


class AccessIn(ApiModel):
    key_safe_code: str = Field(default="", max_length=32)
    key_safe_location: str = ""
    key_holder: str = ""
    notes: str = ""


class ContactIn(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    relationship: str = Field(min_length=1, max_length=100)
    phone: str = Field(min_length=5, max_length=40)
    can_step_in: bool
    has_key: bool = False
    availability: str = ""
    consent: bool | None = Field(
        default=None,
        description="Whether this contact agreed to be named and called. Omitted: recorded "
        "as given, vouched for by the plan writer who sends the body (api.md has no "
        "per-contact field). false: the contact is kept in the plan for operators to see "
        "but the contact cascade never messages them.",
    )


class ReplacementCareIn(ApiModel):
    arrangements: str = ""
    hours: int = Field(default=72, ge=1, le=72)


class ConsentIn(ApiModel):
    carer: bool
    cared_for: bool | Literal["best_interests"]
    best_interests_record: str = ""
    recorded_by: str = Field(min_length=1, max_length=200)
    recorded_on: date


class PlanIn(ApiModel):
    """An emergency plan. Each contact's consent is recorded: a contact sent without
    `consent` is recorded as having agreed, recorded by the plan writer who sends the
    body; `consent: false` keeps the contact but the cascade skips them."""

    carer_id: int
    cared_for: CaredForIn
    access: AccessIn = Field(default_factory=AccessIn)
    contacts: list[ContactIn] = Field(default_factory=list, max_length=5)
    replacement_care: ReplacementCareIn = Field(default_factory=ReplacementCareIn)
    consent: ConsentIn
    test_plan: bool | None = Field(
        default=None,
        description="A test plan for drills: its cards open drills that contact nobody "
        "real and are left out of the figures. Set when the plan is created (default "
        "false); an edit may repeat it but not change it.",
    )


class PlanCreated(BaseModel):
    id: int
    version: int
    review_due: date
    test_plan: bool = False
    contacts_without_consent: list[int] = Field(
        default_factory=list,
        description="Positions (from 1) of contacts who have not agreed: never contacted.",
    )


class CardIssued(BaseModel):
    card_id: int
    pin: str


class StatusOut(BaseModel):
    status: str


class LookupIn(ApiModel):
    pin: str = Field(min_length=1, max_length=32)


class EventIn(ApiModel):
    kind: Literal["note", "call", "sms", "contact_confirmed", "care_arranged"]
    text: str = Field(min_length=1, max_length=4000)
    contact_id: int | None = Field(
        default=None,
        description="With contact_confirmed: the plan contact who confirmed. Omitted: the "
        "contact the cascade is waiting on. Either way the cascade stops.",
    )


class CloseIn(ApiModel):
    outcome: str = Field(min_length=1, max_length=2000)


def _answers(body: PlanIn) -> dict[str, Any]:
    cared = body.cared_for
    consent = body.consent
    cared_for_consent = (
        "best_interests"
        if consent.cared_for == "best_interests"
        else ("yes" if consent.cared_for else "no")
    )
    return {
        "cared_for": {
            "name": cared.name,
            "date_of_birth": cared.date_of_birth.isoformat(),
            "address": cared.address,
            "postcode": cared.postcode,
            "safe_alone": cared.safe_alone,
        },
        "access": body.access.model_dump(),
        "needs": cared.needs,
        "communication": cared.communication,
        "routines": cared.routines,
        "medication": [m.model_dump() for m in cared.medication],
        "allergies": cared.allergies,
        "gp": cared.gp,
        "professionals": cared.professionals,
        "contacts": [
            {
                **c.model_dump(),
                "consent": True if c.consent is None else c.consent,
                "consent_by_default": c.consent is None,
            }
            for c in body.contacts
        ],
        "replacement_care": body.replacement_care.model_dump(),
        "consent": {
            "carer": consent.carer,
            "cared_for": cared_for_consent,
            "best_interests_record": consent.best_interests_record,
            "recorded_by": consent.recorded_by,
            "recorded_on": consent.recorded_on.isoformat(),
        },
    }


def _cipher() -> Any:
    return cipher_from_config(current_app.config)


def _own_carer(user: User, carer_id: int) -> User:
    carer = db.session.get(User, carer_id)
    if carer is None or carer.council_id != user.council_id or not carer.has_role(Role.CARER):
        raise services.PlanInvalid(
            "There is no carer with that id in your council.",
            fields={"carer_id": "Give the id of a carer registered with your council"},
        )
    return carer


@api.operation(
    "/emergency/plans",
    method="POST",
    summary="Create an emergency plan (version 1)",
    roles=[Role.PLAN_WRITER],
    body=PlanIn,
    response=PlanCreated,
    status=201,
    errors=[(422, "validation_failed")],
    idempotent=True,
    description=CONTACT_CONSENT_DOC,
)
def create_plan(*, user: User, body: PlanIn) -> PlanCreated:
    carer = _own_carer(user, body.carer_id)
    assert user.council is not None
    plan = services.create_plan(
        council=user.council,
        carer=carer,
        writer=user,
        answers=_answers(body),
        cipher=_cipher(),
        now=utcnow(),
        is_test=body.test_plan is True,
        contacts_may_decline=True,
    )
    return _created(plan)


def _created(plan: Plan) -> PlanCreated:
    return PlanCreated(
        id=plan.id,
        version=plan.current_version,
        review_due=plan.review_due,
        test_plan=plan.is_test,
        contacts_without_consent=[
            c.position for c in services.plan_contacts(plan) if not c.consent
        ],
    )


@api.operation(
    "/emergency/plans/<int:plan_id>",
    method="PUT",
    summary="Change a plan: saves a new version",
    roles=[Role.PLAN_WRITER],
    body=PlanIn,
    response=PlanCreated,
    errors=[(404, "not_found"), (422, "validation_failed")],
    description=CONTACT_CONSENT_DOC,
)
def update_plan(*, user: User, body: PlanIn, plan_id: int) -> PlanCreated:
    plan = services.get_plan(plan_id, council_id=user.council_id)
    if body.carer_id != plan.carer_id:
        raise services.PlanInvalid(
            "A plan stays with its carer.",
            fields={"carer_id": "This plan belongs to another carer"},
        )
    if body.test_plan is not None and body.test_plan != plan.is_test:
        raise services.PlanInvalid(
            "A plan stays a test plan, or a real one. Make a new plan instead.",
            fields={"test_plan": "A plan cannot be changed to or from a test plan"},
        )
    plan = services.update_plan(
        plan,
        writer=user,
        answers=_answers(body),
        cipher=_cipher(),
        now=utcnow(),
        contacts_may_decline=True,
    )
    return _created(plan)


@api.operation(
    "/emergency/plans/<int:plan_id>/cards",
    method="POST",
    summary="Issue a card; the PIN is returned this once. An older live card is revoked.",
    roles=[Role.PLAN_WRITER],
    response=CardIssued,
    status=201,
    errors=[(404, "not_found")],
)
def issue_card(*, user: User, plan_id: int) -> CardIssued:
    plan = services.get_plan(plan_id, council_id=user.council_id)
    issued = services.issue_card(
        plan, by=user, pin_key=current_app.config["PIN_HMAC_KEY"], now=utcnow()
    )
    return CardIssued(card_id=issued.card.id, pin=issued.pin)


@api.operation(
    "/emergency/cards/<int:card_id>/revoke",
    method="POST",
    summary="Revoke a card",
    roles=[Role.PLAN_WRITER],
    response=StatusOut,
    errors=[(404, "not_found")],
)
def revoke_card(*, user: User, card_id: int) -> StatusOut:
    card = services.get_card(card_id, council_id=user.council_id)
    services.revoke_card(card, by=user, now=utcnow())
    return StatusOut(status="revoked")


def plan_payload(view: services.PlanView) -> dict[str, Any]:
    """The plan in the order an operator needs it; never the key-safe code."""
    details = view.details
    access = {k: v for k, v in (details.get("access") or {}).items() if k != "key_safe_code"}
    plan: Plan = view.plan
    return {
        "id": plan.id,
        "version": view.version.number,
        "is_test": plan.is_test,
        "review_due": plan.review_due.isoformat(),
        "carer": {"id": plan.carer.id, "name": plan.carer.name, "phone": plan.carer.phone},
        "cared_for": details["cared_for"],
        "access": {**access, "has_key_safe": view.has_key_safe},
        "medication": details["medication"],
        "contacts": [
            {
                "id": c.id,
                "position": c.position,
                "name": c.name,
                "relationship": c.relationship_to_carer,
                "phone": c.phone,
                "can_step_in": c.can_step_in,
                "has_key": c.has_key,
                "availability": c.availability,
                "consent": c.consent,
            }
            for c in view.contacts
        ],
        "needs": details["needs"],
        "allergies": details["allergies"],
        "gp": details["gp"],
        "professionals": details["professionals"],
        "replacement_care": details["replacement_care"],
        "consent": {
            "carer": view.version.consent_carer,
            "cared_for": view.version.consent_cared_for,
            "recorded_by": view.version.consent_recorded_by,
            "recorded_on": view.version.consent_recorded_on.isoformat(),
        },
    }


@api.operation(
    "/emergency/lookup",
    method="POST",
    summary="Find a plan by card PIN and open an incident",
    roles=[Role.OPERATOR],
    body=LookupIn,
    errors=[
        (422, "invalid_pin"),
        (404, "unknown_pin"),
        (410, "card_revoked"),
        (429, "too_many_attempts"),
    ],
)
def lookup(*, user: User, body: LookupIn) -> dict[str, Any]:
    now = utcnow()
    result = services.lookup_pin(
        body.pin,
        channel="api",
        operator=user,
        caller_number=None,
        ip_address=request.remote_addr,
        pin_key=current_app.config["PIN_HMAC_KEY"],
        now=now,
    )
    view = services.view_plan(
        result.incident.plan,
        viewer=user,
        cipher=_cipher(),
        now=now,
        ip_address=request.remote_addr,
        incident_id=result.incident.id,
    )
    return {
        "plan": plan_payload(view),
        "card_id": result.card.id,
        "incident_id": result.incident.id,
    }


def incident_payload(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "status": incident.status.value,
        "plan_id": incident.plan_id,
        "card_id": incident.card_id,
        "source": incident.source,
        "is_drill": incident.is_drill,
        "opened_at": iso_z(incident.opened_at),
        "closed_at": iso_z(incident.closed_at),
        "outcome": incident.outcome,
        "cascade_status": incident.cascade_status.value,
        "care_arranged_at": iso_z(incident.care_arranged_at),
        "care_window_ends_at": iso_z(incident.care_window_ends_at),
        "events": [
            {
                "id": e.id,
                "kind": e.kind,
                "text": e.text,
                "actor_id": e.actor_id,
                "created_at": iso_z(e.created_at),
            }
            for e in services.events_of(incident)
        ],
    }


@api.operation(
    "/emergency/incidents/<int:incident_id>",
    method="GET",
    summary="An incident and its timeline",
    roles=[Role.OPERATOR],
    errors=[(404, "not_found")],
)
def incident_detail(*, user: User, incident_id: int) -> dict[str, Any]:
    return incident_payload(services.get_incident(incident_id, council_id=user.council_id))


@api.operation(
    "/emergency/incidents/<int:incident_id>/events",
    method="POST",
    summary="Add a note, call, SMS, confirmation or care arrangement to the timeline "
    "(contact_confirmed stops the contact cascade)",
    roles=[Role.OPERATOR],
    body=EventIn,
    status=201,
    errors=[(404, "not_found"), (409, "incident_closed")],
)
def add_event(*, user: User, body: EventIn, incident_id: int) -> dict[str, Any]:
    incident = services.get_incident(incident_id, council_id=user.council_id)
    event = services.record_operator_event(
        incident,
        kind=body.kind,
        text=body.text,
        operator=user,
        now=utcnow(),
        contact_id=body.contact_id,
    )
    return {
        "id": event.id,
        "kind": event.kind,
        "text": event.text,
        "created_at": iso_z(event.created_at),
    }


@api.operation(
    "/emergency/incidents/<int:incident_id>/close",
    method="POST",
    summary="Close an incident with its outcome",
    roles=[Role.OPERATOR],
    body=CloseIn,
    errors=[(404, "not_found"), (409, "incident_closed")],
)
def close_incident(*, user: User, body: CloseIn, incident_id: int) -> dict[str, Any]:
    incident = services.get_incident(incident_id, council_id=user.council_id)
    services.close_incident(incident, operator=user, outcome=body.outcome, now=utcnow())
    return {"id": incident.id, "status": incident.status.value, "outcome": incident.outcome}
