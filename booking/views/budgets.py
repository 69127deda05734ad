"""Budget pages: the carer's balance and statement, and the council officer's pages to
allocate, adjust, import and report. Every officer query is scoped to their council."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from app.clock import london_today, utcnow
from app.errors import DomainError
from app.extensions import db
from app.models import Role, User
from app.security import CARER_SIDE, roles_required
from app.templating import context_provider
from booking.forms.budgets import (
    AdjustForm,
    AllocateForm,
    ConfirmImportForm,
    DateRangeForm,
    ImportForm,
    ReportRangeForm,
)
from booking.models.budgets import AdjustmentTag, Budget, BudgetKind, LedgerEntry, TrancheSchedule
from booking.services import budgets as service
from booking.services import ledger

bp = Blueprint("budgets", __name__, url_prefix="/budgets")

MAX_IMPORT_BYTES = 5 * 1024 * 1024
PER_PAGE = 25


@context_provider
def carer_balance() -> dict[str, Any]:
    """The live balance at the top of every page for a carer or their representative."""
    if not current_user.has_role(*CARER_SIDE):
        return {}
    carer = service.carer_for(current_user)
    if carer is None:
        return {}
    budget = ledger.current_budget(carer.id, today=london_today(utcnow()))
    if budget is None:
        return {}
    return {
        "carer_balance": {
            "carer": carer,
            "budget": budget,
            "balance": ledger.balance(budget),
            "is_self": carer.id == current_user.id,
        }
    }


# The largest id an integer column holds: the same limit the app's `<int:...>` route
# converter puts on ids in paths (app/__init__.py), here for ids in the query string.
MAX_ID = 2**31 - 1


def _id_arg(name: str) -> int | None:
    """An id from the query string; None when absent or not a number, 404 when it could
    not be anyone's (so a huge number never reaches the database)."""
    value = request.args.get(name, type=int)
    if value is not None and not 0 < value <= MAX_ID:
        abort(404)
    return value


def _range_form(form_class: type[DateRangeForm]) -> tuple[DateRangeForm, bool]:
    """The date range form, read from the query string when it has dates."""
    given = "start" in request.args or "end" in request.args
    form = form_class(formdata=request.args if given else None)
    return form, (form.validate() if given else True)


def _show_domain_error(form: DateRangeForm, exc: DomainError) -> None:
    """Put a service's refusal next to the date it is about (the start by default)."""
    for name, message in (exc.fields or {"start": exc.message}).items():
        field: Any = getattr(form, name, form.start)
        field.errors = [*field.errors, message]


# --- carer side -----------------------------------------------------------------------


def _statement_for_request() -> tuple[User, Budget | None, list[Budget], DateRangeForm, Any]:
    """The carer (themselves, or the one a representative acts for), the budget asked for
    with `?budget=` (one of that carer's own; anyone else's is 404) or else the current
    or latest one, and its statement for the dates asked for (None if they are wrong)."""
    carer = service.carer_for(current_user, carer_id=_id_arg("carer"))
    if carer is None:
        abort(404)
    today = london_today(utcnow())
    budgets = service.carer_budgets(carer.id)
    chosen = _id_arg("budget")
    if chosen is not None:
        budget = next((b for b in budgets if b.id == chosen), None)
        if budget is None:
            abort(404)
    else:
        budget = next(
            (b for b in budgets if b.period_start <= today <= b.period_end),
            budgets[0] if budgets else None,
        )
    form, valid = _range_form(DateRangeForm)
    stmt = None
    if budget is not None:
        start = (form.start.data if valid else None) or budget.period_start
        end = (form.end.data if valid else None) or min(today, budget.period_end)
        if end < start:
            end = start
        if valid:
            try:
                stmt = service.statement(budget, start=start, end=end)
            except DomainError as exc:
                _show_domain_error(form, exc)
        form.start.data, form.end.data = start, end
    return carer, budget, budgets, form, stmt


@bp.get("/statement")
@roles_required(*CARER_SIDE)
def statement() -> ResponseReturnValue:
    carer, budget, budgets, form, stmt = _statement_for_request()
    figures = ledger.balance(budget) if budget is not None else None
    return render_template(
        "booking/budgets/statement.html",
        carer=carer,
        budget=budget,
        budgets=budgets,
        figures=figures,
        form=form,
        statement=stmt,
        query=request.query_string.decode(),
    )


def _back_to(endpoint: str) -> ResponseReturnValue:
    """Wrong dates on a download: back to the page, which shows the error message."""
    query = request.query_string.decode()
    return redirect(url_for(endpoint) + (f"?{query}" if query else ""))


def _download(kind: str) -> ResponseReturnValue:
    carer, budget, _budgets, _form, stmt = _statement_for_request()
    if budget is None:
        abort(404)
    if stmt is None:
        return _back_to("budgets.statement")
    name = f"budget-statement-{stmt.start.isoformat()}-to-{stmt.end.isoformat()}"
    if kind == "csv":
        body: Any = service.statement_csv(stmt)
        mimetype = "text/csv"
    else:
        council = carer.council.name if carer.council else ""
        body = service.statement_pdf(stmt, carer_name=carer.name, council_name=council)
        mimetype = "application/pdf"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    return response


@bp.get("/statement.csv")
@roles_required(*CARER_SIDE)
def statement_csv() -> ResponseReturnValue:
    return _download("csv")


@bp.get("/statement.pdf")
@roles_required(*CARER_SIDE)
def statement_pdf() -> ResponseReturnValue:
    return _download("pdf")


# --- council officer side -------------------------------------------------------------


def _council_id() -> int:
    council_id = current_user.council_id
    if council_id is None:
        abort(403)
    return int(council_id)


@bp.get("/")
@roles_required(Role.COUNCIL_OFFICER)
def index() -> ResponseReturnValue:
    page = service.carer_balances(
        _council_id(),
        today=london_today(utcnow()),
        sort=request.args.get("sort", "name"),
        direction=request.args.get("direction", "asc"),
        page=request.args.get("page", 1, type=int) or 1,  # clamped to the real pages
        per_page=PER_PAGE,
    )
    return render_template("booking/budgets/index.html", page=page)


@bp.route("/allocate", methods=["GET", "POST"])
@roles_required(Role.COUNCIL_OFFICER)
def allocate() -> ResponseReturnValue:
    council_id = _council_id()
    form = AllocateForm()
    carers = service.council_carers(council_id)
    form.carer_id.choices = [(0, "Choose a carer")] + [
        (carer.id, f"{carer.name} ({carer.reference})" if carer.reference else carer.name)
        for carer in carers
    ]
    if request.method == "GET":
        form.carer_id.data = request.args.get("carer", 0, type=int)
    if form.validate_on_submit():
        try:
            budget = service.allocate_budget(
                council_id=council_id,
                carer_id=form.carer_id.data or 0,
                kind=BudgetKind(form.kind.data),
                period_start=form.period_start.data,
                period_end=form.period_end.data,
                award_pence=form.amount_pence,
                schedule=TrancheSchedule(form.schedule.data),
                actor=current_user,
                reason=form.reason.data,
                now=utcnow(),
            )
        except DomainError as exc:
            db.session.rollback()
            if exc.code == "not_found":
                targets = {"carer_id": exc.message}
            else:
                targets = {
                    name: message
                    for name, message in exc.fields.items()
                    if name in ("period_start", "period_end")
                } or {"period_start": exc.message}
            for name, message in targets.items():
                target = getattr(form, name)
                target.errors = [*target.errors, message]
        else:
            flash("The budget has been allocated.", "success")
            return redirect(url_for("budgets.detail", budget_id=budget.id))
    return render_template("booking/budgets/allocate.html", form=form)


@bp.get("/<int:budget_id>")
@roles_required(Role.COUNCIL_OFFICER)
def detail(budget_id: int) -> ResponseReturnValue:
    budget = _officer_budget(budget_id)
    return _detail_page(budget, _new_adjust_form())


def _officer_budget(budget_id: int) -> Budget:
    try:
        return service.council_budget(_council_id(), budget_id)
    except DomainError:
        abort(404)


def _new_adjust_form() -> AdjustForm:
    form = AdjustForm(formdata=None)
    form.token.data = secrets.token_urlsafe(16)
    return form


def _detail_page(budget: Budget, form: AdjustForm) -> ResponseReturnValue:
    entries = db.session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.budget_id == budget.id)
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
    ).all()
    today = london_today(utcnow())
    return render_template(
        "booking/budgets/detail.html",
        budget=budget,
        figures=ledger.balance(budget),
        entries=entries,
        form=form,
        young_carer=service.is_young_carer(budget.carer, today=today),
        age=budget.carer.age_on(today),
        labels=service.KIND_LABELS,
    )


@bp.post("/<int:budget_id>/adjust")
@roles_required(Role.COUNCIL_OFFICER)
def adjust(budget_id: int) -> ResponseReturnValue:
    budget = _officer_budget(budget_id)
    form = AdjustForm()
    if form.validate_on_submit():
        sign = -1 if form.direction.data == "lower" else 1
        try:
            service.adjust_budget(
                budget,
                amount_pence=sign * form.amount_pence,
                tag=AdjustmentTag(form.tag.data),
                reason=form.reason.data or "",
                actor=current_user,
                now=utcnow(),
                idempotency_key=f"adjust:{budget.id}:{form.token.data}",
            )
        except DomainError as exc:
            db.session.rollback()
            field = form.tag if exc.code == "young_carer_protected" else form.amount
            field.errors = [*field.errors, exc.message]  # type: ignore[list-item]
        else:
            flash("The budget has been changed.", "success")
            return redirect(url_for("budgets.detail", budget_id=budget.id))
    return _detail_page(budget, form)


@bp.route("/import", methods=["GET", "POST"])
@roles_required(Role.COUNCIL_OFFICER)
def import_allocations() -> ResponseReturnValue:
    council_id = _council_id()
    form = ImportForm()
    preview = None
    confirm = ConfirmImportForm(formdata=None)
    if form.validate_on_submit():
        raw = form.file.data.read(MAX_IMPORT_BYTES + 1)
        text = _decode(raw)
        if len(raw) > MAX_IMPORT_BYTES:
            form.file.errors = ["The file must be smaller than 5 MB"]
        elif text is None:
            form.file.errors = ["The file must be a CSV file saved as UTF-8 text"]
        else:
            preview = service.preview_import(council_id, text)
            confirm.content.data = text
    return render_template(
        "booking/budgets/import.html", form=form, preview=preview, confirm=confirm
    )


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


@bp.post("/import/confirm")
@roles_required(Role.COUNCIL_OFFICER)
def import_confirm() -> ResponseReturnValue:
    council_id = _council_id()
    confirm = ConfirmImportForm()
    if not confirm.validate_on_submit():
        flash("Upload the file again: we could not find it.", "error")
        return redirect(url_for("budgets.import_allocations"))
    try:
        budgets = service.import_allocations(
            council_id, confirm.content.data, actor=current_user, now=utcnow()
        )
    except service.ImportInvalid as exc:
        db.session.rollback()
        return _import_failed(exc.errors)
    except service.BudgetOverlaps as exc:
        # Another budget for one of these carers was saved while the file was importing.
        db.session.rollback()
        return _import_failed([service.RowError(exc.line or 1, exc.message)])
    flash(f"{len(budgets)} budgets have been imported.", "success")
    return redirect(url_for("budgets.index"))


def _import_failed(errors: list[service.RowError]) -> ResponseReturnValue:
    return render_template(
        "booking/budgets/import.html",
        form=ImportForm(formdata=None),
        preview=service.ImportPreview(errors=errors),
        confirm=ConfirmImportForm(formdata=None),
        failed=True,
    )


def _report_for_request() -> tuple[DateRangeForm, service.SpendReport | None]:
    """The spend report for the dates asked for (by default the last 12 months), or None
    with the form's error messages when the dates are wrong."""
    today = london_today(utcnow())
    form, valid = _range_form(ReportRangeForm)
    first_month = date(today.year - 1, today.month, 1) + timedelta(days=31)
    start = (form.start.data if valid else None) or date(first_month.year, first_month.month, 1)
    end = (form.end.data if valid else None) or today
    spend = None
    if valid:
        try:
            spend = service.spend_report(_council_id(), start=start, end=end)
        except DomainError as exc:
            _show_domain_error(form, exc)
    form.start.data, form.end.data = start, end
    return form, spend


@bp.get("/report")
@roles_required(Role.COUNCIL_OFFICER)
def report() -> ResponseReturnValue:
    form, spend = _report_for_request()
    return render_template(
        "booking/budgets/report.html",
        form=form,
        report=spend,
        query=request.query_string.decode(),
    )


@bp.get("/report.csv")
@roles_required(Role.COUNCIL_OFFICER)
def report_csv() -> ResponseReturnValue:
    _form, spend = _report_for_request()
    if spend is None:
        return _back_to("budgets.report")
    start, end = spend.start, spend.end
    response = Response(service.spend_report_csv(spend), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="spend-{start.isoformat()}-to-{end.isoformat()}.csv"'
    )
    return response
