"""Hypothesis-driven form input: every HTML form in the app is filled with generated
values (empty, huge, unicode, numbers, dates, injections) by someone holding every role.
No page may answer with a server error."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.core import ApiBlueprint
from app.clock import utcnow
from app.models import Role
from tests.factories import make_user
from tests.helpers import sign_in

NASTY = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "99999999999999999999",
            "1e309",
            "NaN",
            "2027-02-30",
            "31/12/2027",
            "25:61",
            "£-5",
            "'; DROP TABLE users; --",
            "<script>alert(1)</script>",
            "\x00",
            "A" * 5000,
            "ZZ99 9ZZ",
            "+44 7911 123456",
            "on",
        ]
    ),
)


class _FormFields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"input", "select", "textarea"}:
            name = dict(attrs).get("name")
            if name and name != "csrf_token":
                self.names.add(name)


def _form_routes(app: Flask) -> list[str]:
    routes = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".", 1)[0]
        methods = rule.methods or set()
        if "POST" not in methods or "GET" not in methods:
            continue
        if isinstance(app.blueprints.get(blueprint), ApiBlueprint) or rule.rule.startswith(
            ("/twilio", "/stripe")
        ):
            continue
        routes.append(re.sub(r"<(?:[a-z]+:)?[^>]+>", "1", rule.rule))
    return sorted(set(routes))


def test_no_form_answers_with_a_server_error(app: Flask) -> None:
    person = make_user(
        *Role, totp_confirmed_at=utcnow(), totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    )
    routes = _form_routes(app)
    assert routes, "no forms found"
    failures: list[str] = []
    for path in routes:
        client = app.test_client()
        sign_in(client, person)
        page = client.get(path)
        if page.status_code != 200:
            continue
        parser = _FormFields()
        parser.feed(page.get_data(as_text=True))
        names = sorted(parser.names) or ["value"]
        try:
            _fuzz(client, path, names)
        except AssertionError as exc:
            failures.append(str(exc)[:500])
    assert failures == [], "\n".join(failures)


def _fuzz(client: Any, path: str, names: list[str]) -> None:
    @settings(
        max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(values=st.fixed_dictionaries({name: NASTY for name in names}))
    def post(values: dict[str, Any]) -> None:
        response = client.post(path, data=values)
        assert response.status_code < 500, f"{path} {values!r} -> {response.status_code}"

    post()
