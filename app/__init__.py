"""The app factory: `create_app(test_config)` builds the whole service."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, render_template, request
from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, PrefixLoader
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `test_config` overrides settings read from the environment."""
    from app.config import load_config

    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        static_folder=None,
    )
    app.config.update(load_config(app.instance_path))
    if test_config:
        app.config.update(test_config)

    from werkzeug.routing import IntegerConverter

    class DatabaseIdConverter(IntegerConverter):
        """`<int:...>` in every route: an id too large for an integer column is a 404."""

        def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("max", 2**31 - 1)
            super().__init__(map, *args, **kwargs)

    app.url_map.converters["int"] = DatabaseIdConverter

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _configure_templates(app)
    _register_extensions(app)
    _register_blueprints(app)
    _register_error_handlers(app)

    from app.cli import register_cli

    register_cli(app)

    if app.config.get("PROXY_FIX_HOPS"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_FIX_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
    return app


def _configure_templates(app: Flask) -> None:
    from app import templating

    app.jinja_loader = ChoiceLoader(
        [
            FileSystemLoader(str(PROJECT_ROOT / "templates")),
            PrefixLoader(
                {
                    "govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja"),
                    "govuk_frontend_wtf": PackageLoader("govuk_frontend_wtf"),
                }
            ),
        ]
    )
    templating.register(app)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver; SQLAlchemy emits BEGIN itself (see _sqlite_begin), which
    # makes SAVEPOINTs work and lets BEGIN IMMEDIATE serialise writers.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _register_extensions(app: Flask) -> None:
    from govuk_frontend_wtf.main import WTFormsHelpers

    from app.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite" and not getattr(engine, "_pragmas_set", False):
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            engine._pragmas_set = True  # type: ignore[attr-defined]
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), compare_type=True)
    csrf.init_app(app)
    limiter.init_app(app)
    WTFormsHelpers(app)

    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = "Sign in to see that page."
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(session_id: str) -> Any:
        """`<id>:<generation>` from User.get_id. A cookie from before the person's last
        sign-out or password reset carries an old generation and signs nobody in."""
        from app.models import User

        user_id, _, generation = session_id.partition(":")
        if not (user_id.isdigit() and generation.isdigit()):
            return None
        user = db.session.get(User, int(user_id))
        if user is None or not user.is_active or user.session_generation != int(generation):
            return None
        return user

    from app.security import register_security_headers

    register_security_headers(app)


def _register_blueprints(app: Flask) -> None:
    import booking
    import emergency
    from app import jobs  # noqa: F401  (registers the outbox job)
    from app import twilio_backend as _twilio  # noqa: F401  (NOTIFY_BACKEND=twilio)
    from app.api.views import api as core_api
    from app.auth.views import bp as auth_bp
    from app.extensions import csrf
    from app.views import bp as main_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(core_api, url_prefix="/api/v1")
    booking.register(app)
    emergency.register(app)
    _register_dashboard_links()
    for blueprint in app.blueprints.values():
        if blueprint.name.endswith("api") or blueprint.name.startswith("api"):
            csrf.exempt(blueprint)


def _register_dashboard_links() -> None:
    """The shared pages' links, after the domains' own: the outbox page for exactly the
    roles it lets in."""
    from app.views import dashboard_link, outbox_page

    for role in sorted(outbox_page.allowed_roles):  # type: ignore[attr-defined]
        dashboard_link(
            role,
            "main.outbox_page",
            "Messages and calls",
            "Texts, calls and e-mails the service sends: see which failed and try them again",
        )


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_error_handlers(app: Flask) -> None:
    from app.api.core import error_response

    messages = {
        400: ("bad_request", "The request could not be understood."),
        401: ("unauthorized", "Sign in first."),
        403: ("forbidden", "Your role is not allowed to do this."),
        404: ("not_found", "There is nothing here."),
        405: ("method_not_allowed", "That method is not allowed here."),
        413: ("too_large", "The request is too large."),
        429: ("rate_limited", "Too many requests. Wait a moment and try again."),
    }

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        headers: dict[str, str] = {}
        if status == 429:
            retry = getattr(exc, "retry_after", None)
            headers["Retry-After"] = str(int(retry) if retry else 60)
        if _wants_json():
            code, message = messages.get(
                status, ("error", exc.description or "Something went wrong.")
            )
            return error_response(status, code, message, headers=headers)
        response = Response(
            render_template("errors/error.html", status=status, description=exc.description),
            status=status,
        )
        response.headers.update(headers)
        return response

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError) -> Any:
        """The database went away mid-request: nothing was saved; say so and ask for a retry."""
        from app.extensions import db

        app.logger.error("database unavailable: %s", exc)
        db.session.rollback()
        if _wants_json():
            return error_response(
                503,
                "service_unavailable",
                "The service is briefly unavailable. Nothing was saved. Try again in a minute.",
                headers={"Retry-After": "30"},
            )
        # Render without touching the database again: treat the visitor as signed out.
        g._login_user = app.login_manager.anonymous_user()
        return render_template("errors/error.html", status=503, description=None), 503

    @app.errorhandler(Exception)
    def server_error(exc: Exception) -> Any:
        from app.extensions import db

        app.logger.exception("unhandled error")
        db.session.rollback()
        if _wants_json():
            return error_response(
                500, "internal_error", "Something went wrong on our side. Try again later."
            )
        return render_template("errors/error.html", status=500, description=None), 500
