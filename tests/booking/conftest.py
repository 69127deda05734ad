"""Fixtures for the marketplace tests: a real `localstripe` server on loopback.

localstripe (PyPI) imitates Stripe's API for PaymentIntents, charges, refunds and events.
It is started once per session, only when a test asks for it, on a free loopback port,
and stopped at the end. (Its own `start()` binds every interface, so we run its aiohttp
app ourselves on 127.0.0.1.)
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import stripe
from flask import Flask

_SERVER = (
    "import sys\n"
    "from aiohttp import web\n"
    "from localstripe.server import app\n"
    "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None)\n"
)
STRIPE_TEST_KEY = "sk_test_localstripe"
WEBHOOK_SECRET = "whsec_test_secret"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                requests.get(f"{url}/v1/charges", auth=(STRIPE_TEST_KEY, ""), timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.1)
        previous_base = stripe.api_base
        stripe.api_base = url
        try:
            yield url
        finally:
            stripe.api_base = previous_base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def stripe_config(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Switch the app to the Stripe backend (pointing nowhere until a test adds a base)."""
    values = {
        "PAYMENT_BACKEND": "stripe",
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "STRIPE_PUBLISHABLE_KEY": "pk_test_localstripe",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": "https://api.stripe.com",
        "STRIPE_MAX_NETWORK_RETRIES": 0,
        "STRIPE_TIMEOUT_SECONDS": 5,
        "OUTBOX_BASE_DELAY_SECONDS": 30,
    }
    for key, value in values.items():
        monkeypatch.setitem(app.config, key, value)
    return values


@pytest.fixture
def localstripe(
    app: Flask, stripe_config: dict[str, Any], localstripe_url: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The Stripe backend, talking to the local Stripe server."""
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", localstripe_url)
    return localstripe_url
