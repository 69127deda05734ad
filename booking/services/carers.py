"""Carers and the people they nominate.

A council officer registers a carer (after the carer's assessment) and keeps their
details up to date; the date of birth is what marks a young carer. The carer then
chooses their own password from a welcome link, and may nominate people to act for
them (a `representative`), who can book breaks and see the budget on their behalf.
Every change is audited; every query is scoped to one council."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, select

from app import audit, outbox
from app.auth.services import create_user, make_welcome_token, normalise_email
from app.errors import Conflict, DomainError, NotFound
from app.extensions import db
from app.models import Representation, Role, User, UserRole
from app.phone_numbers import normalise_uk_phone
from booking.services.budgets import council_carer
from booking.services.postcodes import tidy_postcode

MAX_REPRESENTATIVES = 5
OLDEST_PLAUSIBLE_AGE = 120


@dataclass(frozen=True)
class CarerDetails:
    """What an officer records about a carer. Empty strings mean "not known"."""

    name: str
    email: str
    phone: str | None
    postcode: str | None
    date_of_birth: date | None
    reference: str | None


def _clean(details: CarerDetails, *, today: date) -> CarerDetails:
    """Normalise and check details, naming the field at fault."""
    name = " ".join(details.name.split())
    if not name:
        raise DomainError("Enter the carer's full name.", fields={"name": "Enter the full name"})
    phone = normalise_uk_phone(details.phone) if details.phone and details.phone.strip() else None
    born = details.date_of_birth
    if born is not None and born > today:
        raise DomainError(
            "The date of birth must be in the past.",
            fields={"date_of_birth": "Date of birth must be in the past"},
        )
    if born is not None and today.year - born.year > OLDEST_PLAUSIBLE_AGE:
        raise DomainError(
            "Check the year of birth.", fields={"date_of_birth": "Check the year of birth"}
        )
    reference = (details.reference or "").strip() or None
    postcode = tidy_postcode(details.postcode)[0] if (details.postcode or "").strip() else None
    return CarerDetails(
        name=name,
        email=normalise_email(details.email),
        phone=phone,
        postcode=postcode,
        date_of_birth=born,
        reference=reference,
    )


def _check_reference_free(council_id: int, reference: str | None, *, except_id: int = 0) -> None:
    if reference is None:
        return
    taken = db.session.scalar(
        select(User.id).where(
            User.council_id == council_id, User.reference == reference, User.id != except_id
        )
    )
    if taken is not None:
        raise Conflict(
            "Another person in your council already has that reference.",
            fields={"reference": "This reference is already in use"},
        )


def _queue_welcome(user: User, *, secret_key: str, set_password_url: str, why: str) -> None:
    """E-mail a link to choose a password. Nobody else ever knows the first password."""
    token = make_welcome_token(user, secret_key=secret_key)
    outbox.enqueue(
        "email",
        recipient=user.email,
        council_id=user.council_id,
        payload={
            "subject": "Your account for short breaks",
            "body": (
                f"Hello {user.name},\n\n{why}\n\nChoose a password with this link. "
                f"It works for 7 days and only once:\n\n{set_password_url}?token={token}\n\n"
                "If the link has run out, use 'Forgotten your password?' on the sign-in page."
            ),
        },
    )


def register_carer(
    *,
    council_id: int,
    details: CarerDetails,
    actor: User,
    secret_key: str,
    set_password_url: str,
    password_method: str,
    now: datetime,
    today: date,
) -> User:
    """Create a carer's account and e-mail them a link to choose their password."""
    clean = _clean(details, today=today)
    _check_reference_free(council_id, clean.reference)
    council = actor.council if actor.council_id == council_id else None
    if council is None:
        raise NotFound("There is no council for this officer.")
    carer = create_user(
        email=clean.email,
        password=secrets.token_urlsafe(32),
        roles=[Role.CARER],
        name=clean.name,
        council=council,
        phone=clean.phone,
        postcode=clean.postcode,
        date_of_birth=clean.date_of_birth,
        reference=clean.reference,
        password_method=password_method,
        now=now,
    )
    audit.record("carer.registered", actor=actor, council_id=council_id, subject=carer)
    _queue_welcome(
        carer,
        secret_key=secret_key,
        set_password_url=set_password_url,
        why="Your council has set up an account for you to book short breaks.",
    )
    db.session.commit()
    return carer


def update_carer(
    *, council_id: int, carer_id: int, details: CarerDetails, actor: User, today: date
) -> User:
    """Change a carer's details. The audit names the fields changed, not their values."""
    carer = council_carer(council_id, carer_id)
    clean = _clean(details, today=today)
    _check_reference_free(council_id, clean.reference, except_id=carer.id)
    if clean.email != carer.email and db.session.scalar(
        select(User.id).where(func.lower(User.email) == clean.email, User.id != carer.id)
    ):
        raise Conflict(
            "An account with that e-mail address already exists.",
            fields={"email": "Already in use"},
        )
    changed = [
        name
        for name in ("name", "email", "phone", "postcode", "date_of_birth", "reference")
        if getattr(carer, name) != getattr(clean, name)
    ]
    for name in changed:
        setattr(carer, name, getattr(clean, name))
    if changed:
        audit.record(
            "carer.updated",
            actor=actor,
            council_id=council_id,
            subject=carer,
            details={"fields": changed},
        )
    db.session.commit()
    return carer


def resend_welcome(
    *, council_id: int, carer_id: int, actor: User, secret_key: str, set_password_url: str
) -> User:
    """Send the carer a fresh "choose your password" link (the old one may have run out)."""
    carer = council_carer(council_id, carer_id)
    _queue_welcome(
        carer,
        secret_key=secret_key,
        set_password_url=set_password_url,
        why="Here is a new link to set up your account for short breaks.",
    )
    audit.record("carer.welcome_resent", actor=actor, council_id=council_id, subject=carer)
    db.session.commit()
    return carer


# --- people a carer nominates ----------------------------------------------------------


def representatives_of(carer: User) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .join(Representation, Representation.representative_id == User.id)
            .where(Representation.carer_id == carer.id)
            .order_by(User.name)
        )
    )


def nominate_representative(
    *,
    carer: User,
    name: str,
    email: str,
    secret_key: str,
    set_password_url: str,
    password_method: str,
    now: datetime,
) -> User:
    """Let someone act for the carer. A new person gets an account and a welcome link;
    someone with an account in the same council gains the representative role."""
    if carer.council_id is None or not carer.has_role(Role.CARER):
        raise DomainError("Only a carer can nominate someone to act for them.")
    name = " ".join(name.split())
    if not name:
        raise DomainError("Enter their full name.", fields={"name": "Enter their full name"})
    email = normalise_email(email)
    if email == carer.email:
        raise DomainError(
            "Enter someone else's e-mail address.", fields={"email": "This is your own address"}
        )
    if len(representatives_of(carer)) >= MAX_REPRESENTATIVES:
        raise DomainError(
            f"You can nominate up to {MAX_REPRESENTATIVES} people. Remove someone first.",
            fields={"email": f"You already have {MAX_REPRESENTATIVES} people"},
        )
    person = db.session.scalar(select(User).where(func.lower(User.email) == email))
    if person is not None and person.council_id != carer.council_id:
        # Never reveal that an address exists elsewhere; the council can link them.
        raise DomainError(
            "We could not add this person. Ask the council to help.",
            fields={"email": "We could not add this person"},
        )
    if person is None:
        person = create_user(
            email=email,
            password=secrets.token_urlsafe(32),
            roles=[Role.REPRESENTATIVE],
            name=name,
            council=carer.council,
            password_method=password_method,
            now=now,
        )
        _queue_welcome(
            person,
            secret_key=secret_key,
            set_password_url=set_password_url,
            why=f"{carer.name} has asked you to help them book short breaks.",
        )
    else:
        existing = db.session.scalar(
            select(Representation.id).where(
                Representation.carer_id == carer.id, Representation.representative_id == person.id
            )
        )
        if existing is not None:
            raise Conflict(
                f"{person.name} can already act for you.",
                fields={"email": "This person can already act for you"},
            )
        if not person.has_role(Role.REPRESENTATIVE):
            person.role_rows.append(UserRole(role=Role.REPRESENTATIVE))
        outbox.enqueue(
            "email",
            recipient=person.email,
            council_id=person.council_id,
            payload={
                "subject": "You can now help with short breaks",
                "body": f"Hello {person.name},\n\n{carer.name} has asked you to help them "
                "book short breaks. Sign in to see their budget and breaks.",
            },
        )
    db.session.add(
        Representation(council_id=carer.council_id, carer_id=carer.id, representative_id=person.id)
    )
    audit.record(
        "representative.nominated", actor=carer, council_id=carer.council_id, subject=person
    )
    db.session.commit()
    return person


def remove_representative(*, carer: User, representative_id: int) -> User:
    """Stop someone acting for the carer at once. Their account stays for other carers."""
    person = db.session.get(User, representative_id)
    removed = db.session.execute(
        delete(Representation).where(
            Representation.carer_id == carer.id,
            Representation.representative_id == representative_id,
        )
    ).rowcount
    if person is None or not removed:
        raise NotFound("This person cannot act for you.")
    audit.record("representative.removed", actor=carer, council_id=carer.council_id, subject=person)
    db.session.commit()
    return person
