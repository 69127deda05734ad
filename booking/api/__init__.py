"""JSON API of the marketplace (under /api/v1), one module per topic, each with its own
ApiBlueprint. Add a module's blueprint to BLUEPRINTS to register it."""

from __future__ import annotations

from app.api.core import ApiBlueprint

BLUEPRINTS: list[ApiBlueprint] = []

from booking.api.budgets import api as budgets_api  # noqa: E402

BLUEPRINTS.append(budgets_api)

from booking.api.workers import api as workers_api  # noqa: E402

BLUEPRINTS.append(workers_api)

from booking.api.bookings import api as bookings_api  # noqa: E402

BLUEPRINTS.append(bookings_api)
