"""Jinja filters and globals: money and UK time are formatted here and only here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from flask import Flask, current_app
from flask_login import current_user

from app.clock import to_london
from app.money import format_pence
from app.security import csp_nonce

# Domains add values every page may use (e.g. the carer's live balance).
CONTEXT_PROVIDERS: list[Callable[[], dict[str, Any]]] = []


def context_provider(func: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    if func not in CONTEXT_PROVIDERS:
        CONTEXT_PROVIDERS.append(func)
    return func


def london_datetime(value: datetime | None, fmt: str = "%-d %B %Y at %-I:%M%p") -> str:
    if value is None:
        return ""
    text = to_london(value).strftime(fmt)
    return text.replace("AM", "am").replace("PM", "pm")


def london_date(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = to_london(value).date()
    return value.strftime("%-d %B %Y")


def london_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return to_london(value).strftime("%-I:%M%p").replace("AM", "am").replace("PM", "pm")


def register(app: Flask) -> None:
    app.add_template_filter(format_pence, "money")
    app.add_template_filter(london_datetime, "london_datetime")
    app.add_template_filter(london_date, "london_date")
    app.add_template_filter(london_time, "london_time")

    @app.context_processor
    def base_context() -> dict[str, Any]:
        values: dict[str, Any] = {
            "service_name": current_app.config["SERVICE_NAME"],
            "cspNonce": csp_nonce(),
        }
        if current_user and current_user.is_authenticated:
            for provider in CONTEXT_PROVIDERS:
                values.update(provider())
        return values
