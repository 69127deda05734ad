"""Core API endpoints: tokens, who am I, and the OpenAPI description."""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue

from app.api.core import ApiBlueprint
from app.api.openapi import build_spec
from app.api.schemas import CouncilOut, MeResponse, TokenRequest, TokenResponse
from app.auth import services as auth_services
from app.clock import iso_z, utcnow
from app.extensions import limiter
from app.models import User
from app.security import ALL_ROLES, public

api = ApiBlueprint("api_core", __name__, tag="auth")


@api.operation(
    "/tokens",
    method="POST",
    summary="Exchange credentials (and a TOTP code for staff) for a token",
    roles=None,
    body=TokenRequest,
    response=TokenResponse,
    status=201,
    errors=[
        (401, "invalid_credentials"),
        (401, "otp_required"),
        (401, "otp_invalid"),
        (429, "account_locked"),
    ],
)
@limiter.limit("20 per minute")
def create_token(body: TokenRequest) -> TokenResponse:
    config = current_app.config
    token, row = auth_services.issue_api_token(
        body.email,
        body.password,
        body.otp,
        now=utcnow(),
        hours=config["API_TOKEN_HOURS"],
        max_failures=config["LOGIN_MAX_FAILURES"],
        lock_minutes=config["LOGIN_LOCK_MINUTES"],
        ip_address=request.remote_addr,
    )
    return TokenResponse(token=token, expires_at=iso_z(row.expires_at) or "")


@api.operation(
    "/me", method="GET", summary="The signed-in person", roles=ALL_ROLES, response=MeResponse
)
def me(user: User) -> MeResponse:
    council = user.council
    return MeResponse(
        id=user.id,
        email=user.email,
        name=user.name,
        roles=sorted(str(r) for r in user.roles),
        council=CouncilOut(id=council.id, slug=council.slug, name=council.name)
        if council
        else None,
    )


@api.route("/openapi.json")
@public
def openapi() -> ResponseReturnValue:
    return jsonify(build_spec(current_app))
