"""Pages for booking a break and what follows: check and confirm, your breaks, the
worker's requests, cancel, complete, dispute, review, concerns, the waiting list,
council staff booking by phone, and the calendar feed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from app.clock import london_wall_clock, to_london, utcnow
from app.errors import DomainError
from app.extensions import db
from app.forms import show_domain_error
from app.models import Role, User
from app.money import format_pence, parse_pounds
from app.security import CARER_SIDE, public, roles_required
from booking.forms.bookings import (
    BookForm,
    CancelForm,
    CompleteForm,
    ConcernForm,
    DisputeForm,
    NoShowForm,
    ResolveDisputeForm,
    ReviewForm,
    WaitForm,
    parse_time,
)
from booking.models.bookings import Booking, BookingStatus, WaitingListEntry
from booking.services import bookings as service
from booking.services import calendar_feeds, payments
from booking.services.workers import SKILLS

bp = Blueprint("bookings", __name__, url_prefix="/bookings")

FIELD_NAMES = {
    "starts_at": "start",
    "ends_at": "end",
    "notes": "notes",
    "weeks": "weeks",
    "postcode": "postcode",
    "reason": "reason",
    "text": "text",
    "rating": "rating",
    "refund": "refund",
    "actual_starts_at": "actual_start",
    "actual_ends_at": "actual_end",
}


def _backend() -> str:
    return str(current_app.config.get("PAYMENT_BACKEND", "ledger"))


def _show_error(form: Any, exc: DomainError, fallback: str) -> None:
    show_domain_error(form, exc, fallback=fallback, field_names=FIELD_NAMES)


def _three_date_parts(form: BookForm) -> None:
    """The GOV.UK date widget needs exactly day, month and year to show what was sent."""
    raw = form.day.raw_data
    if raw is not None and len(raw) != 3:
        form.day.raw_data = ([*raw, "", "", ""])[:3] if len(raw) < 3 else raw[:3]


def book_args(
    starts_at: datetime,
    ends_at: datetime,
    *,
    postcode: str | None,
    address: str | None,
    carer_id: int | None,
) -> dict[str, Any]:
    """Query arguments for a link to the booking form that fills in the date, the times,
    the place and who the break is for (like the search page's "Book" links). Notes about
    the person cared for never go in a URL."""
    start, end = to_london(starts_at), to_london(ends_at)
    args: dict[str, Any] = {
        "day": [start.day, start.month, start.year],
        "start": start.strftime("%H:%M"),
        "end": end.strftime("%H:%M"),
    }
    if postcode:
        args["postcode"] = postcode
    if address:
        args["address"] = address
    if carer_id is not None:
        args["carer_id"] = carer_id
    return args


def _offer_link(entry: WaitingListEntry, postcodes: dict[int, str | None]) -> str:
    return url_for(
        "bookings.new",
        worker_id=entry.worker_id,
        **book_args(
            entry.starts_at,
            entry.ends_at,
            postcode=entry.postcode or postcodes.get(entry.carer_id),
            address=entry.address,
            carer_id=entry.carer_id,
        ),
    )


def _booking_or_404(booking_id: int) -> Booking:
    try:
        return service.booking_for(current_user, booking_id)
    except DomainError:
        abort(404)


# --- booking ---------------------------------------------------------------------------


def _times(form: BookForm) -> tuple[datetime, datetime]:
    day = form.day.data
    start, end = parse_time(form.start.data or ""), parse_time(form.end.data or "")
    starts_at = london_wall_clock(day, start)
    ends_at = london_wall_clock(day if end > start else day + timedelta(days=1), end)
    return starts_at, ends_at


def _book_form(carers: list[User], *, by_phone: bool) -> BookForm:
    form = BookForm(request.args) if request.method == "GET" else BookForm()
    form.carer_id.choices = [(carer.id, carer.name) for carer in carers] or [(0, "Nobody")]
    form.support_kind.choices = [("", "A general break"), *list(SKILLS.items())]
    if request.method == "GET":
        if not request.args.getlist("day"):
            form.day.raw_data = None  # the date widget shows empty boxes
        if carers and not form.carer_id.data:
            form.carer_id.data = carers[0].id
        if not form.postcode.data and carers and carers[0].postcode:
            form.postcode.data = carers[0].postcode
        for name in ("postcode", "address", "notes", "start", "end"):
            value = request.args.get(name)
            if value:
                getattr(form, name).data = value
    if not by_phone:
        del form.carer_reference
    return form


def _carer_of_form(form: BookForm, carers: list[User], *, by_phone: bool) -> User | None:
    if by_phone:
        reference = (form.carer_reference.data or "").strip()
        carer = db.session.scalar(
            select(User).where(
                User.council_id == current_user.council_id, User.reference == reference
            )
        )
        if carer is None or not carer.has_role(Role.CARER):
            form.carer_reference.errors = [
                *form.carer_reference.errors,
                "There is no carer with that reference in this council",
            ]
            return None
        return carer
    for carer in carers:
        if carer.id == form.carer_id.data:
            return carer
    return None


def _render_form(form: BookForm, *, by_phone: bool, can_wait: bool = False) -> str:
    _three_date_parts(form)
    return render_template(
        "booking/bookings/new.html", form=form, by_phone=by_phone, quote=None, can_wait=can_wait
    )


def _book(*, by_phone: bool) -> ResponseReturnValue:
    carers = [] if by_phone else service.carers_for(current_user)
    if not by_phone and not carers:
        abort(404)
    form = _book_form(carers, by_phone=by_phone)
    if by_phone:
        form.carer_id.choices = [(0, "By reference")]
        form.carer_id.data = 0
    if request.method == "GET":
        return _render_form(form, by_phone=by_phone)
    if not form.validate():
        return _render_form(form, by_phone=by_phone)
    carer = _carer_of_form(form, carers, by_phone=by_phone)
    if carer is None:
        if not by_phone:
            form.carer_id.errors = ["Choose who the break is for"]
        return _render_form(form, by_phone=by_phone)
    starts_at, ends_at = _times(form)
    now = utcnow()
    weeks = int(form.weeks.data or 1)
    # Only the carer's side can open the card page, so staff booking by phone never
    # take a card: the carer pays the difference from their own account.
    card_offered = not by_phone and payments.card_payments_on(current_app.config)
    if form.step.data != "confirm":
        try:
            quote = service.quote_booking(
                carer=carer,
                worker_id=form.worker_id.data,
                starts_at=starts_at,
                ends_at=ends_at,
                postcode=form.postcode.data,
                now=now,
                weeks=weeks,
            )
        except DomainError as exc:
            _show_error(form, exc, "start")
            can_wait = isinstance(exc, service.SlotTaken) and service.is_favourite(
                carer.id, form.worker_id.data
            )
            return _render_form(form, by_phone=by_phone, can_wait=can_wait and not by_phone)
        form.form_token.data = service.new_form_token()
        form.step.data = "confirm"
        return render_template(
            "booking/bookings/check.html",
            form=form,
            quote=quote,
            carer=carer,
            weeks=weeks,
            by_phone=by_phone,
            action=request.path,
            can_pay_by_card=weeks == 1 and card_offered,
        )
    try:
        outcomes = service.request_regular_bookings(
            carer=carer,
            worker_id=form.worker_id.data,
            starts_at=starts_at,
            ends_at=ends_at,
            weeks=weeks,
            postcode=form.postcode.data,
            address=form.address.data,
            notes=form.notes.data,
            share_notes=bool(form.share_notes.data),
            support_kind=form.support_kind.data or None,
            actor=current_user,
            now=now,
            form_token=form.form_token.data or None,
            payment_backend=_backend(),
            top_up=bool(form.top_up.data) and card_offered,
        )
    except DomainError as exc:
        form.step.data = "check"
        _show_error(form, exc, "start")
        return _render_form(form, by_phone=by_phone)
    booked = [outcome for outcome in outcomes if outcome.booking is not None]
    if weeks == 1:
        if not booked:
            form.step.data = "check"
            message = outcomes[0].reason or "This break could not be booked."
            form.start.errors = [*form.start.errors, message]
            return _render_form(form, by_phone=by_phone)
        booking = booked[0].booking
        assert booking is not None
        if booking.top_up_pence:
            flash(
                f"Your break is booked. Now enter your card details to pay "
                f"{format_pence(booking.top_up_pence)}: the card is charged only for the "
                "time the worker actually stays.",
                "success",
            )
            return redirect(url_for("payments.card", booking_id=booking.id))
        if by_phone:
            flash(f"Break {booking.id} booked for {carer.name}.", "success")
            return redirect(url_for("bookings.detail", booking_id=booking.id))
        flash(
            "Your break is confirmed."
            if booking.status is BookingStatus.CONFIRMED
            else "Your request has been sent. We will tell you when the worker answers.",
            "success",
        )
        return redirect(url_for("bookings.detail", booking_id=booking.id))
    return render_template("booking/bookings/regular_done.html", outcomes=outcomes, carer=carer)


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*CARER_SIDE)
def new() -> ResponseReturnValue:
    return _book(by_phone=False)


@bp.route("/by-phone", methods=["GET", "POST"])
@roles_required(Role.COUNCIL_OFFICER)
def by_phone() -> ResponseReturnValue:
    return _book(by_phone=True)


# --- lists and detail ------------------------------------------------------------------


@bp.get("/")
@roles_required(*CARER_SIDE)
def mine() -> ResponseReturnValue:
    now = utcnow()
    bookings = service.bookings_of(current_user)
    carers = service.carers_for(current_user)
    waiting = service.waiting_entries_of([carer.id for carer in carers])
    postcodes = {carer.id: carer.postcode for carer in carers}
    upcoming = [
        b
        for b in bookings
        if b.ends_at > now and b.status in (BookingStatus.REQUESTED, BookingStatus.CONFIRMED)
    ]
    past = [b for b in bookings if b not in upcoming]
    return render_template(
        "booking/bookings/mine.html",
        upcoming=list(reversed(upcoming)),
        past=past,
        waiting=waiting,
        offer_links={
            entry.id: _offer_link(entry, postcodes)
            for entry in waiting
            if entry.status.value == "offered"
        },
        names=service.worker_names({b.worker_id for b in bookings}),
        now=now,
    )


@bp.get("/requests")
@roles_required(Role.WORKER)
def worker_list() -> ResponseReturnValue:
    now = utcnow()
    bookings = [b for b in service.bookings_of(current_user) if b.worker_id == current_user.id]
    requests = [b for b in bookings if b.status is BookingStatus.REQUESTED]
    return render_template(
        "booking/bookings/worker_list.html",
        requests=requests,
        waiting_for_card=payments.unsecured_booking_ids([b.id for b in requests if b.top_up_pence]),
        upcoming=sorted(
            (b for b in bookings if b.status is BookingStatus.CONFIRMED), key=lambda b: b.starts_at
        ),
        past=[
            b
            for b in bookings
            if b.status not in (BookingStatus.REQUESTED, BookingStatus.CONFIRMED)
        ],
        now=now,
    )


@bp.get("/<int:booking_id>")
@roles_required(Role.CARER, Role.REPRESENTATIVE, Role.WORKER, Role.COUNCIL_OFFICER)
def detail(booking_id: int) -> ResponseReturnValue:
    booking = _booking_or_404(booking_id)
    now = utcnow()
    is_worker = booking.worker_id == current_user.id
    carer_side = service.acts_for(current_user, booking.carer_id)
    alternatives = []
    if (
        carer_side
        and booking.status is BookingStatus.CANCELLED
        and booking.cancelled_by_id == booking.worker_id
    ):
        alternatives = service.alternatives_for(booking, now=now)
    return render_template(
        "booking/bookings/detail.html",
        booking=booking,
        worker_name=service.worker_name(booking.worker_id),
        is_worker=is_worker,
        carer_side=carer_side,
        is_officer=current_user.has_role(Role.COUNCIL_OFFICER),
        notes=booking.notes if not is_worker or carer_side else service.worker_notes(booking),
        policy=service.cancellation_policy(booking, by=current_user, now=now),
        review=service.review_of(booking.id),
        card_payment=payments.payment_for_booking(booking.id) if carer_side else None,
        top_up_secured=not is_worker
        or booking.status is not BookingStatus.REQUESTED
        or payments.top_up_secured(booking),
        alternatives=alternatives,
        alternative_args=book_args(
            booking.starts_at,
            booking.ends_at,
            postcode=booking.postcode,
            address=booking.address,
            carer_id=booking.carer_id,
        ),
        can_report_no_show=service.can_report_no_show(current_user, booking, now=now),
        now=now,
        complete_form=CompleteForm(
            actual_start=to_london(booking.starts_at).strftime("%H:%M"),
            actual_end=to_london(booking.ends_at).strftime("%H:%M"),
        ),
    )


# --- the worker's answers --------------------------------------------------------------


def _do(action: Any, booking_id: int, success: str) -> ResponseReturnValue:
    try:
        action()
    except DomainError as exc:
        if exc.status == 404:
            abort(404)
        flash(exc.message, "error")
    else:
        flash(success, "success")
    return redirect(url_for("bookings.detail", booking_id=booking_id))


@bp.post("/<int:booking_id>/accept")
@roles_required(Role.WORKER)
def accept(booking_id: int) -> ResponseReturnValue:
    return _do(
        lambda: service.accept_booking(booking_id, worker=current_user, now=utcnow()),
        booking_id,
        "You have accepted this break. The carer has been told.",
    )


@bp.post("/<int:booking_id>/decline")
@roles_required(Role.WORKER)
def decline(booking_id: int) -> ResponseReturnValue:
    return _do(
        lambda: service.decline_booking(
            booking_id, worker=current_user, now=utcnow(), payment_backend=_backend()
        ),
        booking_id,
        "You have said no to this break. The carer has been told.",
    )


@bp.route("/<int:booking_id>/complete", methods=["POST"])
@roles_required(Role.WORKER)
def complete(booking_id: int) -> ResponseReturnValue:
    booking = _booking_or_404(booking_id)
    form = CompleteForm()
    if form.validate():
        local_day = to_london(booking.starts_at).date()
        start, end = (
            parse_time(form.actual_start.data or ""),
            parse_time(form.actual_end.data or ""),
        )
        actual_start = london_wall_clock(local_day, start)
        actual_end = london_wall_clock(
            local_day if end > start else local_day + timedelta(days=1), end
        )
        try:
            service.complete_booking(
                booking_id,
                worker=current_user,
                actual_starts_at=actual_start,
                actual_ends_at=actual_end,
                now=utcnow(),
                payment_backend=_backend(),
            )
        except DomainError as exc:
            if exc.status == 404:
                abort(404)
            _show_error(form, exc, "actual_start")
        else:
            flash("Thank you. The break is recorded as done.", "success")
            return redirect(url_for("bookings.detail", booking_id=booking_id))
    return render_template("booking/bookings/complete.html", booking=booking, form=form)


# --- cancelling ------------------------------------------------------------------------


@bp.route("/<int:booking_id>/cancel", methods=["GET", "POST"])
@roles_required(Role.CARER, Role.REPRESENTATIVE, Role.WORKER, Role.COUNCIL_OFFICER)
def cancel(booking_id: int) -> ResponseReturnValue:
    booking = _booking_or_404(booking_id)
    now = utcnow()
    form = CancelForm()
    if request.method == "POST" and form.validate():
        try:
            result = service.cancel_booking(
                booking_id,
                actor=current_user,
                now=now,
                reason=form.reason.data,
                payment_backend=_backend(),
            )
        except DomainError as exc:
            if exc.status == 404:
                abort(404)
            _show_error(form, exc, "reason")
        else:
            if result.alternatives:
                # Only the carer's side sees the list (on this break's page).
                flash(
                    "The break is cancelled. The carer has been told and offered "
                    f"{len(result.alternatives)} other workers who are free then.",
                    "success",
                )
            elif service.acts_for(current_user, result.booking.carer_id):
                flash("The break is cancelled.", "success")
            else:
                flash("The break is cancelled. The carer has been told.", "success")
            return redirect(url_for("bookings.detail", booking_id=booking_id))
    return render_template(
        "booking/bookings/cancel.html",
        booking=booking,
        form=form,
        policy=service.cancellation_policy(booking, by=current_user, now=now),
        worker_name=service.worker_name(booking.worker_id),
    )


# --- the worker did not come -----------------------------------------------------------


@bp.route("/<int:booking_id>/no-show", methods=["GET", "POST"])
@roles_required(Role.CARER, Role.REPRESENTATIVE, Role.COUNCIL_OFFICER)
def no_show(booking_id: int) -> ResponseReturnValue:
    booking = _booking_or_404(booking_id)
    form = NoShowForm()
    if request.method == "POST" and form.validate():
        try:
            service.report_no_show(
                booking_id,
                actor=current_user,
                now=utcnow(),
                reason=form.reason.data,
                payment_backend=_backend(),
            )
        except DomainError as exc:
            if exc.status == 404:
                abort(404)
            _show_error(form, exc, "reason")
        else:
            flash(
                "Thank you. We have recorded that the worker did not come. The money set aside "
                "for the break is back in the budget, and the council has been told.",
                "success",
            )
            return redirect(url_for("bookings.detail", booking_id=booking_id))
    return render_template(
        "booking/bookings/no_show.html",
        booking=booking,
        form=form,
        worker_name=service.worker_name(booking.worker_id),
    )


# --- after the break -------------------------------------------------------------------


@bp.post("/<int:booking_id>/approve-extra")
@roles_required(*CARER_SIDE)
def approve_extra(booking_id: int) -> ResponseReturnValue:
    return _do(
        lambda: service.approve_extra(booking_id, actor=current_user, now=utcnow()),
        booking_id,
        "Thank you. The extra time has been paid from your budget.",
    )


@bp.route("/<int:booking_id>/dispute", methods=["GET", "POST"])
@roles_required(*CARER_SIDE)
def dispute(booking_id: int) -> ResponseReturnValue:
    booking = _booking_or_404(booking_id)
    form = DisputeForm()
    if request.method == "POST" and form.validate():
        try:
            service.dispute_booking(
                booking_id,
                actor=current_user,
                reason=form.reason.data or "",
                now=utcnow(),
                payment_backend=_backend(),
            )
        except DomainError as exc:
            if exc.status == 404:
                abort(404)
            _show_error(form, exc, "reason")
        else:
            flash("Thank you. A council officer will look at this and contact you.", "success")
            return redirect(url_for("bookings.detail", booking_id=booking_id))
    return render_template("booking/bookings/dispute.html", booking=booking, form=form)


@bp.route("/<int:booking_id>/review", methods=["GET", "POST"])
@roles_required(*CARER_SIDE)
def review(booking_id: int) -> ResponseReturnValue:
    booking = _booking_or_404(booking_id)
    form = ReviewForm()
    if request.method == "POST" and form.validate():
        try:
            service.review_booking(
                booking_id,
                actor=current_user,
                rating=int(form.rating.data or 0),
                text=form.text.data,
                now=utcnow(),
            )
        except DomainError as exc:
            if exc.status == 404:
                abort(404)
            _show_error(form, exc, "rating")
        else:
            flash("Thank you for your review.", "success")
            return redirect(url_for("bookings.detail", booking_id=booking_id))
    return render_template(
        "booking/bookings/review.html",
        booking=booking,
        form=form,
        worker_name=service.worker_name(booking.worker_id),
    )


@bp.route("/<int:booking_id>/concern", methods=["GET", "POST"])
@roles_required(Role.CARER, Role.REPRESENTATIVE, Role.WORKER)
def concern(booking_id: int) -> ResponseReturnValue:
    booking = _booking_or_404(booking_id)
    form = ConcernForm()
    if request.method == "POST" and form.validate():
        try:
            service.report_concern(
                booking_id, actor=current_user, text=form.text.data or "", now=utcnow()
            )
        except DomainError as exc:
            if exc.status == 404:
                abort(404)
            _show_error(form, exc, "text")
        else:
            flash("Thank you. The council has been told straight away.", "success")
            return redirect(url_for("bookings.detail", booking_id=booking_id))
    return render_template("booking/bookings/concern.html", booking=booking, form=form)


# --- the waiting list ------------------------------------------------------------------


@bp.post("/waiting-list")
@roles_required(*CARER_SIDE)
def wait() -> ResponseReturnValue:
    form = WaitForm()
    carers = service.carers_for(current_user)
    if not form.validate():
        flash("We could not add you to the waiting list. Check the date and times.", "error")
        return redirect(url_for("bookings.mine"))
    if form.carer_id.data:
        carer = next((c for c in carers if c.id == form.carer_id.data), None)
    else:
        carer = carers[0] if len(carers) == 1 else None
    if carer is None:
        # Never a guess: a representative may act for several carers.
        flash("We could not add you to the waiting list. Choose who the break is for.", "error")
        return redirect(url_for("bookings.mine"))
    day = form.day.data
    start, end = parse_time(form.start.data or ""), parse_time(form.end.data or "")
    try:
        service.join_waiting_list(
            carer=carer,
            worker_id=form.worker_id.data,
            starts_at=london_wall_clock(day, start),
            ends_at=london_wall_clock(day if end > start else day + timedelta(days=1), end),
            actor=current_user,
            now=utcnow(),
            postcode=form.postcode.data,
            address=form.address.data,
        )
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash("You are on the waiting list. We will tell you if the time frees up.", "success")
    return redirect(url_for("bookings.mine"))


# --- council officers ------------------------------------------------------------------


@bp.get("/concerns")
@roles_required(Role.COUNCIL_OFFICER)
def concerns() -> ResponseReturnValue:
    return render_template(
        "booking/bookings/concerns.html",
        concerns=service.concerns_for(current_user),
        disputes=service.disputes_for(current_user),
    )


@bp.post("/concerns/<int:concern_id>/close")
@roles_required(Role.COUNCIL_OFFICER)
def close_concern(concern_id: int) -> ResponseReturnValue:
    try:
        service.close_concern(
            concern_id, officer=current_user, note=request.form.get("note"), now=utcnow()
        )
    except DomainError:
        abort(404)
    flash("The concern is closed.", "success")
    return redirect(url_for("bookings.concerns"))


@bp.route("/<int:booking_id>/resolve", methods=["GET", "POST"])
@roles_required(Role.COUNCIL_OFFICER)
def resolve(booking_id: int) -> ResponseReturnValue:
    booking = _booking_or_404(booking_id)
    form = ResolveDisputeForm()
    if request.method == "POST" and form.validate():
        try:
            refund = parse_pounds(form.refund.data or "")
        except ValueError as exc:
            form.refund.errors = [*form.refund.errors, str(exc)]
        else:
            try:
                service.resolve_dispute(
                    booking_id,
                    officer=current_user,
                    refund_pence=refund,
                    note=form.note.data,
                    now=utcnow(),
                    payment_backend=_backend(),
                )
            except DomainError as exc:
                _show_error(form, exc, "refund")
            else:
                flash("The dispute is settled and the carer has been told.", "success")
                return redirect(url_for("bookings.concerns"))
    return render_template("booking/bookings/resolve.html", booking=booking, form=form)


@bp.get("/reviews")
@roles_required(Role.COUNCIL_OFFICER)
def reviews() -> ResponseReturnValue:
    items = service.reviews_for(current_user)
    return render_template(
        "booking/bookings/reviews.html",
        reviews=items,
        names=service.worker_names({r.worker_id for r in items}),
    )


# --- calendar feed ---------------------------------------------------------------------


@bp.route("/calendar-feed", methods=["GET", "POST"])
@roles_required(Role.CARER, Role.REPRESENTATIVE, Role.WORKER)
def calendar_feed() -> ResponseReturnValue:
    token = None
    if request.method == "POST":
        if request.form.get("action") == "revoke":
            calendar_feeds.revoke_feed(current_user, now=utcnow())
            flash("Your calendar link has been switched off.", "success")
            return redirect(url_for("bookings.calendar_feed"))
        token = calendar_feeds.create_feed(current_user, now=utcnow())
    feed = calendar_feeds.live_feed(current_user)
    url = (
        current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for("bookings.ics", token=token)
        if token
        else None
    )
    return render_template("booking/bookings/calendar_feed.html", feed=feed, url=url)


@bp.get("/calendar/<token>.ics")
@public
def ics(token: str) -> ResponseReturnValue:
    user = calendar_feeds.user_for_token(token)
    if user is None:
        abort(404)
    host = current_app.config["PUBLIC_BASE_URL"].split("//")[-1].split("/")[0] or "localhost"
    body = calendar_feeds.render_feed(user, now=utcnow(), host=host)
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = (
        f'inline; filename="breaks-{uuid.uuid5(uuid.NAMESPACE_URL, token).hex[:8]}.ics"'
    )
    return response
