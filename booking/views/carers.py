"""Pages for carers' accounts: council officers register carers and keep their details
(date of birth marks a young carer); carers choose who may act for them."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from app.clock import london_today, utcnow
from app.errors import DomainError
from app.extensions import db
from app.forms import show_domain_error
from app.models import Role
from app.security import roles_required
from booking.forms.carers import CarerForm, NominateForm, RemoveForm
from booking.services import carers as service
from booking.services.budgets import council_carer

bp = Blueprint("carers", __name__, url_prefix="/carers")


def _council_id() -> int:
    if current_user.council_id is None:
        abort(403)
    return int(current_user.council_id)


def _details(form: CarerForm) -> service.CarerDetails:
    return service.CarerDetails(
        name=form.name.data or "",
        email=form.email.data or "",
        phone=form.phone.data,
        postcode=form.postcode.data,
        date_of_birth=form.date_of_birth.data,
        reference=form.reference.data,
    )


def _set_password_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"] + url_for("auth.reset_password")


@bp.route("/new", methods=["GET", "POST"])
@roles_required(Role.COUNCIL_OFFICER)
def register() -> ResponseReturnValue:
    council_id = _council_id()
    form = CarerForm()
    if form.validate_on_submit():
        now = utcnow()
        try:
            carer = service.register_carer(
                council_id=council_id,
                details=_details(form),
                actor=current_user,
                secret_key=current_app.config["SECRET_KEY"],
                set_password_url=_set_password_url(),
                password_method=current_app.config["PASSWORD_HASH_METHOD"],
                now=now,
                today=london_today(now),
            )
        except DomainError as exc:
            db.session.rollback()
            show_domain_error(form, exc, fallback="name")
        else:
            flash(
                f"{carer.name} is registered. We have e-mailed them a link to choose a "
                "password. Now allocate their budget.",
                "success",
            )
            return redirect(url_for("budgets.allocate", carer=carer.id))
    return render_template("booking/carers/form.html", form=form, carer=None)


@bp.route("/<int:carer_id>", methods=["GET", "POST"])
@roles_required(Role.COUNCIL_OFFICER)
def edit(carer_id: int) -> ResponseReturnValue:
    council_id = _council_id()
    try:
        carer = council_carer(council_id, carer_id)
    except DomainError:
        abort(404)
    form = CarerForm(obj=carer)
    if form.validate_on_submit():
        try:
            service.update_carer(
                council_id=council_id,
                carer_id=carer.id,
                details=_details(form),
                actor=current_user,
                today=london_today(utcnow()),
            )
        except DomainError as exc:
            db.session.rollback()
            show_domain_error(form, exc, fallback="name")
        else:
            flash(f"{carer.name}'s details have been saved.", "success")
            return redirect(url_for("budgets.index"))
    return render_template(
        "booking/carers/form.html", form=form, carer=carer, resend_form=RemoveForm()
    )


@bp.post("/<int:carer_id>/welcome")
@roles_required(Role.COUNCIL_OFFICER)
def resend_welcome(carer_id: int) -> ResponseReturnValue:
    if not RemoveForm().validate_on_submit():
        abort(400)
    try:
        carer = service.resend_welcome(
            council_id=_council_id(),
            carer_id=carer_id,
            actor=current_user,
            secret_key=current_app.config["SECRET_KEY"],
            set_password_url=_set_password_url(),
        )
    except DomainError:
        abort(404)
    flash(f"We have e-mailed {carer.name} a new link to choose a password.", "success")
    return redirect(url_for("carers.edit", carer_id=carer.id))


@bp.route("/helpers", methods=["GET", "POST"])
@roles_required(Role.CARER)
def representatives() -> ResponseReturnValue:
    """The people who may book and see the budget for this carer."""
    form = NominateForm()
    if form.validate_on_submit():
        try:
            person = service.nominate_representative(
                carer=current_user,
                name=form.name.data or "",
                email=form.email.data or "",
                secret_key=current_app.config["SECRET_KEY"],
                set_password_url=_set_password_url(),
                password_method=current_app.config["PASSWORD_HASH_METHOD"],
                now=utcnow(),
            )
        except DomainError as exc:
            db.session.rollback()
            show_domain_error(form, exc, fallback="email")
        else:
            flash(f"{person.name} can now book breaks for you. We have e-mailed them.", "success")
            return redirect(url_for("carers.representatives"))
    return render_template(
        "booking/carers/representatives.html",
        form=form,
        people=service.representatives_of(current_user),
        remove_form=RemoveForm(),
    )


@bp.post("/helpers/<int:person_id>/remove")
@roles_required(Role.CARER)
def remove_representative(person_id: int) -> ResponseReturnValue:
    if not RemoveForm().validate_on_submit():
        abort(400)
    try:
        person = service.remove_representative(carer=current_user, representative_id=person_id)
    except DomainError:
        db.session.rollback()
        abort(404)
    flash(f"{person.name} can no longer act for you.", "success")
    return redirect(url_for("carers.representatives"))
