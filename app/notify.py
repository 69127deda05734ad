"""Notification backends, picked by config (`NOTIFY_BACKEND`): `log` works offline and is
the default; `twilio` sends real SMS and calls. The outbox is the only caller."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("notify")


class DeliveryError(Exception):
    """The provider refused or could not be reached; the outbox will retry."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class Sent:
    provider_ref: str | None = None
    status: str = "sent"


class Notifier(Protocol):
    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Sent: ...

    def send_email(self, to: str, subject: str, body: str) -> Sent: ...

    def place_call(
        self,
        to: str,
        *,
        twiml_url: str,
        status_callback: str | None = None,
        machine_detection: bool = True,
    ) -> Sent: ...


class LogNotifier:
    """Writes each message to the log; the staff outbox page shows them too."""

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Sent:
        log.info("SMS to %s: %s", to, body)
        return Sent(provider_ref=None, status="logged")

    def send_email(self, to: str, subject: str, body: str) -> Sent:
        log.info("E-mail to %s: %s\n%s", to, subject, body)
        return Sent(provider_ref=None, status="logged")

    def place_call(
        self,
        to: str,
        *,
        twiml_url: str,
        status_callback: str | None = None,
        machine_detection: bool = True,
    ) -> Sent:
        log.info("Call to %s using %s", to, twiml_url)
        return Sent(provider_ref=None, status="logged")


_BACKENDS: dict[str, Any] = {"log": lambda config: LogNotifier()}


def register_backend(name: str, factory: Any) -> None:
    """Let a package add a backend (the Twilio one lives with the phone line)."""
    _BACKENDS[name] = factory


def make_notifier(config: dict[str, Any]) -> Notifier:
    name = config.get("NOTIFY_BACKEND", "log")
    if name not in _BACKENDS:
        raise ValueError(f"Unknown NOTIFY_BACKEND {name!r}; choose one of {sorted(_BACKENDS)}")
    notifier: Notifier = _BACKENDS[name](config)
    return notifier


def status_callback_base(config: Mapping[str, Any]) -> str:
    """The public address Twilio sends delivery reports to: its own setting when a
    deployment routes callbacks elsewhere (a separate webhook host), else the site's."""
    return str(config.get("TWILIO_STATUS_CALLBACK_BASE_URL") or config["PUBLIC_BASE_URL"]).rstrip(
        "/"
    )


def status_callback_url(config: Mapping[str, Any], *, outbox_id: int | None = None) -> str:
    """Where Twilio reports on one message. With `outbox_id` the report names our own
    row, so it is matched even when it arrives before the row has saved Twilio's SID
    (Twilio signs the whole URL, query included)."""
    url = f"{status_callback_base(config)}/twilio/status"
    return url if outbox_id is None else f"{url}?outbox={outbox_id}"
