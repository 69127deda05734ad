"""Sign-in, the staff second factor, sign-out and password reset pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import segno
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from markupsafe import Markup

from app.auth import services
from app.auth.forms import ResetPasswordForm, ResetRequestForm, SignInForm, TotpForm
from app.clock import utcnow
from app.errors import DomainError
from app.extensions import db, limiter
from app.models import User
from app.security import ALL_ROLES, public, roles_required

bp = Blueprint("auth", __name__, url_prefix="/auth")

PENDING_KEY = "pending_second_factor_user"


def _safe_next(target: str | None) -> str:
    """Only follow `next` to a path on this site."""
    if not target:
        return url_for("main.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("main.dashboard")
    return target


def _finish_sign_in(user: User) -> ResponseReturnValue:
    next_url = session.get("next_after_sign_in")
    session.clear()
    login_user(user)
    session.permanent = True
    return redirect(_safe_next(next_url))


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
@public
def sign_in() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = SignInForm()
    if request.method == "GET" and request.args.get("next"):
        session["next_after_sign_in"] = request.args["next"]
    if form.validate_on_submit():
        config = current_app.config
        try:
            user = services.authenticate(
                form.email.data or "",
                form.password.data or "",
                now=utcnow(),
                max_failures=config["LOGIN_MAX_FAILURES"],
                lock_minutes=config["LOGIN_LOCK_MINUTES"],
                ip_address=request.remote_addr,
            )
        except DomainError as exc:
            form.email.errors = [exc.message]
            return render_template("auth/sign_in.html", form=form), 200
        if user.is_staff:
            session[PENDING_KEY] = user.id
            if user.totp_confirmed_at is None:
                return redirect(url_for("auth.setup_second_factor"))
            return redirect(url_for("auth.second_factor"))
        return _finish_sign_in(user)
    return render_template("auth/sign_in.html", form=form)


def _pending_user() -> User | None:
    user_id = session.get(PENDING_KEY)
    return db.session.get(User, user_id) if user_id else None


@bp.route("/second-factor", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
@public
def second_factor() -> ResponseReturnValue:
    user = _pending_user()
    if user is None:
        return redirect(url_for("auth.sign_in"))
    if user.totp_confirmed_at is None:
        return redirect(url_for("auth.setup_second_factor"))
    form = TotpForm()
    if form.validate_on_submit():
        config = current_app.config
        try:
            services.check_second_factor(
                user,
                form.code.data or "",
                now=utcnow(),
                max_failures=config["LOGIN_MAX_FAILURES"],
                lock_minutes=config["LOGIN_LOCK_MINUTES"],
                ip_address=request.remote_addr,
            )
        except DomainError as exc:
            form.code.errors = [exc.message]
        else:
            return _finish_sign_in(user)
    return render_template("auth/second_factor.html", form=form)


@bp.route("/second-factor/set-up", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
@public
def setup_second_factor() -> ResponseReturnValue:
    user = _pending_user()
    if user is None:
        return redirect(url_for("auth.sign_in"))
    if user.totp_confirmed_at is not None:
        return redirect(url_for("auth.second_factor"))
    secret = session.get("totp_setup_secret") or services.new_totp_secret()
    session["totp_setup_secret"] = secret
    form = TotpForm()
    if form.validate_on_submit():
        try:
            services.confirm_totp(user, secret, form.code.data or "", now=utcnow())
        except DomainError as exc:
            form.code.errors = [exc.message]
        else:
            session.pop("totp_setup_secret", None)
            flash("Your authenticator app is set up.", "success")
            return _finish_sign_in(user)
    uri = services.totp_uri(user, secret, current_app.config["SERVICE_NAME"])
    qr_svg = Markup(  # noqa: S704 - SVG made by segno from our own URI
        segno.make(uri, error="m").svg_inline(scale=4, title="QR code for your authenticator app")
    )
    return render_template("auth/setup_second_factor.html", form=form, secret=secret, qr_svg=qr_svg)


@bp.post("/sign-out")
@roles_required(*ALL_ROLES)
def sign_out() -> ResponseReturnValue:
    services.sign_out(current_user, now=utcnow(), ip_address=request.remote_addr)
    logout_user()
    session.clear()
    flash("You have signed out.", "success")
    return redirect(url_for("main.start"))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit("5 per minute", methods=["POST"])
@public
def reset_request() -> ResponseReturnValue:
    form = ResetRequestForm()
    if form.validate_on_submit():
        services.request_password_reset(
            form.email.data or "",
            secret_key=current_app.config["SECRET_KEY"],
            reset_url=current_app.config["PUBLIC_BASE_URL"] + url_for("auth.reset_password"),
            valid_minutes=current_app.config["PASSWORD_RESET_MINUTES"],
            now=utcnow(),
        )
        return render_template("auth/reset_sent.html", email=form.email.data)
    return render_template("auth/reset_request.html", form=form)


@bp.route("/reset/new-password", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
@public
def reset_password() -> ResponseReturnValue:
    token = request.values.get("token", "")
    config = current_app.config
    max_age = config["PASSWORD_RESET_MINUTES"] * 60
    try:
        services.user_for_reset_token(
            token, secret_key=config["SECRET_KEY"], max_age_seconds=max_age
        )
    except DomainError as exc:
        return render_template("auth/reset_invalid.html", message=exc.message), 400
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            services.reset_password(
                token,
                form.password.data or "",
                secret_key=config["SECRET_KEY"],
                max_age_seconds=max_age,
                password_method=config["PASSWORD_HASH_METHOD"],
                now=utcnow(),
            )
        except DomainError as exc:
            form.password.errors = [exc.message]
        else:
            flash("Your password has been changed. Sign in with your new password.", "success")
            return redirect(url_for("auth.sign_in"))
    context: dict[str, Any] = {"form": form, "token": token}
    return render_template("auth/reset_password.html", **context)
