"""What every journey does: sign in, check a page with axe-core at WCAG 2.2 AA, check it
works at 400% zoom and by keyboard, and save a screenshot when a step fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyotp

from app.demo import DEMO_PASSWORD, DEMO_TOTP_SECRET

ARTIFACTS = Path(__file__).parent / "artifacts"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]


@contextmanager
def step(page: Any, name: str) -> Iterator[None]:
    """Name a step of a journey; on failure keep a screenshot of it."""
    try:
        yield
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        raise


def check_accessible(page: Any) -> None:
    """Zero axe-core violations at WCAG 2.2 AA on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page,
        options={"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]},
    )
    violations = results.response["violations"]
    summary = [
        f"{v['id']}: {v['help']} ({', '.join(n['target'][0] for n in v['nodes'][:3])})"
        for v in violations
    ]
    assert not summary, f"{page.url}: " + "; ".join(summary)


def check_reflows_at_400_percent(page: Any) -> None:
    """WCAG 1.4.10: at 400% zoom (a 320 CSS px wide viewport) nothing scrolls sideways."""
    size = page.viewport_size
    page.set_viewport_size({"width": 320, "height": 256})
    try:
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{page.url} scrolls sideways by {overflow}px at 400% zoom"
    finally:
        page.set_viewport_size(size)


def check_page(page: Any) -> None:
    check_accessible(page)
    check_reflows_at_400_percent(page)


def sign_in(page: Any, base_url: str, email: str, *, staff: bool = False) -> None:
    """Sign in by keyboard only, as someone not using a mouse would."""
    page.goto(f"{base_url}/auth/sign-in")
    check_page(page)
    page.keyboard.press("Tab")  # skip link first
    focused = page.evaluate("() => document.activeElement.className")
    assert "govuk-skip-link" in focused
    page.fill("#email", email)
    page.focus("#password")
    page.keyboard.type(DEMO_PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    if staff:
        check_page(page)
        page.fill("#code", pyotp.TOTP(DEMO_TOTP_SECRET).now())
        with page.expect_navigation():
            page.keyboard.press("Enter")
    assert "/dashboard" in page.url, page.url
