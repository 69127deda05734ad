"""Rules about people and their credentials. No Flask request objects in here."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, timedelta

import pyotp
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from app import audit, outbox
from app.errors import DomainError
from app.extensions import db
from app.models import ApiToken, Council, Role, User, UserRole


class AuthError(DomainError):
    code = "invalid_credentials"
    status = 401


class AccountLocked(AuthError):
    code = "account_locked"
    status = 429


# A fixed hash to compare against when the e-mail is unknown, so timing does not leak it.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="pbkdf2:sha256:1000")

MIN_PASSWORD_LENGTH = 10


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(
            f"Your password must be at least {MIN_PASSWORD_LENGTH} characters long.",
            fields={"password": f"Must be at least {MIN_PASSWORD_LENGTH} characters"},
        )


def create_council(*, slug: str, name: str, emergency_phone: str | None = None) -> Council:
    existing = db.session.scalar(select(Council).where(Council.slug == slug))
    if existing is not None:
        raise DomainError(
            f"A council with the slug {slug!r} already exists.", code="conflict", status=409
        )
    council = Council(slug=slug, name=name, emergency_phone=emergency_phone)
    db.session.add(council)
    db.session.commit()
    return council


def create_user(
    *,
    email: str,
    password: str,
    roles: list[Role],
    name: str,
    council: Council | None,
    phone: str | None = None,
    postcode: str | None = None,
    date_of_birth: date | None = None,
    totp_secret: str | None = None,
    reference: str | None = None,
    password_method: str = "scrypt",
    now: datetime,
) -> User:
    """Create a person with their roles. A staff account given a TOTP secret is ready to use."""
    email = normalise_email(email)
    if not roles:
        raise DomainError("Give the person at least one role.", fields={"role": "Choose a role"})
    check_password_strength(password)
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise DomainError(
            "An account with that e-mail address already exists.",
            code="conflict",
            status=409,
            fields={"email": "Already in use"},
        )
    if totp_secret is not None:
        try:
            pyotp.TOTP(totp_secret).now()
        except Exception as exc:
            raise DomainError("The TOTP secret must be base32.") from exc
    user = User(
        email=email,
        name=name,
        password_hash=generate_password_hash(password, method=password_method),
        council_id=council.id if council else None,
        phone=phone,
        postcode=postcode,
        date_of_birth=date_of_birth,
        reference=reference,
        totp_secret=totp_secret,
        totp_confirmed_at=now if totp_secret else None,
        created_at=now,
        password_changed_at=now,
    )
    user.role_rows = [UserRole(role=role) for role in dict.fromkeys(roles)]
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.created",
        actor=None,
        council_id=user.council_id,
        subject=user,
        details={"roles": [str(r) for r in roles]},
    )
    db.session.commit()
    return user


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def authenticate(
    email: str,
    password: str,
    *,
    now: datetime,
    max_failures: int,
    lock_minutes: int,
    ip_address: str | None = None,
) -> User:
    """Check an e-mail and password. Repeated failures lock the account for a while."""
    user = find_user_by_email(email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        raise AuthError("Enter a correct e-mail address and password.")
    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        raise AccountLocked(
            f"Too many attempts. Wait {minutes} minutes and try again, or reset your password."
        )
    if not user.is_active or not check_password_hash(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.locked_until = now + timedelta(minutes=lock_minutes)
            user.failed_logins = 0
            audit.record(
                "user.locked",
                actor=None,
                council_id=user.council_id,
                subject=user,
                ip_address=ip_address,
            )
        db.session.commit()
        raise AuthError("Enter a correct e-mail address and password.")
    user.failed_logins = 0
    user.locked_until = None
    audit.record(
        "user.signed_in",
        actor=user,
        council_id=user.council_id,
        subject=user,
        ip_address=ip_address,
    )
    db.session.commit()
    return user


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(user: User, secret: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer)


def verify_totp(secret: str | None, code: str, *, now: datetime) -> bool:
    if not secret:
        return False
    cleaned = code.replace(" ", "").strip()
    if not (cleaned.isdigit() and len(cleaned) == 6):
        return False
    return pyotp.TOTP(secret).verify(cleaned, for_time=now, valid_window=1)


def confirm_totp(user: User, secret: str, code: str, *, now: datetime) -> User:
    """First sign-in of a staff member: keep the secret once they prove their app has it."""
    if not verify_totp(secret, code, now=now):
        raise DomainError(
            "Enter the 6-digit code your authenticator app shows now.",
            fields={"code": "The code is not right"},
        )
    user.totp_secret = secret
    user.totp_confirmed_at = now
    audit.record("user.totp_confirmed", actor=user, council_id=user.council_id, subject=user)
    db.session.commit()
    return user


def issue_api_token(
    email: str,
    password: str,
    otp: str | None,
    *,
    now: datetime,
    hours: int,
    max_failures: int,
    lock_minutes: int,
    ip_address: str | None = None,
) -> tuple[str, ApiToken]:
    """Exchange credentials (and a TOTP code for staff) for a bearer token."""
    user = authenticate(
        email,
        password,
        now=now,
        max_failures=max_failures,
        lock_minutes=lock_minutes,
        ip_address=ip_address,
    )
    if user.is_staff:
        if user.totp_confirmed_at is None or not user.totp_secret:
            raise AuthError(
                "Set up your second factor by signing in on the web first.", code="otp_required"
            )
        if not otp:
            raise AuthError(
                "Staff accounts need the 6-digit code from their authenticator app.",
                code="otp_required",
            )
        if not verify_totp(user.totp_secret, otp, now=now):
            raise AuthError(
                "That code is not right. Use the code your app shows now.", code="otp_invalid"
            )
    token = secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        token_hash=hashlib.sha256(token.encode()).hexdigest(),
        created_at=now,
        expires_at=now + timedelta(hours=hours),
    )
    db.session.add(row)
    db.session.commit()
    return token, row


# Password reset: a signed, expiring token that stops working once the password changes.


def _reset_serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="password-reset")


def _password_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def make_reset_token(user: User, *, secret_key: str) -> str:
    return _reset_serializer(secret_key).dumps({"uid": user.id, "pw": _password_fingerprint(user)})


WELCOME_LINK_SECONDS = 7 * 24 * 3600


def make_welcome_token(user: User, *, secret_key: str) -> str:
    """A first "choose your password" link for an account someone else set up. It lasts
    a week, because people do not always read their e-mail the same hour."""
    return _reset_serializer(secret_key).dumps(
        {"uid": user.id, "pw": _password_fingerprint(user), "welcome": True}
    )


def request_password_reset(email: str, *, secret_key: str, reset_url: str, now: datetime) -> None:
    """Queue a reset link by e-mail. Says nothing about whether the address exists."""
    user = find_user_by_email(email)
    if user is None or not user.is_active:
        return
    token = make_reset_token(user, secret_key=secret_key)
    outbox.enqueue(
        "email",
        recipient=user.email,
        council_id=user.council_id,
        payload={
            "subject": "Reset your password",
            "body": (
                f"Hello {user.name},\n\nUse this link to choose a new password. "
                f"It works for one hour and only once:\n\n{reset_url}?token={token}\n\n"
                "If you did not ask for this, you can ignore this e-mail."
            ),
        },
    )
    audit.record(
        "user.password_reset_requested", actor=None, council_id=user.council_id, subject=user
    )
    db.session.commit()


def user_for_reset_token(token: str, *, secret_key: str, max_age_seconds: int) -> User:
    serializer = _reset_serializer(secret_key)
    try:
        data = serializer.loads(token, max_age=max(max_age_seconds, WELCOME_LINK_SECONDS))
        if not (isinstance(data, dict) and data.get("welcome") is True):
            data = serializer.loads(token, max_age=max_age_seconds)
    except SignatureExpired as exc:
        raise DomainError(
            "This link has expired. Ask for a new one.", code="token_expired"
        ) from exc
    except BadSignature as exc:
        raise DomainError(
            "This link is not valid. Ask for a new one.", code="token_invalid"
        ) from exc
    user = db.session.get(User, int(data.get("uid", 0)))
    if user is None or data.get("pw") != _password_fingerprint(user):
        raise DomainError(
            "This link has already been used. Ask for a new one.", code="token_invalid"
        )
    return user


def reset_password(
    token: str,
    new_password: str,
    *,
    secret_key: str,
    max_age_seconds: int,
    password_method: str,
    now: datetime,
) -> User:
    user = user_for_reset_token(token, secret_key=secret_key, max_age_seconds=max_age_seconds)
    check_password_strength(new_password)
    user.password_hash = generate_password_hash(new_password, method=password_method)
    user.password_changed_at = now
    user.failed_logins = 0
    user.locked_until = None
    audit.record("user.password_reset", actor=user, council_id=user.council_id, subject=user)
    db.session.commit()
    return user
