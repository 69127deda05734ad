"""JSON API for bookings (api.md): request, read, list, accept, decline, cancel, complete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from pydantic import BaseModel, Field, field_validator

from app.api.core import ApiBlueprint
from app.api.schemas import ApiModel
from app.clock import iso_z, parse_iso, utcnow
from app.models import Role, User
from booking.models.bookings import Booking
from booking.services import bookings as service

api = ApiBlueprint("bookings_api", __name__, tag="bookings")

BOOKING_ERRORS = [
    (409, "slot_taken"),
    (422, "outside_availability"),
    (422, "worker_not_bookable"),
    (422, "too_short"),
    (422, "too_late"),
    (422, "too_far_ahead"),
    (422, "not_quarter_hour"),
    (422, "outside_travel_radius"),
    (422, "invalid_postcode"),
    (422, "unknown_postcode"),
    # From the payments service, when `payment_method` is not shaped like pm_...
    (422, "invalid_payment_method"),
    (402, "insufficient_budget"),
]
# Ids are 32-bit integer columns: a bigger one is a 422 on the field, never a 500.
MAX_ID = 2**31 - 1


def _moment(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                "Give the time with its UTC offset, for example 2027-03-28T09:00:00+01:00."
            )
        return value
    if not isinstance(value, str):
        raise ValueError("Give a time like 2027-03-28T09:00:00+01:00.")
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise ValueError(
            str(exc) if "offset" in str(exc) else "Give a time like 2027-03-28T09:00:00+01:00."
        ) from exc


class BookingIn(ApiModel):
    worker_id: int = Field(gt=0, le=MAX_ID)
    starts_at: datetime
    ends_at: datetime
    postcode: str = Field(min_length=2, max_length=10)
    address: str = Field(min_length=1, max_length=500)
    notes: str | None = Field(default=None, max_length=2000)
    share_notes: bool = False
    support_kind: str | None = Field(default=None, max_length=64)
    top_up: bool = False
    payment_method: str | None = Field(default=None, max_length=255)

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def aware(cls, value: Any) -> datetime:
        return _moment(value)


class BookingCreated(BaseModel):
    id: int
    status: str
    price_pence: int
    budget_pence: int
    top_up_pence: int


class BookingOut(BaseModel):
    id: int
    status: str
    carer_id: int | None
    worker_id: int
    starts_at: str
    ends_at: str
    price_pence: int
    budget_pence: int
    top_up_pence: int
    postcode: str | None
    address: str | None
    notes: str | None
    funded_by: str
    respond_by: str | None
    fee_pence: int
    charged_pence: int | None
    actual_starts_at: str | None
    actual_ends_at: str | None
    dispute_closes_at: str | None
    created_at: str


class BookingList(BaseModel):
    bookings: list[BookingOut]


class CompleteIn(ApiModel):
    actual_starts_at: datetime
    actual_ends_at: datetime

    @field_validator("actual_starts_at", "actual_ends_at", mode="before")
    @classmethod
    def aware(cls, value: Any) -> datetime:
        return _moment(value)


class CancelIn(ApiModel):
    reason: str | None = Field(default=None, max_length=500)


class StatusOut(BaseModel):
    status: str


class CancelOut(BaseModel):
    status: str
    fee_pence: int
    released_pence: int
    alternatives: list[dict[str, Any]] = []


class CompleteOut(BaseModel):
    status: str
    charged_pence: int
    extra_pence: int


def _backend() -> str:
    return str(current_app.config.get("PAYMENT_BACKEND", "ledger"))


def _out(booking: Booking, user: User) -> BookingOut:
    is_worker_only = booking.worker_id == user.id and not service.acts_for(user, booking.carer_id)
    return BookingOut(
        id=booking.id,
        status=booking.status.value,
        carer_id=booking.carer_id,
        worker_id=booking.worker_id,
        starts_at=iso_z(booking.starts_at) or "",
        ends_at=iso_z(booking.ends_at) or "",
        price_pence=booking.price_pence,
        budget_pence=booking.budget_pence,
        top_up_pence=booking.top_up_pence,
        postcode=booking.postcode,
        address=booking.address,
        notes=service.worker_notes(booking) if is_worker_only else booking.notes,
        funded_by=booking.funded_by.value,
        respond_by=iso_z(booking.respond_by),
        fee_pence=booking.fee_pence,
        charged_pence=booking.charged_pence,
        actual_starts_at=iso_z(booking.actual_starts_at),
        actual_ends_at=iso_z(booking.actual_ends_at),
        dispute_closes_at=iso_z(booking.dispute_closes_at),
        created_at=iso_z(booking.created_at) or "",
    )


@api.operation(
    "/bookings",
    method="POST",
    summary="Request a break with a worker; the budget is held at once",
    roles=[Role.CARER],
    body=BookingIn,
    response=BookingCreated,
    status=201,
    errors=BOOKING_ERRORS,
    idempotent=True,
)
def create_booking(*, user: User, body: BookingIn) -> tuple[BookingCreated, int]:
    booking = service.request_booking(
        carer=user,
        worker_id=body.worker_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        postcode=body.postcode,
        address=body.address,
        notes=body.notes,
        share_notes=body.share_notes,
        support_kind=body.support_kind,
        top_up=body.top_up,
        payment_method_id=body.payment_method,
        actor=user,
        now=utcnow(),
        payment_backend=_backend(),
    )
    return (
        BookingCreated(
            id=booking.id,
            status=booking.status.value,
            price_pence=booking.price_pence,
            budget_pence=booking.budget_pence,
            top_up_pence=booking.top_up_pence,
        ),
        201,
    )


@api.operation(
    "/bookings/<int:booking_id>",
    method="GET",
    summary="One booking (the carer's own, the worker's own, or any of the council's for officers)",
    roles=[Role.CARER, Role.WORKER, Role.COUNCIL_OFFICER],
    response=BookingOut,
    errors=[(404, "not_found")],
)
def get_booking(*, user: User, booking_id: int) -> BookingOut:
    return _out(service.booking_for(user, booking_id), user)


@api.operation(
    "/bookings",
    method="GET",
    summary="Your own bookings, newest first",
    roles=[Role.CARER, Role.WORKER],
    response=BookingList,
)
def list_bookings(*, user: User) -> BookingList:
    return BookingList(bookings=[_out(b, user) for b in service.bookings_of(user)])


@api.operation(
    "/bookings/<int:booking_id>/accept",
    method="POST",
    summary="The worker accepts a request (not while its card part is unpaid)",
    roles=[Role.WORKER],
    response=StatusOut,
    errors=[(404, "not_found"), (409, "wrong_status"), (409, "top_up_not_secured")],
    idempotent=True,
)
def accept_booking(*, user: User, booking_id: int) -> StatusOut:
    booking = service.accept_booking(booking_id, worker=user, now=utcnow())
    return StatusOut(status=booking.status.value)


@api.operation(
    "/bookings/<int:booking_id>/decline",
    method="POST",
    summary="The worker declines a request; the hold is released",
    roles=[Role.WORKER],
    response=StatusOut,
    errors=[(404, "not_found"), (409, "wrong_status")],
    idempotent=True,
)
def decline_booking(*, user: User, booking_id: int) -> StatusOut:
    booking = service.decline_booking(
        booking_id, worker=user, now=utcnow(), payment_backend=_backend()
    )
    return StatusOut(status=booking.status.value)


@api.operation(
    "/bookings/<int:booking_id>/cancel",
    method="POST",
    summary="Cancel a break (free until 24 hours before, then the council's fee)",
    roles=[Role.CARER, Role.WORKER],
    response=CancelOut,
    errors=[(404, "not_found"), (409, "wrong_status")],
    idempotent=True,
)
def cancel_booking(*, user: User, booking_id: int) -> CancelOut:
    result = service.cancel_booking(
        booking_id, actor=user, now=utcnow(), payment_backend=_backend()
    )
    return CancelOut(
        status=result.booking.status.value,
        fee_pence=result.fee_pence,
        released_pence=result.released_pence,
        alternatives=[
            {"worker_id": r.worker_id, "display_name": r.display_name, "price_pence": r.price_pence}
            for r in result.alternatives
        ],
    )


@api.operation(
    "/bookings/<int:booking_id>/complete",
    method="POST",
    summary="The worker records the actual start and end; the actual time is charged",
    roles=[Role.WORKER],
    body=CompleteIn,
    response=CompleteOut,
    errors=[(404, "not_found"), (409, "wrong_status")],
    idempotent=True,
)
def complete_booking(*, user: User, booking_id: int, body: CompleteIn) -> CompleteOut:
    booking = service.complete_booking(
        booking_id,
        worker=user,
        actual_starts_at=body.actual_starts_at,
        actual_ends_at=body.actual_ends_at,
        now=utcnow(),
        payment_backend=_backend(),
    )
    return CompleteOut(
        status=booking.status.value,
        charged_pence=booking.charged_pence or 0,
        extra_pence=booking.extra_pence,
    )
