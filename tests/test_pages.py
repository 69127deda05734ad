"""GOV.UK layout: header with the service and person, phase banner, skip link, footer,
error pages, and a dashboard per role."""

from __future__ import annotations

import pytest
from flask import Flask

from app.models import Role
from tests.factories import make_user
from tests.helpers import sign_in


def test_start_page_explains_the_service(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/").get_data(as_text=True)
    assert 'class="govuk-skip-link"' in page
    assert page.index("govuk-skip-link") < page.index("govuk-generic-header")
    assert "govuk-phase-banner" in page
    assert "govuk-footer" in page
    assert "Get a short break from caring" in page
    assert "emergency card" in page
    assert 'lang="en-GB"' in page
    assert "Start now" in page


def test_header_shows_the_signed_in_person(client) -> None:  # type: ignore[no-untyped-def]
    carer = make_user(Role.CARER, name="Dee Example")
    sign_in(client, carer)
    page = client.get("/").get_data(as_text=True)
    assert "Signed in as <strong>Dee Example</strong>" in page
    assert carer.council.name in page


@pytest.mark.parametrize("role", list(Role))
def test_each_role_has_a_dashboard(client, role: Role) -> None:  # type: ignore[no-untyped-def]
    user = make_user(role)
    sign_in(client, user)
    response = client.get("/dashboard")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert role.value.replace("_", " ").capitalize() in page


def test_not_found_and_forbidden_pages_are_gov_uk_pages(client) -> None:  # type: ignore[no-untyped-def]
    missing = client.get("/no-such-page")
    assert missing.status_code == 404
    assert "Page not found" in missing.get_data(as_text=True)
    carer = make_user(Role.CARER)
    sign_in(client, carer)
    forbidden = client.get("/staff/outbox")
    assert forbidden.status_code == 403
    assert "You cannot see this page" in forbidden.get_data(as_text=True)


def test_front_end_assets_come_from_npm(client, app: Flask) -> None:  # type: ignore[no-untyped-def]
    for path, status in [
        ("/static/govuk/govuk-frontend.min.css", 200),
        ("/static/govuk/govuk-frontend.min.js", 200),
        ("/assets/manifest.json", 200),
        ("/static/app/app.css", 200),
        ("/static/govuk/package.json", 404),
    ]:
        with client.get(path) as response:
            assert response.status_code == status, path


@pytest.mark.parametrize("role", list(Role))
def test_the_outbox_page_is_linked_from_the_dashboards_of_the_roles_it_lets_in(
    client, role: Role
) -> None:  # type: ignore[no-untyped-def]
    user = make_user(role)
    sign_in(client, user)
    page = client.get("/dashboard").get_data(as_text=True)
    allowed = role in {Role.ADMIN, Role.COUNCIL_OFFICER, Role.OPERATOR}
    assert ('href="/staff/outbox"' in page) is allowed
    assert client.get("/staff/outbox").status_code == (200 if allowed else 403)
