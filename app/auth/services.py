"""Rules about people and their credentials. No Flask request objects in here."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import date, datetime, timedelta

import pyotp
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from app import audit, outbox
from app.errors import DomainError
from app.extensions import db
from app.models import ApiToken, Council, Role, User, UserRole
from app.phone_numbers import normalise_uk_phone


class AuthError(DomainError):
    code = "invalid_credentials"
    status = 401


class AccountLocked(AuthError):
    """Too many wrong passwords or codes; `retry_after` is the seconds until it unlocks
    (the API's Retry-After)."""

    code = "account_locked"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
    """Create a tenant. The emergency number is stored in E.164, because incoming calls
    are matched on Twilio's `To`, which is E.164; a number that is not real is refused."""
    if emergency_phone:
        emergency_phone = normalise_uk_phone(emergency_phone, field="emergency_phone")
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


def _refuse_if_locked(user: User, *, now: datetime) -> None:
    if user.locked_until is not None and user.locked_until > now:
        left = (user.locked_until - now).total_seconds()
        minutes = max(1, int(left // 60) + 1)
        raise AccountLocked(
            f"Too many attempts. Wait {minutes} minutes and try again, or reset your password.",
            retry_after=math.ceil(left),
        )


def _lock(
    user: User, *, now: datetime, lock_minutes: int, ip_address: str | None, after: str
) -> None:
    user.locked_until = now + timedelta(minutes=lock_minutes)
    audit.record(
        "user.locked",
        actor=None,
        council_id=user.council_id,
        subject=user,
        ip_address=ip_address,
        details={"after": after},
    )


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
    _refuse_if_locked(user, now=now)
    if not user.is_active or not check_password_hash(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.failed_logins = 0
            _lock(user, now=now, lock_minutes=lock_minutes, ip_address=ip_address, after="password")
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


def totp_step(secret: str | None, code: str, *, now: datetime) -> int | None:
    """The time-step (30-second window) `code` belongs to, allowing one step of clock
    drift either way, or None when the code is not right."""
    if not secret:
        return None
    cleaned = code.replace(" ", "").strip()
    if not (cleaned.isdigit() and len(cleaned) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), cleaned):
            return step
    return None


def check_second_factor(
    user: User,
    code: str,
    *,
    now: datetime,
    max_failures: int,
    lock_minutes: int,
    ip_address: str | None = None,
) -> None:
    """Accept a staff member's TOTP code, once. Wrong or reused codes count per account
    (not per address), and `max_failures` of them lock the account like wrong passwords,
    so someone who has the password cannot keep guessing from new addresses."""
    _refuse_if_locked(user, now=now)
    step = totp_step(user.totp_secret, code, now=now)
    reused = step is not None and user.totp_last_step is not None and step <= user.totp_last_step
    if step is None or reused:
        user.failed_totp_codes += 1
        if user.failed_totp_codes >= max_failures:
            user.failed_totp_codes = 0
            _lock(user, now=now, lock_minutes=lock_minutes, ip_address=ip_address, after="totp")
        db.session.commit()
        if reused:
            raise AuthError(
                "That code has been used already. Wait for your app to show a new one.",
                code="otp_invalid",
            )
        raise AuthError(
            "That code is not right. Use the code your app shows now.", code="otp_invalid"
        )
    user.totp_last_step = step
    user.failed_totp_codes = 0
    db.session.commit()


def confirm_totp(user: User, secret: str, code: str, *, now: datetime) -> User:
    """First sign-in of a staff member: keep the secret once they prove their app has it."""
    step = totp_step(secret, code, now=now)
    if step is None:
        raise DomainError(
            "Enter the 6-digit code your authenticator app shows now.",
            fields={"code": "The code is not right"},
        )
    user.totp_secret = secret
    user.totp_confirmed_at = now
    user.totp_last_step = step
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
        check_second_factor(
            user,
            otp,
            now=now,
            max_failures=max_failures,
            lock_minutes=lock_minutes,
            ip_address=ip_address,
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


def _duration(minutes: int) -> str:
    """60 → 'one hour', 90 → '90 minutes', 120 → '2 hours', for the reset e-mail."""
    if minutes == 60:
        return "one hour"
    if minutes % 60 == 0:
        return f"{minutes // 60} hours"
    return "one minute" if minutes == 1 else f"{minutes} minutes"


def request_password_reset(
    email: str, *, secret_key: str, reset_url: str, valid_minutes: int, now: datetime
) -> None:
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
                f"It works for {_duration(valid_minutes)} and only once:\n\n"
                f"{reset_url}?token={token}\n\n"
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
    user.failed_totp_codes = 0
    user.locked_until = None
    revoked = _end_sessions_and_tokens(user, now=now)
    audit.record(
        "user.password_reset",
        actor=user,
        council_id=user.council_id,
        subject=user,
        details={"api_tokens_revoked": revoked},
    )
    db.session.commit()
    return user


def _end_sessions_and_tokens(user: User, *, now: datetime) -> int:
    """Whoever had the old password may have signed in with it: end every session and
    revoke every API token. Returns how many tokens were revoked. Flushes only."""
    user.session_generation += 1
    result = db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def sign_out(user: User, *, now: datetime, ip_address: str | None = None) -> None:
    """Signing out ends the person's sessions everywhere (a copied cookie stops working
    too). Their API tokens are separate credentials held by software and are left alone;
    a password reset revokes those."""
    user.session_generation += 1
    audit.record(
        "user.signed_out",
        actor=user,
        council_id=user.council_id,
        subject=user,
        ip_address=ip_address,
    )
    db.session.commit()
