"""Request and response models shared by the API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    """Base for request bodies: unknown fields are refused rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TokenRequest(ApiModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=200)
    otp: str | None = Field(default=None, max_length=12)


class TokenResponse(BaseModel):
    token: str
    expires_at: str


class CouncilOut(BaseModel):
    id: int
    slug: str
    name: str


class MeResponse(BaseModel):
    id: int
    email: str
    name: str
    roles: list[str]
    council: CouncilOut | None


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: dict[str, str] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
