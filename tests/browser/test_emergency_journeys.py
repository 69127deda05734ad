"""Journeys through the emergency card service, every page checked with axe-core (WCAG 2.2
AA) and at 400% zoom:

1. a plan writer makes a plan for the demo young carer (after one mistake on the first
   page, followed from the error summary to the field), checks the answers, saves it,
   issues a card, sees the PIN once and downloads the wallet card;
2. an operator types a mistyped PIN, then the demo card's real PIN, by keyboard alone;
   sees the plan in the order they need it; adds a note, starts the contact cascade,
   books (by keyboard) the worker seeded as free now near the address, records that
   care arrived and closes the incident with an outcome;
3. the operators' list of open incidents updates itself when a call opens one; a council
   officer searches the audit log and finds the PIN lookup and the plan view.

The live server is shared with the marketplace journeys; the emergency booking here is
for the next hours, and those journeys book 8 or more days ahead.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.server import STANDBY_WORKER
from tests.browser.support import check_page, sign_in, step

PIN_LINE = re.compile(r"Emergency card PIN for Sam Carer: (\d{8})")


def submit(page: Any, name: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=name, exact=True).click()


def success_banner(page: Any) -> str:
    banner = page.locator(".govuk-notification-banner--success")
    assert banner.is_visible(), f"{page.url}: no success message"
    return str(banner.inner_text())


@pytest.fixture
def demo_pin(live_server: Any) -> str:
    """The demo card's PIN, as `flask demo seed` printed it when the server started."""
    for line in live_server.seed_lines:
        found = PIN_LINE.search(line)
        if found:
            return found.group(1)
    raise AssertionError(f"the demo seed printed no PIN: {live_server.seed_lines}")


def mistyped(pin: str) -> str:
    """The PIN with its last digit changed, so the check digit no longer fits."""
    return pin[:-1] + str((int(pin[-1]) + 1) % 10)


def test_plan_writer_makes_a_plan_and_issues_a_card(page: Any, live_server: str) -> None:
    with step(page, "plan-writer-signs-in"):
        sign_in(page, live_server, "planwriter@demo.example", staff=True)

    with step(page, "plan-writer-starts-a-plan"):
        with page.expect_navigation():  # from the dashboard sign-in lands on
            page.get_by_role("link", name="Start a new plan").click()
        assert page.url.endswith("/emergency/plans/new"), page.url
        check_page(page)
        submit(page, "Start now")
        assert page.url.endswith("/person"), page.url
        check_page(page)

    with step(page, "plan-writer-mistake-on-the-first-page"):
        submit(page, "Continue")
        summary = page.locator(".govuk-error-summary")
        assert summary.is_visible()
        assert page.title().startswith("Error:")
        check_page(page)
        link = summary.locator("a", has_text=re.compile("name", re.IGNORECASE)).first
        link.click()
        assert page.evaluate("() => document.activeElement.id") == "name"

    with step(page, "plan-writer-person"):
        jordan = page.locator("#carer_id option", has_text="Jordan Lee").get_attribute("value")
        page.select_option("#carer_id", value=jordan)
        page.fill("#name", "Grace Lee")
        page.fill("#date_of_birth", "14 6 1952")
        page.fill("#address", "7 Hyde Park Road, Leeds")
        page.fill("#postcode", "ls6 1ab")
        page.fill("#safe_alone", "Not for more than an hour")
        submit(page, "Continue")
        assert page.url.endswith("/access"), page.url
        check_page(page)

    pages: list[tuple[str, dict[str, str], list[str]]] = [
        (
            "access",
            {"#key_safe_code": "2468", "#key_safe_location": "Behind the gate"},
            [],
        ),
        (
            "needs",
            {"#personal_care": "Help to wash", "#behaviour": "Anxious at night; radio helps"},
            [],
        ),
        (
            "medication",
            {
                "#med1_name": "Metformin",
                "#med1_dose": "500 mg",
                "#med1_times": "8am and 6pm",
                "#allergies": "None known",
            },
            [],
        ),
        (
            "contacts",
            {
                "#c1_name": "Sean Lee",
                "#c1_relationship": "Son",
                "#c1_phone": "07911 123 456",
            },
            ["#c1_can_step_in", "#c1_consent"],
        ),
        ("care", {"#arrangements": "Home care in the evenings"}, []),
        (
            "consent",
            {"#recorded_by": "Rita Planwriter", "#recorded_on": "20 11 2026"},
            ["#carer", "#cared_for"],
        ),
    ]
    for name, fields, ticks in pages:
        with step(page, f"plan-writer-{name}"):
            assert f"/{name}" in page.url, page.url
            for selector, value in fields.items():
                page.fill(selector, value)
            for selector in ticks:
                page.check(selector)
            submit(page, "Continue")
            check_page(page)

    with step(page, "plan-writer-checks-and-saves"):
        assert page.url.endswith("/check"), page.url
        body = page.locator("main").inner_text()
        for answer in ("Grace Lee", "Sean Lee", "Metformin", "Anxious at night"):
            assert answer in body
        assert "2468" not in body  # the key-safe code is never shown back
        submit(page, "Save the plan")
        assert re.search(r"/emergency/plans/\d+$", page.url), page.url
        assert "saved as version 1" in success_banner(page)
        check_page(page)

    with step(page, "plan-writer-issues-a-card"):
        submit(page, "Issue a new card")
        check_page(page)
        panel = page.locator(".govuk-panel").inner_text()
        pin = re.sub(r"\D", "", panel.split("PIN", 1)[1])
        assert len(pin) == 8
        assert "only time the PIN is shown" in page.locator("main").inner_text()

    with step(page, "plan-writer-downloads-the-wallet-card"):
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download the wallet card (PDF)").click()
        download = download_info.value
        assert download.suggested_filename.endswith(".pdf")
        with open(download.path(), "rb") as pdf:
            assert pdf.read(5) == b"%PDF-"

    with step(page, "plan-writer-sees-the-card-without-its-pin"):
        page.get_by_role("link", name="Back to the plan").click()
        page.wait_for_url(re.compile(r"/emergency/plans/\d+$"))
        assert pin not in page.content()
        assert "Live" in page.get_by_role("table", name="Cards").inner_text()
        check_page(page)


def test_operator_looks_up_a_pin_and_runs_an_incident(
    page: Any, live_server: str, demo_pin: str
) -> None:
    with step(page, "operator-signs-in"):
        sign_in(page, live_server, "operator@demo.example", staff=True)

    with step(page, "operator-mistypes-the-pin"):
        page.goto(f"{live_server}/emergency/console")
        check_page(page)
        page.fill("#pin", mistyped(demo_pin))
        with page.expect_navigation():
            page.keyboard.press("Enter")
        summary = page.locator(".govuk-error-summary")
        assert summary.is_visible()
        assert "mistyped" in summary.inner_text()
        check_page(page)

    with step(page, "operator-types-the-pin-by-keyboard"):
        page.fill("#pin", "")
        for _ in range(40):  # from the top of the page to the PIN box by Tab alone
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.id") == "pin":
                break
        assert page.evaluate("() => document.activeElement.id") == "pin"
        page.keyboard.type(f"{demo_pin[:4]} {demo_pin[4:]}")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert re.search(r"/emergency/incidents/\d+$", page.url), page.url
        assert page.get_by_role("heading", level=1).inner_text().endswith(": open")
        check_page(page)

    with step(page, "operator-sees-the-plan-in-order"):
        text = page.locator("main").inner_text()
        headings = ["Who is at risk now", "How to get in", "Medication", "Who to call, in order"]
        positions = [text.index(heading) for heading in headings]
        assert positions == sorted(positions)
        assert "Margaret Carer" in text
        assert "4321" not in text  # the key-safe code stays locked until asked for

    with step(page, "operator-adds-a-note"):
        page.fill("#text", "Caller is the neighbour at number 14; carer taken to hospital")
        submit(page, "Add to the timeline")
        assert "taken to hospital" in page.locator("main").inner_text()
        check_page(page)

    with step(page, "operator-starts-the-cascade"):
        submit(page, "Start contacting the plan's contacts")
        text = page.locator("main").inner_text()
        assert "Helen Carer" in text
        assert "Contacting: running" in text
        check_page(page)

    with step(page, "operator-books-replacement-care"):
        standby = page.get_by_role("radio", name=STANDBY_WORKER)
        hint = page.locator(f"#{standby.get_attribute('id')}-hint").inner_text()
        assert hint.startswith("Free now"), hint
        standby.focus()  # choose by keyboard: Space selects the focused radio
        page.keyboard.press("Space")
        assert standby.is_checked()
        submit(page, "Book this worker")
        text = page.locator("main").inner_text()
        assert re.search(r"Arranged \d{1,2}:\d\d[ap]m \(booking \d+\)", text), text
        assert STANDBY_WORKER in text, text
        check_page(page)

    with step(page, "operator-records-care-arrived"):
        submit(page, "The care worker has arrived")
        assert "care arrived" in page.locator("main").inner_text()
        check_page(page)

    with step(page, "operator-closes-the-incident"):
        submit(page, "Close the incident")
        assert page.locator(".govuk-error-summary").is_visible()
        check_page(page)
        page.fill("#outcome", "Son staying until Friday; worker booked for the evenings")
        submit(page, "Close the incident")
        assert page.url.endswith("/emergency/incidents"), page.url
        assert "The incident is closed." in success_banner(page)
        check_page(page)


def test_open_incidents_update_and_officer_finds_lookups_in_the_audit_log(
    page: Any, browser: Any, live_server: str, demo_pin: str
) -> None:
    with step(page, "operator-list-updates-itself"):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        watching = context.new_page()
        sign_in(watching, live_server, "operator@demo.example", staff=True)
        watching.clock.install()
        watching.goto(f"{live_server}/emergency/incidents")
        check_page(watching)
        before = watching.locator("#open-incidents tbody tr").all_inner_texts()
        console = context.new_page()
        console.goto(f"{live_server}/emergency/console")
        console.fill("#pin", demo_pin)
        with console.expect_navigation():
            console.keyboard.press("Enter")
        new_id = console.url.rstrip("/").rsplit("/", 1)[1]
        assert f"Incident {new_id}" not in " ".join(before)
        watching.clock.run_for("00:31")  # the list's own 30-second refresh, no reload
        watching.locator("#open-incidents", has_text=f"Incident {new_id}").wait_for()
        # By keyboard: with the page's clock stopped, a mouse click may land where the
        # button was before the last viewport change (the zoom check), not where it is.
        watching.get_by_role("button", name="Stop updating the list").focus()
        watching.keyboard.press("Enter")
        assert watching.get_by_role("button", name="Start updating the list").is_visible()
        context.close()

    with step(page, "officer-searches-the-audit-log"):
        sign_in(page, live_server, "officer@demo.example", staff=True)
        page.goto(f"{live_server}/emergency/audit")
        check_page(page)
        page.fill("#action", "emergency.pin_lookup")
        submit(page, "Search")
        rows = page.locator("tbody tr").all_inner_texts()
        assert any("Omar Operator" in row and "pin_lookup_hit" in row for row in rows), rows
        assert all("emergency.pin_lookup" in row for row in rows), rows
        check_page(page)
        page.fill("#action", "emergency.plan_viewed")
        submit(page, "Search")
        rows = page.locator("tbody tr").all_inner_texts()
        assert any("Omar Operator" in row for row in rows), rows
        check_page(page)
