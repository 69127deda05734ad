"""The live balance (allocated, held, spent, available) is at the top of every page a
carer can open, and of every page their representative opens for them. The pages are
read from app.url_map, like tests/test_roles.py, so a new carer page is checked too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from app.models import Role, User
from app.money import format_pence
from booking.services import bookings as booking_service
from booking.services import ledger
from tests.booking.factories_bookings import (
    NOW,
    budget_of,
    council,
    make_carer,
    make_representative,
    make_worker,
)
from tests.helpers import sign_in

FIGURE = re.compile(r'<dd data-figure="(\w+)">([^<]*)</dd>')
# Pages every carer has, whatever records they hold: the walk must reach all of them.
EXPECTED_PAGES = {
    "/dashboard",
    "/bookings/",
    "/bookings/new",
    "/workers/find",
    "/budgets/statement",
}


@pytest.fixture(autouse=True)
def _frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def _book(carer: User, worker: User, *, days: int, complete: bool) -> int:
    starts = NOW + timedelta(days=days, hours=1)
    ends = starts + timedelta(hours=2)
    booking = booking_service.request_booking(
        carer=carer,
        worker_id=worker.id,
        starts_at=starts,
        ends_at=ends,
        postcode="LS6 2AB",
        address="1 Test Street",
        notes=None,
        actor=carer,
        now=NOW,
    )
    if complete:
        booking_service.accept_booking(booking.id, worker=worker, now=NOW)
        booking_service.complete_booking(
            booking.id,
            worker=worker,
            actual_starts_at=starts,
            actual_ends_at=ends,
            now=ends + timedelta(minutes=5),
        )
    return booking.id


def _pages(app: Flask, role: Role, ids: dict[str, int]) -> tuple[list[str], list[str]]:
    """Every GET page `role` may open, with ids filled from `ids`; and the rules skipped
    because they need an id this carer has none of."""
    paths, skipped = [], []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or rule.rule.startswith("/api/"):
            continue
        allowed = getattr(app.view_functions[rule.endpoint], "allowed_roles", None)
        if not allowed or role not in allowed:
            continue
        if any(name not in ids for name in rule.arguments):
            skipped.append(rule.rule)
            continue
        paths.append(rule.build({name: ids[name] for name in rule.arguments})[1])
    return sorted(paths), skipped


def _check_every_page(client: FlaskClient, paths: list[str], expected: dict[str, str]) -> None:
    checked = set()
    for path in paths:
        response = client.get(path, follow_redirects=True)
        assert response.status_code < 500, path
        if response.mimetype != "text/html":
            continue  # a download, a calendar feed or a photo: not a page
        page = response.get_data(as_text=True)
        assert 'class="app-balance"' in page, path
        assert page.index('class="app-balance"') < page.index('id="main-content"'), path
        assert dict(FIGURE.findall(page)) == expected, path
        checked.add(path)
    assert checked >= EXPECTED_PAGES
    assert len(checked) >= len(EXPECTED_PAGES) + 3  # and the pages of one booking


def _setup() -> tuple[User, dict[str, int], dict[str, str]]:
    c = council()
    carer, worker = make_carer(c), make_worker(c, name="Priya Shah")
    _book(carer, worker, days=2, complete=True)  # spent
    booking_id = _book(carer, worker, days=3, complete=False)  # held
    figures = ledger.balance(budget_of(carer))
    assert figures.held_pence > 0
    assert figures.spent_pence > 0
    expected = {
        "allocated": format_pence(figures.allocated_pence),
        "held": format_pence(figures.held_pence),
        "spent": format_pence(figures.spent_pence),
        "available": format_pence(figures.available_pence),
    }
    return carer, {"booking_id": booking_id, "worker_id": worker.id}, expected


def test_every_carer_page_shows_all_four_figures_at_the_top(
    app: Flask, client: FlaskClient
) -> None:
    carer, ids, expected = _setup()
    paths, skipped = _pages(app, Role.CARER, ids)
    assert skipped == []  # every id a carer page needs, this carer has
    sign_in(client, carer)
    _check_every_page(client, paths, expected)


def test_every_page_a_representative_opens_shows_the_carers_four_figures(
    app: Flask, client: FlaskClient
) -> None:
    carer, ids, expected = _setup()
    rep = make_representative(carer)
    paths, skipped = _pages(app, Role.REPRESENTATIVE, ids)
    assert skipped == []
    sign_in(client, rep)
    _check_every_page(client, paths, expected)
