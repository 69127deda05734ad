"""Workers and provider organisations: sign-up, who may edit which profile, profiles,
booking rules, and carers' favourites.

Self-employed workers sign up and keep their own profile. A provider admin manages the
workers of their one organisation and may edit profiles for them. Everyone else gets
403 for a worker's record (404 if it does not exist at all).
"""

from __future__ import annotations

import io
import secrets
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from PIL import Image
from sqlalchemy import delete, select

from app import audit
from app.auth.services import create_user
from app.errors import DomainError, Forbidden, NotFound
from app.extensions import db
from app.models import Council, Role, User
from app.phone_numbers import normalise_uk_phone
from booking.models.workers import (
    Favourite,
    ProviderAdmin,
    ProviderOrganisation,
    VettingStatus,
    WorkerLanguage,
    WorkerProfile,
    WorkerSkill,
)
from booking.services import postcodes


class WorkerError(DomainError):
    code = "invalid_request"
    status = 422


class WorkerNotBookable(WorkerError):
    code = "worker_not_bookable"
    status = 422


class OutsideAvailability(WorkerError):
    code = "outside_availability"
    status = 422


SKILLS: dict[str, str] = {
    "dementia": "Dementia",
    "autism": "Autism",
    "learning_disability": "Learning disability",
    "moving_and_handling": "Moving and handling",
    "personal_care": "Personal care",
    "sitting_service": "Sitting service",
    "outings": "Outings and activities",
    "physical_disability": "Physical disability",
    "mental_health": "Mental health",
    "end_of_life": "End of life care",
}
GENDERS: dict[str, str] = {
    "female": "Female",
    "male": "Male",
    "non_binary": "Non-binary",
    "not_said": "Prefer not to say",
}
MAX_TRAVEL_RADIUS_KM = 80  # also the search prefilter's box size
MAX_PHOTO_BYTES = 2 * 1024 * 1024
MAX_PHOTO_PIXELS = 25_000_000  # 5,000 by 5,000: more than any phone camera, and safe to decode
PHOTO_TYPES = {"image/jpeg", "image/png", "image/webp"}
PHOTO_TYPE_MESSAGE = "The photo must be a JPEG, PNG or WebP picture"
PHOTO_SIZE_MESSAGE = "The photo must be smaller than 2 MB"


@dataclass
class ProfileDetails:
    """What a worker (or their provider admin) may set on a profile."""

    display_name: str
    skills: Sequence[str]
    languages: Sequence[str]
    gender: str | None
    postcode: str
    travel_radius_km: int
    hourly_rate_pence: int
    bio: str | None = None
    evening_premium_percent: int | None = None
    weekend_premium_percent: int | None = None
    bank_holiday_premium_percent: int | None = None
    phone: str | None = None  # None leaves the number as it is; "" removes it


@dataclass(frozen=True)
class PhotoUpload:
    """An uploaded photo as sent: its bytes and the type the browser claimed."""

    data: bytes
    content_type: str


@dataclass
class BookingRules:
    """The worker's own rules for taking bookings."""

    min_notice_minutes: int
    min_session_minutes: int
    max_hours_per_week: int
    buffer_minutes: int
    favourites_instant_book: bool
    response_deadline_hours: int
    travel_radius_km: int | None = None


# ----------------------------------------------------------------- lookups and access


def profile_of(worker_id: int) -> WorkerProfile | None:
    return db.session.scalar(select(WorkerProfile).where(WorkerProfile.user_id == worker_id))


def organisation_of(admin: User) -> ProviderOrganisation | None:
    link = db.session.scalar(select(ProviderAdmin).where(ProviderAdmin.user_id == admin.id))
    return link.organisation if link is not None else None


def editable_worker(actor: User, worker_id: int) -> User:
    """The worker `actor` may manage: themselves, or (provider admin) one of their team."""
    if actor.id == worker_id and actor.has_role(Role.WORKER):
        return actor
    if actor.has_role(Role.PROVIDER_ADMIN):
        worker = db.session.get(User, worker_id)
        if worker is None or not worker.has_role(Role.WORKER):
            raise NotFound("We cannot find that worker.")
        organisation = organisation_of(actor)
        profile = profile_of(worker_id)
        if (
            organisation is not None
            and profile is not None
            and profile.organisation_id == organisation.id
        ):
            return worker
        raise Forbidden("This worker is not in your organisation.")
    raise Forbidden("You can only change your own worker profile.")


def editable_profile(actor: User, worker_id: int) -> WorkerProfile:
    """Like `editable_worker`, returning the profile (made empty if the worker has none)."""
    worker = editable_worker(actor, worker_id)
    profile = profile_of(worker.id)
    if profile is None:
        profile = _new_profile(worker)
        db.session.flush()
    return profile


def _new_profile(worker: User, organisation: ProviderOrganisation | None = None) -> WorkerProfile:
    if worker.council_id is None:
        raise WorkerError("This worker is not linked to a council yet. Ask the council.")
    profile = WorkerProfile(
        user_id=worker.id,
        council_id=worker.council_id,
        organisation_id=organisation.id if organisation is not None else None,
        display_name=worker.name,
        bio="",
        status=VettingStatus.PENDING,
    )
    profile.skill_rows = []
    profile.language_rows = []
    db.session.add(profile)
    return profile


# ----------------------------------------------------------------- sign-up and teams


def sign_up_worker(
    *,
    council: Council,
    name: str,
    email: str,
    password: str,
    phone: str | None,
    postcode: str | None,
    now: datetime,
    password_method: str = "scrypt",
) -> User:
    """A self-employed worker joins: an account with the worker role and a pending profile.

    The phone number is stored as E.164, as booking texts are sent to it."""
    phone = _clean_phone(phone)
    if postcode:
        postcode = postcodes.locate(postcode).postcode
    user = create_user(
        email=email,
        password=password,
        roles=[Role.WORKER],
        name=name,
        council=council,
        phone=phone,
        postcode=postcode,
        password_method=password_method,
        now=now,
    )
    profile = _new_profile(user)
    if postcode:
        _set_location(profile, postcode)
    db.session.flush()
    audit.record("worker.signed_up", actor=user, council_id=council.id, subject=profile)
    db.session.commit()
    return user


def create_organisation(admin: User, *, name: str, now: datetime) -> ProviderOrganisation:
    """A provider admin sets up the organisation they manage (one per admin)."""
    if not admin.has_role(Role.PROVIDER_ADMIN):
        raise Forbidden("Only a provider admin can set up an organisation.")
    if organisation_of(admin) is not None:
        raise WorkerError("You already manage an organisation.")
    if admin.council_id is None:
        raise WorkerError("Your account is not linked to a council yet. Ask the council.")
    cleaned = name.strip()
    if not cleaned:
        raise WorkerError(
            "Enter your organisation's name.", fields={"name": "Enter your organisation's name"}
        )
    organisation = ProviderOrganisation(council_id=admin.council_id, name=cleaned, created_at=now)
    db.session.add(organisation)
    db.session.flush()
    db.session.add(ProviderAdmin(organisation_id=organisation.id, user_id=admin.id))
    audit.record(
        "provider.organisation_created",
        actor=admin,
        council_id=admin.council_id,
        subject=organisation,
    )
    db.session.commit()
    return organisation


def add_team_worker(
    admin: User,
    *,
    name: str,
    email: str,
    phone: str | None,
    now: datetime,
    password_method: str = "scrypt",
) -> User:
    """A provider admin adds a worker to their organisation. The worker sets their own
    password through "I have forgotten my password", so none is ever shared."""
    organisation = organisation_of(admin)
    if organisation is None:
        raise WorkerError("Set up your organisation first.")
    phone = _clean_phone(phone)
    council = db.session.get(Council, organisation.council_id)
    user = create_user(
        email=email,
        password=secrets.token_urlsafe(24),
        roles=[Role.WORKER],
        name=name,
        council=council,
        phone=phone,
        password_method=password_method,
        now=now,
    )
    profile = _new_profile(user, organisation)
    db.session.flush()
    audit.record(
        "provider.worker_added",
        actor=admin,
        council_id=organisation.council_id,
        subject=profile,
        details={"organisation_id": organisation.id},
    )
    db.session.commit()
    return user


def team_of(admin: User) -> list[WorkerProfile]:
    organisation = organisation_of(admin)
    if organisation is None:
        return []
    return list(
        db.session.scalars(
            select(WorkerProfile)
            .where(WorkerProfile.organisation_id == organisation.id)
            .order_by(WorkerProfile.display_name)
        )
    )


# ----------------------------------------------------------------- profile and rules


def _clean_phone(phone: str | None) -> str | None:
    """A UK number as E.164 (None when not given); WorkerError for one that is not real."""
    text = (phone or "").strip()
    if not text:
        return None
    try:
        return normalise_uk_phone(text)
    except DomainError as exc:
        raise WorkerError(exc.message, fields=exc.fields) from exc


def _clean_list(values: Sequence[str], *, lower: bool) -> list[str]:
    seen: list[str] = []
    for value in values:
        item = " ".join(value.split())
        if lower:
            item = item.lower()
        if item and item not in seen:
            seen.append(item)
    return seen


def _set_location(profile: WorkerProfile, postcode: str) -> None:
    place = postcodes.locate(postcode)
    profile.postcode = place.postcode
    profile.latitude = place.latitude
    profile.longitude = place.longitude


def _check_percent(fields: dict[str, str], name: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= 200:
        fields[name] = "Enter a percentage from 0 to 200"


def rules_of(profile: WorkerProfile) -> BookingRules:
    """The worker's booking rules as they stand (to change some and keep the rest)."""
    return BookingRules(
        min_notice_minutes=profile.min_notice_minutes,
        min_session_minutes=profile.min_session_minutes,
        max_hours_per_week=profile.max_hours_per_week,
        buffer_minutes=profile.buffer_minutes,
        favourites_instant_book=profile.favourites_instant_book,
        response_deadline_hours=profile.response_deadline_hours,
    )


def _rule_problems(rules: BookingRules) -> dict[str, str]:
    fields: dict[str, str] = {}
    if not 0 <= rules.min_notice_minutes <= 14 * 24 * 60:
        fields["min_notice_minutes"] = "Enter a notice time from 0 minutes to 14 days"
    if rules.min_session_minutes < 60:
        fields["min_session_minutes"] = "A session must be at least 1 hour (60 minutes)"
    elif rules.min_session_minutes > 24 * 60 or rules.min_session_minutes % 15:
        fields["min_session_minutes"] = "Enter a length in 15-minute steps, up to 24 hours"
    if not 1 <= rules.max_hours_per_week <= 80:
        fields["max_hours_per_week"] = "Enter from 1 to 80 hours a week"
    if not 0 <= rules.buffer_minutes <= 240:
        fields["buffer_minutes"] = "Enter a gap from 0 to 240 minutes"
    if not 1 <= rules.response_deadline_hours <= 72:
        fields["response_deadline_hours"] = "Enter from 1 to 72 hours"
    if rules.travel_radius_km is not None and not (
        1 <= rules.travel_radius_km <= MAX_TRAVEL_RADIUS_KM
    ):
        fields["travel_radius_km"] = f"Enter a distance from 1 to {MAX_TRAVEL_RADIUS_KM} km"
    return fields


def _apply_rules(profile: WorkerProfile, rules: BookingRules) -> None:
    profile.min_notice_minutes = rules.min_notice_minutes
    profile.min_session_minutes = rules.min_session_minutes
    profile.max_hours_per_week = rules.max_hours_per_week
    profile.buffer_minutes = rules.buffer_minutes
    profile.favourites_instant_book = rules.favourites_instant_book
    profile.response_deadline_hours = rules.response_deadline_hours
    if rules.travel_radius_km is not None:
        profile.travel_radius_km = rules.travel_radius_km


_PILLOW_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


def _sniff(data: bytes) -> str | None:
    """The picture type the bytes themselves say (None for anything else)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_photo(data: bytes, content_type: str) -> str:
    """The photo's real type, from its bytes; WorkerError for anything that is not a JPEG,
    PNG or WebP picture up to 2 MB.

    The type the browser claims is not trusted: the bytes must start like that kind of
    picture and decode as one with Pillow, so a web page labelled image/png is refused
    rather than stored and served."""
    if not data or len(data) > MAX_PHOTO_BYTES:
        raise WorkerError(PHOTO_SIZE_MESSAGE + ".", fields={"photo": PHOTO_SIZE_MESSAGE})
    refused = WorkerError(PHOTO_TYPE_MESSAGE + ".", fields={"photo": PHOTO_TYPE_MESSAGE})
    sniffed = _sniff(data)
    if content_type not in PHOTO_TYPES or sniffed is None:
        raise refused
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[sniffed]]) as image:
                width, height = image.size
                if width * height > MAX_PHOTO_PIXELS:
                    raise WorkerError(
                        "The photo is too big. Use one smaller than 5,000 by 5,000 pixels.",
                        fields={"photo": "Use a photo smaller than 5,000 by 5,000 pixels"},
                    )
                image.load()
    except WorkerError:
        raise
    except Exception as exc:  # any decoder failure means it is not a picture
        raise refused from exc
    return sniffed


def update_profile(
    actor: User,
    worker_id: int,
    details: ProfileDetails,
    *,
    now: datetime,
    rule_changes: Mapping[str, int | bool] | None = None,
    photo: PhotoUpload | None = None,
) -> WorkerProfile:
    """Save a worker's public profile (by the worker or their provider admin), with any
    booking rules (`rule_changes`, by name) and photo sent along.

    Everything is checked before anything is written, then saved in one commit: a refusal
    changes nothing, not even the photo. A postcode that is the only problem keeps its
    own error (unknown_postcode or invalid_postcode)."""
    profile = editable_profile(actor, worker_id)
    fields: dict[str, str] = {}
    display_name = " ".join(details.display_name.split())
    if not display_name:
        fields["display_name"] = "Enter the name carers will see"
    elif len(display_name) > 100:
        fields["display_name"] = "Use 100 characters or fewer"
    skills = _clean_list(details.skills, lower=True)
    unknown = [s for s in skills if s not in SKILLS]
    if unknown:
        fields["skills"] = f"Choose skills from the list (not {', '.join(unknown)})"
    languages = _clean_list(details.languages, lower=True)
    if any(len(language) > 64 for language in languages):
        fields["languages"] = "Each language must be 64 characters or fewer"
    if details.gender not in (None, "", *GENDERS):
        fields["gender"] = "Choose one of: " + ", ".join(GENDERS)
    if not 1 <= details.travel_radius_km <= MAX_TRAVEL_RADIUS_KM:
        fields["travel_radius_km"] = f"Enter a distance from 1 to {MAX_TRAVEL_RADIUS_KM} km"
    if not 0 < details.hourly_rate_pence <= 20_000:
        fields["hourly_rate_pence"] = "Enter an hourly rate between 1p and £200"
    _check_percent(fields, "evening_premium_percent", details.evening_premium_percent)
    _check_percent(fields, "weekend_premium_percent", details.weekend_premium_percent)
    _check_percent(fields, "bank_holiday_premium_percent", details.bank_holiday_premium_percent)
    if details.bio is not None and len(details.bio) > 2000:
        fields["bio"] = "Use 2,000 characters or fewer"
    phone: str | None = None
    if details.phone is not None:
        try:
            phone = _clean_phone(details.phone)
        except WorkerError as exc:
            fields.update(exc.fields)
    rules: BookingRules | None = None
    if rule_changes:
        unknown_rules = set(rule_changes) - set(BookingRules.__dataclass_fields__)
        if unknown_rules:
            raise ValueError(f"not booking rules: {sorted(unknown_rules)}")
        rules = replace(rules_of(profile), **rule_changes)  # type: ignore[arg-type]
        fields.update(_rule_problems(rules))
    photo_type: str | None = None
    if photo is not None:
        try:
            photo_type = check_photo(photo.data, photo.content_type)
        except WorkerError as exc:
            fields.update(exc.fields)
    try:
        place = postcodes.locate(details.postcode)
    except postcodes.PostcodeError as exc:
        fields.update(exc.fields)
        if len(fields) == 1:
            raise
        place = None
    if fields:
        raise WorkerError("Some details need changing before we can save them.", fields=fields)
    assert place is not None
    on_behalf_of = profile.user if actor.id != profile.user_id else None
    profile.display_name = display_name
    profile.postcode = place.postcode
    profile.latitude = place.latitude
    profile.longitude = place.longitude
    profile.gender = details.gender or None
    profile.travel_radius_km = details.travel_radius_km
    profile.hourly_rate_pence = details.hourly_rate_pence
    if details.bio is not None:
        profile.bio = details.bio.strip()
    for name in ("evening", "weekend", "bank_holiday"):
        value = getattr(details, f"{name}_premium_percent")
        if value is not None:
            setattr(profile, f"{name}_premium_percent", value)
    if details.phone is not None:
        profile.user.phone = phone
    _replace_tags(profile, skills, languages)
    profile.updated_at = now
    audit.record(
        "worker.profile_updated",
        actor=actor,
        council_id=profile.council_id,
        subject=profile,
        on_behalf_of=on_behalf_of,
    )
    if rules is not None:
        _apply_rules(profile, rules)
        audit.record(
            "worker.rules_updated",
            actor=actor,
            council_id=profile.council_id,
            subject=profile,
            on_behalf_of=on_behalf_of,
        )
    if photo is not None and photo_type is not None:
        profile.photo = photo.data
        profile.photo_content_type = photo_type
        audit.record(
            "worker.photo_updated",
            actor=actor,
            council_id=profile.council_id,
            subject=profile,
            on_behalf_of=on_behalf_of,
        )
    db.session.commit()
    return profile


def _replace_tags(profile: WorkerProfile, skills: list[str], languages: list[str]) -> None:
    db.session.execute(delete(WorkerSkill).where(WorkerSkill.profile_id == profile.id))
    db.session.execute(delete(WorkerLanguage).where(WorkerLanguage.profile_id == profile.id))
    db.session.expire(profile, ["skill_rows", "language_rows"])
    for skill in skills:
        db.session.add(
            WorkerSkill(profile_id=profile.id, council_id=profile.council_id, skill=skill)
        )
    for language in languages:
        db.session.add(
            WorkerLanguage(profile_id=profile.id, council_id=profile.council_id, language=language)
        )
    db.session.flush()


def update_rules(
    actor: User, worker_id: int, rules: BookingRules, *, now: datetime
) -> WorkerProfile:
    """Save the worker's booking rules. A session is never shorter than an hour."""
    profile = editable_profile(actor, worker_id)
    fields = _rule_problems(rules)
    if fields:
        raise WorkerError("Some rules need changing before we can save them.", fields=fields)
    _apply_rules(profile, rules)
    profile.updated_at = now
    audit.record(
        "worker.rules_updated",
        actor=actor,
        council_id=profile.council_id,
        subject=profile,
        on_behalf_of=profile.user if actor.id != profile.user_id else None,
    )
    db.session.commit()
    return profile


def remove_photo(actor: User, worker_id: int, *, now: datetime) -> WorkerProfile:
    """Take the worker's photo off their profile (carers then see none)."""
    profile = editable_profile(actor, worker_id)
    if profile.photo is None and profile.photo_content_type is None:
        return profile
    profile.photo = None
    profile.photo_content_type = None
    profile.updated_at = now
    audit.record(
        "worker.photo_removed",
        actor=actor,
        council_id=profile.council_id,
        subject=profile,
        on_behalf_of=profile.user if actor.id != profile.user_id else None,
    )
    db.session.commit()
    return profile


# ----------------------------------------------------------------- favourites


def toggle_favourite(carer: User, worker_id: int, *, now: datetime) -> bool:
    """Add or remove a worker from a carer's favourites; return whether it is now one."""
    profile = profile_of(worker_id)
    if profile is None or profile.council_id != carer.council_id:
        raise NotFound("We cannot find that worker.")
    existing = db.session.scalar(
        select(Favourite).where(Favourite.carer_id == carer.id, Favourite.worker_id == worker_id)
    )
    if existing is not None:
        db.session.delete(existing)
        db.session.commit()
        return False
    db.session.add(
        Favourite(
            council_id=profile.council_id, carer_id=carer.id, worker_id=worker_id, created_at=now
        )
    )
    db.session.commit()
    return True
