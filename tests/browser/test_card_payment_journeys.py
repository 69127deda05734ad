"""A card top-up when Stripe's script cannot load (a firewall, an ad blocker, Stripe
down): a carer whose budget is nearly spent books a break, chooses to pay the difference
by card, and lands on the card page. js.stripe.com is blocked in the browser, so the
page must say plainly that card payments are not working and what to do, and must not
show a card form that cannot work. Checked with axe-core (WCAG 2.2 AA), at 400% zoom and
by keyboard.

The app runs its Stripe backend (card top-ups on), on its own live server: its Stripe
API is a closed local port and nothing leaves the machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, start_server
from tests.browser.server import SHORT_BUDGET_CARER
from tests.browser.support import check_page, sign_in, step
from tests.browser.test_marketplace_journeys import available, day_ahead, find_and_book, submit

STRIPE_JS = re.compile(r"^https://js\.stripe\.com/")


def visible(locator: Any) -> int:
    return sum(1 for item in locator.all() if item.is_visible())


@pytest.fixture(scope="module")
def stripe_live_server() -> Iterator[LiveServer]:
    yield from start_server("stripe")


def test_carer_is_told_card_payments_are_not_working_when_stripe_cannot_load(
    page: Any, stripe_live_server: str
) -> None:
    blocked: list[str] = []

    def block(route: Any) -> None:
        blocked.append(route.request.url)
        route.abort()

    page.route(STRIPE_JS, block)

    with step(page, "short-carer-signs-in"):
        sign_in(page, stripe_live_server, SHORT_BUDGET_CARER)
        left = available(page)
        assert 0 < left < 3000, left

    with step(page, "short-carer-books-more-than-the-budget"):
        price = find_and_book(
            page, day=day_ahead(9), start="14:00", end="16:00", worker="Megan Hughes"
        )
        assert price > left
        page.fill("#address", "3 Short Street, Leeds")
        submit(page, "Continue")
        assert "Check your break" in page.title(), page.title()
        top_up = page.get_by_role("checkbox", name=re.compile(r"by card"))
        assert top_up.is_visible()
        check_page(page)

    with step(page, "short-carer-chooses-to-pay-the-rest-by-card"):
        top_up.check()
        submit(page, "Send the request")
        assert re.search(r"/payments/bookings/\d+/card$", page.url), page.url

    with step(page, "short-carer-is-told-card-payments-are-not-working"):
        assert blocked, "the page never asked for Stripe's script"
        main = page.locator("main")
        message = main.get_by_text(re.compile(r"could not load", re.IGNORECASE))
        message.wait_for(state="visible")
        text = message.inner_text()
        assert "carers team" in text, text  # and who can help
        # No card form that cannot work: no card box, no button to pay.
        assert visible(main.get_by_role("button", name=re.compile(r"card", re.IGNORECASE))) == 0
        assert visible(main.get_by_label(re.compile(r"card number", re.IGNORECASE))) == 0
        check_page(page)
