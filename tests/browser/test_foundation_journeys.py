"""Journeys through the shared pages: the start page, signing in by keyboard (carer, and
staff with the second factor), the dashboard, and signing out."""

from __future__ import annotations

from typing import Any

from tests.browser.support import check_page, sign_in, step


def test_start_page_is_accessible(page: Any, live_server: str) -> None:
    with step(page, "start-page"):
        page.goto(live_server + "/")
        assert page.locator("h1").inner_text().startswith("Get a short break")
        check_page(page)


def test_carer_signs_in_sees_dashboard_and_signs_out(page: Any, live_server: str) -> None:
    with step(page, "carer-sign-in"):
        sign_in(page, live_server, "carer@demo.example")
        check_page(page)
        assert "Sam Carer" in page.inner_text("body")
    with step(page, "carer-sign-out"):
        with page.expect_navigation():
            page.get_by_role("button", name="Sign out").click()
        assert "You have signed out" in page.inner_text("body")
        check_page(page)


def test_operator_signs_in_with_second_factor(page: Any, live_server: str) -> None:
    with step(page, "operator-sign-in"):
        sign_in(page, live_server, "operator@demo.example", staff=True)
        check_page(page)


def test_bad_sign_in_shows_error_summary_and_focuses_it(page: Any, live_server: str) -> None:
    with step(page, "bad-sign-in"):
        page.goto(live_server + "/auth/sign-in")
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        summary = page.locator(".govuk-error-summary")
        assert summary.is_visible()
        assert "Enter your email address" in summary.inner_text()
        check_page(page)


def test_the_checks_catch_real_problems(page: Any) -> None:
    """The accessibility and reflow checks fail on a page that breaks the rules."""
    import pytest

    from tests.browser.support import check_accessible, check_reflows_at_400_percent

    page.set_content(
        '<html lang="en"><body><main><img src="x.png"><input type="text"></main></body></html>'
    )
    with pytest.raises(AssertionError, match="image-alt"):
        check_accessible(page)
    page.set_content('<html lang="en"><body><div style="width:2000px">wide</div></body></html>')
    with pytest.raises(AssertionError, match="scrolls sideways"):
        check_reflows_at_400_percent(page)
