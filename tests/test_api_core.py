"""The API base: tokens, /me, the error format, idempotency and openapi.json."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pyotp
import pytest
from flask import Flask, Response
from sqlalchemy import func, select

from app.api.core import ApiBlueprint, openapi_path
from app.api.idempotency import run_idempotent
from app.clock import utcnow
from app.extensions import db
from app.models import ApiToken, IdempotencyRecord, Role
from tests.factories import PASSWORD, make_user
from tests.helpers import bearer, error_of


def test_carer_gets_a_token_stored_only_as_a_hash(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    response = client.post("/api/v1/tokens", json={"email": carer.email, "password": PASSWORD})
    assert response.status_code == 201
    body = response.get_json()
    assert body["expires_at"].endswith("Z")
    row = db.session.scalars(select(ApiToken).where(ApiToken.user_id == carer.id)).one()
    assert row.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
    assert body["token"] not in row.token_hash
    assert row.expires_at - row.created_at == timedelta(hours=12)
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.get_json() == {
        "id": carer.id,
        "email": carer.email,
        "name": carer.name,
        "roles": ["carer"],
        "council": {"id": carer.council.id, "slug": carer.council.slug, "name": carer.council.name},
    }


def test_wrong_password_is_401(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    response = client.post("/api/v1/tokens", json={"email": carer.email, "password": "nope"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_credentials"


@pytest.mark.parametrize(
    "role", [Role.COUNCIL_OFFICER, Role.PLAN_WRITER, Role.OPERATOR, Role.ADMIN]
)
def test_staff_need_a_totp_code(client, role: Role) -> None:  # type: ignore[no-untyped-def]
    secret = pyotp.random_base32()
    staff = make_user(role, totp_secret=secret, totp_confirmed_at=utcnow())
    body = {"email": staff.email, "password": PASSWORD}
    missing = client.post("/api/v1/tokens", json=body)
    assert missing.status_code == 401
    assert error_of(missing)["code"] == "otp_required"
    wrong = client.post("/api/v1/tokens", json={**body, "otp": "000000"})
    assert wrong.status_code == 401
    assert error_of(wrong)["code"] == "otp_invalid"
    right = client.post("/api/v1/tokens", json={**body, "otp": pyotp.TOTP(secret).now()})
    assert right.status_code == 201


def test_token_requests_are_throttled_and_wrong_passwords_lock(client, app: Flask) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/api/v1/tokens", json={"email": carer.email, "password": "wrong-one"})
    locked = client.post("/api/v1/tokens", json={"email": carer.email, "password": PASSWORD})
    assert (locked.status_code, error_of(locked)["code"]) == (429, "account_locked")
    statuses = [
        client.post("/api/v1/tokens", json={"email": "n@example.org", "password": "x"})
        for _ in range(20)
    ]
    throttled = statuses[-1]
    assert (throttled.status_code, error_of(throttled)["code"]) == (429, "rate_limited")
    assert int(throttled.headers["Retry-After"]) > 0


def test_a_locked_account_is_told_when_to_try_again(client, app: Flask) -> None:  # type: ignore[no-untyped-def]
    """api.md: a 429 carries Retry-After, also when the account is locked."""
    import time_machine

    carer = make_user(Role.CARER)
    with time_machine.travel(utcnow().replace(microsecond=0), tick=False):
        for _ in range(app.config["LOGIN_MAX_FAILURES"]):
            client.post("/api/v1/tokens", json={"email": carer.email, "password": "wrong-one"})
        locked = client.post("/api/v1/tokens", json={"email": carer.email, "password": PASSWORD})
    assert (locked.status_code, error_of(locked)["code"]) == (429, "account_locked")
    assert locked.headers["Retry-After"] == str(app.config["LOGIN_LOCK_MINUTES"] * 60)


def test_wrong_codes_lock_the_account_whatever_the_address(client, app: Flask) -> None:  # type: ignore[no-untyped-def]
    """Someone with the password cannot keep guessing codes from new addresses."""
    import time_machine

    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    at = utcnow().replace(microsecond=0)
    totp = pyotp.TOTP(secret)
    near = {totp.at(at, counter_offset=offset) for offset in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)
    operator = make_user(Role.OPERATOR, totp_secret=secret, totp_confirmed_at=at)
    body = {"email": operator.email, "password": PASSWORD}
    with time_machine.travel(at, tick=False):
        for i in range(app.config["LOGIN_MAX_FAILURES"]):
            refused = client.post(
                "/api/v1/tokens",
                json={**body, "otp": wrong},
                environ_overrides={"REMOTE_ADDR": f"203.0.113.{i + 1}"},
            )
            assert (refused.status_code, error_of(refused)["code"]) == (401, "otp_invalid")
        locked = client.post(
            "/api/v1/tokens",
            json={**body, "otp": totp.at(at)},
            environ_overrides={"REMOTE_ADDR": "198.51.100.7"},
        )
    assert (locked.status_code, error_of(locked)["code"]) == (429, "account_locked")
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_a_code_gets_one_token_only(client) -> None:  # type: ignore[no-untyped-def]
    import time_machine

    secret = pyotp.random_base32()
    at = utcnow().replace(microsecond=0)
    staff = make_user(Role.PLAN_WRITER, totp_secret=secret, totp_confirmed_at=at)
    body = {"email": staff.email, "password": PASSWORD, "otp": pyotp.TOTP(secret).at(at)}
    with time_machine.travel(at, tick=False):
        assert client.post("/api/v1/tokens", json=body).status_code == 201
        replayed = client.post("/api/v1/tokens", json=body)
    assert (replayed.status_code, error_of(replayed)["code"]) == (401, "otp_invalid")
    assert "used already" in error_of(replayed)["message"]
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 1


def test_a_password_reset_revokes_tokens_issued_before_it(client, app: Flask) -> None:  # type: ignore[no-untyped-def]
    from app.auth.services import make_reset_token, reset_password

    carer = make_user(Role.CARER)
    issued = client.post("/api/v1/tokens", json={"email": carer.email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {issued.get_json()['token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    reset_password(
        make_reset_token(carer, secret_key=app.config["SECRET_KEY"]),
        "a-brand-new-password",
        secret_key=app.config["SECRET_KEY"],
        max_age_seconds=3600,
        password_method="pbkdf2:sha256:1000",
        now=utcnow(),
    )
    after = client.get("/api/v1/me", headers=headers)
    assert (after.status_code, error_of(after)["code"]) == (401, "invalid_token")
    fresh = client.post(
        "/api/v1/tokens", json={"email": carer.email, "password": "a-brand-new-password"}
    )
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {fresh.get_json()['token']}"})
    assert me.status_code == 200


def test_staff_without_a_second_factor_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    officer = make_user(Role.COUNCIL_OFFICER)
    response = client.post(
        "/api/v1/tokens", json={"email": officer.email, "password": PASSWORD, "otp": "123456"}
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "otp_required"


def test_expired_and_unknown_tokens_are_401(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    headers = bearer(carer)
    token = db.session.scalars(select(ApiToken).where(ApiToken.user_id == carer.id)).one()
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    expired = client.get("/api/v1/me", headers=headers)
    assert expired.status_code == 401
    assert error_of(expired)["code"] == "invalid_token"
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    none = client.get("/api/v1/me")
    assert none.status_code == 401
    assert error_of(none)["code"] == "unauthorized"


def test_errors_follow_the_api_format(client) -> None:  # type: ignore[no-untyped-def]
    not_json = client.post("/api/v1/tokens", data="{", content_type="application/json")
    assert not_json.status_code == 400
    assert error_of(not_json)["code"] == "invalid_json"
    invalid = client.post("/api/v1/tokens", json={"email": "x@y.org", "surprise": 1})
    assert invalid.status_code == 422
    error = error_of(invalid)
    assert error["code"] == "validation_failed"
    assert set(error["fields"]) == {"password", "surprise"}
    assert error["message"]
    missing = client.get("/api/v1/no-such-thing")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    wrong_method = client.delete("/api/v1/me")
    assert wrong_method.status_code == 405
    assert error_of(wrong_method)["code"] == "method_not_allowed"


def test_openapi_lists_every_api_endpoint(client, app: Flask) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".", 1)[0]
        if not isinstance(app.blueprints.get(blueprint), ApiBlueprint) or rule.rule.endswith(
            "openapi.json"
        ):
            continue
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (openapi_path(rule.rule), method.lower()) in documented, rule.rule
    token_op = spec["paths"]["/api/v1/tokens"]["post"]
    assert "201" in token_op["responses"]
    assert spec["components"]["schemas"]["TokenRequest"]["properties"]["otp"]


def _count_records() -> int:
    return db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0


def test_idempotency_key_replays_the_first_response(app: Flask) -> None:
    user = make_user(Role.CARER)
    calls: list[int] = []

    def work() -> Response:
        calls.append(1)
        return Response(json.dumps({"n": len(calls)}), status=201, mimetype="application/json")

    headers = {"Idempotency-Key": "key-1"}
    with app.test_request_context("/api/v1/x", method="POST", json={"a": 1}, headers=headers):
        first = run_idempotent(user, work)
    with app.test_request_context("/api/v1/x", method="POST", json={"a": 1}, headers=headers):
        second = run_idempotent(user, work)
    assert calls == [1]
    assert first.status_code == second.status_code == 201
    assert second.get_json() == {"n": 1}
    assert second.headers["Idempotent-Replayed"] == "true"
    assert _count_records() == 1
    with app.test_request_context("/api/v1/x", method="POST", json={"a": 2}, headers=headers):
        from app.errors import DomainError

        with pytest.raises(DomainError) as reused:
            run_idempotent(user, work)
    assert reused.value.code == "idempotency_key_reused"
    # Another person's key space is separate.
    other = make_user(Role.CARER)
    with app.test_request_context("/api/v1/x", method="POST", json={"a": 1}, headers=headers):
        run_idempotent(other, work)
    assert calls == [1, 1]


def test_a_failed_request_frees_its_key(app: Flask) -> None:
    user = make_user(Role.CARER)

    def boom() -> Response:
        raise RuntimeError("provider down")

    with (
        app.test_request_context(
            "/api/v1/x", method="POST", json={}, headers={"Idempotency-Key": "k"}
        ),
        pytest.raises(RuntimeError),
    ):
        run_idempotent(user, boom)
    assert _count_records() == 0


def test_no_key_means_no_record(app: Flask) -> None:
    user = make_user(Role.CARER)
    with app.test_request_context("/api/v1/x", method="POST", json={}):
        run_idempotent(user, lambda: Response("{}", mimetype="application/json"))
    assert _count_records() == 0
