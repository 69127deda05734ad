"""HTML pages of the marketplace, one module per topic, each with its own Blueprint.
Add a module's blueprint to BLUEPRINTS to register it."""

from __future__ import annotations

from flask import Blueprint

BLUEPRINTS: list[Blueprint] = []

from booking.views.budgets import bp as budgets_bp  # noqa: E402

BLUEPRINTS.append(budgets_bp)

from booking.views.workers import bp as workers_bp  # noqa: E402

BLUEPRINTS.append(workers_bp)

from booking.views.payments import bp as payments_bp  # noqa: E402

BLUEPRINTS.append(payments_bp)

from booking.views.bookings import bp as bookings_bp  # noqa: E402

BLUEPRINTS.append(bookings_bp)

from booking.views.carers import bp as carers_bp  # noqa: E402

BLUEPRINTS.append(carers_bp)
