"""Booking a break against the live budget: request, accept or decline, expire, cancel,
complete, dispute, review, report a concern, regular bookings, the waiting list and
emergency (scheme-funded) bookings.

Every public function is one transaction that commits. The booking row, its ledger
entries (through `booking.services.ledger` with `commit=False`), the payments hooks,
the audit entry and the SMS messages in the outbox are written together, so money never
stays held for a booking that does not exist, and a message never goes out for a change
that was rolled back.

Rules (architecture.md): at least 1 hour, in 15-minute steps, at least 2 hours' notice
(or the worker's own, if longer), at most 90 days ahead, only approved in-date workers,
inside their published availability and their own rules, never overlapping another live
booking of the worker (on PostgreSQL also the exclusion constraint, whose violation is
turned into SlotTaken). The price is quoted then and frozen on the booking, with the
worker's rates, so the actual time is charged at the same rates.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app import audit, outbox
from app.clock import london_today, london_wall_clock, to_london
from app.errors import Conflict, DomainError, NotFound
from app.extensions import db
from app.models import Council, Representation, Role, User, UserRole
from app.money import format_pence
from booking.models.bookings import (
    LIVE_STATUSES,
    Booking,
    BookingConcern,
    BookingReview,
    BookingStatus,
    FundedBy,
    WaitingListEntry,
    WaitStatus,
)
from booking.models.budgets import Budget
from booking.models.workers import Favourite, WorkerProfile
from booking.services import budgets as budget_service
from booking.services import ledger, payments, postcodes, pricing, vetting
from booking.services.ledger import InsufficientBudget
from booking.services.search import SearchResult, check_bookable, search_workers
from booking.services.workers import SKILLS, WorkerNotBookable, profile_of

MIN_LENGTH = timedelta(hours=1)
MAX_LENGTH = timedelta(hours=24)
STEP_MINUTES = 15
DEFAULT_NOTICE = timedelta(hours=2)
MAX_AHEAD = timedelta(days=90)
FREE_CANCELLATION = timedelta(hours=24)
DISPUTE_WINDOW = timedelta(hours=48)
MAX_REGULAR_WEEKS = 4
GOOD_RATING = 4  # a rating this high makes the worker one of the carer's favourites
NOTES_MAX = 2000
# How far the worker's recorded times may stray from the booked slot.
COMPLETION_SLACK = timedelta(hours=2)
# The day-before reminder is due at this UK time on the day before the break.
REMINDER_TIME = time(17, 0)
# A confirmed break still not recorded this long after it ended: remind the worker once.
RECORD_REMINDER_AFTER = timedelta(hours=24)


# --- errors ----------------------------------------------------------------------------


class BookingError(DomainError):
    code = "booking_invalid"
    status = 422


class SlotTaken(BookingError):
    code = "slot_taken"
    status = 409


class TooShort(BookingError):
    code = "too_short"
    status = 422


class TooLate(BookingError):
    code = "too_late"
    status = 422


class TooFarAhead(BookingError):
    code = "too_far_ahead"
    status = 422


class NotQuarterHour(BookingError):
    code = "not_quarter_hour"
    status = 422


class WrongStatus(BookingError):
    code = "wrong_status"
    status = 409


class NotActingForCarer(BookingError):
    code = "forbidden"
    status = 403


class OutsideTravelRadius(BookingError):
    """The break's postcode is further away than the worker said they travel."""

    code = "outside_travel_radius"
    status = 422


class TopUpNotSecured(BookingError):
    """The card part of the break is not reserved yet (no card, refused, or still being
    checked), so the worker may not accept it: they could work a break nobody pays for."""

    code = "top_up_not_secured"
    status = 409


# --- who may see and act ---------------------------------------------------------------


def acts_for(user: User, carer_id: int | None) -> bool:
    """The carer themselves, or a representative the carer nominated."""
    if carer_id is None:
        return False
    if user.id == carer_id and user.has_role(Role.CARER):
        return True
    if user.has_role(Role.REPRESENTATIVE):
        found = db.session.scalar(
            select(Representation.id).where(
                Representation.carer_id == carer_id,
                Representation.representative_id == user.id,
            )
        )
        return found is not None
    return False


def carers_for(user: User) -> list[User]:
    """The carers `user` may book for: themselves (a carer), or those they represent."""
    carers: list[User] = [user] if user.has_role(Role.CARER) else []
    if user.has_role(Role.REPRESENTATIVE):
        carers.extend(
            db.session.scalars(
                select(User)
                .join(Representation, Representation.carer_id == User.id)
                .where(Representation.representative_id == user.id)
                .order_by(User.name)
            )
        )
    return carers


def _is_officer_of(user: User, council_id: int) -> bool:
    return user.has_role(Role.COUNCIL_OFFICER) and user.council_id == council_id


def can_see(user: User, booking: Booking) -> bool:
    return (
        acts_for(user, booking.carer_id)
        or (user.has_role(Role.WORKER) and booking.worker_id == user.id)
        or _is_officer_of(user, booking.council_id)
    )


def booking_for(user: User, booking_id: int, *, lock: bool = False) -> Booking:
    """A booking `user` may see, or NotFound (others' bookings are not revealed)."""
    query = select(Booking).where(Booking.id == booking_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    booking = db.session.scalar(query)
    if booking is None or not can_see(user, booking):
        raise NotFound("We cannot find that break.")
    return booking


def _carer_side(user: User, booking: Booking) -> bool:
    return acts_for(user, booking.carer_id)


def _own_worker(user: User, booking: Booking) -> bool:
    return user.has_role(Role.WORKER) and booking.worker_id == user.id


def _check_may_book_for(actor: User, carer: User) -> None:
    if acts_for(actor, carer.id):
        return
    if _is_officer_of(actor, carer.council_id or -1) and carer.has_role(Role.CARER):
        return
    raise NotActingForCarer("You cannot book breaks for this person.")


def worker_notes(booking: Booking) -> str | None:
    """Notes about the person cared for, as the worker may see them (only if shared)."""
    return booking.notes if booking.share_notes else None


def worker_name(worker_id: int) -> str:
    profile = profile_of(worker_id)
    if profile is not None:
        return profile.display_name
    user = db.session.get(User, worker_id)
    return user.name if user is not None else "the worker"


def worker_names(worker_ids: Collection[int]) -> dict[int, str]:
    """Names of many workers in one query (for lists): the profile's display name, else
    the person's name; any id not found is "the worker"."""
    wanted = set(worker_ids)
    names = dict.fromkeys(wanted, "the worker")
    if wanted:
        rows = db.session.execute(
            select(User.id, WorkerProfile.display_name, User.name)
            .outerjoin(WorkerProfile, WorkerProfile.user_id == User.id)
            .where(User.id.in_(wanted))
        ).all()
        for user_id, display_name, name in rows:
            names[user_id] = display_name or name
    return names


# --- messages (short, plain, never any health detail) ---------------------------------


def _when(moment: datetime) -> str:
    local = to_london(moment)
    return local.strftime("%a %-d %b %-I:%M%p").replace("AM", "am").replace("PM", "pm")


def _sms(user: User | None, body: str, *, council_id: int, key: str) -> None:
    if user is None or not user.phone:
        return
    outbox.enqueue(
        "sms",
        recipient=user.phone,
        payload={"body": body},
        council_id=council_id,
        dedupe_key=f"sms:{key}:{user.id}",
    )


# E-mail subjects by the last part of a message's key ("booking:12:confirmed").
SUBJECTS = {
    "requested": "New break request",
    "confirmed": "Your break is confirmed",
    "declined": "Your break request was declined",
    "expired": "Your break request was not answered",
    "cancelled": "A break has been cancelled",
    "completed": "Your break is finished",
    "resolved": "About your disputed break",
    "reminder": "Reminder: your break is coming up",
    "record": "Please record your break",
    "no_show": "A break was recorded as missed",
    "offered": "A time you waited for is free",
    "emergency": "Emergency break booked with you",
}


def _tell(user: User | None, body: str, *, council_id: int, key: str) -> None:
    """Tell a carer or worker about their break: by SMS to their mobile or, when they
    have none (a carer's mobile is optional), the same words by e-mail. Both go through
    the outbox in the caller's transaction, with dedupe keys."""
    if user is None:
        return
    if user.phone:
        _sms(user, body, council_id=council_id, key=key)
        return
    if not user.email:
        return
    outbox.enqueue(
        "email",
        recipient=user.email,
        payload={"subject": SUBJECTS.get(key.rsplit(":", 1)[-1], "About your break"), "body": body},
        council_id=council_id,
        dedupe_key=f"email:{key}:{user.id}",
    )


def _alert_officers(council_id: int, *, subject: str, body: str, key: str) -> int:
    """SMS and e-mail every council officer of the council, and the duty team's phone."""
    officers = db.session.scalars(
        select(User)
        .join(UserRole, UserRole.user_id == User.id)
        .where(
            User.council_id == council_id,
            User.is_active.is_(True),
            UserRole.role == Role.COUNCIL_OFFICER,
        )
    ).all()
    sent = 0
    for officer in officers:
        if officer.phone:
            _sms(officer, body, council_id=council_id, key=key)
            sent += 1
        outbox.enqueue(
            "email",
            recipient=officer.email,
            payload={"subject": subject, "body": body},
            council_id=council_id,
            dedupe_key=f"email:{key}:{officer.id}",
        )
    council = db.session.get(Council, council_id)
    if council is not None and council.duty_team_phone:
        outbox.enqueue(
            "sms",
            recipient=council.duty_team_phone,
            payload={"body": body},
            council_id=council_id,
            dedupe_key=f"sms:{key}:duty",
        )
        sent += 1
    return sent


# --- rules -----------------------------------------------------------------------------


def notice_needed(profile: WorkerProfile | None) -> timedelta:
    own = timedelta(minutes=profile.min_notice_minutes) if profile is not None else timedelta()
    return max(DEFAULT_NOTICE, own)


def check_times(
    starts_at: datetime, ends_at: datetime, *, now: datetime, profile: WorkerProfile | None
) -> None:
    """Length, steps, notice and how far ahead, with api.md's error codes."""
    length = ends_at - starts_at
    if ends_at <= starts_at:
        raise TooShort(
            "The break must end after it starts.", fields={"ends_at": "Must be after the start"}
        )
    minimum = MIN_LENGTH
    if profile is not None:
        minimum = max(minimum, timedelta(minutes=profile.min_session_minutes))
    if length < minimum:
        minutes = int(minimum.total_seconds() // 60)
        text = "1 hour" if minutes == 60 else f"{minutes} minutes"
        raise TooShort(
            f"A break must be at least {text} long.",
            fields={"ends_at": f"Make the break at least {text} long"},
        )
    if length > MAX_LENGTH:
        raise BookingError(
            "A break can be at most 24 hours long.",
            fields={"ends_at": "Make the break 24 hours or shorter"},
        )
    for name, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment.second or moment.microsecond or to_london(moment).minute % STEP_MINUTES:
            raise NotQuarterHour(
                "Breaks start and end on the quarter hour, like 10:00, 10:15 or 10:30.",
                fields={name: "Use a time on the quarter hour, like 10:15"},
            )
    notice = notice_needed(profile)
    if starts_at - now < notice:
        hours = notice.total_seconds() / 3600
        raise TooLate(
            f"Breaks must be booked at least {hours:g} hours before they start.",
            fields={"starts_at": f"Choose a time at least {hours:g} hours from now"},
        )
    if starts_at - now > MAX_AHEAD:
        raise TooFarAhead(
            "Breaks can be booked up to 90 days ahead.",
            fields={"starts_at": "Choose a date within the next 90 days"},
        )


def check_travel(profile: WorkerProfile, postcode: str | None) -> postcodes.Place:
    """The break's place must be within the worker's travel radius. Search lists only
    workers who reach the postcode, but a booking (a link, "book again", the API) can name
    any worker, so the rule is checked again here. PostcodeError for a bad postcode."""
    place = postcodes.locate(postcode or "")
    if profile.latitude is None or profile.longitude is None:
        raise WorkerNotBookable("This worker has not said where they travel from yet.")
    distance = postcodes.haversine_km(
        place.latitude, place.longitude, profile.latitude, profile.longitude
    )
    if distance > profile.travel_radius_km:
        name, radius = profile.display_name, profile.travel_radius_km
        raise OutsideTravelRadius(
            f"{name} travels up to {radius} km, and {place.postcode} is about "
            f"{round(distance)} km away. Choose a worker who is nearer.",
            fields={"postcode": f"{place.postcode} is further away than {name} travels"},
        )
    return place


def _overlapping(worker_id: int, starts_at: datetime, ends_at: datetime) -> Booking | None:
    return db.session.scalar(
        select(Booking)
        .where(
            Booking.worker_id == worker_id,
            Booking.status.in_(LIVE_STATUSES),
            Booking.starts_at < ends_at,
            Booking.ends_at > starts_at,
        )
        .limit(1)
    )


def _slot_taken() -> SlotTaken:
    return SlotTaken(
        "Sorry, someone has just booked this worker for that time. "
        "Choose another time or another worker."
    )


def _rates_of(profile: WorkerProfile) -> dict[str, int]:
    return {
        "hourly_rate_pence": profile.hourly_rate_pence,
        "evening_premium_percent": profile.evening_premium_percent,
        "weekend_premium_percent": profile.weekend_premium_percent,
        "bank_holiday_premium_percent": profile.bank_holiday_premium_percent,
    }


@dataclass
class FrozenRates:
    """The worker's rates as frozen on a booking (satisfies `pricing.Rates`)."""

    hourly_rate_pence: int
    evening_premium_percent: int = 0
    weekend_premium_percent: int = 0
    bank_holiday_premium_percent: int = 0


def price_for_time(booking: Booking, starts_at: datetime, ends_at: datetime) -> int:
    """The price of some time at the booking's frozen rates."""
    if booking.rates:
        return pricing.quote_price(FrozenRates(**booking.rates), starts_at, ends_at)
    minutes = int((ends_at - starts_at).total_seconds() // 60)
    return booking.price_pence * minutes // max(booking.minutes, 1)


# --- quoting ---------------------------------------------------------------------------


@dataclass
class Quote:
    """What the carer sees before confirming."""

    worker_id: int
    worker_name: str
    starts_at: datetime
    ends_at: datetime
    price_pence: int
    available_pence: int
    top_up_pence: int
    instant: bool
    cancellation_fee_pence: int
    free_until: datetime
    weeks: int = 1
    # Every week's price added up (each week priced on its own date: premiums and clock
    # changes can make weeks differ); the same as `price_pence` for a single break.
    total_price_pence: int = 0

    @property
    def balance_after_pence(self) -> int:
        """What is left once every week of the booking is paid for."""
        return self.available_pence - self.total_price_pence + self.top_up_pence

    @property
    def covered(self) -> bool:
        return self.top_up_pence == 0

    @property
    def card_pays_minimum(self) -> bool:
        """The card part is Stripe's smallest charge, more than the budget is short by."""
        return self.top_up_pence > self.total_price_pence - max(self.available_pence, 0)


def weekly_times(
    starts_at: datetime, ends_at: datetime, weeks: int
) -> list[tuple[date, datetime, datetime]]:
    """The same UK wall-clock time each week: (UK date, start, end) for each week."""
    first_start, first_end = to_london(starts_at), to_london(ends_at)
    times = []
    for week in range(weeks):
        shift = timedelta(days=7 * week)
        times.append(
            (
                first_start.date() + shift,
                london_wall_clock(first_start.date() + shift, first_start.time()),
                london_wall_clock(first_end.date() + shift, first_end.time()),
            )
        )
    return times


def _check_weeks(weeks: int) -> None:
    if not 1 <= weeks <= MAX_REGULAR_WEEKS:
        raise BookingError(
            "Regular breaks can be booked up to 4 weeks ahead.",
            fields={"weeks": "Choose between 1 and 4 weeks"},
        )


def quote_booking(
    *,
    carer: User,
    worker_id: int,
    starts_at: datetime,
    ends_at: datetime,
    postcode: str | None,
    now: datetime,
    weeks: int = 1,
) -> Quote:
    """Check every rule and quote the price and the balance after it (after all the weeks
    of a regular booking), writing nothing."""
    _check_weeks(weeks)
    profile = profile_of(worker_id)
    if profile is None or profile.council_id != carer.council_id:
        raise WorkerNotBookable("This worker cannot take bookings at the moment.")
    check_times(starts_at, ends_at, now=now, profile=profile)
    check_bookable(worker_id=worker_id, starts_at=starts_at, ends_at=ends_at, now=now)
    check_travel(profile, postcode or carer.postcode)
    if _overlapping(worker_id, starts_at, ends_at) is not None:
        raise _slot_taken()
    price = pricing.quote_price(profile, starts_at, ends_at)
    total = sum(
        pricing.quote_price(profile, week_start, week_end)
        for _day, week_start, week_end in weekly_times(starts_at, ends_at, weeks)
    )
    budget = ledger.current_budget(carer.id, today=london_today(now))
    available = ledger.balance(budget).available_pence if budget is not None else 0
    council = db.session.get(Council, carer.council_id)
    return Quote(
        worker_id=worker_id,
        worker_name=profile.display_name,
        starts_at=starts_at,
        ends_at=ends_at,
        price_pence=price,
        available_pence=available,
        top_up_pence=payments.card_part_for(price_pence=total, available_pence=available),
        instant=_instant(carer.id, profile),
        cancellation_fee_pence=min(council.cancellation_fee_pence if council else 0, price),
        free_until=starts_at - FREE_CANCELLATION,
        weeks=weeks,
        total_price_pence=total,
    )


def is_favourite(carer_id: int, worker_id: int | None) -> bool:
    found = db.session.scalar(
        select(Favourite.id).where(Favourite.carer_id == carer_id, Favourite.worker_id == worker_id)
    )
    return found is not None


def _instant(carer_id: int, profile: WorkerProfile) -> bool:
    if not profile.favourites_instant_book:
        return False
    found = db.session.scalar(
        select(Favourite.id).where(
            Favourite.carer_id == carer_id, Favourite.worker_id == profile.user_id
        )
    )
    return found is not None


# --- requesting ------------------------------------------------------------------------


def new_form_token() -> str:
    """A one-time token for the booking form; a booking stores it (unique)."""
    return secrets.token_urlsafe(24)


def _by_form_token(token: str | None, carer_id: int) -> Booking | None:
    if not token:
        return None
    return db.session.scalar(
        select(Booking).where(Booking.form_token == token, Booking.carer_id == carer_id)
    )


def _clean_notes(notes: str | None) -> str | None:
    text = (notes or "").strip()
    if len(text) > NOTES_MAX:
        raise BookingError(
            f"Notes must be {NOTES_MAX} characters or fewer.",
            fields={"notes": f"Notes must be {NOTES_MAX} characters or fewer"},
        )
    return text or None


def request_booking(
    *,
    carer: User,
    worker_id: int,
    starts_at: datetime,
    ends_at: datetime,
    postcode: str | None,
    address: str | None,
    notes: str | None,
    actor: User,
    now: datetime,
    share_notes: bool = False,
    support_kind: str | None = None,
    top_up: bool = False,
    payment_method_id: str | None = None,
    form_token: str | None = None,
    series_key: str | None = None,
    payment_backend: str = payments.LEDGER,
) -> Booking:
    """Request a break: check the rules, freeze the price, hold the budget, tell the worker.

    A favourite worker who allows instant booking is confirmed at once. With `top_up` the
    part the budget does not cover is paid by card (the payments service records it, so
    the hold covers the whole price); without it, InsufficientBudget. A form token that
    was already used returns the booking it made (a double-submitted form books once).
    """
    _check_may_book_for(actor, carer)
    already = _by_form_token(form_token, carer.id)
    if already is not None:
        return already
    notes = _clean_notes(notes)
    if support_kind is not None and support_kind not in SKILLS:
        support_kind = None
    profile = profile_of(worker_id)
    if profile is None or profile.council_id != carer.council_id:
        raise WorkerNotBookable("This worker cannot take bookings at the moment.")
    check_times(starts_at, ends_at, now=now, profile=profile)
    check_bookable(worker_id=worker_id, starts_at=starts_at, ends_at=ends_at, now=now)
    place = check_travel(profile, postcode or carer.postcode)
    if _overlapping(worker_id, starts_at, ends_at) is not None:
        raise _slot_taken()
    price = pricing.quote_price(profile, starts_at, ends_at)

    budget = ledger.current_budget(carer.id, today=london_today(now))
    if budget is None:
        raise InsufficientBudget(
            "You do not have a budget for breaks at the moment. Contact the council."
        )
    available = max(ledger.balance(budget).available_pence, 0)
    top_up_pence = 0
    if price > available:
        if not top_up:
            raise InsufficientBudget(
                f"This break costs {format_pence(price)} but only {format_pence(available)} "
                "is left in your budget. Choose a shorter break, or pay the rest by card."
            )
        top_up_pence = payments.card_part_for(price_pence=price, available_pence=available)

    instant = _instant(carer.id, profile)
    respond_by = min(now + timedelta(hours=profile.response_deadline_hours), starts_at)
    booking = Booking(
        council_id=carer.council_id,
        carer_id=carer.id,
        worker_id=worker_id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=BookingStatus.CONFIRMED if instant else BookingStatus.REQUESTED,
        price_pence=price,
        created_at=now,
        funded_by=FundedBy.BUDGET,
        budget_id=budget.id,
        hold_pence=price,
        top_up_pence=top_up_pence,
        rates=_rates_of(profile),
        postcode=place.postcode if postcode else None,
        address=(address or "").strip() or None,
        notes=notes,
        share_notes=bool(share_notes and notes),
        support_kind=support_kind,
        requested_by_id=actor.id,
        respond_by=None if instant else respond_by,
        confirmed_at=now if instant else None,
        instant=instant,
        form_token=form_token or None,
        series_key=series_key,
    )
    try:
        db.session.add(booking)
        db.session.flush()
        if top_up_pence:
            payments.prepare_top_up(
                booking=booking,
                budget=budget,
                top_up_pence=top_up_pence,
                payment_method_id=payment_method_id,
                actor=actor,
                now=now,
                backend=payment_backend,
            )
            if instant and not payments.top_up_secured(booking):
                # The card part is not reserved yet: the worker is asked to accept once
                # it is, as for any request, instead of being booked for unpaid work.
                instant = False
                booking.status = BookingStatus.REQUESTED
                booking.instant = False
                booking.confirmed_at = None
                booking.respond_by = respond_by
        ledger.hold(
            budget,
            price,
            booking_id=booking.id,
            actor=actor,
            reason=f"Break with {profile.display_name} on {_when(starts_at)}",
            idempotency_key=f"booking:{booking.id}:hold",
            now=now,
            commit=False,
        )
        audit.record(
            "booking.confirmed" if instant else "booking.requested",
            actor=actor,
            council_id=booking.council_id,
            subject=booking,
            on_behalf_of=carer if actor.id != carer.id else None,
            details={
                "worker_id": worker_id,
                "price_pence": price,
                "top_up_pence": top_up_pence,
                "instant": instant,
                "by_role": _acting_role(actor, carer),
            },
        )
        worker = db.session.get(User, worker_id)
        if instant:
            _tell(
                worker,
                f"New break booked with you: {_when(starts_at)} to "
                f"{_when(ends_at)[-7:].strip()}. See it in your bookings.",
                council_id=booking.council_id,
                key=f"booking:{booking.id}:confirmed",
            )
            _tell(
                carer,
                f"Your break with {profile.display_name} on {_when(starts_at)} is confirmed.",
                council_id=booking.council_id,
                key=f"booking:{booking.id}:confirmed",
            )
        else:
            _tell(
                worker,
                f"New break request for {_when(starts_at)}. Please accept or decline by "
                f"{_when(booking.respond_by or starts_at)}.",
                council_id=booking.council_id,
                key=f"booking:{booking.id}:requested",
            )
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        again = _by_form_token(form_token, carer.id)
        if again is not None:
            return again
        raise _slot_taken() from exc
    return booking


def _acting_role(actor: User, carer: User) -> str:
    if actor.id == carer.id:
        return "carer"
    if actor.has_role(Role.REPRESENTATIVE) and acts_for(actor, carer.id):
        return "representative"
    return "council_by_phone"


# --- regular bookings ------------------------------------------------------------------


@dataclass
class WeekOutcome:
    day: date
    starts_at: datetime
    ends_at: datetime
    booking: Booking | None = None
    reason: str | None = None


def request_regular_bookings(
    *,
    carer: User,
    worker_id: int,
    starts_at: datetime,
    ends_at: datetime,
    weeks: int,
    postcode: str | None,
    address: str | None,
    notes: str | None,
    actor: User,
    now: datetime,
    share_notes: bool = False,
    support_kind: str | None = None,
    form_token: str | None = None,
    payment_backend: str = payments.LEDGER,
    top_up: bool = False,
) -> list[WeekOutcome]:
    """The same worker at the same UK wall-clock time each week, up to 4 weeks. Each week
    is its own booking (its own transaction); the outcome says which dates could not be
    booked and why. Paying part by card (`top_up`) is for a single break only: one card
    authorisation lasts days, not weeks."""
    _check_weeks(weeks)
    if top_up and weeks > 1:
        raise BookingError(
            "Paying part of a break by card works for one break at a time.",
            fields={"weeks": "Choose just this once to pay part by card"},
        )
    series_key = secrets.token_hex(8) if weeks > 1 else None
    outcomes: list[WeekOutcome] = []
    for week, (day, week_start, week_end) in enumerate(weekly_times(starts_at, ends_at, weeks)):
        outcome = WeekOutcome(day=day, starts_at=week_start, ends_at=week_end)
        try:
            outcome.booking = request_booking(
                carer=carer,
                worker_id=worker_id,
                starts_at=week_start,
                ends_at=week_end,
                postcode=postcode,
                address=address,
                notes=notes,
                actor=actor,
                now=now,
                share_notes=share_notes,
                support_kind=support_kind,
                form_token=f"{form_token}:{week}" if form_token else None,
                series_key=series_key,
                payment_backend=payment_backend,
                top_up=top_up,
            )
        except DomainError as exc:
            db.session.rollback()
            outcome.reason = exc.message
        outcomes.append(outcome)
    return outcomes


# --- the worker answers ----------------------------------------------------------------


def _require(booking: Booking, *statuses: BookingStatus, doing: str) -> None:
    if booking.status not in statuses:
        raise WrongStatus(f"This break is {booking.status.value}, so you cannot {doing} it.")


def accept_booking(booking_id: int, *, worker: User, now: datetime) -> Booking:
    """The worker accepts a request before their deadline; the carer is told. Not while
    the part the carer pays by card is unreserved (no card yet, refused, or still being
    checked): the worker would be booked for work nobody has paid for."""
    booking = booking_for(worker, booking_id, lock=True)
    if not _own_worker(worker, booking):
        raise NotFound("We cannot find that break.")
    _require(booking, BookingStatus.REQUESTED, doing="accept")
    if booking.respond_by is not None and booking.respond_by <= now:
        raise WrongStatus("The time to answer this request has passed.")
    if not payments.top_up_secured(booking):
        raise TopUpNotSecured(
            "The carer is still paying part of this break by card, so you cannot accept it "
            "yet. Please try again later"
            + (f", before {_when(booking.respond_by)}." if booking.respond_by else ".")
        )
    booking.status = BookingStatus.CONFIRMED
    booking.confirmed_at = now
    audit.record("booking.accepted", actor=worker, council_id=booking.council_id, subject=booking)
    _tell(
        booking.carer,
        f"Good news: {worker_name(booking.worker_id)} will come on {_when(booking.starts_at)}. "
        "Your break is confirmed.",
        council_id=booking.council_id,
        key=f"booking:{booking.id}:confirmed",
    )
    db.session.commit()
    return booking


def _release_hold(booking: Booking, *, actor: User | None, why: str, now: datetime) -> int:
    """Return what the booking still holds to the budget (flush only)."""
    if booking.funded_by is not FundedBy.BUDGET or booking.budget_id is None:
        return 0
    if not booking.hold_pence:
        return 0
    budget = db.session.get(Budget, booking.budget_id)
    assert budget is not None
    ledger.release(
        budget,
        booking.hold_pence,
        booking_id=booking.id,
        actor=actor,
        reason=why,
        idempotency_key=f"booking:{booking.id}:release",
        now=now,
        commit=False,
    )
    return booking.hold_pence


def _end_unpaid(
    booking: Booking,
    status: BookingStatus,
    *,
    actor: User | None,
    why: str,
    now: datetime,
    payment_backend: str,
) -> int:
    booking.status = status
    booking.ended_at = now
    released = _release_hold(booking, actor=actor, why=why, now=now)
    if booking.funded_by is FundedBy.BUDGET:
        payments.on_booking_ended_unpaid(booking=booking, now=now, backend=payment_backend)
    _offer_freed_slot(booking, now=now)
    return released


def decline_booking(
    booking_id: int,
    *,
    worker: User,
    now: datetime,
    reason: str | None = None,
    payment_backend: str = payments.LEDGER,
) -> Booking:
    """The worker says no: the hold goes back to the budget and the carer is told."""
    booking = booking_for(worker, booking_id, lock=True)
    if not _own_worker(worker, booking):
        raise NotFound("We cannot find that break.")
    _require(booking, BookingStatus.REQUESTED, doing="decline")
    _end_unpaid(
        booking,
        BookingStatus.DECLINED,
        actor=worker,
        why=f"Break {booking.id} declined by the worker",
        now=now,
        payment_backend=payment_backend,
    )
    booking.cancel_reason = (reason or "").strip() or None
    audit.record(
        "booking.declined",
        actor=worker,
        council_id=booking.council_id,
        subject=booking,
        reason=booking.cancel_reason,
    )
    _tell(
        booking.carer,
        f"Sorry, {worker_name(booking.worker_id)} cannot do {_when(booking.starts_at)}. "
        "Your money has been returned. You can book someone else.",
        council_id=booking.council_id,
        key=f"booking:{booking.id}:declined",
    )
    db.session.commit()
    return booking


def expire_requests(*, now: datetime, payment_backend: str = payments.LEDGER) -> int:
    """Requests the worker did not answer by their deadline expire; the hold is released.
    Idempotent: an expired booking is no longer `requested`."""
    ids = db.session.scalars(
        select(Booking.id).where(
            Booking.status == BookingStatus.REQUESTED, Booking.respond_by <= now
        )
    ).all()
    done = 0
    for booking_id in ids:
        booking = db.session.scalar(
            select(Booking)
            .where(Booking.id == booking_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if booking is None or booking.status is not BookingStatus.REQUESTED:
            db.session.rollback()
            continue
        _end_unpaid(
            booking,
            BookingStatus.EXPIRED,
            actor=None,
            why=f"Break {booking.id}: the worker did not answer in time",
            now=now,
            payment_backend=payment_backend,
        )
        audit.record("booking.expired", actor=None, council_id=booking.council_id, subject=booking)
        _tell(
            booking.carer,
            f"Your request for {_when(booking.starts_at)} was not answered in time. "
            "Your money has been returned. You can book someone else.",
            council_id=booking.council_id,
            key=f"booking:{booking.id}:expired",
        )
        db.session.commit()
        done += 1
    return done


# --- cancelling ------------------------------------------------------------------------


@dataclass
class CancellationPolicy:
    fee_pence: int
    free_until: datetime
    by_worker: bool

    @property
    def free(self) -> bool:
        return self.fee_pence == 0


def cancellation_policy(booking: Booking, *, by: User, now: datetime) -> CancellationPolicy:
    """Free until 24 hours before; after that the council's fee (never more than the price).
    A request the worker has not accepted, a worker's cancellation and a scheme-funded
    booking are always free."""
    free_until = booking.starts_at - FREE_CANCELLATION
    by_worker = _own_worker(by, booking) and not _carer_side(by, booking)
    fee = 0
    if (
        not by_worker
        and booking.status is BookingStatus.CONFIRMED
        and booking.funded_by is FundedBy.BUDGET
        and now >= free_until
    ):
        council = db.session.get(Council, booking.council_id)
        fee = min(council.cancellation_fee_pence if council else 0, booking.price_pence)
    return CancellationPolicy(fee_pence=fee, free_until=free_until, by_worker=by_worker)


@dataclass
class Cancellation:
    booking: Booking
    fee_pence: int
    released_pence: int
    alternatives: list[SearchResult] = field(default_factory=list)


def cancel_booking(
    booking_id: int,
    *,
    actor: User,
    now: datetime,
    reason: str | None = None,
    payment_backend: str = payments.LEDGER,
) -> Cancellation:
    """Cancel a requested or confirmed break before it starts, by the carer's side, the
    worker or a council officer. The fee (see `cancellation_policy`) is captured and the
    rest released, in the ledger; when the worker cancels, the carer is offered other
    workers free for the same slot at once."""
    booking = booking_for(actor, booking_id, lock=True)
    if not (
        _carer_side(actor, booking)
        or _own_worker(actor, booking)
        or _is_officer_of(actor, booking.council_id)
    ):
        raise NotFound("We cannot find that break.")
    _require(booking, BookingStatus.REQUESTED, BookingStatus.CONFIRMED, doing="cancel")
    if booking.starts_at <= now:
        raise WrongStatus("This break has already started, so it cannot be cancelled.")
    policy = cancellation_policy(booking, by=actor, now=now)
    booking.status = BookingStatus.CANCELLED
    booking.ended_at = now
    booking.cancelled_by_id = actor.id
    booking.cancel_reason = (reason or "").strip() or None
    booking.fee_pence = policy.fee_pence
    released = _release_hold(booking, actor=actor, why=f"Break {booking.id} cancelled", now=now)
    if policy.fee_pence and booking.budget_id is not None:
        budget = db.session.get(Budget, booking.budget_id)
        assert budget is not None
        ledger.capture(
            budget,
            policy.fee_pence,
            booking_id=booking.id,
            actor=actor,
            reason=f"Cancellation fee: break {booking.id} cancelled less than 24 hours before",
            idempotency_key=f"booking:{booking.id}:fee",
            now=now,
            commit=False,
        )
        booking.charged_pence = policy.fee_pence
        released -= policy.fee_pence
        # The worker is paid the fee; the card pays only what the budget part does not.
        payments.on_booking_completed(
            booking=booking, charged_pence=policy.fee_pence, now=now, backend=payment_backend
        )
    elif booking.funded_by is FundedBy.BUDGET:
        payments.on_booking_ended_unpaid(booking=booking, now=now, backend=payment_backend)
    carer = booking.carer
    on_behalf = (
        carer if carer is not None and actor.id != carer.id and not policy.by_worker else None
    )
    audit.record(
        "booking.cancelled",
        actor=actor,
        council_id=booking.council_id,
        subject=booking,
        reason=booking.cancel_reason,
        on_behalf_of=on_behalf,
        details={
            "by": "worker" if policy.by_worker else "carer",
            "fee_pence": policy.fee_pence,
            "released_pence": released,
        },
    )
    alternatives: list[SearchResult] = []
    if policy.by_worker:
        alternatives = alternatives_for(booking, now=now)
        _tell(
            carer,
            f"Sorry, {worker_name(booking.worker_id)} has had to cancel {_when(booking.starts_at)}. "
            f"Your money is back. {len(alternatives)} other workers are free then: "
            "see Your breaks to book one.",
            council_id=booking.council_id,
            key=f"booking:{booking.id}:cancelled",
        )
    else:
        fee_text = (
            f" A fee of {format_pence(policy.fee_pence)} applies." if policy.fee_pence else ""
        )
        _tell(
            booking.worker,
            f"The break on {_when(booking.starts_at)} has been cancelled.{fee_text}",
            council_id=booking.council_id,
            key=f"booking:{booking.id}:cancelled",
        )
        if actor.id != booking.carer_id:
            _tell(
                carer,
                f"Your break on {_when(booking.starts_at)} has been cancelled.{fee_text}",
                council_id=booking.council_id,
                key=f"booking:{booking.id}:cancelled",
            )
    _offer_freed_slot(booking, now=now)
    db.session.commit()
    return Cancellation(booking, policy.fee_pence, released, alternatives)


def alternatives_for(booking: Booking, *, now: datetime) -> list[SearchResult]:
    """Other workers free for the same slot near the same place (not the booked worker)."""
    carer = booking.carer
    if carer is None or booking.starts_at <= now:
        return []
    postcode = booking.postcode or carer.postcode
    if not postcode:
        return []
    try:
        found = search_workers(
            carer=carer,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
            postcode=postcode,
            now=now,
        )
    except DomainError:
        return []
    return [result for result in found if result.worker_id != booking.worker_id]


# --- completing ------------------------------------------------------------------------


def complete_booking(
    booking_id: int,
    *,
    worker: User,
    actual_starts_at: datetime,
    actual_ends_at: datetime,
    now: datetime,
    payment_backend: str = payments.LEDGER,
) -> Booking:
    """The worker records when they really started and finished. The hold becomes a
    charge for that time at the frozen rates, never more than the hold: anything over it
    waits for the carer's approval (`approve_extra`). The carer may dispute for 48 hours."""
    booking = booking_for(worker, booking_id, lock=True)
    if not _own_worker(worker, booking):
        raise NotFound("We cannot find that break.")
    _require(booking, BookingStatus.CONFIRMED, doing="complete")
    fields: dict[str, str] = {}
    if actual_ends_at <= actual_starts_at:
        fields["actual_ends_at"] = "The finish time must be after the start time"
    elif actual_ends_at > now + timedelta(minutes=15):
        fields["actual_ends_at"] = "The finish time cannot be in the future"
    elif actual_starts_at < booking.starts_at - COMPLETION_SLACK:
        fields["actual_starts_at"] = "The start time is too long before the booked time"
    elif actual_ends_at > booking.ends_at + COMPLETION_SLACK:
        fields["actual_ends_at"] = "The finish time is too long after the booked time"
    if fields:
        raise BookingError("Check the start and finish times.", fields=fields)
    cost = price_for_time(booking, actual_starts_at, actual_ends_at)
    charged = min(cost, booking.hold_pence) if booking.funded_by is FundedBy.BUDGET else cost
    booking.status = BookingStatus.COMPLETED
    booking.actual_starts_at = actual_starts_at
    booking.actual_ends_at = actual_ends_at
    booking.completed_at = now
    booking.charged_pence = charged
    booking.extra_pence = max(0, cost - charged)
    booking.dispute_closes_at = now + DISPUTE_WINDOW
    if booking.funded_by is FundedBy.BUDGET and booking.budget_id is not None:
        budget = db.session.get(Budget, booking.budget_id)
        assert budget is not None
        _release_hold(booking, actor=worker, why=f"Break {booking.id} completed", now=now)
        if charged:
            ledger.capture(
                budget,
                charged,
                booking_id=booking.id,
                actor=worker,
                reason=f"Break with {worker_name(booking.worker_id)}, "
                f"{_when(actual_starts_at)} to {to_london(actual_ends_at):%H:%M}",
                idempotency_key=f"booking:{booking.id}:capture",
                now=now,
                commit=False,
            )
    payments.on_booking_completed(
        booking=booking, charged_pence=charged, now=now, backend=payment_backend
    )
    audit.record(
        "booking.completed",
        actor=worker,
        council_id=booking.council_id,
        subject=booking,
        details={"charged_pence": charged, "extra_pence": booking.extra_pence},
    )
    extra = (
        f" It ran over by {format_pence(booking.extra_pence)}: please approve or not in Your breaks."
        if booking.extra_pence
        else ""
    )
    _tell(
        booking.carer,
        f"Your break on {_when(booking.starts_at)} is finished. {format_pence(charged)} "
        f"was paid from your budget.{extra} If something was wrong, tell us within 48 hours.",
        council_id=booking.council_id,
        key=f"booking:{booking.id}:completed",
    )
    db.session.commit()
    return booking


def approve_extra(booking_id: int, *, actor: User, now: datetime) -> Booking:
    """The carer agrees to pay for time over what was held."""
    booking = booking_for(actor, booking_id, lock=True)
    if not _carer_side(actor, booking):
        raise NotFound("We cannot find that break.")
    _require(booking, BookingStatus.COMPLETED, doing="approve extra time on")
    if not booking.extra_pence or booking.extra_approved_at is not None:
        raise WrongStatus("There is no extra time to approve on this break.")
    if booking.budget_id is not None:
        budget = db.session.get(Budget, booking.budget_id)
        assert budget is not None
        ledger.capture(
            budget,
            booking.extra_pence,
            booking_id=booking.id,
            actor=actor,
            reason=f"Extra time on break {booking.id}, approved by the carer",
            idempotency_key=f"booking:{booking.id}:extra",
            now=now,
            commit=False,
        )
    booking.charged_pence = (booking.charged_pence or 0) + booking.extra_pence
    booking.extra_approved_at = now
    audit.record(
        "booking.extra_approved",
        actor=actor,
        council_id=booking.council_id,
        subject=booking,
        on_behalf_of=booking.carer if actor.id != booking.carer_id else None,
        details={"extra_pence": booking.extra_pence},
    )
    db.session.commit()
    return booking


def dispute_booking(
    booking_id: int,
    *,
    actor: User,
    reason: str,
    now: datetime,
    payment_backend: str = payments.LEDGER,
) -> Booking:
    """The carer disputes a completed break within 48 hours; an officer will look at it."""
    booking = booking_for(actor, booking_id, lock=True)
    if not _carer_side(actor, booking):
        raise NotFound("We cannot find that break.")
    _require(booking, BookingStatus.COMPLETED, doing="dispute")
    text = (reason or "").strip()
    if not text:
        raise BookingError("Tell us what was wrong.", fields={"reason": "Tell us what was wrong"})
    if booking.disputed_at is not None:
        raise WrongStatus("You have already told us about a problem with this break.")
    if booking.final_at is not None or (
        booking.dispute_closes_at is not None and now >= booking.dispute_closes_at
    ):
        raise WrongStatus("The 48 hours to dispute this break have passed.")
    booking.disputed_at = now
    booking.dispute_reason = text[:2000]
    payments.on_booking_disputed(booking=booking, now=now, backend=payment_backend)
    audit.record(
        "booking.disputed",
        actor=actor,
        council_id=booking.council_id,
        subject=booking,
        on_behalf_of=booking.carer if actor.id != booking.carer_id else None,
        reason=booking.dispute_reason,
    )
    _alert_officers(
        booking.council_id,
        subject=f"Break {booking.id} has been disputed",
        body=f"A carer has disputed the charge for break {booking.id}. Please look at it.",
        key=f"booking:{booking.id}:disputed",
    )
    db.session.commit()
    return booking


def resolve_dispute(
    booking_id: int,
    *,
    officer: User,
    refund_pence: int,
    note: str | None,
    now: datetime,
    payment_backend: str = payments.LEDGER,
) -> Booking:
    """An officer settles a dispute with a refund (0 turns it down); the break is final."""
    booking = booking_for(officer, booking_id, lock=True)
    if not _is_officer_of(officer, booking.council_id):
        raise NotFound("We cannot find that break.")
    if booking.disputed_at is None or booking.dispute_resolved_at is not None:
        raise WrongStatus("This break has no open dispute.")
    charged = booking.charged_pence or 0
    if refund_pence < 0 or refund_pence > charged:
        raise BookingError(
            f"The refund must be between £0.00 and {format_pence(charged)}.",
            fields={"refund": f"Enter an amount up to {format_pence(charged)}"},
        )
    if refund_pence and booking.budget_id is not None:
        budget = db.session.get(Budget, booking.budget_id)
        assert budget is not None
        ledger.refund(
            budget,
            refund_pence,
            booking_id=booking.id,
            actor=officer,
            reason=f"Refund after a dispute about break {booking.id}",
            idempotency_key=f"booking:{booking.id}:refund",
            now=now,
            commit=False,
        )
    payments.on_booking_refunded(
        booking=booking, refund_pence=refund_pence, now=now, backend=payment_backend
    )
    booking.refunded_pence = refund_pence
    booking.dispute_resolved_at = now
    booking.final_at = now
    audit.record(
        "booking.dispute_resolved",
        actor=officer,
        council_id=booking.council_id,
        subject=booking,
        reason=(note or "").strip() or None,
        details={"refund_pence": refund_pence},
    )
    _tell(
        booking.carer,
        f"We have looked at your break on {_when(booking.starts_at)}. "
        + (
            f"{format_pence(refund_pence)} has been put back in your budget."
            if refund_pence
            else "No refund is due. Contact the council if you want to talk about it."
        ),
        council_id=booking.council_id,
        key=f"booking:{booking.id}:resolved",
    )
    db.session.commit()
    return booking


def close_dispute_windows(*, now: datetime) -> int:
    """Completed breaks whose 48 hours have passed without a dispute become final.
    Idempotent: a final break is skipped."""
    bookings = db.session.scalars(
        select(Booking).where(
            Booking.status == BookingStatus.COMPLETED,
            Booking.final_at.is_(None),
            Booking.disputed_at.is_(None),
            Booking.dispute_closes_at <= now,
        )
    ).all()
    for booking in bookings:
        booking.final_at = now
        audit.record("booking.final", actor=None, council_id=booking.council_id, subject=booking)
    db.session.commit()
    return len(bookings)


# --- reminders -------------------------------------------------------------------------


def reminder_due_at(starts_at: datetime) -> datetime:
    """When a break's reminder is due: 17:00 UK time on the day before it."""
    return london_wall_clock(to_london(starts_at).date() - timedelta(days=1), REMINDER_TIME)


def send_reminders(*, now: datetime) -> int:
    """A reminder to the carer and the worker of each confirmed break, due from 17:00 (UK)
    the day before it and sent by the first run after that, up to the break's start, so
    the job runs hourly and a run missed while the scheduler was down is caught up by the
    next one. Each break is reminded once (`reminder_sent_at` records it; the outbox's
    dedupe keys are a second guard). A break confirmed after its reminder was due is not
    reminded: the confirmation message has just told them."""
    horizon = london_wall_clock(london_today(now) + timedelta(days=2), time.min)
    bookings = db.session.scalars(
        select(Booking)
        .where(
            Booking.status == BookingStatus.CONFIRMED,
            Booking.reminder_sent_at.is_(None),
            Booking.starts_at > now,
            Booking.starts_at < horizon,
        )
        .options(selectinload(Booking.carer), selectinload(Booking.worker))
        .order_by(Booking.starts_at, Booking.id)
    ).all()
    due = [
        booking
        for booking in bookings
        if reminder_due_at(booking.starts_at) <= now
        and (
            booking.confirmed_at is None
            or booking.confirmed_at < reminder_due_at(booking.starts_at)
        )
    ]
    names = worker_names([booking.worker_id for booking in due])
    for booking in due:
        when = _when(booking.starts_at)
        _tell(
            booking.carer,
            f"Reminder: {names[booking.worker_id]} is coming for your break {when}.",
            council_id=booking.council_id,
            key=f"booking:{booking.id}:reminder",
        )
        _tell(
            booking.worker,
            f"Reminder: you have a break booked {when}"
            + (f" at {booking.postcode}." if booking.postcode else "."),
            council_id=booking.council_id,
            key=f"booking:{booking.id}:reminder",
        )
        booking.reminder_sent_at = now
    db.session.commit()
    return len(due)


def remind_to_record(*, now: datetime) -> int:
    """Once, tell the worker of each confirmed break that ended more than 24 hours ago and
    is still not recorded as done to record it: until then the carer's money stays held.
    `record_reminder_sent_at` records it, so each worker is reminded once per break."""
    bookings = db.session.scalars(
        select(Booking)
        .where(
            Booking.status == BookingStatus.CONFIRMED,
            Booking.record_reminder_sent_at.is_(None),
            Booking.ends_at <= now - RECORD_REMINDER_AFTER,
        )
        .options(selectinload(Booking.worker))
        .order_by(Booking.ends_at, Booking.id)
    ).all()
    for booking in bookings:
        _tell(
            booking.worker,
            f"Please record the break on {_when(booking.starts_at)} as done, with the times "
            "you started and finished, in Requests and bookings. Until you do, you are not paid "
            "for it.",
            council_id=booking.council_id,
            key=f"booking:{booking.id}:record",
        )
        booking.record_reminder_sent_at = now
    db.session.commit()
    return len(bookings)


# --- the worker did not come -----------------------------------------------------------


def _may_report_no_show(user: User, booking: Booking) -> bool:
    """The carer's side, or an officer of the booking's council (not the worker)."""
    return _carer_side(user, booking) or _is_officer_of(user, booking.council_id)


def can_report_no_show(user: User, booking: Booking, *, now: datetime) -> bool:
    """Whether to offer "The worker did not come": what report_no_show would accept."""
    return (
        booking.status is BookingStatus.CONFIRMED
        and booking.ends_at <= now
        and _may_report_no_show(user, booking)
    )


def report_no_show(
    booking_id: int,
    *,
    actor: User,
    now: datetime,
    reason: str | None = None,
    payment_backend: str = payments.LEDGER,
) -> Booking:
    """After a confirmed break's end, the carer's side or a council officer records that
    the worker did not come. The hold goes back to the budget (and a card part is
    released), so money is not held for ever for a break the worker never records; the
    council's officers are alerted and the worker is told. If the worker did come, they
    take it up with the council."""
    booking = booking_for(actor, booking_id, lock=True)
    if not _may_report_no_show(actor, booking):
        raise NotFound("We cannot find that break.")
    carer_side = _carer_side(actor, booking)
    if booking.status is not BookingStatus.CONFIRMED:
        raise WrongStatus(
            f"This break is {booking.status.value.replace('_', ' ')}, so you cannot say "
            "the worker did not come."
        )
    if now < booking.ends_at:
        raise WrongStatus(
            "You can say the worker did not come once the break's time is over, after "
            f"{_when(booking.ends_at)}."
        )
    booking.cancel_reason = (reason or "").strip()[:500] or None
    released = _end_unpaid(
        booking,
        BookingStatus.NO_SHOW,
        actor=actor,
        why=f"Break {booking.id}: the worker did not come",
        now=now,
        payment_backend=payment_backend,
    )
    carer = booking.carer
    audit.record(
        "booking.no_show",
        actor=actor,
        council_id=booking.council_id,
        subject=booking,
        reason=booking.cancel_reason,
        on_behalf_of=carer if carer is not None and actor.id != carer.id else None,
        details={
            "released_pence": released,
            "by": "carer" if carer_side else "council_officer",
            "worker_id": booking.worker_id,
        },
    )
    when = _when(booking.starts_at)
    _alert_officers(
        booking.council_id,
        subject=f"The worker did not come to break {booking.id}",
        body=f"It has been recorded that the worker did not come to break {booking.id} on "
        f"{when}. Please look at it on the break's page.",
        key=f"booking:{booking.id}:no_show",
    )
    _tell(
        booking.worker,
        f"The break on {when} has been recorded as missed: you did not come. "
        "If that is wrong, contact the council.",
        council_id=booking.council_id,
        key=f"booking:{booking.id}:no_show",
    )
    if not carer_side:
        _tell(
            carer,
            f"We have recorded that the worker did not come to your break on {when}. "
            "The money set aside for it is back in your budget.",
            council_id=booking.council_id,
            key=f"booking:{booking.id}:no_show",
        )
    db.session.commit()
    return booking


# --- reviews and concerns --------------------------------------------------------------


def review_booking(
    booking_id: int, *, actor: User, rating: int, text: str | None, now: datetime
) -> BookingReview:
    """A rating (1 to 5) and a short review of a completed break, once. Council officers
    see reviews; a rating of 4 or 5 makes the worker one of the carer's favourites, which
    search lists first."""
    booking = booking_for(actor, booking_id, lock=True)
    if not _carer_side(actor, booking) or booking.carer_id is None:
        raise NotFound("We cannot find that break.")
    _require(booking, BookingStatus.COMPLETED, doing="review")
    if not 1 <= rating <= 5:
        raise BookingError("Choose a rating from 1 to 5.", fields={"rating": "Choose 1 to 5"})
    words = (text or "").strip()
    if len(words) > 500:
        raise BookingError(
            "Keep the review to 500 characters or fewer.",
            fields={"text": "Use 500 characters or fewer"},
        )
    existing = db.session.scalar(
        select(BookingReview).where(BookingReview.booking_id == booking.id)
    )
    if existing is not None:
        raise Conflict("You have already reviewed this break. Thank you.")
    review = BookingReview(
        council_id=booking.council_id,
        booking_id=booking.id,
        carer_id=booking.carer_id,
        worker_id=booking.worker_id,
        rating=rating,
        text=words or None,
        created_at=now,
    )
    db.session.add(review)
    if rating >= GOOD_RATING:
        favourite = db.session.scalar(
            select(Favourite.id).where(
                Favourite.carer_id == booking.carer_id, Favourite.worker_id == booking.worker_id
            )
        )
        if favourite is None:
            db.session.add(
                Favourite(
                    council_id=booking.council_id,
                    carer_id=booking.carer_id,
                    worker_id=booking.worker_id,
                    created_at=now,
                )
            )
    db.session.flush()
    audit.record(
        "booking.reviewed",
        actor=actor,
        council_id=booking.council_id,
        subject=booking,
        details={"rating": rating},
    )
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict("You have already reviewed this break. Thank you.") from exc
    return review


def report_concern(booking_id: int, *, actor: User, text: str, now: datetime) -> BookingConcern:
    """A safeguarding concern about a break: recorded, and every council officer (and the
    duty team) is alerted at once through the outbox. The alert carries no details."""
    booking = booking_for(actor, booking_id)
    if not (_carer_side(actor, booking) or _own_worker(actor, booking)):
        raise NotFound("We cannot find that break.")
    words = (text or "").strip()
    if not words:
        raise BookingError("Tell us what worries you.", fields={"text": "Tell us what worries you"})
    concern = BookingConcern(
        council_id=booking.council_id,
        booking_id=booking.id,
        raised_by_id=actor.id,
        text=words[:5000],
        created_at=now,
    )
    db.session.add(concern)
    db.session.flush()
    audit.record(
        "booking.concern_reported",
        actor=actor,
        council_id=booking.council_id,
        subject=concern,
        details={"booking_id": booking.id},
    )
    _alert_officers(
        booking.council_id,
        subject=f"Safeguarding concern about break {booking.id}",
        body=f"A safeguarding concern has been reported about break {booking.id}. "
        "Please read it now on the Concerns page.",
        key=f"concern:{concern.id}",
    )
    db.session.commit()
    return concern


def close_concern(
    concern_id: int, *, officer: User, note: str | None, now: datetime
) -> BookingConcern:
    concern = db.session.get(BookingConcern, concern_id)
    if concern is None or not _is_officer_of(officer, concern.council_id):
        raise NotFound("We cannot find that concern.")
    from booking.models.bookings import ConcernStatus

    concern.status = ConcernStatus.CLOSED
    audit.record(
        "booking.concern_closed",
        actor=officer,
        council_id=concern.council_id,
        subject=concern,
        reason=(note or "").strip() or None,
    )
    db.session.commit()
    return concern


def concerns_for(officer: User) -> list[BookingConcern]:
    return list(
        db.session.scalars(
            select(BookingConcern)
            .where(BookingConcern.council_id == officer.council_id)
            .options(selectinload(BookingConcern.raised_by))
            .order_by(BookingConcern.status, BookingConcern.created_at.desc())
            .limit(200)
        )
    )


def reviews_for(officer: User) -> list[BookingReview]:
    return list(
        db.session.scalars(
            select(BookingReview)
            .where(BookingReview.council_id == officer.council_id)
            .order_by(BookingReview.created_at.desc())
            .limit(200)
        )
    )


def disputes_for(officer: User) -> list[Booking]:
    return list(
        db.session.scalars(
            select(Booking)
            .where(
                Booking.council_id == officer.council_id,
                Booking.disputed_at.is_not(None),
                Booking.dispute_resolved_at.is_(None),
            )
            .order_by(Booking.disputed_at)
        )
    )


# --- the waiting list ------------------------------------------------------------------


def join_waiting_list(
    *,
    carer: User,
    worker_id: int,
    starts_at: datetime,
    ends_at: datetime,
    actor: User,
    now: datetime,
    postcode: str | None = None,
    address: str | None = None,
) -> WaitingListEntry:
    """Wait for a favourite worker's taken slot; we offer it (by SMS, or e-mail without a
    mobile) when it frees up. The place is kept so the offer's link fills the form in."""
    _check_may_book_for(actor, carer)
    is_favourite = db.session.scalar(
        select(Favourite.id).where(Favourite.carer_id == carer.id, Favourite.worker_id == worker_id)
    )
    if is_favourite is None:
        raise BookingError("You can only wait for one of your favourite workers.")
    if ends_at <= starts_at or starts_at <= now:
        raise BookingError(
            "Choose a time in the future.", fields={"starts_at": "Choose a time in the future"}
        )
    if _overlapping(worker_id, starts_at, ends_at) is None:
        raise BookingError("That time is free now, so you can book it straight away.")
    entry = WaitingListEntry(
        council_id=carer.council_id,
        carer_id=carer.id,
        worker_id=worker_id,
        starts_at=starts_at,
        ends_at=ends_at,
        postcode=(postcode or "").strip().upper()[:10] or None,
        address=(address or "").strip()[:500] or None,
        created_at=now,
    )
    db.session.add(entry)
    db.session.flush()
    audit.record(
        "booking.waiting_list_joined",
        actor=actor,
        council_id=carer.council_id,
        subject=entry,
        on_behalf_of=carer if actor.id != carer.id else None,
    )
    db.session.commit()
    return entry


def _offer(entry: WaitingListEntry, *, now: datetime) -> None:
    entry.status = WaitStatus.OFFERED
    entry.offered_at = now
    carer = db.session.get(User, entry.carer_id)
    _tell(
        carer,
        f"{worker_name(entry.worker_id)} is now free on {_when(entry.starts_at)}. "
        "Book it soon in Book a break.",
        council_id=entry.council_id,
        key=f"waiting:{entry.id}:offered",
    )


def _offer_freed_slot(booking: Booking, *, now: datetime) -> None:
    """A slot was freed: offer it to the first carer waiting for it (flush only)."""
    entries = db.session.scalars(
        select(WaitingListEntry)
        .where(
            WaitingListEntry.worker_id == booking.worker_id,
            WaitingListEntry.status == WaitStatus.WAITING,
            WaitingListEntry.starts_at < booking.ends_at,
            WaitingListEntry.ends_at > booking.starts_at,
            WaitingListEntry.starts_at > now,
        )
        .order_by(WaitingListEntry.created_at, WaitingListEntry.id)
    ).all()
    db.session.flush()
    for entry in entries:
        if _overlapping(entry.worker_id, entry.starts_at, entry.ends_at) is None:
            _offer(entry, now=now)
            return


def offer_waiting_list(*, now: datetime) -> int:
    """Job: offer every waited-for slot that is free now (catches slots freed in ways the
    booking service did not see). Idempotent: an offered entry is not offered again."""
    entries = db.session.scalars(
        select(WaitingListEntry)
        .where(WaitingListEntry.status == WaitStatus.WAITING)
        .order_by(WaitingListEntry.created_at, WaitingListEntry.id)
    ).all()
    offered = 0
    for entry in entries:
        if entry.starts_at <= now:
            entry.status = WaitStatus.WITHDRAWN
            continue
        if _overlapping(entry.worker_id, entry.starts_at, entry.ends_at) is None:
            _offer(entry, now=now)
            offered += 1
            db.session.flush()
    db.session.commit()
    return offered


def waiting_entries_of(carer_ids: Sequence[int]) -> list[WaitingListEntry]:
    return list(
        db.session.scalars(
            select(WaitingListEntry)
            .where(
                WaitingListEntry.carer_id.in_(carer_ids),
                WaitingListEntry.status != WaitStatus.WITHDRAWN,
            )
            .order_by(WaitingListEntry.starts_at)
        )
    )


# --- lists -----------------------------------------------------------------------------


def bookings_of(user: User, *, limit: int = 200) -> list[Booking]:
    """Own bookings, newest first: a worker's, or those of the carers `user` acts for."""
    carer_ids = [carer.id for carer in carers_for(user)]
    conditions: list[ColumnElement[bool]] = []
    if carer_ids:
        conditions.append(Booking.carer_id.in_(carer_ids))
    if user.has_role(Role.WORKER):
        conditions.append(Booking.worker_id == user.id)
    if not conditions:
        return []
    return list(
        db.session.scalars(
            select(Booking)
            .where(or_(*conditions))
            .order_by(Booking.starts_at.desc(), Booking.id.desc())
            .limit(limit)
        )
    )


def review_of(booking_id: int) -> BookingReview | None:
    return db.session.scalar(select(BookingReview).where(BookingReview.booking_id == booking_id))


# --- emergency bookings (called by the emergency service) ------------------------------


def make_emergency_booking(
    *,
    worker_id: int,
    council_id: int,
    starts_at: datetime,
    ends_at: datetime,
    postcode: str | None,
    address: str | None,
    notes: str | None,
    incident_ref: str | None,
    actor: User | None,
    now: datetime,
    carer_id: int | None = None,
    commit: bool = True,
) -> Booking:
    """A confirmed break funded by the scheme, not a carer's budget, for the emergency
    line. Notice, step and availability rules do not apply (it is an emergency); the
    worker must still be approved and in date, and the no-overlap rule still holds."""
    profile = profile_of(worker_id)
    if profile is None or profile.council_id != council_id or not vetting.is_bookable(profile, now):
        raise WorkerNotBookable("This worker cannot take bookings at the moment.")
    if ends_at <= starts_at:
        raise TooShort("The break must end after it starts.")
    if _overlapping(worker_id, starts_at, ends_at) is not None:
        raise _slot_taken()
    booking = Booking(
        council_id=council_id,
        carer_id=carer_id,
        worker_id=worker_id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=BookingStatus.CONFIRMED,
        price_pence=pricing.quote_price(profile, starts_at, ends_at),
        created_at=now,
        funded_by=FundedBy.SCHEME,
        rates=_rates_of(profile),
        postcode=(postcode or "").strip().upper() or None,
        address=(address or "").strip() or None,
        notes=_clean_notes(notes),
        # The emergency plan chose to share these with replacement care.
        share_notes=bool(notes),
        requested_by_id=actor.id if actor is not None else None,
        confirmed_at=now,
        incident_ref=incident_ref,
    )
    if not commit:
        # Inside the emergency service's own transaction: a savepoint keeps its work
        # if the overlap constraint refuses this row.
        try:
            with db.session.begin_nested():
                db.session.add(booking)
                db.session.flush()
        except IntegrityError as exc:
            raise _slot_taken() from exc
    try:
        db.session.add(booking)
        db.session.flush()
        audit.record(
            "booking.emergency_booked",
            actor=actor,
            council_id=council_id,
            subject=booking,
            details={"incident_ref": incident_ref, "worker_id": worker_id},
        )
        _tell(
            db.session.get(User, worker_id),
            f"Emergency break booked with you: {_when(starts_at)}. "
            "The emergency line will call you with details.",
            council_id=council_id,
            key=f"booking:{booking.id}:emergency",
        )
        if commit:
            db.session.commit()
        else:
            db.session.flush()
    except IntegrityError as exc:
        if not commit:
            raise _slot_taken() from exc
        db.session.rollback()
        raise _slot_taken() from exc
    return booking


# --- the spend report's per-worker and per-kind figures --------------------------------

GENERAL_SUPPORT = "General break"


def break_details(booking_ids: Collection[int]) -> Mapping[int, budget_service.BreakDetails]:
    """Worker name and kind of support of many bookings, in one query."""
    if not booking_ids:
        return {}
    rows = db.session.execute(
        select(
            Booking.id,
            Booking.support_kind,
            WorkerProfile.display_name,
            User.name,
            Booking.starts_at,
            Booking.worker_id,
        )
        .join(User, User.id == Booking.worker_id)
        .outerjoin(WorkerProfile, WorkerProfile.user_id == Booking.worker_id)
        .where(Booking.id.in_(list(booking_ids)))
    ).all()
    return {
        row[0]: budget_service.BreakDetails(
            worker=row[2] or row[3],
            support_kind=SKILLS.get(row[1] or "", GENERAL_SUPPORT),
            starts_at=row[4],
            worker_id=row[5],
        )
        for row in rows
    }


def booking_summary(booking: Booking) -> dict[str, Any]:
    """Plain facts about a booking for templates and the API."""
    return {
        "worker_name": worker_name(booking.worker_id),
        "carer_name": booking.carer.name if booking.carer is not None else None,
    }
