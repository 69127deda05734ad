"""Typed models of the marketplace, one module per topic. Importing this package
imports them all, so Alembic and the app see every table."""

from booking.models import bookings, budgets, payments, workers  # noqa: F401
