"""Journeys through the breaks marketplace, every page checked with axe-core (WCAG 2.2 AA)
and at 400% zoom:

1. a carer finds a worker, books a break (after one mistake on the form), sees the price
   held from their budget, cancels it and sees the money come back;
2. a worker, on a phone, publishes their week, accepts a carer's request and records
   yesterday's break (seeded by the demo as waiting for them) as done;
3. a new worker signs up and records their checks; a council officer approves them and
   raises a carer's budget, and sees the new figure in the carers' balances table.

The live server is shared with the other journeys (the emergency ones may book demo
workers for the next 72 hours), so each journey here books its own day, 8 or more days
ahead, with its own worker.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

from app.clock import london_today, utcnow
from app.demo import DEMO_PASSWORD
from tests.browser.support import check_page, sign_in, step

PHONE = {"width": 390, "height": 844}
MONEY = re.compile(r"-?£[\d,]+\.\d\d")


# --- small helpers ----------------------------------------------------------------------


def pence(text: str) -> int:
    """The first amount of money in `text` ("£1,234.50" -> 123450)."""
    match = MONEY.search(text)
    assert match is not None, f"no amount of money in {text!r}"
    amount = match.group(0)
    sign = -1 if amount.startswith("-") else 1
    return sign * int(amount.lstrip("-£").replace(",", "").replace(".", ""))


def available(page: Any) -> int:
    """The 'Available to spend' figure at the top of every carer page."""
    return pence(page.locator('.app-balance [data-figure="available"]').inner_text())


def day_ahead(days: int) -> date:
    return london_today(utcnow()) + timedelta(days=days)


def fill_date(page: Any, name: str, day: date) -> None:
    page.fill(f"#{name}-day", str(day.day))
    page.fill(f"#{name}-month", str(day.month))
    page.fill(f"#{name}-year", str(day.year))


def submit(page: Any, name: str) -> None:
    """Press a form's button and wait for the page it leads to."""
    with page.expect_navigation():
        page.get_by_role("button", name=name, exact=True).click()


def follow(page: Any, name: str) -> None:
    with page.expect_navigation():
        page.get_by_role("link", name=name, exact=True).click()


def row_value(scope: Any, key: str) -> str:
    """The value beside `key` in a GOV.UK summary list on a page or inside a card."""
    page = getattr(scope, "page", scope)  # a Locator knows its page; a Page is its own
    row = scope.locator(".govuk-summary-list__row").filter(
        has=page.locator("dt", has_text=re.compile(f"^\\s*{re.escape(key)}\\s*$"))
    )
    return str(row.locator("dd").first.inner_text())


def success_banner(page: Any) -> str:
    banner = page.locator(".govuk-notification-banner--success")
    assert banner.is_visible(), f"{page.url}: no success message"
    return str(banner.inner_text())


def booking_id_of(page: Any) -> int:
    match = re.search(r"/bookings/(\d+)$", page.url)
    assert match is not None, page.url
    return int(match.group(1))


def find_and_book(page: Any, *, day: date, start: str, end: str, worker: str) -> int:
    """From the dashboard, search for the slot, follow 'Book <worker>' and return the
    price the result showed."""
    follow(page, "Find a worker")
    check_page(page)
    fill_date(page, "day", day)
    page.fill("#start", start)
    page.fill("#end", end)
    page.fill("#postcode", "LS6 2AB")
    submit(page, "Find workers")
    check_page(page)
    card = page.locator(".govuk-summary-card").filter(
        has=page.get_by_role("heading", name=worker, exact=True)
    )
    assert card.count() == 1, f"{worker} is not in the results for {day} {start}-{end}"
    price = pence(row_value(card, "Price for this break"))
    with page.expect_navigation():
        card.get_by_role("link", name=f"Book {worker} for this time").click()
    check_page(page)
    assert page.input_value("#day-day") == str(day.day)
    assert page.input_value("#day-month") == str(day.month)
    assert page.input_value("#day-year") == str(day.year)
    assert page.input_value("#start") == start
    assert page.input_value("#end") == end
    assert page.input_value("#postcode") == "LS6 2AB"
    return price


# --- 1. the carer books and cancels -------------------------------------------------------


def test_carer_books_a_break_sees_the_hold_then_cancels(page: Any, live_server: str) -> None:
    day = day_ahead(8)
    with step(page, "carer-signs-in-and-reads-balance"):
        sign_in(page, live_server, "carer@demo.example")
        check_page(page)
        before = available(page)
        assert before > 0

    with step(page, "carer-finds-a-worker"):
        price = find_and_book(page, day=day, start="10:00", end="12:00", worker="Megan Hughes")
        assert price > 0

    with step(page, "carer-leaves-out-the-address"):
        page.fill("#address", "")
        page.fill("#start", "ten")
        submit(page, "Continue")
        summary = page.locator(".govuk-error-summary")
        assert summary.is_visible()
        assert page.title().startswith("Error:")
        page.wait_for_function(
            "() => document.activeElement && "
            "document.activeElement.classList.contains('govuk-error-summary')"
        )
        assert "Enter the address" in summary.inner_text()
        assert "Enter a time in 24-hour format" in summary.inner_text()
        check_page(page)
        summary.get_by_role("link", name="Enter the address").click()
        page.wait_for_function("() => document.activeElement.id === 'address'")

    with step(page, "carer-checks-price-and-balance-after"):
        page.fill("#address", "12 Demo Street, Leeds")
        page.fill("#start", "10:00")
        submit(page, "Continue")
        check_page(page)
        assert page.locator("h1").inner_text() == "Check your break before booking"
        assert row_value(page, "Worker") == "Megan Hughes"
        assert pence(row_value(page, "Price")) == price
        assert pence(row_value(page, "Left in the budget now")) == before
        assert pence(row_value(page, "Left after this break")) == before - price
        assert "Cancelling is free until" in page.inner_text("main")

    with step(page, "carer-sends-the-request-and-sees-the-hold"):
        submit(page, "Send the request")
        check_page(page)
        assert "Your request has been sent" in success_banner(page)
        assert "Requested" in page.inner_text("main")
        assert available(page) == before - price

    with step(page, "carer-reads-the-cancellation-policy"):
        follow(page, "Cancel this break")
        check_page(page)
        assert "Cancelling is free until" in page.inner_text("main")
        assert "All the money set aside for this break goes back" in page.inner_text("main")

    with step(page, "carer-cancels-and-gets-the-money-back"):
        page.fill("#reason", "Plans changed")
        submit(page, "Yes, cancel this break")
        check_page(page)
        assert "The break is cancelled." in success_banner(page)
        assert "Cancelled" in page.inner_text("main")
        assert available(page) == before


# --- 2. the worker publishes their week, accepts, and records a break -----------------------


def test_worker_publishes_week_accepts_a_request_and_records_a_break(
    page: Any, browser: Any, live_server: str
) -> None:
    page.set_viewport_size(PHONE)
    with step(page, "worker-signs-in-on-a-phone"):
        sign_in(page, live_server, "worker@demo.example")
        check_page(page)

    with step(page, "worker-publishes-their-week"):
        follow(page, "Your availability")
        check_page(page)
        for weekday in range(7):
            page.fill(f"#day{weekday}_start", "07:00")
            page.fill(f"#day{weekday}_end", "21:00")
        submit(page, "Save my week")
        check_page(page)
        assert "Your week is saved." in success_banner(page)
        assert page.input_value("#day2_start") == "07:00"
        assert page.input_value("#day6_end") == "21:00"

    # The carer, in their own browser, asks for an early start only the new week allows.
    day = day_ahead(9)
    carer_context = browser.new_context(viewport={"width": 1280, "height": 900})
    carer = carer_context.new_page()
    carer.set_default_timeout(10_000)
    try:
        with step(carer, "carer-requests-the-worker"):
            sign_in(carer, live_server, "carer@demo.example")
            check_page(carer)
            price = find_and_book(carer, day=day, start="07:00", end="09:00", worker="Priya Worker")
            carer.fill("#address", "12 Demo Street, Leeds")
            submit(carer, "Continue")
            check_page(carer)
            assert pence(row_value(carer, "Price")) == price
            submit(carer, "Send the request")
            check_page(carer)
            booking_id = booking_id_of(carer)
    finally:
        carer_context.close()

    with step(page, "worker-sees-the-request"):
        follow(page, "Your dashboard")
        check_page(page)
        follow(page, "Requests and bookings")
        check_page(page)
        card = page.locator(".govuk-summary-card").filter(
            has=page.locator(f'a[href="/bookings/{booking_id}"]')
        )
        assert card.count() == 1
        assert pence(card.inner_text()) == price

    with step(page, "worker-accepts"):
        with page.expect_navigation():
            card.get_by_role("button", name=re.compile("^Accept")).click()
        check_page(page)
        assert booking_id_of(page) == booking_id
        assert "You have accepted this break." in success_banner(page)
        assert "Confirmed" in page.inner_text("main")

    with step(page, "worker-opens-yesterdays-break"):
        follow(page, "Your dashboard")
        check_page(page)
        follow(page, "Requests and bookings")
        check_page(page)
        item = page.locator("li").filter(has_text="record it as done")
        assert item.count() == 1
        with page.expect_navigation():
            item.get_by_role("link").click()
        check_page(page)
        assert page.get_by_role("heading", name="Record the break as done").is_visible()

    with step(page, "worker-types-a-start-long-before-the-booking"):
        page.fill("#actual_start", "07:30")
        page.fill("#actual_end", "13:00")
        submit(page, "Record the break as done")
        check_page(page)
        summary = page.locator(".govuk-error-summary")
        assert "The start time is too long before the booked time" in summary.inner_text()
        page.wait_for_function(
            "() => document.activeElement.classList.contains('govuk-error-summary')"
        )

    with step(page, "worker-records-the-break"):
        page.fill("#actual_start", "10:05")
        page.fill("#actual_end", "13:00")
        submit(page, "Record the break as done")
        check_page(page)
        assert "The break is recorded as done." in success_banner(page)
        assert "Completed" in page.inner_text("main")
        assert "10:05" in row_value(page, "Actual time")


# --- 3. the council officer vets a new worker and raises a budget ---------------------------


def test_officer_approves_a_new_worker_and_raises_a_budget(page: Any, live_server: str) -> None:
    email = f"dana-{uuid.uuid4().hex[:8]}@example.org"
    with step(page, "new-worker-signs-up"):
        page.goto(live_server + "/workers/sign-up")
        check_page(page)
        page.select_option("#council", label="Demo City Council")
        page.fill("#name", "Dana Newworker")
        page.fill("#email", email)
        page.fill("#phone", "07911 123 457")  # 07700 900 xxx (drama) is refused
        page.fill("#postcode", "LS6 1AA")
        page.fill("#password", DEMO_PASSWORD)
        submit(page, "Create my account")
        check_page(page)
        assert "Your account is ready" in success_banner(page)

    with step(page, "new-worker-records-checks"):
        sign_in(page, live_server, email)
        follow(page, "Your profile")
        check_page(page)
        follow(page, "Checks")
        check_page(page)
        issued = london_today(utcnow()) - timedelta(days=30)
        expires = issued + timedelta(days=365)
        checks = [
            ("dbs_enhanced", "001234567890", None),
            ("right_to_work", "Passport seen", None),
            ("insurance", "POL-123", expires),
            ("training_moving_handling", "MH-1", None),
            ("training_first_aid", "FA-1", expires),
            ("training_safeguarding", "SG-1", None),
            ("reference", "Jo Referee, Leeds Care", None),
            ("reference", "Ali Referee, Otley Day Centre", None),
        ]
        for kind, reference, expiry in checks:
            page.select_option("#kind", kind)
            page.fill("#reference", reference)
            fill_date(page, "issued_on", issued)
            if expiry is not None:
                fill_date(page, "expires_on", expiry)
            submit(page, "Save check")
            assert "The check is saved." in success_banner(page)
            check_page(page)
        assert "Every check is in date." in page.inner_text("main")
        submit(page, "Sign out")
        assert "You have signed out" in page.inner_text("body")
        check_page(page)

    with step(page, "officer-opens-the-vetting-queue"):
        sign_in(page, live_server, "officer@demo.example", staff=True)
        check_page(page)
        follow(page, "Vetting queue")
        check_page(page)
        row = page.locator("tr").filter(has_text="Dana Newworker")
        assert "Pending" in row.inner_text()
        assert "All in date" in row.inner_text()

    with step(page, "officer-approves-the-worker"):
        follow(page, "Dana Newworker")
        check_page(page)
        page.get_by_label("Approve for two years").check()
        page.fill("#reason", "DBS, references and training all seen")
        submit(page, "Record decision")
        check_page(page)
        assert "The decision is recorded." in success_banner(page)
        assert row_value(page, "Status") == "Approved"

    with step(page, "officer-opens-a-carers-budget"):
        follow(page, "Back to the vetting queue")
        check_page(page)
        follow(page, "Your dashboard")
        check_page(page)
        follow(page, "Budgets")
        check_page(page)
        row = page.locator("tbody tr").filter(has_text="Asha Patel")
        before = pence(row.locator("td").nth(5).inner_text())
        with page.expect_navigation():
            row.get_by_role("link", name=re.compile("^View or change")).click()
        check_page(page)

    with step(page, "officer-forgets-the-reason"):
        page.get_by_label("Raise it").check()
        page.fill("#amount", "50.00")
        submit(page, "Save the change")
        check_page(page)
        summary = page.locator(".govuk-error-summary")
        assert "Enter the reason for the change" in summary.inner_text()
        assert "Choose what the change is based on" in summary.inner_text()
        assert summary.locator('a[href="#reason"]').count() == 1
        page.wait_for_function(
            "() => document.activeElement.classList.contains('govuk-error-summary')"
        )

    with step(page, "officer-raises-the-budget"):
        page.get_by_label("A new assessment of needs").check()
        page.fill("#reason", "Reassessment: more evening breaks needed")
        submit(page, "Save the change")
        check_page(page)
        assert "The budget has been changed." in success_banner(page)
        assert "Reassessment: more evening breaks needed" in page.inner_text("main")

    with step(page, "officer-sees-the-new-balance"):
        follow(page, "Your dashboard")
        check_page(page)
        follow(page, "Budgets")
        check_page(page)
        row = page.locator("tbody tr").filter(has_text="Asha Patel")
        assert pence(row.locator("td").nth(5).inner_text()) == before + 5000
