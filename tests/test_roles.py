"""The role × endpoint matrix: every endpoint states who may use it, and every other
role is refused (403), whatever the endpoint does."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from app.api.core import ApiBlueprint
from app.models import Council, Role
from tests.factories import CouncilFactory, make_user
from tests.helpers import bearer, sign_in

SKIP_METHODS = {"HEAD", "OPTIONS"}


def _endpoints(app: Flask) -> list[tuple[str, str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - SKIP_METHODS):
            found.append((rule.endpoint, rule.rule, method))
    return sorted(found)


def _fill(rule: str) -> str:
    return re.sub(r"<(?:int:)?[^>]+>", "1", rule)


def _is_api(app: Flask, endpoint: str) -> bool:
    blueprint = endpoint.split(".", 1)[0]
    return isinstance(app.blueprints.get(blueprint), ApiBlueprint)


def test_every_endpoint_states_its_roles(app: Flask) -> None:
    missing = []
    for endpoint, rule, _method in _endpoints(app):
        view = app.view_functions[endpoint]
        if not (getattr(view, "allowed_roles", None) or getattr(view, "is_public", False)):
            missing.append(f"{endpoint} {rule}")
    assert missing == [], f"endpoints without declared roles: {missing}"


def test_matrix_has_real_coverage(app: Flask) -> None:
    guarded = [
        e for e in _endpoints(app) if getattr(app.view_functions[e[0]], "allowed_roles", None)
    ]
    assert len(guarded) >= 5


@pytest.mark.parametrize("role", list(Role))
def test_every_other_role_is_refused(app: Flask, role: Role) -> None:
    council: Council = CouncilFactory()
    user = make_user(role, council=council)
    headers = bearer(user)
    refused: list[str] = []
    for endpoint, rule, method in _endpoints(app):
        allowed = getattr(app.view_functions[endpoint], "allowed_roles", None)
        if not allowed or role in allowed:
            continue
        client = app.test_client()
        path = _fill(rule)
        if _is_api(app, endpoint):
            response = client.open(path, method=method, headers=headers, json={})
        else:
            sign_in(client, user)
            response = client.open(path, method=method, data={})
        if response.status_code != 403:
            refused.append(f"{method} {rule} -> {response.status_code}")
    assert refused == [], f"{role} was not refused by: {refused}"


def test_signed_out_people_are_sent_to_sign_in(app: Flask) -> None:
    for endpoint, rule, method in _endpoints(app):
        if not getattr(app.view_functions[endpoint], "allowed_roles", None):
            continue
        client = app.test_client()
        response = client.open(_fill(rule), method=method, json={} if method != "GET" else None)
        if _is_api(app, endpoint):
            assert response.status_code == 401, f"{method} {rule}"
            assert response.get_json()["error"]["code"] == "unauthorized"
        else:
            assert response.status_code == 302, f"{method} {rule}"
            assert "/auth/sign-in" in response.headers["Location"]
