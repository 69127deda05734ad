"""The Twilio notification backend (`NOTIFY_BACKEND=twilio`) and the signature check for
Twilio's webhooks.

Only the outbox calls `TwilioNotifier`, from the `deliver_outbox` job, never from inside a
web request: a Twilio outage delays a message and loses none. Errors are sorted into
permanent ones (an invalid or unreachable number: retrying cannot help, the row goes
`dead` and shows on the staff outbox page) and retryable ones (5xx, 429, timeouts,
connection failures, a bad auth token that staff can fix).

`twilio_signed` protects every Twilio webhook. Twilio signs the exact URL it requested
(scheme, host, path and query) plus the POSTed form fields with the account's auth token.
We check the signature against `PUBLIC_BASE_URL` + path + query, the address Twilio is
configured with. Behind a reverse proxy (`PROXY_FIX_HOPS` > 0) werkzeug's `ProxyFix`,
installed by `create_app` with that many hops, rewrites the request's scheme and host
from `X-Forwarded-Proto`/`X-Forwarded-Host`; only then is the URL the proxy reports also
accepted, so a TLS-terminating proxy or a second public host name works. With
`PROXY_FIX_HOPS=0` the Host header is not trusted and only `PUBLIC_BASE_URL` counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, Literal, TypeVar, cast

import requests
from flask import abort, current_app, request
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from app.notify import (
    DeliveryError,
    LogNotifier,
    Sent,
    register_backend,
    status_callback_base,
)
from app.security import public

log = logging.getLogger("notify.twilio")

F = TypeVar("F", bound=Callable[..., Any])

# Twilio error codes that mean "this number can never receive this": retrying is pointless.
# https://www.twilio.com/docs/api/errors
PERMANENT_ERROR_CODES = frozenset(
    {
        21211,  # invalid 'To' phone number
        21214,  # 'To' number cannot be reached
        21217,  # phone number does not appear to be valid
        21219,  # 'To' number not verified (trial account)
        21401,  # invalid phone number
        21407,  # this phone number type does not support SMS
        21408,  # permission to send to this region is not enabled
        21421,  # phone number is invalid
        21606,  # 'From' number is not a valid SMS-capable number
        21610,  # the recipient has replied STOP
        21612,  # cannot route to this number
        21614,  # 'To' number is not a valid mobile number
        13223,  # dial: invalid phone number format
        13224,  # dial: invalid phone number
    }
)
# Statuses worth another try: rate limited, or Twilio (or our credentials) misbehaving.
RETRYABLE_STATUSES = frozenset({401, 403, 408, 409, 429})

CALL_PROGRESS_EVENTS = ["initiated", "ringing", "answered", "completed"]


class TwilioNotifier:
    """Sends SMS and places calls through Twilio's REST API (the `twilio` SDK).

    E-mail is not Twilio's business: it goes to the log, as with the default backend.
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str = "",
        messaging_service_sid: str = "",
        timeout_seconds: float = 10.0,
        client: Client | None = None,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set.")
        if not from_number and not messaging_service_sid:
            raise ValueError("Set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID.")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.client = client or Client(
            account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_seconds)
        )
        self._email = LogNotifier()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TwilioNotifier:
        return cls(
            account_sid=config.get("TWILIO_ACCOUNT_SID", ""),
            auth_token=config.get("TWILIO_AUTH_TOKEN", ""),
            from_number=config.get("TWILIO_FROM_NUMBER", ""),
            messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID", ""),
            timeout_seconds=float(config.get("TWILIO_TIMEOUT_SECONDS", 10)),
        )

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Sent:
        """Send one SMS; a messaging service, when configured, picks the sender."""
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        else:
            kwargs["from_"] = self.from_number
        if status_callback:
            kwargs["status_callback"] = status_callback
        with _translated_errors("SMS"):
            message = self.client.messages.create(**kwargs)
        return Sent(provider_ref=message.sid, status=str(message.status or "queued"))

    def send_email(self, to: str, subject: str, body: str) -> Sent:
        return self._email.send_email(to, subject, body)

    def place_call(
        self,
        to: str,
        *,
        twiml_url: str,
        status_callback: str | None = None,
        machine_detection: bool = True,
    ) -> Sent:
        """Place a call that fetches its TwiML from `twiml_url` when answered.

        With `machine_detection`, Twilio tells us `AnsweredBy` (human or machine_*) so a
        voicemail greeting is never mistaken for a person.
        """
        if not self.from_number:
            raise DeliveryError("Calls need TWILIO_FROM_NUMBER.", permanent=True)
        kwargs: dict[str, Any] = {
            "to": to,
            "from_": self.from_number,
            "url": twiml_url,
            "method": "POST",
        }
        if status_callback:
            kwargs["status_callback"] = status_callback
            kwargs["status_callback_method"] = "POST"
            kwargs["status_callback_event"] = CALL_PROGRESS_EVENTS
        if machine_detection:
            kwargs["machine_detection"] = "Enable"
        with _translated_errors("call"):
            call = self.client.calls.create(**kwargs)
        return Sent(provider_ref=call.sid, status=str(call.status or "queued"))


class _translated_errors:  # noqa: N801  (used as a `with` block, reads like one)
    """Turn whatever the SDK or `requests` raises into a `DeliveryError` for the outbox."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, DeliveryError):
            return False
        if isinstance(exc, TwilioRestException):
            permanent = exc.code in PERMANENT_ERROR_CODES or (
                400 <= exc.status < 500 and exc.status not in RETRYABLE_STATUSES
            )
            raise DeliveryError(
                f"Twilio refused the {self.what} (HTTP {exc.status}, code {exc.code}): {exc.msg}",
                permanent=permanent,
            ) from exc
        if isinstance(exc, requests.RequestException | TwilioException):
            raise DeliveryError(
                f"Twilio could not be reached for the {self.what}: {type(exc).__name__}"
            ) from exc
        return False


def _factory(config: dict[str, Any]) -> TwilioNotifier:
    return TwilioNotifier.from_config(config)


register_backend("twilio", _factory)


def signed_url_candidates() -> list[str]:
    """The URLs Twilio may have signed for the current request (see the module docstring)."""
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    query = request.query_string.decode("utf-8")
    suffix = request.path + (f"?{query}" if query else "")
    candidates = [f"{base}{suffix}"]
    callback_base = status_callback_base(current_app.config)
    if callback_base != base:
        candidates.append(f"{callback_base}{suffix}")
    if int(current_app.config.get("PROXY_FIX_HOPS", 0) or 0) > 0:
        # ProxyFix has already rewritten scheme and host from the trusted proxy headers.
        candidates.append(request.url)
    return candidates


def request_is_from_twilio() -> bool:
    """True only when `X-Twilio-Signature` matches this request's URL and form fields."""
    token = str(current_app.config.get("TWILIO_AUTH_TOKEN") or "")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    validator = RequestValidator(token)
    return any(validator.validate(url, request.form, signature) for url in signed_url_candidates())


def twilio_signed(view: F) -> F:
    """Refuse (403) any request that Twilio did not sign; mark the webhook public."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not request_is_from_twilio():
            log.warning("refused an unsigned or wrongly signed request to %s", request.path)
            abort(403)
        return view(*args, **kwargs)

    return public(cast(F, wrapped))
