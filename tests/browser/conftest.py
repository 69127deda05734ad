"""Browser journeys: Playwright drives Debian's chromium (never a downloaded browser)
against the real app served on loopback. A failing step leaves a screenshot in
tests/browser/artifacts/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


class LiveServer(str):
    """The app's base URL, and what `flask demo seed` printed when it started."""

    seed_lines: list[str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(*options: str) -> Iterator[LiveServer]:
    """Serve the app (`tests.browser.server`, with `options`) until the generator ends."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is not installed: .ci/run installs it with apt-get (apt-get install chromium)"
        )
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="carers-browser-")
    log_file = open(os.path.join(tmp, "server.log"), "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.browser.server",
            str(port),
            os.path.join(tmp, "browser.db"),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    seed_lines: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("seed: "):
            seed_lines.append(line[len("seed: ") :].rstrip("\n"))
            continue
        if "ready" in line or process.poll() is not None:
            break
    if "ready" not in line:
        process.kill()
        process.wait()
        process.stdout.close()
        log_file.close()
        log = Path(tmp, "server.log").read_text()[-3000:]
        pytest.fail(f"the app did not start for browser tests:\n{log}")
    server = LiveServer(f"http://127.0.0.1:{port}")
    server.seed_lines = seed_lines
    yield server
    process.terminate()
    process.wait(timeout=10)
    process.stdout.close()
    log_file.close()


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    yield from start_server()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
