"""What every journey does: sign in, check a page with axe-core at WCAG 2.2 AA, check it
works at 400% zoom and by keyboard, and save a screenshot when a step fails."""

from __future__ import annotations

import time
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


KEYBOARD_TARGETS = """() => {
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
      && style.display !== 'none' && !el.closest('[hidden], [inert]');
  };
  const seenGroups = new Set();
  let n = 0;
  for (const el of document.querySelectorAll(
    'a[href], button, input, select, textarea, summary, [tabindex]'
  )) {
    if (el.disabled || el.tabIndex < 0 || el.type === 'hidden') continue;
    if (!visible(el) && !el.classList.contains('govuk-skip-link')) continue;
    if (el.type === 'radio') {  // Tab reaches one radio per group; arrows move inside it
      if (seenGroups.has(el.name)) continue;
      seenGroups.add(el.name);
      el.dataset.kbdGroup = el.name;
    }
    el.dataset.kbdTarget = String(n++);
  }
  return n;
}"""

KEYBOARD_MARK = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  if (el.type === 'radio') {
    const first = document.querySelector(`[data-kbd-group="${CSS.escape(el.name)}"]`);
    if (first) first.dataset.kbdReached = '1';
  }
  el.dataset.kbdReached = '1';
  return el.dataset.kbdTarget ?? null;
}"""


FOCUS_TOP = """() => {
  window.scrollTo(0, 0);
  document.body.tabIndex = -1;
  document.body.focus();
  document.body.removeAttribute('tabindex');
}"""


RESTORE_FOCUS = """() => {
  const was = document.querySelector('[data-kbd-was-focused]');
  if (was) {
    delete was.dataset.kbdWasFocused;
    if (!was.hasAttribute('tabindex') && was.tabIndex < 0) was.setAttribute('tabindex', '-1');
    was.focus({ preventScroll: true });
  } else {
    window.scrollTo(0, 0);
    document.body.tabIndex = -1;
    document.body.focus();
    document.body.removeAttribute('tabindex');
  }
}"""


def check_keyboard_reaches_everything(page: Any) -> None:
    """WCAG 2.1.1: pressing Tab from the top reaches every link, button and field on the
    page (one radio per group), with nothing that traps focus on the way."""
    page.evaluate(
        "() => { if (document.activeElement && document.activeElement !== document.body)"
        " document.activeElement.dataset.kbdWasFocused = '1'; }"
    )
    targets = page.evaluate(KEYBOARD_TARGETS)
    page.evaluate(FOCUS_TOP)
    for _ in range(targets + 3):
        page.keyboard.press("Tab")
        page.evaluate(KEYBOARD_MARK)
    missed = page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-kbd-target]'))
             .filter((el) => !el.dataset.kbdReached)
             .map((el) => el.outerHTML.slice(0, 120))"""
    )
    page.evaluate(RESTORE_FOCUS)  # leave focus where the page put it (an error summary)
    assert not missed, f"{page.url}: Tab never reaches {missed}"


def check_page(page: Any) -> None:
    check_accessible(page)
    check_reflows_at_400_percent(page)
    check_keyboard_reaches_everything(page)


_LAST_TOTP_STEP: dict[str, int] = {}


def _unused_totp_code(email: str) -> str:
    """The service accepts each code once per person, so a second sign-in in the same
    30 seconds uses the next window's code (allowed for clock drift), or waits for it."""
    while True:
        current = int(time.time()) // 30
        step_ = max(current, _LAST_TOTP_STEP.get(email, -1) + 1)
        if step_ <= current + 1:
            break
        time.sleep(30 - time.time() % 30)
    _LAST_TOTP_STEP[email] = step_
    return pyotp.TOTP(DEMO_TOTP_SECRET).at(step_ * 30)


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
        page.fill("#code", _unused_totp_code(email))
        with page.expect_navigation():
            page.keyboard.press("Enter")
    assert "/dashboard" in page.url, page.url
    check_page(page)  # every journey's first page: the dashboard of the person signed in
