"""Start page, the dashboard per role, the staff outbox page and front-end assets."""

from __future__ import annotations

from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from app import outbox
from app.clock import utcnow
from app.extensions import db
from app.models import OutboxMessage, OutboxStatus, Role
from app.security import ALL_ROLES, public, roles_required

bp = Blueprint("main", __name__)

GOVUK_DIST = Path("node_modules") / "govuk-frontend" / "dist" / "govuk"

# What each role's dashboard offers, in the order a person in that role needs it.
DASHBOARD_LINKS: dict[Role, list[tuple[str, str, str]]] = {}


def dashboard_link(role: Role, endpoint: str, title: str, description: str) -> None:
    """Let a domain add a link to a role's dashboard."""
    links = DASHBOARD_LINKS.setdefault(role, [])
    if (endpoint, title, description) not in links:
        links.append((endpoint, title, description))


def _dist() -> Path:
    return Path(current_app.root_path).parent / GOVUK_DIST


@bp.route("/")
@public
def start() -> ResponseReturnValue:
    return render_template("start.html")


@bp.route("/dashboard")
@roles_required(*ALL_ROLES)
def dashboard() -> ResponseReturnValue:
    sections = []
    for role in Role:
        if current_user.has_role(role):
            links = [
                (url_for(endpoint), title, description)
                for endpoint, title, description in DASHBOARD_LINKS.get(role, [])
                if endpoint in current_app.view_functions
            ]
            sections.append((role, links))
    return render_template("dashboard.html", sections=sections)


@bp.route("/staff/outbox")
@roles_required(Role.ADMIN, Role.COUNCIL_OFFICER, Role.OPERATOR)
def outbox_page() -> ResponseReturnValue:
    status = request.args.get("status", "")
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(200)
    if status in {s.value for s in OutboxStatus}:
        query = query.where(OutboxMessage.status == OutboxStatus(status))
    if not current_user.has_role(Role.ADMIN):
        query = query.where(OutboxMessage.council_id == current_user.council_id)
    messages = db.session.scalars(query).all()
    return render_template("outbox.html", messages=messages, status=status)


@bp.post("/staff/outbox/<int:message_id>/retry")
@roles_required(Role.ADMIN, Role.COUNCIL_OFFICER, Role.OPERATOR)
def outbox_retry(message_id: int) -> ResponseReturnValue:
    message = db.session.get(OutboxMessage, message_id)
    if message is None or (
        not current_user.has_role(Role.ADMIN) and message.council_id != current_user.council_id
    ):
        abort(404)
    try:
        outbox.retry_dead(message, by=current_user, now=utcnow())
    except outbox.OutboxError as error:
        flash(error.message, "error")
        return redirect(url_for("main.outbox_page"))
    flash("The message will be sent again in the next minute.", "success")
    return redirect(url_for("main.outbox_page", status="dead"))


@bp.route("/assets/<path:filename>")
@public
def govuk_assets(filename: str) -> ResponseReturnValue:
    return send_from_directory(_dist() / "assets", filename, max_age=86400)


@bp.route("/static/govuk/<path:filename>")
@public
def govuk_static(filename: str) -> ResponseReturnValue:
    if not filename.startswith("govuk-frontend.min."):
        abort(404)
    return send_from_directory(_dist(), filename, max_age=86400)


@bp.route("/healthz")
@public
def healthz() -> ResponseReturnValue:
    """A bare endpoint: the benchmark's floor for HTTP work."""
    return {"ok": True}


@bp.route("/static/app/<path:filename>")
@public
def static_app(filename: str) -> ResponseReturnValue:
    return send_from_directory(Path(current_app.root_path) / "static", filename, max_age=3600)
