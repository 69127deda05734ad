"""The emergency service's domain errors, with the codes and statuses of api.md."""

from __future__ import annotations

from app.errors import Conflict, DomainError, NotFound, RateLimited


class EmergencyError(DomainError):
    """A rule of the emergency service said no."""


class InvalidPin(EmergencyError):
    code = "invalid_pin"
    status = 422


class UnknownPin(EmergencyError):
    code = "unknown_pin"
    status = 404


class CardRevoked(EmergencyError):
    code = "card_revoked"
    status = 410


class TooManyAttempts(RateLimited):
    code = "too_many_attempts"
    status = 429


class PlanInvalid(EmergencyError):
    code = "validation_failed"
    status = 422


class RecordNotFound(NotFound):
    code = "not_found"
    status = 404


class IncidentClosed(Conflict):
    code = "incident_closed"
    status = 409
