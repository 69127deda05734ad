"""Emergency plans: validating the answers, creating and versioning plans, drafts of the
guided form, reading a plan (audited), review reminders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from app import audit, outbox
from app.clock import london_today, to_london
from app.errors import DomainError
from app.extensions import db
from app.models import Council, Role, User
from app.phone_numbers import normalise_uk_phone
from emergency.crypto import FieldCipher
from emergency.models import Contact, Plan, PlanDraft, PlanStatus, PlanVersion
from emergency.services.common import add_months, first_name
from emergency.services.errors import PlanInvalid, RecordNotFound

REVIEW_MONTHS = 12
REMINDER_DAYS = 30
NEEDS_FIELDS = (
    ("personal_care", "Personal care"),
    ("mobility", "Mobility"),
    ("continence", "Continence"),
    ("eating_drinking", "Eating and drinking"),
    ("communication", "Communication"),
    ("behaviour", "Behaviour and what helps"),
    ("routines", "Routines"),
    ("faith_culture", "Faith and culture"),
)
CONSENT_CHOICES = ("yes", "no", "best_interests")
MAX_CONTACTS = 5


@dataclass
class PlanView:
    """A decrypted plan version as staff read it (never the key-safe code)."""

    plan: Plan
    version: PlanVersion
    details: dict[str, Any]
    has_key_safe: bool

    @property
    def contacts(self) -> list[Contact]:
        return list(self.version.contacts)


def _text(value: Any, limit: int = 2000) -> str:
    return str(value or "").strip()[:limit]


def _parse_day(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        return None


def validate_answers(
    answers: dict[str, Any], *, today: date, contacts_may_decline: bool = False
) -> dict[str, Any]:
    """Check a plan's answers and return them cleaned. Raises PlanInvalid with `fields`
    naming every problem, so a page or the API can show them all at once.

    Each named contact's consent is recorded. The guided form asks the plan writer to
    confirm it for every contact; with `contacts_may_decline` (the API, where a council's
    system may say a contact has not agreed) a contact without consent is kept, shown to
    operators as such, and never contacted by the cascade."""
    errors: dict[str, str] = {}
    cared_for = dict(answers.get("cared_for") or {})
    access = dict(answers.get("access") or {})
    needs_in = answers.get("needs") or {}
    if isinstance(needs_in, str):
        needs_in = {"personal_care": needs_in}
    clean: dict[str, Any] = {
        "cared_for": {
            "name": _text(cared_for.get("name"), 200),
            "address": _text(cared_for.get("address"), 500),
            "postcode": _text(cared_for.get("postcode"), 10).upper(),
            "date_of_birth": "",
            "safe_alone": _text(cared_for.get("safe_alone"), 500),
        },
        "access": {
            "key_safe_code": _text(access.get("key_safe_code"), 32),
            "key_safe_location": _text(access.get("key_safe_location"), 300),
            "key_holder": _text(access.get("key_holder"), 300),
            "notes": _text(access.get("notes"), 1000),
        },
        "needs": {key: _text(needs_in.get(key)) for key, _label in NEEDS_FIELDS},
        "allergies": _text(answers.get("allergies")),
        "gp": _text(answers.get("gp")),
        "professionals": _text(answers.get("professionals")),
        "medication": [],
        "contacts": [],
    }
    for key in ("communication", "routines"):  # api.md puts these next to `needs`
        if answers.get(key) and not clean["needs"][key]:
            clean["needs"][key] = _text(answers.get(key))
    if not clean["cared_for"]["name"]:
        errors["cared_for.name"] = "Enter the name of the person you care for"
    if not clean["cared_for"]["address"]:
        errors["cared_for.address"] = "Enter the address where the person you care for lives"
    born = _parse_day(cared_for.get("date_of_birth"))
    if born is None:
        errors["cared_for.date_of_birth"] = "Enter their date of birth, like 27 3 1950"
    elif born > today:
        errors["cared_for.date_of_birth"] = "Date of birth must be in the past"
    else:
        clean["cared_for"]["date_of_birth"] = born.isoformat()

    for index, item in enumerate(answers.get("medication") or []):
        item = dict(item or {})
        if not _text(item.get("name")):
            if any(_text(v) for v in item.values()):
                errors[f"medication.{index}.name"] = "Enter the name of the medicine"
            continue
        clean["medication"].append(
            {
                key: _text(item.get(key), 300)
                for key in ("name", "dose", "times", "managed_by", "stored_where")
            }
        )

    contacts_in = [dict(c or {}) for c in (answers.get("contacts") or [])]
    contacts_in = [c for c in contacts_in if any(_text(v) for k, v in c.items() if k != "consent")]
    if len(contacts_in) > MAX_CONTACTS:
        errors["contacts"] = f"A plan can name up to {MAX_CONTACTS} contacts"
    for index, contact in enumerate(contacts_in[:MAX_CONTACTS]):
        name = _text(contact.get("name"), 200)
        relationship = _text(contact.get("relationship"), 100)
        if not name:
            errors[f"contacts.{index}.name"] = f"Enter the name of contact {index + 1}"
        if not relationship:
            errors[f"contacts.{index}.relationship"] = (
                f"Enter how contact {index + 1} knows the carer, like daughter or neighbour"
            )
        phone = ""
        try:
            phone = normalise_uk_phone(_text(contact.get("phone"), 40))
        except DomainError:
            errors[f"contacts.{index}.phone"] = (
                f"Enter a real phone number for contact {index + 1}, like 07911 123 456"
            )
        agreed = contact.get("consent", False) in (True, "true", "yes", "y", "on", "1")
        if not agreed and not contacts_may_decline:
            errors[f"contacts.{index}.consent"] = (
                f"Confirm that contact {index + 1} agreed to be named in the plan"
            )
        clean["contacts"].append(
            {
                "name": name,
                "relationship": relationship,
                "phone": phone,
                "can_step_in": bool(contact.get("can_step_in", False)),
                "has_key": bool(contact.get("has_key", False)),
                "availability": _text(contact.get("availability"), 200),
                "consent": agreed,
                # given by the API's default: the submitting plan writer vouches for it
                "consent_by_default": agreed and contact.get("consent_by_default") is True,
            }
        )

    care = dict(answers.get("replacement_care") or {})
    try:
        hours = int(care.get("hours", 72))
    except (TypeError, ValueError):
        hours = 0
    if not 1 <= hours <= 72:
        errors["replacement_care.hours"] = "Replacement care can be planned for 1 to 72 hours"
    clean["replacement_care"] = {"arrangements": _text(care.get("arrangements")), "hours": hours}

    consent = dict(answers.get("consent") or {})
    cared_for_consent = consent.get("cared_for")
    if cared_for_consent is True:
        cared_for_consent = "yes"
    elif cared_for_consent is False:
        cared_for_consent = "no"
    if consent.get("carer") is not True:
        errors["consent.carer"] = "The carer must agree to the plan before it can be saved"
    if cared_for_consent not in CONSENT_CHOICES:
        errors["consent.cared_for"] = (
            "Say whether the person cared for agreed, or record a best-interests decision"
        )
    best_interests = _text(consent.get("best_interests_record"))
    if cared_for_consent == "best_interests" and not best_interests:
        errors["consent.best_interests_record"] = (
            "Describe the best-interests decision: who decided, when and why"
        )
    recorded_by = _text(consent.get("recorded_by"), 200)
    if not recorded_by:
        errors["consent.recorded_by"] = "Enter who recorded the consent"
    recorded_on = _parse_day(consent.get("recorded_on"))
    if recorded_on is None or recorded_on > today:
        errors["consent.recorded_on"] = "Enter the date consent was recorded, like 22 11 2026"
    clean["consent"] = {
        "carer": consent.get("carer") is True,
        "cared_for": cared_for_consent,
        "best_interests_record": best_interests,
        "recorded_by": recorded_by,
        "recorded_on": recorded_on.isoformat() if recorded_on else "",
    }
    if errors:
        raise PlanInvalid("Some of the plan's details are missing or not valid.", fields=errors)
    return clean


def _add_version(
    plan: Plan,
    *,
    number: int,
    answers: dict[str, Any],
    author: User,
    cipher: FieldCipher,
    now: datetime,
) -> PlanVersion:
    sensitive = {k: v for k, v in answers.items() if k not in ("contacts", "consent")}
    key_safe = sensitive["access"].pop("key_safe_code", "")
    sensitive["best_interests_record"] = answers["consent"]["best_interests_record"]
    version = PlanVersion(
        plan=plan,
        council_id=plan.council_id,
        number=number,
        created_by_id=author.id,
        created_at=now,
        details_encrypted=cipher.encrypt_json(sensitive),
        key_safe_encrypted=cipher.encrypt(key_safe) if key_safe else None,
        cared_for_postcode=answers["cared_for"]["postcode"] or None,
        replacement_care_hours=answers["replacement_care"]["hours"],
        consent_carer=answers["consent"]["carer"],
        consent_cared_for=answers["consent"]["cared_for"],
        consent_recorded_by=answers["consent"]["recorded_by"],
        consent_recorded_on=date.fromisoformat(answers["consent"]["recorded_on"]),
    )
    for position, item in enumerate(answers["contacts"], start=1):
        version.contacts.append(
            Contact(
                council_id=plan.council_id,
                position=position,
                name=item["name"],
                relationship_to_carer=item["relationship"],
                phone=item["phone"],
                can_step_in=item["can_step_in"],
                has_key=item["has_key"],
                availability=item["availability"] or None,
                consent=item["consent"],
                consent_recorded_on=date.fromisoformat(answers["consent"]["recorded_on"]),
            )
        )
    db.session.add(version)
    return version


def _contact_consent_details(clean: dict[str, Any], writer: User) -> dict[str, Any]:
    """For the audit entry: whose consent the submitting writer vouched for by default
    (the API without a `consent` field) and who has not agreed (never contacted)."""
    details: dict[str, Any] = {}
    by_default = [n for n, c in enumerate(clean["contacts"], 1) if c.get("consent_by_default")]
    declined = [n for n, c in enumerate(clean["contacts"], 1) if not c["consent"]]
    if by_default:
        details["contact_consent_by_default"] = by_default
        details["contact_consent_recorded_by"] = writer.name
    if declined:
        details["contacts_without_consent"] = declined
    return details


def _check_carer(carer: User, council_id: int) -> None:
    if not carer.has_role(Role.CARER) or carer.council_id != council_id:
        raise PlanInvalid(
            "Choose a carer registered with your council.",
            fields={"carer_id": "Choose a carer registered with your council"},
        )


def create_plan(
    *,
    council: Council,
    carer: User,
    writer: User,
    answers: dict[str, Any],
    cipher: FieldCipher,
    now: datetime,
    is_test: bool = False,
    contacts_may_decline: bool = False,
) -> Plan:
    """Approve a new plan (version 1). Review falls due 12 months from today. A test
    plan's cards open drills, which contact nobody real and stay out of the figures."""
    _check_carer(carer, council.id)
    clean = validate_answers(
        answers, today=london_today(now), contacts_may_decline=contacts_may_decline
    )
    plan = Plan(
        council_id=council.id,
        carer_id=carer.id,
        writer_id=writer.id,
        current_version=1,
        approved_at=now,
        review_due=add_months(london_today(now), REVIEW_MONTHS),
        is_test=is_test,
        created_at=now,
    )
    db.session.add(plan)
    _add_version(plan, number=1, answers=clean, author=writer, cipher=cipher, now=now)
    db.session.flush()
    audit.record(
        "emergency.plan_created",
        actor=writer,
        council_id=council.id,
        subject=plan,
        on_behalf_of=carer,
        details={
            "version": 1,
            "contacts": len(clean["contacts"]),
            "test": is_test,
            **_contact_consent_details(clean, writer),
        },
    )
    db.session.commit()
    return plan


def update_plan(
    plan: Plan,
    *,
    writer: User,
    answers: dict[str, Any],
    cipher: FieldCipher,
    now: datetime,
    contacts_may_decline: bool = False,
) -> Plan:
    """Save an edit as a new version; the old version stays as it was. An edit is a
    fresh approval, so the next review is 12 months from today."""
    clean = validate_answers(
        answers, today=london_today(now), contacts_may_decline=contacts_may_decline
    )
    number = plan.current_version + 1
    _add_version(plan, number=number, answers=clean, author=writer, cipher=cipher, now=now)
    plan.current_version = number
    plan.approved_at = now
    plan.writer_id = writer.id
    plan.review_due = add_months(london_today(now), REVIEW_MONTHS)
    plan.review_reminder_sent_for = None
    plan.overdue_flagged_for = None
    audit.record(
        "emergency.plan_updated",
        actor=writer,
        council_id=plan.council_id,
        subject=plan,
        details={"version": number, **_contact_consent_details(clean, writer)},
    )
    db.session.commit()
    return plan


def get_plan(plan_id: int, *, council_id: int | None) -> Plan:
    """A plan of the caller's council (404 for another council's, so ids don't leak)."""
    plan = db.session.get(Plan, plan_id)
    if plan is None or (council_id is not None and plan.council_id != council_id):
        raise RecordNotFound("There is no emergency plan with that number.")
    return plan


def current_version(plan: Plan) -> PlanVersion:
    version = db.session.scalar(
        select(PlanVersion).where(
            PlanVersion.plan_id == plan.id, PlanVersion.number == plan.current_version
        )
    )
    assert version is not None
    return version


def plan_contacts(plan: Plan) -> list[Contact]:
    """The current version's contacts in cascade order (name, relationship_to_carer,
    phone in E.164, can_step_in, has_key, consent)."""
    return list(current_version(plan).contacts)


def version_details(version: PlanVersion, cipher: FieldCipher) -> dict[str, Any]:
    """The decrypted details of one version, without the key-safe code."""
    details: dict[str, Any] = cipher.decrypt_json(version.details_encrypted)
    return details


def view_plan(
    plan: Plan,
    *,
    viewer: User,
    cipher: FieldCipher,
    now: datetime,
    version_number: int | None = None,
    reason: str | None = None,
    ip_address: str | None = None,
    incident_id: int | None = None,
) -> PlanView:
    """Read a plan (the current version or an older one). Every view is audited."""
    number = version_number or plan.current_version
    version = db.session.scalar(
        select(PlanVersion).where(PlanVersion.plan_id == plan.id, PlanVersion.number == number)
    )
    if version is None:
        raise RecordNotFound("That version of the plan does not exist.")
    audit.record(
        "emergency.plan_viewed",
        actor=viewer,
        council_id=plan.council_id,
        subject=plan,
        reason=reason or (f"incident {incident_id}" if incident_id else None),
        ip_address=ip_address,
        details={"version": number, "incident_id": incident_id},
    )
    db.session.commit()
    return PlanView(
        plan=plan,
        version=version,
        details=version_details(version, cipher),
        has_key_safe=version.key_safe_encrypted is not None,
    )


def carer_own_plan(carer: User, *, cipher: FieldCipher, now: datetime) -> PlanView | None:
    """The carer's own current plan, for their printable copy (audited like any view)."""
    plan = db.session.scalar(
        select(Plan)
        .where(Plan.carer_id == carer.id, Plan.status == PlanStatus.ACTIVE)
        .order_by(Plan.id.desc())
    )
    if plan is None:
        return None
    return view_plan(plan, viewer=carer, cipher=cipher, now=now, reason="carer's own copy")


def list_plans(council_id: int) -> list[Plan]:
    """A council's plans, soonest review first, with their carers loaded in one go."""
    return list(
        db.session.scalars(
            select(Plan)
            .options(selectinload(Plan.carer))
            .where(Plan.council_id == council_id)
            .order_by(Plan.review_due)
        )
    )


def answers_from_version(version: PlanVersion, cipher: FieldCipher) -> dict[str, Any]:
    """Turn a stored version back into answers, to start an edit from it."""
    details = version_details(version, cipher)
    access = dict(details.get("access") or {})
    access["key_safe_code"] = (
        cipher.decrypt(version.key_safe_encrypted) if version.key_safe_encrypted else ""
    )
    return {
        "cared_for": details["cared_for"],
        "access": access,
        "needs": details["needs"],
        "medication": details["medication"],
        "allergies": details["allergies"],
        "gp": details["gp"],
        "professionals": details["professionals"],
        "replacement_care": details["replacement_care"],
        "contacts": [
            {
                "name": c.name,
                "relationship": c.relationship_to_carer,
                "phone": c.phone,
                "can_step_in": c.can_step_in,
                "has_key": c.has_key,
                "availability": c.availability or "",
                "consent": c.consent,
            }
            for c in version.contacts
        ],
        "consent": {
            "carer": version.consent_carer,
            "cared_for": version.consent_cared_for,
            "best_interests_record": details.get("best_interests_record", ""),
            "recorded_by": version.consent_recorded_by,
            "recorded_on": version.consent_recorded_on.isoformat(),
        },
    }


# --- drafts of the guided form -------------------------------------------------------


def start_draft(
    *,
    writer: User,
    cipher: FieldCipher,
    now: datetime,
    plan: Plan | None = None,
    ip_address: str | None = None,
) -> PlanDraft:
    """Begin the guided form: empty for a new plan, or the current version for an edit.
    An edit shows the writer the whole plan, so it is audited as a plan view."""
    answers: dict[str, Any] = {}
    if plan is not None:
        answers = answers_from_version(current_version(plan), cipher)
        answers["carer_id"] = plan.carer_id
        audit.record(
            "emergency.plan_viewed",
            actor=writer,
            council_id=plan.council_id,
            subject=plan,
            reason="editing plan",
            ip_address=ip_address,
            details={"version": plan.current_version, "incident_id": None},
        )
    assert writer.council_id is not None
    draft = PlanDraft(
        council_id=writer.council_id,
        writer_id=writer.id,
        plan_id=plan.id if plan else None,
        answers_encrypted=cipher.encrypt_json(answers),
        created_at=now,
        updated_at=now,
    )
    db.session.add(draft)
    db.session.commit()
    return draft


def get_draft(draft_id: int, *, writer: User) -> PlanDraft:
    draft = db.session.get(PlanDraft, draft_id)
    if draft is None or draft.writer_id != writer.id:
        raise RecordNotFound("That draft plan does not exist.")
    return draft


def draft_answers(draft: PlanDraft, cipher: FieldCipher) -> dict[str, Any]:
    answers: dict[str, Any] = cipher.decrypt_json(draft.answers_encrypted)
    return answers


def key_safe_shown_for_edit(
    draft: PlanDraft, *, code: str, writer: User, ip_address: str | None
) -> None:
    """The guided form's "Getting in" page shows the key-safe code in clear, so the plan
    writer can keep or change it. In an edit that is the plan's locked code, so each
    showing is audited like an operator's reveal: who, which plan, why ("editing plan")."""
    if draft.plan_id is None or not code:
        return
    audit.record(
        "emergency.key_safe_revealed",
        actor=writer,
        council_id=draft.council_id,
        subject=db.session.get(Plan, draft.plan_id),
        reason="editing plan",
        ip_address=ip_address,
        details={"draft_id": draft.id},
    )
    db.session.commit()


def save_draft_step(
    draft: PlanDraft, *, part: dict[str, Any], cipher: FieldCipher, now: datetime
) -> PlanDraft:
    """Merge one page's answers into the draft."""
    answers = draft_answers(draft, cipher)
    answers.update(part)
    draft.answers_encrypted = cipher.encrypt_json(answers)
    draft.updated_at = now
    db.session.commit()
    return draft


def submit_draft(draft: PlanDraft, *, writer: User, cipher: FieldCipher, now: datetime) -> Plan:
    """'Check your answers' → save: a new plan, or a new version of the plan being edited.
    A new plan keeps the "test plan for drills" choice made on its first page, so its
    cards open drills that contact nobody real."""
    answers = draft_answers(draft, cipher)
    if draft.plan_id is not None:
        plan = get_plan(draft.plan_id, council_id=writer.council_id)
        db.session.delete(draft)
        return update_plan(plan, writer=writer, answers=answers, cipher=cipher, now=now)
    carer = db.session.get(User, int(answers.get("carer_id") or 0))
    if carer is None:
        raise PlanInvalid("Choose the carer.", fields={"carer_id": "Choose the carer"})
    council = db.session.get(Council, draft.council_id)
    assert council is not None
    clean = validate_answers(answers, today=london_today(now))
    db.session.delete(draft)
    return create_plan(
        council=council,
        carer=carer,
        writer=writer,
        answers=clean,
        cipher=cipher,
        now=now,
        is_test=answers.get("is_test") is True,
    )


# --- reviews -------------------------------------------------------------------------


def send_plan_review_reminders(now: datetime) -> dict[str, int]:
    """Remind the carer and the plan writer 30 days before a plan's review is due, then
    flag plans whose review date has passed. Each reminder is sent once per due date."""
    today = london_today(now)
    counts = {"reminded": 0, "overdue": 0}
    horizon = date.fromordinal(today.toordinal() + REMINDER_DAYS)
    due_soon = db.session.scalars(
        select(Plan)
        .options(selectinload(Plan.carer), selectinload(Plan.writer))
        .where(
            Plan.status == PlanStatus.ACTIVE,
            Plan.review_due <= horizon,
            Plan.review_due >= today,
            or_(
                Plan.review_reminder_sent_for.is_(None),
                Plan.review_reminder_sent_for != Plan.review_due,
            ),
        )
    ).all()
    for plan in due_soon:
        when = plan.review_due.strftime("%-d %B %Y")
        carer_text = (
            f"Hello {first_name(plan.carer.name)}, your emergency plan is due for its yearly "
            f"check by {when}. Your plan writer will be in touch, or call us to arrange it."
        )
        if plan.carer.phone:
            outbox.enqueue(
                "sms",
                recipient=plan.carer.phone,
                payload={"body": carer_text},
                council_id=plan.council_id,
                dedupe_key=f"plan-review-carer-{plan.id}-{plan.review_due}",
            )
        if plan.writer is not None:
            outbox.enqueue(
                "email",
                recipient=plan.writer.email,
                payload={
                    "subject": f"Emergency plan {plan.id} is due for review by {when}",
                    "body": f"Plan {plan.id} (carer {plan.carer.name}) is due for review by "
                    f"{when}. Please arrange the yearly check with the carer.",
                },
                council_id=plan.council_id,
                dedupe_key=f"plan-review-writer-{plan.id}-{plan.review_due}",
            )
        plan.review_reminder_sent_for = plan.review_due
        audit.record(
            "emergency.plan_review_reminder",
            actor=None,
            council_id=plan.council_id,
            subject=plan,
            details={"review_due": plan.review_due.isoformat()},
        )
        counts["reminded"] += 1
    overdue = db.session.scalars(
        select(Plan).where(
            Plan.status == PlanStatus.ACTIVE,
            Plan.review_due < today,
            or_(Plan.overdue_flagged_for.is_(None), Plan.overdue_flagged_for != Plan.review_due),
        )
    ).all()
    for plan in overdue:
        plan.overdue_flagged_for = plan.review_due
        audit.record(
            "emergency.plan_review_overdue",
            actor=None,
            council_id=plan.council_id,
            subject=plan,
            details={"review_due": plan.review_due.isoformat()},
        )
        counts["overdue"] += 1
    db.session.commit()
    return counts


def is_overdue(plan: Plan, *, now: datetime) -> bool:
    return plan.review_due < to_london(now).date()
