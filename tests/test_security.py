"""Security settings: headers, CSRF, cookies, secrets, and sign-in throttling."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from app.config import ConfigError, load_config
from app.models import Role
from tests.factories import PASSWORD, make_user


def _assert_security_headers(response) -> None:  # type: ignore[no-untyped-def]
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self' 'nonce-" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_security_headers_on_a_page_with_its_nonce(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/")
    _assert_security_headers(response)
    csp = response.headers["Content-Security-Policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in response.get_data(as_text=True)
    other = client.get("/").headers["Content-Security-Policy"]
    assert other.split("'nonce-")[1].split("'")[0] != nonce  # a new nonce per response


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/auth/sign-in", 200),
        ("GET", "/no-such-page", 404),
        ("GET", "/dashboard", 302),  # signed out: a redirect to sign in
        ("GET", "/api/v1/openapi.json", 200),
        ("GET", "/api/v1/me", 401),
        ("POST", "/api/v1/tokens", 400),
        ("GET", "/assets/manifest.json", 200),
        ("POST", "/auth/sign-in", 200),  # a form with errors
    ],
)
def test_security_headers_on_every_kind_of_response(
    client, method: str, path: str, status: int
) -> None:  # type: ignore[no-untyped-def]
    with client.open(path, method=method) as response:  # a file response must be closed
        assert response.status_code == status
        _assert_security_headers(response)


def test_security_headers_on_a_signed_in_page_and_a_forbidden_one(client) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import sign_in

    sign_in(client, make_user(Role.CARER))
    page = client.get("/dashboard")
    assert page.status_code == 200
    _assert_security_headers(page)
    assert page.headers["Cache-Control"] == "no-store"
    forbidden = client.get("/staff/outbox")
    assert forbidden.status_code == 403
    _assert_security_headers(forbidden)


def test_api_responses_are_not_cached(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/openapi.json").headers["Cache-Control"] == "no-store"


def test_csrf_is_required_on_forms(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post("/auth/sign-in", data={"email": carer.email, "password": PASSWORD})
        assert response.status_code == 400
        assert client.get("/dashboard").status_code == 302
        page = client.get("/auth/sign-in").get_data(as_text=True)
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        ok = client.post(
            "/auth/sign-in", data={"email": carer.email, "password": PASSWORD, "csrf_token": token}
        )
        assert ok.status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_session_cookie_flags(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    response = client.post("/auth/sign-in", data={"email": carer.email, "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_production_requires_secrets_and_secure_cookies(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(str(tmp_path), {"APP_ENV": "production"})
    config = load_config(
        str(tmp_path),
        {
            "APP_ENV": "production",
            "SECRET_KEY": "x" * 40,
            "PLAN_ENCRYPTION_KEYS": "k" * 44,
            "PIN_HMAC_KEY": "p" * 40,
        },
    )
    assert config["SESSION_COOKIE_SECURE"] is True
    assert not (tmp_path / "secret_key").exists()
    with pytest.raises(ConfigError, match="at least 32"):
        load_config(str(tmp_path), {"SECRET_KEY": "short"})


def test_development_generates_a_secret_once(tmp_path: Path) -> None:
    first = load_config(str(tmp_path), {})
    second = load_config(str(tmp_path), {})
    assert first["SECRET_KEY"] == second["SECRET_KEY"]
    assert len(first["SECRET_KEY"]) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert first["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'app.db'}"
    assert first["SESSION_COOKIE_SECURE"] is False


def test_postgres_urls_use_psycopg3(tmp_path: Path) -> None:
    config = load_config(str(tmp_path), {"DATABASE_URL": "postgresql://u@h:5432/d"})
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h:5432/d"


def test_sign_in_is_throttled_per_address(client) -> None:  # type: ignore[no-untyped-def]
    responses = [
        client.post(
            "/auth/sign-in", data={"email": f"n{i}@example.org", "password": "x"}
        ).status_code
        for i in range(22)
    ]
    assert responses[:20] == [200] * 20
    assert responses[-1] == 429


def test_the_phone_number_examples_we_give_are_ones_we_accept() -> None:
    """An error message that says "like 07911 123 456" must accept 07911 123 456."""
    import re

    from app.errors import DomainError
    from app.phone_numbers import normalise_uk_phone

    with pytest.raises(DomainError) as refused:
        normalise_uk_phone("12")
    examples = re.findall(r"like ([\d +]+?) or ([\d +]+?)\.", refused.value.message)
    assert examples
    for example in examples[0]:
        assert normalise_uk_phone(example).startswith("+44")
