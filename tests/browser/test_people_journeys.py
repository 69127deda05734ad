"""Journeys for the people around a carer, every page checked with axe-core (WCAG 2.2 AA),
at 400% zoom and by keyboard:

1. a council officer registers a new young carer (after one mistake), allocates their
   budget and finds it in the carers' balances;
2. a carer asks a friend to help with their breaks, sees them listed, and removes them.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.browser.support import check_page, sign_in, step

LONDON = ZoneInfo("Europe/London")


def submit(page: Any, name: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=name, exact=True).click()


def success_banner(page: Any) -> str:
    banner = page.locator(".govuk-notification-banner--success")
    assert banner.is_visible(), f"{page.url}: no success message"
    return str(banner.inner_text())


def test_officer_registers_a_young_carer(page: Any, live_server: str) -> None:
    email = f"young-{uuid.uuid4().hex[:8]}@example.org"
    with step(page, "officer-opens-register-a-carer"):
        sign_in(page, live_server, "officer@demo.example", staff=True)
        with page.expect_navigation():
            page.get_by_role("link", name="Register a carer").first.click()
        check_page(page)

    with step(page, "officer-makes-a-mistake"):
        page.fill("#name", "Robin Young")
        page.fill("#email", email)
        page.fill("#date_of_birth-day", "31")
        page.fill("#date_of_birth-month", "2")
        page.fill("#date_of_birth-year", "2011")
        submit(page, "Register this carer")
        summary = page.locator(".govuk-error-summary")
        assert "Enter the date of birth as numbers" in summary.inner_text()
        check_page(page)

    with step(page, "officer-registers-the-carer"):
        page.fill("#date_of_birth-day", "28")
        page.fill("#phone", "07911 123 456")
        page.fill("#postcode", "ls6 2ab")
        submit(page, "Register this carer")
        assert "/budgets/allocate" in page.url, page.url
        assert "Robin Young is registered" in success_banner(page)
        chosen = page.locator("#carer_id option:checked").inner_text()
        assert "Robin Young" in chosen
        check_page(page)

    with step(page, "officer-allocates-the-budget"):
        today = datetime.now(LONDON).date()
        ends = today + timedelta(days=364)
        page.get_by_role("radio", name="Direct payment", exact=True).check()
        for name, day in (("period_start", today), ("period_end", ends)):
            page.fill(f"#{name}-day", str(day.day))
            page.fill(f"#{name}-month", str(day.month))
            page.fill(f"#{name}-year", str(day.year))
        page.fill("#amount", "1234.50")
        page.fill("#reason", "Carer's assessment this week")
        submit(page, "Allocate budget")
        assert "The budget has been allocated" in success_banner(page)
        check_page(page)

    with step(page, "officer-sees-the-new-budget-in-the-balances"):
        with page.expect_navigation():
            page.get_by_role("link", name="Your dashboard").click()
        with page.expect_navigation():
            page.get_by_role("link", name="Budgets", exact=True).click()
        with page.expect_navigation():  # sort the balances by the carer's name
            page.get_by_role("link", name=re.compile(r"^Carer\b")).click()
        assert "sort=name" in page.url, page.url
        row = page.locator("tr", has_text="Robin Young")
        cells = [text.strip() for text in row.locator("td").all_inner_texts()]
        assert "Young carer" in cells[0]
        # Allocated, held, spent, available: the whole award is there to spend.
        assert cells[2:6] == ["£1,234.50", "£0.00", "£0.00", "£1,234.50"], cells
        assert ends.strftime("%-d %B %Y") in cells[6], cells
        check_page(page)


def test_carer_adds_and_removes_a_helper(page: Any, live_server: str) -> None:
    email = f"friend-{uuid.uuid4().hex[:8]}@example.org"
    with step(page, "carer-opens-people-who-can-help"):
        sign_in(page, live_server, "asha@demo.example")
        with page.expect_navigation():
            page.get_by_role("link", name="People who can help").click()
        check_page(page)

    with step(page, "carer-adds-a-friend"):
        page.fill("#name", "Dee Friend")
        page.fill("#email", email)
        submit(page, "Add this person")
        assert "Dee Friend can now book breaks for you" in success_banner(page)
        assert email in page.locator("main").inner_text()
        check_page(page)

    with step(page, "carer-removes-the-friend"):
        submit(page, "Remove Dee Friend")
        assert "Dee Friend can no longer act for you" in success_banner(page)
        assert email not in page.locator("main").inner_text()
        check_page(page)
