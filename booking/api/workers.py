"""JSON API for workers: profiles, checks, approval, availability and search (api.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel, Field, field_validator

from app.api.core import ApiBlueprint
from app.api.schemas import ApiModel
from app.clock import LONDON, iso_z, parse_iso, utcnow
from app.models import Role, User
from booking.models.workers import CheckKind, ExceptionKind, WorkerProfile
from booking.services import availability, search, vetting
from booking.services import workers as worker_services

api = ApiBlueprint("workers_api", __name__, tag="workers")

SELF_OR_PROVIDER = [Role.WORKER, Role.PROVIDER_ADMIN]


def _parse_wall_or_offset(value: str) -> datetime:
    """An ISO moment; one without an offset is read as UK wall-clock time (api.md)."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError as exc:
        raise ValueError("Give a date and time like 2027-03-28T09:00:00+01:00") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LONDON)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # the first or last moments of year 1 or 9999
        raise ValueError("Give a date and time between the years 1000 and 9998") from exc


class ProfileIn(ApiModel):
    display_name: str = Field(min_length=1, max_length=100)
    skills: list[str] = Field(default_factory=list, max_length=20)
    languages: list[str] = Field(default_factory=list, max_length=20)
    gender: str | None = None
    postcode: str = Field(min_length=2, max_length=10)
    travel_radius_km: int = Field(ge=1, le=worker_services.MAX_TRAVEL_RADIUS_KM)
    hourly_rate_pence: int = Field(gt=0, le=20_000)
    bio: str | None = Field(default=None, max_length=2000)
    evening_premium_percent: int | None = Field(default=None, ge=0, le=200)
    weekend_premium_percent: int | None = Field(default=None, ge=0, le=200)
    bank_holiday_premium_percent: int | None = Field(default=None, ge=0, le=200)
    min_notice_minutes: int | None = Field(default=None, ge=0, le=14 * 24 * 60)
    min_session_minutes: int | None = Field(default=None, ge=60, le=24 * 60)
    max_hours_per_week: int | None = Field(default=None, ge=1, le=80)
    buffer_minutes: int | None = Field(default=None, ge=0, le=240)
    favourites_instant_book: bool | None = None
    response_deadline_hours: int | None = Field(default=None, ge=1, le=72)
    phone: str | None = Field(default=None, max_length=30)


RULE_FIELDS = (
    "min_notice_minutes",
    "min_session_minutes",
    "max_hours_per_week",
    "buffer_minutes",
    "favourites_instant_book",
    "response_deadline_hours",
)


class ProfileOut(BaseModel):
    worker_id: int
    display_name: str
    bio: str
    skills: list[str]
    languages: list[str]
    gender: str | None
    postcode: str | None
    travel_radius_km: int
    hourly_rate_pence: int
    evening_premium_percent: int
    weekend_premium_percent: int
    bank_holiday_premium_percent: int
    min_notice_minutes: int
    min_session_minutes: int
    max_hours_per_week: int
    buffer_minutes: int
    favourites_instant_book: bool
    response_deadline_hours: int
    status: str
    reapproval_due: date | None
    phone: str | None


def profile_out(profile: WorkerProfile) -> ProfileOut:
    return ProfileOut(
        worker_id=profile.user_id,
        display_name=profile.display_name,
        bio=profile.bio,
        skills=profile.skills,
        languages=profile.languages,
        gender=profile.gender,
        postcode=profile.postcode,
        travel_radius_km=profile.travel_radius_km,
        hourly_rate_pence=profile.hourly_rate_pence,
        evening_premium_percent=profile.evening_premium_percent,
        weekend_premium_percent=profile.weekend_premium_percent,
        bank_holiday_premium_percent=profile.bank_holiday_premium_percent,
        min_notice_minutes=profile.min_notice_minutes,
        min_session_minutes=profile.min_session_minutes,
        max_hours_per_week=profile.max_hours_per_week,
        buffer_minutes=profile.buffer_minutes,
        favourites_instant_book=profile.favourites_instant_book,
        response_deadline_hours=profile.response_deadline_hours,
        status=profile.status.value,
        reapproval_due=profile.reapproval_due,
        phone=profile.user.phone,
    )


@api.operation(
    "/workers/<int:worker_id>/profile",
    method="PUT",
    summary="Set a worker's profile (the worker, or their provider admin)",
    roles=SELF_OR_PROVIDER,
    body=ProfileIn,
    response=ProfileOut,
    errors=[
        (403, "forbidden"),
        (404, "not_found"),
        (422, "unknown_postcode"),
        (422, "invalid_request"),
    ],
)
def put_profile(user: User, body: ProfileIn, worker_id: int) -> ProfileOut:
    """All or nothing: the profile and any booking rules sent are checked together and
    saved together, so a 422 changes nothing."""
    profile = worker_services.update_profile(
        user,
        worker_id,
        worker_services.ProfileDetails(
            display_name=body.display_name,
            skills=body.skills,
            languages=body.languages,
            gender=body.gender,
            postcode=body.postcode,
            travel_radius_km=body.travel_radius_km,
            hourly_rate_pence=body.hourly_rate_pence,
            bio=body.bio,
            evening_premium_percent=body.evening_premium_percent,
            weekend_premium_percent=body.weekend_premium_percent,
            bank_holiday_premium_percent=body.bank_holiday_premium_percent,
            phone=body.phone,
        ),
        now=utcnow(),
        rule_changes={
            name: getattr(body, name) for name in RULE_FIELDS if getattr(body, name) is not None
        },
    )
    return profile_out(profile)


class CheckIn(ApiModel):
    kind: CheckKind
    reference: str = Field(min_length=1, max_length=200)
    issued_on: date
    expires_on: date | None = None
    update_service: bool = False


class CheckOut(BaseModel):
    id: int
    kind: str
    reference: str
    issued_on: date
    expires_on: date | None
    update_service: bool


@api.operation(
    "/workers/<int:worker_id>/checks",
    method="POST",
    summary="Record evidence of a vetting check",
    roles=SELF_OR_PROVIDER,
    body=CheckIn,
    response=CheckOut,
    status=201,
    errors=[(403, "forbidden"), (404, "not_found")],
)
def post_check(user: User, body: CheckIn, worker_id: int) -> CheckOut:
    check = vetting.record_check(
        user,
        worker_id,
        vetting.CheckDetails(
            kind=body.kind,
            reference=body.reference,
            issued_on=body.issued_on,
            expires_on=body.expires_on,
            dbs_update_service=body.update_service,
        ),
        now=utcnow(),
    )
    return CheckOut(
        id=check.id,
        kind=check.kind.value,
        reference=check.reference,
        issued_on=check.issued_on,
        expires_on=check.expires_on,
        update_service=check.dbs_update_service,
    )


class ApproveOut(BaseModel):
    status: str
    reapproval_due: date | None


@api.operation(
    "/workers/<int:worker_id>/approve",
    method="POST",
    summary="Approve a worker for two years (every check must be in date)",
    roles=[Role.COUNCIL_OFFICER],
    response=ApproveOut,
    errors=[(404, "not_found"), (422, "checks_incomplete")],
)
def approve(user: User, worker_id: int) -> ApproveOut:
    profile = vetting.approve_worker(user, worker_id, now=utcnow())
    return ApproveOut(status=profile.status.value, reapproval_due=profile.reapproval_due)


class WeeklyIn(ApiModel):
    weekday: int = Field(ge=0, le=6)
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hh_mm(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value.strip()) == 5:
            return value.strip() + ":00"
        return value

    @field_validator("end", mode="before")
    @classmethod
    def _midnight(cls, value: Any) -> Any:
        """An end of 24:00 (or 00:00) is midnight at the end of the day."""
        if isinstance(value, str) and value.strip() in {"24:00", "24:00:00", "00:00", "00:00:00"}:
            return availability.END_OF_DAY
        return value


class ExceptionIn(ApiModel):
    starts_at: str
    ends_at: str
    kind: ExceptionKind = ExceptionKind.UNAVAILABLE
    note: str | None = Field(default=None, max_length=200)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _moment(cls, value: str) -> str:
        _parse_wall_or_offset(value)
        return value


class AvailabilityIn(ApiModel):
    weekly: list[WeeklyIn] = Field(default_factory=list, max_length=availability.MAX_WEEKLY_SLOTS)
    exceptions: list[ExceptionIn] = Field(default_factory=list, max_length=200)


class WeeklyOut(BaseModel):
    weekday: int
    start: str
    end: str


class ExceptionOut(BaseModel):
    starts_at: str
    ends_at: str
    kind: str
    note: str | None


class AvailabilityOut(BaseModel):
    weekly: list[WeeklyOut]
    exceptions: list[ExceptionOut]


@api.operation(
    "/workers/<int:worker_id>/availability",
    method="PUT",
    summary="Replace a worker's weekly availability (UK wall-clock) and exceptions",
    roles=SELF_OR_PROVIDER,
    body=AvailabilityIn,
    response=AvailabilityOut,
    errors=[(403, "forbidden"), (404, "not_found"), (422, "invalid_request")],
)
def put_availability(user: User, body: AvailabilityIn, worker_id: int) -> AvailabilityOut:
    profile = worker_services.editable_profile(user, worker_id)
    availability.replace_availability(
        profile,
        weekly=[availability.WeeklySlot(w.weekday, w.start, w.end) for w in body.weekly],
        exceptions=[
            availability.ExceptionSlot(
                _parse_wall_or_offset(e.starts_at), _parse_wall_or_offset(e.ends_at), e.kind, e.note
            )
            for e in body.exceptions
        ],
        actor=user,
        now=utcnow(),
    )
    return AvailabilityOut(
        weekly=[
            WeeklyOut(
                weekday=r.weekday,
                start=r.start_time.strftime("%H:%M"),
                end=availability.format_end(r.end_time),
            )
            for r in availability.load_rules(profile)
        ],
        exceptions=[
            ExceptionOut(
                starts_at=iso_z(e.starts_at) or "",
                ends_at=iso_z(e.ends_at) or "",
                kind=e.kind.value,
                note=e.note,
            )
            for e in availability.load_exceptions(profile)
        ],
    )


class SearchQuery(ApiModel):
    starts_at: str
    ends_at: str
    postcode: str = Field(min_length=1, max_length=10)
    skills: str = ""
    languages: str = ""
    gender: str | None = None

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _moment(cls, value: str) -> str:
        try:
            parse_iso(value)
        except OverflowError as exc:  # the first or last moments of year 1 or 9999
            raise ValueError("Give a date and time between the years 1000 and 9998") from exc
        return value


class SearchResultOut(BaseModel):
    worker_id: int
    display_name: str
    skills: list[str]
    languages: list[str]
    gender: str | None
    distance_km: float
    price_pence: int
    hourly_rate_pence: int
    is_favourite: bool
    can_instant_book: bool


class SearchOut(BaseModel):
    results: list[SearchResultOut]


@api.operation(
    "/workers/search",
    method="GET",
    summary="Approved workers free for the whole slot, within their travel radius",
    roles=[Role.CARER],
    query=SearchQuery,
    response=SearchOut,
    errors=[
        (422, "validation_failed"),
        (422, "invalid_postcode"),
        (422, "unknown_postcode"),
        (422, "too_late"),
        (422, "too_far_ahead"),
        (422, "not_quarter_hour"),
    ],
)
def search_workers(user: User, query: SearchQuery) -> SearchOut:
    results = search.search_workers(
        carer=user,
        starts_at=parse_iso(query.starts_at),
        ends_at=parse_iso(query.ends_at),
        postcode=query.postcode,
        skills=[s for s in query.skills.split(",") if s.strip()],
        languages=[x for x in query.languages.split(",") if x.strip()],
        gender=query.gender or None,
        now=utcnow(),
    )
    return SearchOut(
        results=[
            SearchResultOut(
                worker_id=r.worker_id,
                display_name=r.display_name,
                skills=r.skills,
                languages=r.languages,
                gender=r.gender,
                distance_km=r.distance_km,
                price_pence=r.price_pence,
                hourly_rate_pence=r.hourly_rate_pence,
                is_favourite=r.is_favourite,
                can_instant_book=r.can_instant_book,
            )
            for r in results
        ]
    )
