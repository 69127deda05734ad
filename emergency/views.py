"""Emergency pages: the guided plan form, plans and cards, the operator console,
incidents, figures and the audit log. Thin: parse, call one service, render."""

from __future__ import annotations

import re
from datetime import date
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

from app.clock import london_today, utcnow
from app.errors import DomainError
from app.extensions import db
from app.models import Council, Role, User, UserRole
from app.security import roles_required
from emergency import services
from emergency.crypto import cipher_from_config
from emergency.forms import (
    CONTACT_ROWS,
    MEDICATION_ROWS,
    STEPS,
    AuditSearchForm,
    CloseForm,
    NoteForm,
    PinForm,
)
from emergency.models import Card, CardStatus, Contact, IncidentStatus, PlanVersion
from emergency.pins import format_pin, pin_hmac

bp = Blueprint("emergency", __name__, url_prefix="/emergency")

PLAN_STAFF = (Role.PLAN_WRITER, Role.COUNCIL_OFFICER, Role.ADMIN)
OFFICERS = (Role.COUNCIL_OFFICER, Role.ADMIN)


def _cipher() -> Any:
    return cipher_from_config(current_app.config)


def _council_id() -> int | None:
    return None if current_user.has_role(Role.ADMIN) else current_user.council_id


def _parse_day(text: str) -> date | None:
    """'27 3 1950', '27/03/1950' or '1950-03-27'."""
    parts = [p for p in re.split(r"\D+", text.strip()) if p]
    try:
        if len(parts) == 3 and len(parts[0]) == 4:
            return date(int(parts[0]), int(parts[1]), int(parts[2]))
        if len(parts) == 3:
            return date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        return None
    return None


def _day_text(iso: Any) -> str:
    """An ISO date from a draft as people write it ('3 April 1941'); '' when missing."""
    try:
        return date.fromisoformat(str(iso)).strftime("%-d %B %Y")
    except ValueError:
        return str(iso or "")


def _or_404(func: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except services.RecordNotFound:
        abort(404)


# --- plans ---------------------------------------------------------------------------


@bp.get("/plans")
@roles_required(*PLAN_STAFF)
def plans() -> ResponseReturnValue:
    council_id = current_user.council_id
    return render_template(
        "emergency/plans.html",
        plans=services.list_plans(council_id) if council_id else [],
        today=london_today(utcnow()),
    )


@bp.route("/plans/new", methods=["GET", "POST"])
@roles_required(Role.PLAN_WRITER)
def new_plan() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("emergency/new_plan.html")
    draft = services.start_draft(writer=current_user, cipher=_cipher(), now=utcnow())
    return redirect(url_for("emergency.draft_step", draft_id=draft.id, step="person"))


@bp.post("/plans/<int:plan_id>/edit")
@roles_required(Role.PLAN_WRITER)
def edit_plan(plan_id: int) -> ResponseReturnValue:
    plan = _or_404(services.get_plan, plan_id, council_id=current_user.council_id)
    draft = services.start_draft(
        writer=current_user,
        cipher=_cipher(),
        now=utcnow(),
        plan=plan,
        ip_address=request.remote_addr,
    )
    return redirect(url_for("emergency.draft_step", draft_id=draft.id, step="person"))


def _carer_choices() -> list[tuple[int, str]]:
    carers = db.session.scalars(
        select(User)
        .join(UserRole)
        .where(User.council_id == current_user.council_id, UserRole.role == Role.CARER)
        .order_by(User.name)
    )
    return [(0, "Choose the carer")] + [
        (c.id, f"{c.name} ({c.reference or c.email})") for c in carers
    ]


def _step_data(step: str, answers: dict[str, Any]) -> dict[str, Any]:
    """The draft's answers as the flat values a step's form shows."""
    cared = answers.get("cared_for", {})
    if step == "person":
        return {
            "carer_id": answers.get("carer_id") or 0,
            "is_test": answers.get("is_test", False),
            **{
                k: cared.get(k, "")
                for k in ("name", "date_of_birth", "address", "postcode", "safe_alone")
            },
        }
    if step == "access":
        return dict(answers.get("access", {}))
    if step == "needs":
        return dict(answers.get("needs", {}))
    if step == "medication":
        data: dict[str, Any] = {k: answers.get(k, "") for k in ("allergies", "gp", "professionals")}
        for row, item in enumerate(answers.get("medication", [])[:MEDICATION_ROWS], start=1):
            for key, value in item.items():
                data[f"med{row}_{key}"] = value
        return data
    if step == "contacts":
        data = {}
        for row, item in enumerate(answers.get("contacts", [])[:CONTACT_ROWS], start=1):
            for key, value in item.items():
                data[f"c{row}_{key}"] = value
        return data
    if step == "care":
        care = answers.get("replacement_care", {})
        return {"arrangements": care.get("arrangements", ""), "hours": str(care.get("hours", 72))}
    consent = answers.get("consent", {})
    return dict(consent)


def _step_part(step: str, form: Any, answers: dict[str, Any]) -> dict[str, Any] | str:
    """The answers of one page, or an error message for a field the form cannot check."""
    d = form.data
    if step == "person":
        born = _parse_day(d["date_of_birth"])
        if born is None or born > london_today(utcnow()):
            form.date_of_birth.errors.append(
                "Enter a real date of birth in the past, like 27 3 1950"
            )
            return "error"
        part: dict[str, Any] = {
            "cared_for": {
                "name": d["name"],
                "date_of_birth": born.isoformat(),
                "address": d["address"],
                "postcode": d["postcode"].upper().strip(),
                "safe_alone": d["safe_alone"],
            }
        }
        if answers.get("_plan_id") is None and "carer_id" in form:
            if not d["carer_id"]:
                form.carer_id.errors.append("Choose the carer")
                return "error"
            part["carer_id"] = d["carer_id"]
            part["is_test"] = bool(d["is_test"])
        return part
    if step == "access":
        return {
            "access": {
                k: d[k] for k in ("key_safe_code", "key_safe_location", "key_holder", "notes")
            }
        }
    if step == "needs":
        return {"needs": {k: v for k, v in d.items() if k not in ("submit", "csrf_token")}}
    if step == "medication":
        meds = []
        for row in range(1, MEDICATION_ROWS + 1):
            item = {
                k: d[f"med{row}_{k}"]
                for k in ("name", "dose", "times", "managed_by", "stored_where")
            }
            if item["name"]:
                meds.append(item)
            elif any(item.values()):
                getattr(form, f"med{row}_name").errors.append(f"Enter the name of medicine {row}")
                return "error"
        return {"medication": meds, **{k: d[k] for k in ("allergies", "gp", "professionals")}}
    if step == "contacts":
        contacts = []
        for row in range(1, CONTACT_ROWS + 1):
            keys = (
                "name",
                "relationship",
                "phone",
                "availability",
                "can_step_in",
                "has_key",
                "consent",
            )
            item = {k: d[f"c{row}_{k}"] for k in keys}
            if not (item["name"] or item["phone"] or item["relationship"]):
                continue
            contacts.append(item)
        return {"contacts": contacts}
    if step == "care":
        return {"replacement_care": {"arrangements": d["arrangements"], "hours": int(d["hours"])}}
    recorded = _parse_day(d["recorded_on"])
    if recorded is None:
        form.recorded_on.errors.append("Enter the date consent was recorded, like 22 11 2026")
        return "error"
    return {
        "consent": {
            "carer": bool(d["carer"]),
            "cared_for": d["cared_for"],
            "best_interests_record": d["best_interests_record"],
            "recorded_by": d["recorded_by"],
            "recorded_on": recorded.isoformat(),
        }
    }


@bp.route("/drafts/<int:draft_id>/<step>", methods=["GET", "POST"])
@roles_required(Role.PLAN_WRITER)
def draft_step(draft_id: int, step: str) -> ResponseReturnValue:
    names = [name for name, _title, _form in STEPS]
    if step not in names:
        abort(404)
    draft = _or_404(services.get_draft, draft_id, writer=current_user)
    answers = services.draft_answers(draft, _cipher())
    answers["_plan_id"] = draft.plan_id
    index = names.index(step)
    _name, title, form_class = STEPS[index]
    if request.method == "POST":
        form = form_class()
    else:
        data = _step_data(step, answers)
        if step == "person" and data.get("date_of_birth"):
            born = date.fromisoformat(data["date_of_birth"])
            data["date_of_birth"] = f"{born.day} {born.month} {born.year}"
        form = form_class(data=data)
        if step == "access":  # the code in clear: audited when it is a plan's own
            services.key_safe_shown_for_edit(
                draft,
                code=str(data.get("key_safe_code") or ""),
                writer=current_user,
                ip_address=request.remote_addr,
            )
    if step == "person":
        if draft.plan_id is None:
            form.carer_id.choices = _carer_choices()
        else:
            del form.carer_id
            del form.is_test
    if request.method == "POST" and form.validate():
        part = _step_part(step, form, answers)
        if part != "error":
            assert isinstance(part, dict)
            services.save_draft_step(draft, part=part, cipher=_cipher(), now=utcnow())
            if request.args.get("back") == "check" or index + 1 == len(names):
                return redirect(url_for("emergency.draft_check", draft_id=draft.id))
            return redirect(
                url_for("emergency.draft_step", draft_id=draft.id, step=names[index + 1])
            )
    return render_template(
        "emergency/plan_step.html",
        form=form,
        title=title,
        step=step,
        step_number=index + 1,
        step_count=len(names),
        draft=draft,
        previous=names[index - 1] if index else None,
    )


def _step_of_field(field: str) -> str:
    head = field.split(".")[0]
    return {
        "cared_for": "person",
        "carer_id": "person",
        "access": "access",
        "needs": "needs",
        "medication": "medication",
        "contacts": "contacts",
        "replacement_care": "care",
        "consent": "consent",
    }.get(head, "person")


@bp.route("/drafts/<int:draft_id>/check", methods=["GET", "POST"])
@roles_required(Role.PLAN_WRITER)
def draft_check(draft_id: int) -> ResponseReturnValue:
    draft = _or_404(services.get_draft, draft_id, writer=current_user)
    answers = services.draft_answers(draft, _cipher())
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            plan = services.submit_draft(draft, writer=current_user, cipher=_cipher(), now=utcnow())
        except services.PlanInvalid as exc:
            errors = exc.fields
        else:
            flash(f"Plan {plan.id} saved as version {plan.current_version}.", "success")
            return redirect(url_for("emergency.plan_detail", plan_id=plan.id))
    carer = (
        db.session.get(User, int(answers.get("carer_id") or 0)) if answers.get("carer_id") else None
    )
    return render_template(
        "emergency/plan_check.html",
        draft=draft,
        answers=answers,
        dates={
            "date_of_birth": _day_text(answers.get("cared_for", {}).get("date_of_birth")),
            "recorded_on": _day_text(answers.get("consent", {}).get("recorded_on")),
        },
        carer=carer,
        errors=errors,
        error_list=[
            {
                "text": message,
                "href": url_for(
                    "emergency.draft_step",
                    draft_id=draft.id,
                    step=_step_of_field(field),
                    back="check",
                ),
            }
            for field, message in errors.items()
        ],
        needs_fields=services.NEEDS_FIELDS,
        steps=STEPS,
    )


@bp.get("/plans/<int:plan_id>")
@roles_required(*PLAN_STAFF)
def plan_detail(plan_id: int) -> ResponseReturnValue:
    plan = _or_404(services.get_plan, plan_id, council_id=_council_id())
    number = request.args.get("version", type=int)
    view = _or_404(
        services.view_plan,
        plan,
        viewer=current_user,
        cipher=_cipher(),
        now=utcnow(),
        version_number=number,
        reason="plan page",
        ip_address=request.remote_addr,
    )
    versions = db.session.scalars(
        select(PlanVersion)
        .where(PlanVersion.plan_id == plan.id)
        .order_by(PlanVersion.number.desc())
    ).all()
    return render_template(
        "emergency/plan_detail.html",
        view=view,
        plan=plan,
        versions=versions,
        cards=services.cards_of(plan),
        needs_fields=services.NEEDS_FIELDS,
        overdue=plan.review_due < london_today(utcnow()),
    )


@bp.get("/plans/<int:plan_id>/print")
@roles_required(*PLAN_STAFF)
def plan_print(plan_id: int) -> ResponseReturnValue:
    plan = _or_404(services.get_plan, plan_id, council_id=_council_id())
    view = services.view_plan(
        plan,
        viewer=current_user,
        cipher=_cipher(),
        now=utcnow(),
        reason="printed for the carer",
        ip_address=request.remote_addr,
    )
    return render_template(
        "emergency/plan_print.html", view=view, needs_fields=services.NEEDS_FIELDS
    )


@bp.get("/my-plan")
@roles_required(Role.CARER)
def my_plan() -> ResponseReturnValue:
    view = services.carer_own_plan(current_user, cipher=_cipher(), now=utcnow())
    if view is None:
        return render_template("emergency/no_plan.html")
    return render_template(
        "emergency/plan_print.html", view=view, needs_fields=services.NEEDS_FIELDS
    )


# --- cards ---------------------------------------------------------------------------


@bp.post("/plans/<int:plan_id>/cards")
@roles_required(Role.PLAN_WRITER)
def issue_card(plan_id: int) -> ResponseReturnValue:
    """The PIN is shown in this response only (never redirected, never in a URL)."""
    plan = _or_404(services.get_plan, plan_id, council_id=current_user.council_id)
    issued = services.issue_card(
        plan, by=current_user, pin_key=current_app.config["PIN_HMAC_KEY"], now=utcnow()
    )
    return render_template(
        "emergency/card_issued.html",
        card=issued.card,
        pin=issued.pin,
        pin_text=format_pin(issued.pin),
    )


@bp.post("/cards/<int:card_id>/pdf")
@roles_required(Role.PLAN_WRITER)
def card_pdf(card_id: int) -> ResponseReturnValue:
    """The wallet card PDF. The PIN comes in the POST body from the issue page and must
    match the card's HMAC; it is not stored."""
    from emergency.cardpdf import wallet_card_pdf

    card = _or_404(services.get_card, card_id, council_id=current_user.council_id)
    pin = request.form.get("pin", "")
    if (
        card.status is not CardStatus.LIVE
        or pin_hmac(pin, current_app.config["PIN_HMAC_KEY"]) != card.pin_hmac
    ):
        abort(404)
    scheme = services.scheme_for(card.council_id)
    pdf = wallet_card_pdf(
        scheme_name=scheme.name, line_phone=scheme.line_phone, pin=pin, is_test=card.is_test
    )
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="emergency-card-{card.id}.pdf"'},
    )


@bp.post("/cards/<int:card_id>/revoke")
@roles_required(Role.PLAN_WRITER)
def revoke_card(card_id: int) -> ResponseReturnValue:
    card = _or_404(services.get_card, card_id, council_id=current_user.council_id)
    services.revoke_card(card, by=current_user, now=utcnow())
    flash("The card has been cancelled. It will not work any more.", "success")
    return redirect(url_for("emergency.plan_detail", plan_id=card.plan_id))


@bp.post("/cards/<int:card_id>/lost")
@roles_required(Role.PLAN_WRITER)
def report_lost(card_id: int) -> ResponseReturnValue:
    card = _or_404(services.get_card, card_id, council_id=current_user.council_id)
    services.report_card_lost(card, by=current_user, now=utcnow())
    flash("The card is marked as lost and no longer works. Issue a new card below.", "success")
    return redirect(url_for("emergency.plan_detail", plan_id=card.plan_id))


# --- operator console and incidents -------------------------------------------------


@bp.route("/console", methods=["GET", "POST"])
@roles_required(Role.OPERATOR)
def console() -> ResponseReturnValue:
    form = PinForm()
    status = 200
    if form.validate_on_submit():
        try:
            result = services.lookup_pin(
                form.pin.data or "",
                channel="console",
                operator=current_user,
                caller_number=None,
                ip_address=request.remote_addr,
                pin_key=current_app.config["PIN_HMAC_KEY"],
                now=utcnow(),
            )
        except DomainError as exc:
            form.pin.errors.append(exc.message)
            if exc.status == 429:
                status = 429
        else:
            return redirect(url_for("emergency.incident", incident_id=result.incident.id))
    return (
        render_template(
            "emergency/console.html",
            form=form,
            open_incidents=services.open_incidents(current_user.council_id),
        ),
        status,
    )


@bp.get("/incidents")
@roles_required(Role.OPERATOR)
def incidents() -> ResponseReturnValue:
    return render_template(
        "emergency/incidents.html",
        incidents=services.open_incidents(current_user.council_id),
        now=utcnow(),
    )


def _incident(incident_id: int) -> Any:
    return _or_404(services.get_incident, incident_id, council_id=current_user.council_id)


@bp.get("/incidents/<int:incident_id>")
@roles_required(Role.OPERATOR)
def incident(incident_id: int) -> ResponseReturnValue:
    """The incident with its plan (each view of the plan is audited). `?live=1` is the
    page's self-updating part (status and timeline): no plan in it, so no plan view to
    audit, and no search for workers, however often it refreshes."""
    item = _incident(incident_id)
    if request.args.get("live"):
        return render_template("emergency/incident_live.html", **_live_parts(item))
    return _render_incident(item)


def _live_parts(item: Any) -> dict[str, Any]:
    """What changes by itself while an operator watches: the cascade, care, timeline."""
    return {
        "incident": item,
        "attempts": services.cascade_attempts(item),
        "events": services.events_of(item),
        "arrived_at": services.care_arrived_at(item),
    }


def _render_incident(
    item: Any,
    *,
    note_form: Any = None,
    close_form: Any = None,
    key_safe: str | None = None,
    revealed: bool = False,
) -> ResponseReturnValue:
    now = utcnow()
    view = services.view_plan(
        item.plan,
        viewer=current_user,
        cipher=_cipher(),
        now=now,
        version_number=item.plan_version.number,
        ip_address=request.remote_addr,
        incident_id=item.id,
    )
    scheme = services.scheme_for(item.council_id)
    live = _live_parts(item)
    events = live["events"]
    window_left = None
    warning = False
    if item.care_window_ends_at is not None:
        window_left = item.care_window_ends_at - now
        warning = window_left.total_seconds() <= scheme.window_warning_minutes * 60
    form = note_form or close_form
    open_ = item.status is IncidentStatus.OPEN
    return render_template(
        "emergency/incident.html",
        **live,
        view=view,
        handovers=[e for e in events if e.kind == "handover"],
        note_form=note_form or NoteForm(formdata=None),
        close_form=close_form or CloseForm(formdata=None),
        form=form,
        # The marketplace search runs only while someone may still be booked.
        care=services.find_replacement_care(item, now=now)
        if open_ and item.care_arranged_at is None
        else None,
        scheme=scheme,
        window_left=window_left,
        window_warning=warning,
        duty_phone=item.plan.council.duty_team_phone,
        key_safe=key_safe,
        revealed=revealed,
        needs_fields=services.NEEDS_FIELDS,
        now=now,
    )


@bp.post("/incidents/<int:incident_id>/events")
@roles_required(Role.OPERATOR)
def incident_event(incident_id: int) -> ResponseReturnValue:
    item = _incident(incident_id)
    form = NoteForm()
    if not form.validate():
        return _render_incident(item, note_form=form)
    try:
        services.record_operator_event(
            item,
            kind=form.kind.data or "note",
            text=form.text.data or "",
            operator=current_user,
            now=utcnow(),
        )
    except DomainError as exc:
        flash(exc.message, "error")
    return redirect(url_for("emergency.incident", incident_id=item.id))


@bp.post("/incidents/<int:incident_id>/cascade")
@roles_required(Role.OPERATOR)
def start_cascade(incident_id: int) -> ResponseReturnValue:
    item = _incident(incident_id)
    try:
        services.start_cascade(item, now=utcnow())
    except DomainError as exc:
        flash(exc.message, "error")
    return redirect(url_for("emergency.incident", incident_id=item.id))


@bp.post("/incidents/<int:incident_id>/contacts/<int:contact_id>/confirm")
@roles_required(Role.OPERATOR)
def confirm_contact(incident_id: int, contact_id: int) -> ResponseReturnValue:
    item = _incident(incident_id)
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        abort(404)
    try:
        services.confirm_contact(item, contact, via="console", now=utcnow())
    except DomainError as exc:
        flash(exc.message, "error")
    return redirect(url_for("emergency.incident", incident_id=item.id))


@bp.post("/incidents/<int:incident_id>/arrange-care")
@roles_required(Role.OPERATOR)
def arrange_care(incident_id: int) -> ResponseReturnValue:
    item = _incident(incident_id)
    worker_id = request.form.get("worker_id", type=int)
    try:
        services.arrange_replacement_care(item, by=current_user, now=utcnow(), worker_id=worker_id)
    except DomainError as exc:
        flash(exc.message, "error")
    return redirect(url_for("emergency.incident", incident_id=item.id))


@bp.post("/incidents/<int:incident_id>/care-arrived")
@roles_required(Role.OPERATOR)
def care_arrived(incident_id: int) -> ResponseReturnValue:
    item = _incident(incident_id)
    try:
        services.record_care_arrived(item, by=current_user, now=utcnow())
    except DomainError as exc:
        flash(exc.message, "error")
    return redirect(url_for("emergency.incident", incident_id=item.id))


@bp.post("/incidents/<int:incident_id>/key-safe")
@roles_required(Role.OPERATOR)
def reveal_key_safe(incident_id: int) -> ResponseReturnValue:
    item = _incident(incident_id)
    try:
        code = services.reveal_key_safe(
            item,
            operator=current_user,
            cipher=_cipher(),
            now=utcnow(),
            ip_address=request.remote_addr,
        )
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("emergency.incident", incident_id=item.id))
    return _render_incident(item, key_safe=code, revealed=True)


@bp.post("/incidents/<int:incident_id>/close")
@roles_required(Role.OPERATOR)
def close_incident(incident_id: int) -> ResponseReturnValue:
    item = _incident(incident_id)
    form = CloseForm()
    if not form.validate():
        return _render_incident(item, close_form=form)
    try:
        services.close_incident(
            item, operator=current_user, outcome=form.outcome.data or "", now=utcnow()
        )
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("emergency.incident", incident_id=item.id))
    flash("The incident is closed.", "success")
    return redirect(url_for("emergency.incidents"))


# --- figures and audit -------------------------------------------------------------


def _figures_council() -> tuple[int | None, list[Council]]:
    """Whose figures: an officer's own council; an admin's choice (`?council=ID`), or
    every council together. The councils an admin can choose from."""
    if not current_user.has_role(Role.ADMIN):
        return current_user.council_id, []
    councils = list(db.session.scalars(select(Council).order_by(Council.name)))
    chosen = request.args.get("council", type=int)
    return (chosen if chosen in {c.id for c in councils} else None), councils


@bp.get("/figures")
@roles_required(*OFFICERS)
def figures() -> ResponseReturnValue:
    council_id, councils = _figures_council()
    rows = services.weekly_figures(council_id, now=utcnow())
    return render_template(
        "emergency/figures.html",
        rows=rows,
        councils=councils,
        chosen=council_id,
        chosen_name=next((c.name for c in councils if c.id == council_id), None),
    )


@bp.get("/figures.csv")
@roles_required(*OFFICERS)
def figures_csv() -> ResponseReturnValue:
    council_id, _councils = _figures_council()
    rows = services.weekly_figures(council_id, now=utcnow())
    return Response(
        services.figures_csv(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="emergency-figures.csv"'},
    )


@bp.get("/audit")
@roles_required(*OFFICERS)
def audit_log() -> ResponseReturnValue:
    form = AuditSearchForm(request.args)
    entries = []
    searched = bool(request.args)
    if searched and form.validate():
        date_from = _parse_day(form.date_from.data or "") if form.date_from.data else None
        date_to = _parse_day(form.date_to.data or "") if form.date_to.data else None
        if form.date_from.data and date_from is None:
            form.date_from.errors = ["Enter a real date, like 1 11 2026"]
        if form.date_to.data and date_to is None:
            form.date_to.errors = ["Enter a real date, like 22 11 2026"]
        if not form.errors:
            entries = services.search_audit(
                council_id=_council_id(),
                action=form.action.data,
                person=form.person.data,
                date_from=date_from,
                date_to=date_to,
            )
    elif not searched:
        entries = services.search_audit(council_id=_council_id(), limit=50)
    return render_template("emergency/audit.html", form=form, entries=entries)


__all__ = ["Card", "bp"]
