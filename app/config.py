"""All settings, read from the environment once at start-up.

Development gets safe defaults (SQLite and generated secrets under `instance/`);
production refuses to start without its secrets.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet


class ConfigError(RuntimeError):
    """A required setting is missing or unsafe."""


def _instance_secret(instance: Path, name: str, make: Any) -> str:
    """Read a development secret from instance/, generating it on first use."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _stripe_csp(payment_backend: str) -> dict[str, str]:
    if payment_backend != "stripe":
        return {}
    return {
        "CSP_EXTRA_SCRIPT_SRC": "https://js.stripe.com",
        "CSP_EXTRA_FRAME_SRC": "https://js.stripe.com https://hooks.stripe.com",
        "CSP_EXTRA_CONNECT_SRC": "https://api.stripe.com",
    }


def load_config(instance_path: str, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the app's config mapping from environment variables."""
    env = dict(os.environ if environ is None else environ)
    instance = Path(instance_path)
    app_env = env.get("APP_ENV", "development")
    production = app_env == "production"

    secret_key = env.get("SECRET_KEY")
    if not secret_key:
        if production:
            raise ConfigError("SECRET_KEY must be set in production.")
        secret_key = _instance_secret(instance, "secret_key", lambda: secrets.token_hex(32))
    if len(secret_key) < 32:
        raise ConfigError("SECRET_KEY must be at least 32 characters long.")

    plan_keys = env.get("PLAN_ENCRYPTION_KEYS")
    if not plan_keys:
        if production:
            raise ConfigError("PLAN_ENCRYPTION_KEYS must be set in production.")
        plan_keys = _instance_secret(
            instance, "plan_encryption_keys", lambda: Fernet.generate_key().decode()
        )

    pin_key = env.get("PIN_HMAC_KEY")
    if not pin_key:
        if production:
            raise ConfigError("PIN_HMAC_KEY must be set in production.")
        pin_key = _instance_secret(instance, "pin_hmac_key", lambda: secrets.token_hex(32))

    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'app.db'}"
    if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
        # psycopg 3 is the driver; accept the plain URL a platform hands out.
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]

    return {
        "APP_ENV": app_env,
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL", "http://localhost:5000").rstrip("/"),
        "SERVICE_NAME": env.get("SERVICE_NAME", "Carers' breaks and emergency cards"),
        "NOTIFY_BACKEND": env.get("NOTIFY_BACKEND", "log"),
        "TWILIO_ACCOUNT_SID": env.get("TWILIO_ACCOUNT_SID", ""),
        "TWILIO_AUTH_TOKEN": env.get("TWILIO_AUTH_TOKEN", ""),
        "TWILIO_FROM_NUMBER": env.get("TWILIO_FROM_NUMBER", ""),
        "TWILIO_MESSAGING_SERVICE_SID": env.get("TWILIO_MESSAGING_SERVICE_SID", ""),
        # Where Twilio posts delivery reports; PUBLIC_BASE_URL when unset.
        "TWILIO_STATUS_CALLBACK_BASE_URL": env.get("TWILIO_STATUS_CALLBACK_BASE_URL", "").rstrip(
            "/"
        ),
        "PAYMENT_BACKEND": env.get("PAYMENT_BACKEND", "ledger"),
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_PUBLISHABLE_KEY": env.get("STRIPE_PUBLISHABLE_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE", ""),
        # Stripe Elements (card entry) needs Stripe's script, frames and API, only then.
        **_stripe_csp(env.get("PAYMENT_BACKEND", "ledger")),
        "PLAN_ENCRYPTION_KEYS": [k.strip() for k in plan_keys.split(",") if k.strip()],
        "PIN_HMAC_KEY": pin_key,
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_ENABLED": _flag(env.get("RATELIMIT_ENABLED"), True),
        "RATELIMIT_HEADERS_ENABLED": True,
        "SESSION_COOKIE_SECURE": _flag(env.get("SESSION_COOKIE_SECURE"), production),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _flag(env.get("SESSION_COOKIE_SECURE"), production),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "PERMANENT_SESSION_LIFETIME": 60 * 60 * 8,
        "WTF_CSRF_TIME_LIMIT": None,
        "API_TOKEN_HOURS": int(env.get("API_TOKEN_HOURS", "12")),
        "PASSWORD_RESET_MINUTES": int(env.get("PASSWORD_RESET_MINUTES", "60")),
        "PASSWORD_HASH_METHOD": env.get("PASSWORD_HASH_METHOD", "scrypt"),
        "LOGIN_MAX_FAILURES": int(env.get("LOGIN_MAX_FAILURES", "5")),
        "LOGIN_LOCK_MINUTES": int(env.get("LOGIN_LOCK_MINUTES", "15")),
        "OUTBOX_MAX_ATTEMPTS": int(env.get("OUTBOX_MAX_ATTEMPTS", "8")),
        "OUTBOX_BASE_DELAY_SECONDS": int(env.get("OUTBOX_BASE_DELAY_SECONDS", "30")),
        # How long the Twilio SDK waits for Twilio's API before the outbox retries.
        "TWILIO_TIMEOUT_SECONDS": float(env.get("TWILIO_TIMEOUT_SECONDS", "10")),
        # The cascade's automated calls: how many to each contact, and how far apart.
        "CASCADE_CALL_ATTEMPTS": int(env.get("CASCADE_CALL_ATTEMPTS", "2")),
        "CASCADE_CALL_RETRY_MINUTES": int(env.get("CASCADE_CALL_RETRY_MINUTES", "3")),
        "PROXY_FIX_HOPS": int(env.get("PROXY_FIX_HOPS", "1" if production else "0")),
    }
