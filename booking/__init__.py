"""The breaks marketplace: budgets and the ledger, workers and vetting, availability and
search, bookings, payments.

Each layer is a package with one module per topic: `booking/models/budgets.py`,
`booking/services/budgets.py`, `booking/views/budgets.py`, `booking/api/budgets.py` …
"""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Register the marketplace's models, pages, API, jobs and demo data on the app."""
    import booking.models  # noqa: F401
    from booking.api import BLUEPRINTS as API_BLUEPRINTS
    from booking.views import BLUEPRINTS as VIEW_BLUEPRINTS

    for blueprint in VIEW_BLUEPRINTS:
        app.register_blueprint(blueprint)
    for api_blueprint in API_BLUEPRINTS:
        app.register_blueprint(api_blueprint, url_prefix="/api/v1")
    _register_budgets(app)
    _register_workers(app)
    _register_bookings(app)
    _register_payments(app)


def _register_budgets(app: Flask) -> None:
    """Budgets: jobs, demo data, the `flask budgets` commands and dashboard links."""
    import booking.demo.budgets
    import booking.jobs.budgets  # noqa: F401
    from app.models import Role
    from app.views import dashboard_link
    from booking.cli import budgets_cli

    app.cli.add_command(budgets_cli)
    dashboard_link(
        Role.CARER,
        "budgets.statement",
        "Your budget and statement",
        "What is left to spend, and every payment",
    )
    dashboard_link(
        Role.REPRESENTATIVE,
        "budgets.statement",
        "Budget and statement",
        "What is left to spend, and every payment, for the carer you help",
    )
    dashboard_link(
        Role.COUNCIL_OFFICER,
        "carers.register",
        "Register a carer",
        "Set up an account for a carer after their assessment",
    )
    dashboard_link(
        Role.CARER,
        "carers.representatives",
        "People who can help",
        "Let a family member or friend book breaks for you",
    )
    dashboard_link(
        Role.COUNCIL_OFFICER,
        "budgets.index",
        "Budgets",
        "Every carer's balance; allocate or adjust",
    )
    dashboard_link(
        Role.COUNCIL_OFFICER,
        "budgets.import_allocations",
        "Import allocations",
        "Upload a file from your resource allocation system",
    )
    dashboard_link(
        Role.COUNCIL_OFFICER, "budgets.report", "Spend report", "Spend by month, worker and kind"
    )


def _register_workers(app: Flask) -> None:
    """Workers: the vetting job, demo workers and dashboard links."""
    import booking.demo.workers
    import booking.jobs.workers  # noqa: F401
    from app.models import Role
    from app.views import dashboard_link

    links = [
        (Role.WORKER, "workers.my_profile", "Your profile", "What carers see, and your rates"),
        (Role.WORKER, "workers.my_availability", "Your availability", "Your week and time off"),
        (Role.WORKER, "workers.my_calendar", "Your calendar", "Free time and bookings by week"),
        (Role.PROVIDER_ADMIN, "workers.team", "Your workers", "Add and manage your workers"),
        (Role.COUNCIL_OFFICER, "workers.vetting_queue", "Vetting queue", "Approve or suspend"),
        (Role.CARER, "workers.find", "Find a worker", "Book a break with a vetted worker"),
        (Role.REPRESENTATIVE, "workers.find", "Find a worker", "For the carer you help"),
    ]
    for role, endpoint, title, description in links:
        dashboard_link(role, endpoint, title, description)


def _register_payments(app: Flask) -> None:
    """Payments: Stripe outbox handlers and money jobs, and dashboard links."""
    import booking.jobs.payments  # noqa: F401
    from app.models import Role
    from app.views import dashboard_link

    dashboard_link(
        Role.WORKER,
        "payments.earnings",
        "Your earnings",
        "What you have been paid and what is on its way",
    )
    dashboard_link(
        Role.WORKER,
        "payments.bank_account",
        "Get paid: connect your bank account",
        "Give Stripe your bank details so we can pay you",
    )
    dashboard_link(
        Role.COUNCIL_OFFICER,
        "payments.payouts_report",
        "Payouts",
        "Payouts to workers by month, with a spreadsheet download",
    )
    dashboard_link(
        Role.COUNCIL_OFFICER,
        "payments.differences",
        "Payment differences",
        "Where our records and Stripe's do not match",
    )
    dashboard_link(
        Role.ADMIN,
        "payments.differences",
        "Payment differences",
        "Where our records and Stripe's do not match, in every council",
    )


def _register_bookings(app: Flask) -> None:
    """Bookings: jobs, demo breaks, the spend report's details and dashboard links."""
    import booking.demo.bookings
    import booking.jobs.bookings  # noqa: F401
    from app.models import Role
    from app.views import dashboard_link
    from booking.services import budgets as budget_services
    from booking.services.bookings import break_details

    budget_services.register_break_details(break_details)
    for role in (Role.CARER, Role.REPRESENTATIVE):
        dashboard_link(role, "bookings.new", "Book a break", "Choose a worker, a time and a place")
        dashboard_link(
            role, "bookings.mine", "Your breaks", "Coming up, past breaks, and book again"
        )
    dashboard_link(
        Role.WORKER,
        "bookings.worker_list",
        "Requests and bookings",
        "Accept requests and record breaks",
    )
    dashboard_link(
        Role.COUNCIL_OFFICER, "bookings.concerns", "Concerns", "Safeguarding concerns and disputes"
    )
    dashboard_link(
        Role.COUNCIL_OFFICER, "bookings.reviews", "Reviews", "What carers said about their breaks"
    )
    dashboard_link(
        Role.COUNCIL_OFFICER,
        "bookings.by_phone",
        "Take a booking by phone",
        "Book a break for a carer",
    )
