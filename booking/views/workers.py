"""Pages for workers, provider admins, council vetting officers and carers' search."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

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

from app.clock import london_today, london_wall_clock, utcnow
from app.errors import DomainError, Forbidden, NotFound
from app.extensions import db
from app.forms import show_domain_error
from app.models import Council, Representation, Role, User
from app.money import parse_pounds
from app.security import ALL_ROLES, CARER_SIDE, public, roles_required
from booking.forms.workers import (
    AddWorkerForm,
    CheckForm,
    DecisionForm,
    ExceptionForm,
    OrganisationForm,
    ProfileForm,
    RulesForm,
    SearchForm,
    SignUpForm,
    WeeklyForm,
    rows_posted,
    slot_field_name,
    weekly_form_class,
)
from booking.models.workers import CheckKind, ExceptionKind, VettingStatus, WorkerProfile
from booking.services import availability, search, vetting
from booking.services import workers as worker_services
from booking.services.vetting import CHECK_NAMES
from booking.services.workers import GENDERS, SKILLS

bp = Blueprint("workers", __name__, url_prefix="/workers")

CALENDAR_REACH = timedelta(days=5 * 365)

T = TypeVar("T")


def _or_abort(call: Callable[[], T]) -> T:
    """Run a lookup that may say 'not yours' (403) or 'not found' (404)."""
    try:
        return call()
    except Forbidden:
        abort(403)
    except NotFound:
        abort(404)


def _parse_time(text: str) -> time:
    match = re.match(r"^\s*([01]?\d|2[0-3])[:.]?([0-5]\d)\s*$", text or "")
    if match is None:
        raise ValueError(text)
    return time(int(match.group(1)), int(match.group(2)))


def _parse_end(text: str) -> time:
    """An end time for a weekly slot: 24:00 or 00:00 is midnight at the end of the day."""
    if re.match(r"^\s*24[:.]?00\s*$", text or ""):
        return availability.END_OF_DAY
    end = _parse_time(text)
    return availability.END_OF_DAY if end == time(0) else end


def _wall_clock_window(day: date, start: time, end: time) -> tuple[datetime, datetime] | None:
    """UK wall-clock times on `day` as UTC; an end not after the start is the next day.
    None for a date at the very edge of the calendar (31 December 9999)."""
    try:
        starts_at = london_wall_clock(day, start)
        ends_at = london_wall_clock(day if end > start else day + timedelta(days=1), end)
    except OverflowError:
        return None
    return starts_at, ends_at


def _password_method() -> str:
    return str(current_app.config.get("PASSWORD_HASH_METHOD", "scrypt"))


# ----------------------------------------------------------------- sign-up


@bp.route("/sign-up", methods=["GET", "POST"])
@public
def sign_up() -> ResponseReturnValue:
    form = SignUpForm()
    councils = db.session.scalars(select(Council).order_by(Council.name)).all()
    form.council.choices = [("", "Choose a council"), *[(c.slug, c.name) for c in councils]]
    if form.validate_on_submit():
        council = next((c for c in councils if c.slug == form.council.data), None)
        if council is None:
            form.council.errors = ["Choose the council area you work in"]
        else:
            try:
                worker_services.sign_up_worker(
                    council=council,
                    name=form.name.data or "",
                    email=form.email.data or "",
                    password=form.password.data or "",
                    phone=(form.phone.data or "").strip() or None,
                    postcode=form.postcode.data,
                    now=utcnow(),
                    password_method=_password_method(),
                )
            except DomainError as exc:
                db.session.rollback()
                show_domain_error(form, exc)
            else:
                flash("Your account is ready. Sign in to fill in your profile.", "success")
                return redirect(url_for("auth.sign_in"))
    return render_template("booking/workers/sign_up.html", form=form)


# ----------------------------------------------------------------- the worker's own pages


@bp.route("/me/profile")
@roles_required(Role.WORKER)
def my_profile() -> ResponseReturnValue:
    return redirect(url_for("workers.profile", worker_id=current_user.id))


@bp.route("/me/availability")
@roles_required(Role.WORKER)
def my_availability() -> ResponseReturnValue:
    return redirect(url_for("workers.availability_page", worker_id=current_user.id))


@bp.route("/me/calendar")
@roles_required(Role.WORKER)
def my_calendar() -> ResponseReturnValue:
    return redirect(url_for("workers.calendar", worker_id=current_user.id))


@bp.route("/<int:worker_id>/profile", methods=["GET", "POST"])
@roles_required(Role.WORKER, Role.PROVIDER_ADMIN)
def profile(worker_id: int) -> ResponseReturnValue:
    profile = _or_abort(lambda: worker_services.editable_profile(current_user, worker_id))
    form = ProfileForm(obj=profile) if request.method == "GET" else ProfileForm()
    if request.method == "GET":
        form.skills.data = profile.skills
        form.languages.data = ", ".join(language.title() for language in profile.languages)
        form.hourly_rate.data = (
            f"{profile.hourly_rate_pence / 100:.2f}" if profile.hourly_rate_pence else ""
        )
        form.gender.data = profile.gender
        form.phone.data = profile.user.phone or ""
    if form.validate_on_submit():
        try:
            details = worker_services.ProfileDetails(
                display_name=form.display_name.data or "",
                bio=form.bio.data or "",
                skills=form.skills.data or [],
                languages=(form.languages.data or "").split(","),
                gender=form.gender.data,
                postcode=form.postcode.data or "",
                travel_radius_km=form.travel_radius_km.data or 0,
                hourly_rate_pence=parse_pounds(form.hourly_rate.data or ""),
                evening_premium_percent=form.evening_premium_percent.data,
                weekend_premium_percent=form.weekend_premium_percent.data,
                bank_holiday_premium_percent=form.bank_holiday_premium_percent.data,
                phone=form.phone.data or "",
            )
            upload = form.photo.data
            data = upload.read() if upload else b""
            worker_services.update_profile(
                current_user,
                worker_id,
                details,
                now=utcnow(),
                photo=worker_services.PhotoUpload(data, upload.mimetype) if data else None,
            )
        except ValueError:
            form.hourly_rate.errors = ["Enter an amount like 18.50"]
        except DomainError as exc:
            db.session.rollback()
            show_domain_error(form, exc)
        else:
            flash("Your profile is saved.", "success")
            return redirect(url_for("workers.profile", worker_id=worker_id))
    return render_template(
        "booking/workers/profile.html", form=form, profile=profile, worker_id=worker_id
    )


@bp.route("/<int:worker_id>/photo")
@roles_required(*ALL_ROLES)
def photo(worker_id: int) -> ResponseReturnValue:
    profile = worker_services.profile_of(worker_id)
    if (
        profile is None
        or profile.photo is None
        or not vetting.may_see_photo(current_user, profile, now=utcnow())
    ):
        abort(404)
    response = Response(profile.photo, mimetype=profile.photo_content_type or "image/jpeg")
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.post("/<int:worker_id>/photo/remove")
@roles_required(Role.WORKER, Role.PROVIDER_ADMIN)
def remove_photo(worker_id: int) -> ResponseReturnValue:
    _or_abort(lambda: worker_services.remove_photo(current_user, worker_id, now=utcnow()))
    flash("The photo is removed.", "success")
    return redirect(url_for("workers.profile", worker_id=worker_id))


@bp.route("/<int:worker_id>/rules", methods=["GET", "POST"])
@roles_required(Role.WORKER, Role.PROVIDER_ADMIN)
def rules(worker_id: int) -> ResponseReturnValue:
    profile = _or_abort(lambda: worker_services.editable_profile(current_user, worker_id))
    form = RulesForm(obj=profile) if request.method == "GET" else RulesForm()
    if form.validate_on_submit():
        try:
            worker_services.update_rules(
                current_user,
                worker_id,
                worker_services.BookingRules(
                    min_notice_minutes=form.min_notice_minutes.data or 0,
                    min_session_minutes=form.min_session_minutes.data or 0,
                    max_hours_per_week=form.max_hours_per_week.data or 0,
                    buffer_minutes=form.buffer_minutes.data or 0,
                    favourites_instant_book=bool(form.favourites_instant_book.data),
                    response_deadline_hours=form.response_deadline_hours.data or 0,
                ),
                now=utcnow(),
            )
        except DomainError as exc:
            db.session.rollback()
            show_domain_error(form, exc)
        else:
            flash("Your booking rules are saved.", "success")
            return redirect(url_for("workers.rules", worker_id=worker_id))
    return render_template(
        "booking/workers/rules.html", form=form, profile=profile, worker_id=worker_id
    )


def _availability_context(profile: WorkerProfile, worker_id: int, **forms: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "profile": profile,
        "worker_id": worker_id,
        "exceptions": availability.load_exceptions(profile, since=now),
        **forms,
    }


def _stored_week_form(profile: WorkerProfile, *, formdata: Any = None) -> WeeklyForm:
    """The week form showing every stored time (several a day) and one empty row a day."""
    by_day: dict[int, list[tuple[str, str]]] = {d: [] for d in range(7)}
    for rule in availability.load_rules(profile):
        by_day[rule.weekday].append(
            (rule.start_time.strftime("%H:%M"), availability.format_end(rule.end_time))
        )
    data: dict[str, str] = {}
    for day, slots in by_day.items():
        for row, (start, end) in enumerate(slots):
            data[slot_field_name(day, row, "start")] = start
            data[slot_field_name(day, row, "end")] = end
    form_class = weekly_form_class([len(by_day[d]) + 1 for d in range(7)])
    return form_class(formdata=formdata, data=data)


def _place_week_errors(form: WeeklyForm, exc: DomainError, rows: list[tuple[int, int]]) -> None:
    """Put the service's `weekly.N.*` (slot N) and `weekly.D` (weekday D) messages on the
    fields they are about; `rows` maps slot N to its (weekday, row) on the page."""
    for name, message in exc.fields.items():
        parts = name.split(".")
        if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
            day, row = rows[int(parts[1])]
            part = "start" if parts[2] == "start" else "end"
        elif len(parts) == 2 and parts[1].isdigit() and int(parts[1]) < 7:
            day, row, part = int(parts[1]), 0, "start"
        else:
            continue
        field = getattr(form, slot_field_name(day, row, part))
        field.errors = [*list(field.errors), message]
    if not any(f.errors for f in form):
        form.form_errors.append(exc.message)


@bp.route("/<int:worker_id>/availability", methods=["GET", "POST"])
@roles_required(Role.WORKER, Role.PROVIDER_ADMIN)
def availability_page(worker_id: int) -> ResponseReturnValue:
    """The usual week: every time of every day, several a day, with an empty row each day
    to add one more. The whole week is saved at once; clearing a row removes that time."""
    profile = _or_abort(lambda: worker_services.editable_profile(current_user, worker_id))
    if request.method == "POST":
        form: WeeklyForm = weekly_form_class(rows_posted(request.form))()
    else:
        form = _stored_week_form(profile)
    if form.validate_on_submit():
        filled = form.filled()
        weekly = [
            availability.WeeklySlot(day, _parse_time(start), _parse_end(end))
            for day, _row, start, end in filled
        ]
        try:
            availability.set_weekly(profile, weekly=weekly, actor=current_user, now=utcnow())
        except DomainError as exc:
            db.session.rollback()
            _place_week_errors(form, exc, [(day, row) for day, row, _s, _e in filled])
        else:
            flash("Your week is saved.", "success")
            return redirect(url_for("workers.availability_page", worker_id=worker_id))
    return render_template(
        "booking/workers/availability.html",
        **_availability_context(
            profile, worker_id, form=form, exception_form=ExceptionForm(formdata=None)
        ),
    )


@bp.post("/<int:worker_id>/availability/exceptions")
@roles_required(Role.WORKER, Role.PROVIDER_ADMIN)
def add_exception(worker_id: int) -> ResponseReturnValue:
    profile = _or_abort(lambda: worker_services.editable_profile(current_user, worker_id))
    form = ExceptionForm()
    if form.validate_on_submit():
        start, end = _parse_time(form.start.data or ""), _parse_time(form.end.data or "")
        window = _wall_clock_window(form.day.data, start, end)
        if window is None:
            form.day.errors = [*list(form.day.errors), availability.HORIZON_MESSAGE]
        else:
            try:
                availability.add_exception(
                    profile,
                    availability.ExceptionSlot(
                        *window, ExceptionKind(form.kind.data), form.note.data or None
                    ),
                    actor=current_user,
                    now=utcnow(),
                )
            except DomainError as exc:
                db.session.rollback()
                show_domain_error(form, exc)
            else:
                flash("Your change is saved.", "success")
                return redirect(url_for("workers.availability_page", worker_id=worker_id))
    return render_template(
        "booking/workers/availability.html",
        **_availability_context(
            profile,
            worker_id,
            form=form,
            weekly_form=_stored_week_form(profile, formdata=None),
            exception_form=form,
        ),
    )


@bp.post("/<int:worker_id>/availability/exceptions/<int:exception_id>/remove")
@roles_required(Role.WORKER, Role.PROVIDER_ADMIN)
def remove_exception(worker_id: int, exception_id: int) -> ResponseReturnValue:
    profile = _or_abort(lambda: worker_services.editable_profile(current_user, worker_id))
    _or_abort(
        lambda: availability.remove_exception(
            profile, exception_id, actor=current_user, now=utcnow()
        )
    )
    flash("The change is removed.", "success")
    return redirect(url_for("workers.availability_page", worker_id=worker_id))


@bp.route("/<int:worker_id>/calendar")
@roles_required(Role.WORKER, Role.PROVIDER_ADMIN)
def calendar(worker_id: int) -> ResponseReturnValue:
    """A week of availability and bookings. `?week=` is any date in the week wanted; one
    that is not a date, or more than 5 years away (9999-12-31), shows this week instead."""
    profile = _or_abort(lambda: worker_services.editable_profile(current_user, worker_id))
    today = london_today(utcnow())
    first, last = today - CALENDAR_REACH, today + CALENDAR_REACH
    week_error = None
    try:
        chosen = date.fromisoformat(request.args.get("week", "") or today.isoformat())
    except ValueError:
        chosen, week_error = today, "Choose a week using the links on this page"
    if not first <= chosen <= last:
        chosen, week_error = today, "Choose a week in the 5 years before or after today"
    monday = chosen - timedelta(days=chosen.weekday())
    days = availability.week_calendar(profile, monday)
    previous_week, next_week = monday - timedelta(days=7), monday + timedelta(days=7)
    return render_template(
        "booking/workers/calendar.html",
        profile=profile,
        worker_id=worker_id,
        days=days,
        monday=monday,
        week_error=week_error,
        previous_week=previous_week if previous_week + timedelta(days=6) >= first else None,
        next_week=next_week if next_week <= last else None,
    )


@bp.route("/<int:worker_id>/checks", methods=["GET", "POST"])
@roles_required(Role.WORKER, Role.PROVIDER_ADMIN)
def checks(worker_id: int) -> ResponseReturnValue:
    profile = _or_abort(lambda: worker_services.editable_profile(current_user, worker_id))
    form = CheckForm()
    if form.validate_on_submit():
        try:
            vetting.record_check(
                current_user,
                worker_id,
                vetting.CheckDetails(
                    kind=CheckKind(form.kind.data),
                    reference=form.reference.data or "",
                    issued_on=form.issued_on.data,
                    expires_on=form.expires_on.data,
                    dbs_update_service=bool(form.update_service.data),
                ),
                now=utcnow(),
            )
        except DomainError as exc:
            db.session.rollback()
            show_domain_error(form, exc)
        else:
            flash("The check is saved.", "success")
            return redirect(url_for("workers.checks", worker_id=worker_id))
    today = london_today(utcnow())
    return render_template(
        "booking/workers/checks.html",
        form=form,
        profile=profile,
        worker_id=worker_id,
        checks=vetting.checks_of(profile),
        missing=vetting.missing_checks(vetting.checks_of(profile), today),
        today=today,
        check_names=CHECK_NAMES,
        check_in_date=vetting.check_in_date,
        effective_expiry=vetting.effective_expiry,
    )


# ----------------------------------------------------------------- provider admins


@bp.route("/team")
@roles_required(Role.PROVIDER_ADMIN)
def team() -> ResponseReturnValue:
    organisation = worker_services.organisation_of(current_user)
    return render_template(
        "booking/workers/team.html",
        organisation=organisation,
        team=worker_services.team_of(current_user),
        form=OrganisationForm() if organisation is None else None,
    )


@bp.post("/team/organisation")
@roles_required(Role.PROVIDER_ADMIN)
def create_organisation() -> ResponseReturnValue:
    form = OrganisationForm()
    if form.validate_on_submit():
        try:
            worker_services.create_organisation(
                current_user, name=form.name.data or "", now=utcnow()
            )
        except DomainError as exc:
            db.session.rollback()
            show_domain_error(form, exc)
        else:
            flash("Your organisation is set up.", "success")
            return redirect(url_for("workers.team"))
    return render_template(
        "booking/workers/team.html",
        organisation=worker_services.organisation_of(current_user),
        team=[],
        form=form,
    )


@bp.route("/team/add", methods=["GET", "POST"])
@roles_required(Role.PROVIDER_ADMIN)
def add_worker() -> ResponseReturnValue:
    form = AddWorkerForm()
    if form.validate_on_submit():
        try:
            worker = worker_services.add_team_worker(
                current_user,
                name=form.name.data or "",
                email=form.email.data or "",
                phone=(form.phone.data or "").strip() or None,
                now=utcnow(),
                password_method=_password_method(),
            )
        except DomainError as exc:
            db.session.rollback()
            show_domain_error(form, exc)
        else:
            flash(f"{worker.name} is added. Now fill in their profile.", "success")
            return redirect(url_for("workers.profile", worker_id=worker.id))
    return render_template("booking/workers/add_worker.html", form=form)


# ----------------------------------------------------------------- council vetting


@bp.route("/vetting")
@roles_required(Role.COUNCIL_OFFICER)
def vetting_queue() -> ResponseReturnValue:
    rows = vetting.vetting_queue_rows(current_user, today=london_today(utcnow()))
    return render_template("booking/workers/vetting_queue.html", rows=rows)


@bp.route("/vetting/<int:worker_id>", methods=["GET", "POST"])
@roles_required(Role.COUNCIL_OFFICER)
def vetting_detail(worker_id: int) -> ResponseReturnValue:
    profile = _or_abort(lambda: vetting.profile_for_officer(current_user, worker_id))
    form = DecisionForm()
    if form.validate_on_submit():
        now = utcnow()
        reason = (form.reason.data or "").strip()
        try:
            match form.action.data:
                case "approve":
                    vetting.approve_worker(current_user, worker_id, now=now, reason=reason or None)
                case "reject":
                    vetting.reject_worker(current_user, worker_id, reason=reason, now=now)
                case "suspend":
                    vetting.suspend_worker(current_user, worker_id, reason=reason, now=now)
                case _:
                    vetting.reinstate_worker(
                        current_user, worker_id, now=now, reason=reason or None
                    )
        except DomainError as exc:
            db.session.rollback()
            form.action.errors = [*list(form.action.errors), exc.message]
        else:
            flash("The decision is recorded.", "success")
            return redirect(url_for("workers.vetting_detail", worker_id=worker_id))
    today = london_today(utcnow())
    checks = vetting.checks_of(profile)
    return render_template(
        "booking/workers/vetting_detail.html",
        form=form,
        profile=profile,
        checks=checks,
        missing=vetting.missing_checks(checks, today),
        decisions=vetting.decisions_of(profile),
        check_names=CHECK_NAMES,
        check_in_date=vetting.check_in_date,
        effective_expiry=vetting.effective_expiry,
        today=today,
        statuses=VettingStatus,
    )


# ----------------------------------------------------------------- carers' search


def _carer_for(user: User) -> User | None:
    """The carer a search is for: the person themself, or the carer a representative helps."""
    if user.has_role(Role.CARER):
        return user
    link = db.session.scalar(
        select(Representation).where(Representation.representative_id == user.id)
    )
    return link.carer if link is not None else None


@bp.route("/find")
@roles_required(*CARER_SIDE)
def find() -> ResponseReturnValue:
    carer = _carer_for(current_user)
    searched = bool(request.args)
    form = SearchForm(request.args) if searched else SearchForm()
    if not searched and carer is not None and carer.postcode:
        form.postcode.data = carer.postcode
    results: list[search.SearchResult] | None = None
    if searched and carer is not None and form.validate():
        start, end = _parse_time(form.start.data or ""), _parse_time(form.end.data or "")
        window = _wall_clock_window(form.day.data, start, end)
        if window is None:  # 31 December 9999: far beyond what can be booked
            form.day.errors = [*list(form.day.errors), search.too_far_ahead_message()]
        else:
            try:
                results = search.search_workers(
                    carer=carer,
                    starts_at=window[0],
                    ends_at=window[1],
                    postcode=form.postcode.data or "",
                    skills=form.skills.data or [],
                    languages=[form.languages.data] if form.languages.data else [],
                    gender=form.gender.data or None,
                    now=utcnow(),
                )
            except DomainError as exc:
                # Too far ahead is about the date; too soon or too short, about the times.
                starts_field = "day" if exc.code == "too_far_ahead" else "start"
                show_domain_error(
                    form, exc, field_names={"starts_at": starts_field, "ends_at": "end"}
                )
    return render_template(
        "booking/workers/find.html",
        form=form,
        results=results,
        carer=carer,
        book_args=_book_args(form, carer) if results else {},
        skill_names=SKILLS,
        gender_names=GENDERS,
    )


def _book_args(form: SearchForm, carer: User | None) -> dict[str, Any]:
    """What the booking page needs to start from the slot the carer searched for."""
    day: date = form.day.data
    return {
        "day": [day.day, day.month, day.year],
        "start": form.start.data,
        "end": form.end.data,
        "postcode": form.postcode.data,
        "carer_id": carer.id if carer is not None else None,
    }


@bp.post("/<int:worker_id>/favourite")
@roles_required(*CARER_SIDE)
def favourite(worker_id: int) -> ResponseReturnValue:
    carer = _carer_for(current_user)
    if carer is None:
        abort(404)
    now_favourite = _or_abort(
        lambda: worker_services.toggle_favourite(carer, worker_id, now=utcnow())
    )
    flash(
        "Saved as a favourite. Favourites show first."
        if now_favourite
        else "Removed from your favourites.",
        "success",
    )
    back = request.form.get("next", "")
    if back.startswith("/workers/find"):
        return redirect(back)
    return redirect(url_for("workers.find"))
