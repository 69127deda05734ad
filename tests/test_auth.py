"""Sign-in, lockout, the staff second factor and password reset, through the pages."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import time_machine
from flask import Flask
from sqlalchemy import func, select

from app.clock import utcnow
from app.extensions import db
from app.models import AuditEntry, OutboxMessage, Role, User
from tests.factories import PASSWORD, make_user


def _sign_in(client, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/auth/sign-in", data={"email": email, "password": password})


def test_carer_signs_in_and_sees_their_dashboard(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER, name="Sam Example")
    response = _sign_in(client, carer.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    page = client.get("/dashboard").get_data(as_text=True)
    assert "Sam Example" in page
    assert "Signed in as" in page


def test_wrong_password_shows_error_summary_and_signs_nobody_in(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    response = _sign_in(client, carer.email, "not the password")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "govuk-error-summary" in page
    assert "Enter a correct e-mail address and password" in page
    assert client.get("/dashboard").status_code == 302


def test_empty_form_names_each_missing_field(client) -> None:  # type: ignore[no-untyped-def]
    page = client.post("/auth/sign-in", data={"email": "", "password": ""}).get_data(as_text=True)
    assert "There is a problem" in page
    assert "Enter your email address" in page
    assert "Enter your password" in page
    assert 'href="#email"' in page


def test_repeated_failures_lock_the_account(client, app: Flask) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        _sign_in(client, carer.email, "wrong-password")
    page = _sign_in(client, carer.email).get_data(as_text=True)
    assert "Too many attempts" in page
    db.session.refresh(carer)
    assert carer.locked_until is not None
    assert (
        db.session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "user.locked")
        )
        == 1
    )
    with time_machine.travel(utcnow() + timedelta(minutes=app.config["LOGIN_LOCK_MINUTES"] + 1)):
        assert _sign_in(client, carer.email).status_code == 302


def test_staff_set_up_totp_on_first_sign_in(client) -> None:  # type: ignore[no-untyped-def]
    officer = make_user(Role.COUNCIL_OFFICER)
    response = _sign_in(client, officer.email)
    assert response.headers["Location"] == "/auth/second-factor/set-up"
    # Not signed in until the second factor is done.
    assert client.get("/dashboard").status_code == 302
    page = client.get("/auth/second-factor/set-up").get_data(as_text=True)
    assert "<svg" in page
    with client.session_transaction() as session:
        secret = session["totp_setup_secret"]
    wrong = client.post("/auth/second-factor/set-up", data={"code": "000000"})
    assert "govuk-error-summary" in wrong.get_data(as_text=True)
    ok = client.post("/auth/second-factor/set-up", data={"code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 302
    assert client.get("/dashboard").status_code == 200
    db.session.refresh(officer)
    assert officer.totp_secret == secret
    assert officer.totp_confirmed_at is not None


def test_staff_with_totp_must_enter_the_code(client) -> None:  # type: ignore[no-untyped-def]
    secret = pyotp.random_base32()
    operator = make_user(Role.OPERATOR, totp_secret=secret, totp_confirmed_at=utcnow())
    assert _sign_in(client, operator.email).headers["Location"] == "/auth/second-factor"
    bad = client.post("/auth/second-factor", data={"code": "12"})
    assert "Enter the code as 6 digits" in bad.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302
    good = client.post("/auth/second-factor", data={"code": pyotp.TOTP(secret).now()})
    assert good.status_code == 302
    assert client.get("/dashboard").status_code == 200


def test_second_factor_page_needs_a_password_first(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/auth/second-factor").headers["Location"] == "/auth/sign-in"


def test_next_only_follows_local_paths(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    client.get("/auth/sign-in?next=https://evil.example/steal")
    assert _sign_in(client, carer.email).headers["Location"] == "/dashboard"
    client.post("/auth/sign-out")
    client.get("/auth/sign-in?next=/dashboard?tab=1")
    assert _sign_in(client, carer.email).headers["Location"] == "/dashboard?tab=1"


def test_sign_out(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    _sign_in(client, carer.email)
    assert client.post("/auth/sign-out").status_code == 302
    assert client.get("/dashboard").status_code == 302


def _reset_link(email: str) -> str:
    message = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == email, OutboxMessage.kind == "email")
    ).one()
    body = message.payload["body"]
    link = next(word for word in body.split() if "token=" in word)
    return link


def test_password_reset_by_email_link(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    page = client.post("/auth/reset", data={"email": carer.email}).get_data(as_text=True)
    assert "Check your email" in page
    link = _reset_link(carer.email)
    parts = urlsplit(link)
    assert parts.netloc == "carers.example.org"
    token = parse_qs(parts.query)["token"][0]
    form = client.get(f"/auth/reset/new-password?token={token}")
    assert form.status_code == 200
    mismatch = client.post(
        f"/auth/reset/new-password?token={token}",
        data={"password": "a-new-password-1", "confirm": "different-one-2"},
    )
    assert "The two passwords do not match" in mismatch.get_data(as_text=True)
    done = client.post(
        f"/auth/reset/new-password?token={token}",
        data={"password": "a-new-password-1", "confirm": "a-new-password-1"},
    )
    assert done.headers["Location"] == "/auth/sign-in"
    assert _sign_in(client, carer.email, "a-new-password-1").status_code == 302
    # The link works once only.
    client.post("/auth/sign-out")
    again = client.get(f"/auth/reset/new-password?token={token}")
    assert again.status_code == 400
    assert "already been used" in again.get_data(as_text=True)


def test_reset_link_expires(client, app: Flask) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    client.post("/auth/reset", data={"email": carer.email})
    token = parse_qs(urlsplit(_reset_link(carer.email)).query)["token"][0]
    later = utcnow() + timedelta(minutes=app.config["PASSWORD_RESET_MINUTES"] + 5)
    with time_machine.travel(later):
        response = client.get(f"/auth/reset/new-password?token={token}")
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_reset_for_unknown_email_says_the_same_and_sends_nothing(client) -> None:  # type: ignore[no-untyped-def]
    page = client.post("/auth/reset", data={"email": "nobody@example.org"}).get_data(as_text=True)
    assert "Check your email" in page
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_bad_reset_form_writes_nothing(client) -> None:  # type: ignore[no-untyped-def]
    page = client.post("/auth/reset", data={"email": "not-an-email"}).get_data(as_text=True)
    assert "govuk-error-summary" in page
    assert "Enter an email address in the correct format" in page
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_passwords_are_hashed(app: Flask) -> None:
    carer = make_user(Role.CARER)
    stored = db.session.get(User, carer.id)
    assert stored is not None
    assert PASSWORD not in stored.password_hash
    assert stored.password_hash.startswith("pbkdf2:")


# Sessions end on the server: a copied cookie stops working.


def _session_cookie(client) -> str:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("session")
    assert cookie is not None
    return str(cookie.value)


def test_a_cookie_copied_before_sign_out_signs_nobody_in_after(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    assert _sign_in(client, carer.email).status_code == 302
    copied = _session_cookie(client)
    elsewhere = app.test_client()  # the same person on another computer
    assert _sign_in(elsewhere, carer.email).status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", copied)
    assert replay.get("/dashboard").status_code == 200

    assert client.post("/auth/sign-out").status_code == 302

    after = replay.get("/dashboard")
    assert after.status_code == 302
    assert urlsplit(after.headers["Location"]).path == "/auth/sign-in"
    assert elsewhere.get("/dashboard").status_code == 302  # signed out everywhere
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "user.signed_out", AuditEntry.subject_id == carer.id)
        )
        == 1
    )
    # Signing in again works, with a new cookie.
    assert _sign_in(client, carer.email).status_code == 302
    assert client.get("/dashboard").status_code == 200


def test_a_password_reset_ends_sessions_and_revokes_api_tokens(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    from app.models import ApiToken

    carer = make_user(Role.CARER)
    signed_in = app.test_client()
    assert _sign_in(signed_in, carer.email).status_code == 302
    issued = client.post("/api/v1/tokens", json={"email": carer.email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {issued.get_json()['token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    client.post("/auth/reset", data={"email": carer.email})
    token = parse_qs(urlsplit(_reset_link(carer.email)).query)["token"][0]
    done = client.post(
        f"/auth/reset/new-password?token={token}",
        data={"password": "a-new-password-1", "confirm": "a-new-password-1"},
    )
    assert done.headers["Location"] == "/auth/sign-in"

    assert signed_in.get("/dashboard").status_code == 302
    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 401
    assert me.get_json()["error"]["code"] == "invalid_token"
    assert db.session.scalars(select(ApiToken.revoked_at)).all()[0] is not None


def test_the_reset_email_gives_the_configured_expiry(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER)
    app.config["PASSWORD_RESET_MINUTES"] = 30
    try:
        client.post("/auth/reset", data={"email": carer.email})
    finally:
        app.config["PASSWORD_RESET_MINUTES"] = 60
    body = db.session.scalars(select(OutboxMessage)).one().payload["body"]
    assert "It works for 30 minutes and only once" in body


# The second factor: wrong codes lock the account, and a code works once.

TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
AT = utcnow().replace(microsecond=0)


def _wrong_code(now) -> str:  # type: ignore[no-untyped-def]
    totp = pyotp.TOTP(TOTP_SECRET)
    near = {totp.at(now, counter_offset=offset) for offset in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)


def test_wrong_codes_from_many_addresses_lock_the_account(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    operator = make_user(Role.OPERATOR, totp_secret=TOTP_SECRET, totp_confirmed_at=AT)
    limit = app.config["LOGIN_MAX_FAILURES"]
    with time_machine.travel(AT, tick=False):
        assert _sign_in(client, operator.email).headers["Location"] == "/auth/second-factor"
        for i in range(limit):
            page = client.post(
                "/auth/second-factor",
                data={"code": _wrong_code(AT)},
                environ_overrides={"REMOTE_ADDR": f"203.0.113.{i + 1}"},
            ).get_data(as_text=True)
            assert "That code is not right" in page
        right = pyotp.TOTP(TOTP_SECRET).at(AT)
        locked = client.post(
            "/auth/second-factor",
            data={"code": right},
            environ_overrides={"REMOTE_ADDR": "198.51.100.9"},
        )
        assert "Too many attempts" in locked.get_data(as_text=True)
        assert client.get("/dashboard").status_code == 302
        assert "Too many attempts" in _sign_in(app.test_client(), operator.email).get_data(
            as_text=True
        )
    db.session.refresh(operator)
    assert operator.locked_until is not None
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "user.locked")).one()
    assert entry.details == {"after": "totp"}
    later = AT + timedelta(minutes=app.config["LOGIN_LOCK_MINUTES"] + 1)
    with time_machine.travel(later, tick=False):
        fresh = app.test_client()
        _sign_in(fresh, operator.email)
        ok = fresh.post("/auth/second-factor", data={"code": pyotp.TOTP(TOTP_SECRET).at(later)})
        assert ok.status_code == 302
        assert fresh.get("/dashboard").status_code == 200


def test_a_right_code_resets_the_count_of_wrong_ones(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    operator = make_user(Role.OPERATOR, totp_secret=TOTP_SECRET, totp_confirmed_at=AT)
    with time_machine.travel(AT, tick=False):
        _sign_in(client, operator.email)
        client.post("/auth/second-factor", data={"code": _wrong_code(AT)})
        db.session.refresh(operator)
        assert operator.failed_totp_codes == 1
        client.post("/auth/second-factor", data={"code": pyotp.TOTP(TOTP_SECRET).at(AT)})
    db.session.refresh(operator)
    assert operator.failed_totp_codes == 0
    assert operator.locked_until is None


def test_a_code_cannot_be_used_twice(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    operator = make_user(Role.OPERATOR, totp_secret=TOTP_SECRET, totp_confirmed_at=AT)
    code = pyotp.TOTP(TOTP_SECRET).at(AT)
    with time_machine.travel(AT, tick=False):
        _sign_in(client, operator.email)
        assert client.post("/auth/second-factor", data={"code": code}).status_code == 302
        client.post("/auth/sign-out")
        overheard = app.test_client()
        _sign_in(overheard, operator.email)
        again = overheard.post("/auth/second-factor", data={"code": code})
        assert again.status_code == 200
        assert "That code has been used already" in again.get_data(as_text=True)
        assert overheard.get("/dashboard").status_code == 302
    # 30 seconds on, still inside the drift window, the old code is still refused...
    with time_machine.travel(AT + timedelta(seconds=30), tick=False):
        assert overheard.post("/auth/second-factor", data={"code": code}).status_code == 200
        # ...and the new one works.
        new = pyotp.TOTP(TOTP_SECRET).at(AT + timedelta(seconds=30))
        assert overheard.post("/auth/second-factor", data={"code": new}).status_code == 302
    db.session.refresh(operator)
    assert operator.failed_totp_codes == 0


def test_the_set_up_code_cannot_be_used_again_to_sign_in(client) -> None:  # type: ignore[no-untyped-def]
    officer = make_user(Role.COUNCIL_OFFICER)
    with time_machine.travel(AT, tick=False):
        _sign_in(client, officer.email)
        client.get("/auth/second-factor/set-up")
        with client.session_transaction() as session:
            secret = session["totp_setup_secret"]
        code = pyotp.TOTP(secret).at(AT)
        assert client.post("/auth/second-factor/set-up", data={"code": code}).status_code == 302
        client.post("/auth/sign-out")
        _sign_in(client, officer.email)
        again = client.post("/auth/second-factor", data={"code": code})
    assert "That code has been used already" in again.get_data(as_text=True)
