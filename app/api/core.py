"""`ApiBlueprint.operation` declares a JSON endpoint once: its path, roles, request and
response models. The same declaration checks the bearer token and role, validates the
body with pydantic, maps domain errors to api.md's error format, and feeds openapi.json.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DataError

from app.clock import utcnow
from app.errors import DomainError
from app.extensions import db
from app.models import ApiToken, Role, User


class ApiError(DomainError):
    """An error raised inside the API layer itself (auth, parsing)."""


def error_response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def domain_error_response(exc: DomainError) -> Response:
    """api.md's error body for a refused request, with Retry-After when it has one."""
    headers = {}
    if getattr(exc, "retry_after", None):
        headers["Retry-After"] = str(exc.retry_after)  # type: ignore[attr-defined]
    return error_response(exc.status, exc.code, exc.message, exc.fields, headers)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_from_bearer() -> User:
    """The user behind `Authorization: Bearer ...`, or ApiError 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            "Sign in first: send 'Authorization: Bearer <token>'.", code="unauthorized", status=401
        )
    row = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip()))
    )
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        raise ApiError(
            "That token is not valid or has expired. Ask for a new one.",
            code="invalid_token",
            status=401,
        )
    if not row.user.is_active:
        raise ApiError("This account is switched off.", code="invalid_token", status=401)
    return row.user


def _humanise(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "This is required."
    if kind in {"extra_forbidden"}:
        return "This field is not allowed here."
    message = str(error.get("msg", "This value is not valid."))
    message = message.removeprefix("Value error, ")
    return message[0].upper() + message[1:] if message else "This value is not valid."


def validation_fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error.get("loc", ())) or "body"
        fields.setdefault(path, _humanise(error))
    return fields


@dataclass
class Operation:
    """One documented endpoint."""

    rule: str
    method: str
    endpoint: str
    summary: str
    roles: frozenset[Role] | None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[tuple[int, str], ...] = ()
    idempotent: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""


class ApiBlueprint(Blueprint):
    """A Blueprint whose routes are declared with `operation`, for the JSON API."""

    def __init__(self, name: str, import_name: str, *, tag: str) -> None:
        super().__init__(name, import_name)
        self.tag = tag
        self.operations: list[Operation] = []

    def operation(
        self,
        rule: str,
        *,
        method: str,
        summary: str,
        roles: Iterable[Role] | None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: Iterable[tuple[int, str]] = (),
        idempotent: bool = False,
        description: str = "",
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare an endpoint. `roles=None` means public (no token needed).

        The view is called as `view(user=..., body=..., query=..., **path_args)` and
        returns a pydantic model, a dict, or `(payload, status)`.
        """
        allowed = frozenset(roles) if roles is not None else None

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(view)
            def wrapped(**path_args: Any) -> Response:
                try:
                    kwargs: dict[str, Any] = dict(path_args)
                    if allowed is not None:
                        user = user_from_bearer()
                        if not user.has_role(*allowed):
                            raise ApiError(
                                "Your role is not allowed to do this.", code="forbidden", status=403
                            )
                        g.api_user = user
                        kwargs["user"] = user
                    if body is not None:
                        kwargs["body"] = _parse_body(body)
                    if query is not None:
                        kwargs["query"] = _parse_query(query)
                    call = lambda: _render(view(**kwargs), status)  # noqa: E731
                    if idempotent and allowed is not None:
                        from app.api.idempotency import run_idempotent

                        return run_idempotent(kwargs["user"], call)
                    return call()
                except (OverflowError, DataError):
                    # A number too large for its column got past validation: refuse it
                    # as bad input rather than failing.
                    db.session.rollback()
                    return error_response(
                        422,
                        "validation_failed",
                        "A number in the request is out of range.",
                        {"body": "A number is too large."},
                    )
                except DomainError as exc:
                    db.session.rollback()
                    return domain_error_response(exc)

            if allowed is None:
                wrapped.is_public = True  # type: ignore[attr-defined]
            else:
                wrapped.allowed_roles = allowed  # type: ignore[attr-defined]
            endpoint = view.__name__
            self.add_url_rule(rule, endpoint, wrapped, methods=[method])
            self.operations.append(
                Operation(
                    rule=rule,
                    method=method.lower(),
                    endpoint=f"{self.name}.{endpoint}",
                    summary=summary,
                    roles=allowed,
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    errors=tuple(errors),
                    idempotent=idempotent,
                    tags=(self.tag,),
                    description=description,
                )
            )
            return wrapped

        return decorator


def _parse_body(model: type[BaseModel]) -> BaseModel:
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(
            "Send a JSON body with 'Content-Type: application/json'.",
            code="invalid_json",
            status=400,
        )
    if not isinstance(payload, dict):
        raise ApiError("The JSON body must be an object.", code="invalid_json", status=400)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ApiError(
            "Some of the details are not valid.",
            code="validation_failed",
            status=422,
            fields=validation_fields(exc),
        ) from exc


def _parse_query(model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(
            "Some of the details are not valid.",
            code="validation_failed",
            status=422,
            fields=validation_fields(exc),
        ) from exc


def _render(result: Any, default_status: int) -> Response:
    status = default_status
    if isinstance(result, Response):
        return result
    if isinstance(result, tuple):
        result, status = result
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    response = jsonify(result)
    response.status_code = status
    return response


_PATH_PARAM = re.compile(r"<(?:[a-z]+:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def openapi_path(rule: str) -> str:
    return _PATH_PARAM.sub(r"{\1}", rule)
