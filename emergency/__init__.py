"""The emergency card service: plans, cards and PINs, the operator console, incidents
and the 24-hour phone line."""

from __future__ import annotations

from flask import Flask

from app.models import Role


def register(app: Flask) -> None:
    """Register the emergency service's models, pages, API, phone webhooks and jobs."""
    import emergency.jobs
    import emergency.models  # noqa: F401
    from app.views import dashboard_link
    from emergency import demo  # noqa: F401  (registers the demo seeder)
    from emergency.api import api
    from emergency.cli import emergency_cli
    from emergency.views import bp

    app.register_blueprint(bp)
    app.register_blueprint(api, url_prefix="/api/v1")
    app.cli.add_command(emergency_cli)
    for role, endpoint, title, description in _links():
        dashboard_link(role, endpoint, title, description)

    from emergency import phone, phone_jobs, phone_models  # noqa: F401

    phone.register(app)


def _links() -> list[tuple[Role, str, str, str]]:
    return [
        (Role.OPERATOR, "emergency.console", "Emergency console", "Look up a plan by card PIN"),
        (Role.OPERATOR, "emergency.incidents", "Open incidents", "Live list, longest open first"),
        (Role.PLAN_WRITER, "emergency.plans", "Emergency plans", "Write, review and print plans"),
        (Role.PLAN_WRITER, "emergency.new_plan", "Start a new plan", "The guided plan form"),
        (Role.COUNCIL_OFFICER, "emergency.figures", "Emergency line figures", "Weekly figures"),
        (Role.COUNCIL_OFFICER, "emergency.audit_log", "Audit log", "Who looked at what"),
        (Role.ADMIN, "emergency.audit_log", "Audit log", "Who looked at what"),
        (Role.CARER, "emergency.my_plan", "Your emergency plan", "Print your own copy"),
    ]
