"""Domain errors. Services raise them; pages turn them into a GOV.UK error message and
the API into `{"error": {"code", "message", "fields"}}` with the status they carry."""

from __future__ import annotations


class DomainError(Exception):
    """A rule said no. `message` is a sentence for a person."""

    code: str = "invalid_request"
    status: int = 422

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields or {}


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class Conflict(DomainError):
    code = "conflict"
    status = 409


class RateLimited(DomainError):
    code = "too_many_attempts"
    status = 429

    def __init__(self, message: str, *, retry_after: int = 60, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
