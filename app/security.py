"""Who may call what. Every endpoint states the roles it allows (or that it is public);
the role × endpoint test walks the URL map and checks both facts."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, abort, g, redirect, request, url_for
from flask_login import current_user

from app.models import Role

F = TypeVar("F", bound=Callable[..., Any])

ALL_ROLES = frozenset(Role)
CARER_SIDE = frozenset({Role.CARER, Role.REPRESENTATIVE})


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Allow a page to signed-in people holding one of `roles`; 403 for everyone else."""
    allowed = frozenset(roles)

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return redirect(url_for("auth.sign_in", next=request.full_path))
            if not current_user.has_role(*allowed):
                abort(403)
            return view(*args, **kwargs)

        wrapped.allowed_roles = allowed  # type: ignore[attr-defined]
        return cast(F, wrapped)

    return decorator


def public(view: F) -> F:
    """Mark an endpoint as open to anyone (start page, sign-in, signed webhooks)."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def csp_nonce() -> str:
    nonce = getattr(g, "csp_nonce", None)
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
        g.csp_nonce = nonce
    return cast(str, nonce)


def register_security_headers(app: Flask) -> None:
    """CSP with a per-request nonce, no framing, no sniffing, a strict referrer policy."""

    extra_script = app.config.get("CSP_EXTRA_SCRIPT_SRC", "")
    extra_frame = app.config.get("CSP_EXTRA_FRAME_SRC", "")
    extra_connect = app.config.get("CSP_EXTRA_CONNECT_SRC", "")

    frame_src = extra_frame or "'none'"

    @app.after_request
    def set_headers(response: Response) -> Response:
        nonce = csp_nonce()
        directives = [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}' {extra_script}".strip(),
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self' {extra_connect}".strip(),
            f"frame-src {frame_src}",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'self'",
            "object-src 'none'",
        ]
        response.headers["Content-Security-Policy"] = "; ".join(directives)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if app.config.get("SESSION_COOKIE_SECURE"):
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if request.path.startswith(("/api/", "/auth/", "/emergency/")) or (
            current_user and current_user.is_authenticated
        ):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def forbid() -> None:
    abort(403)
