"""schemathesis against /api/v1/openapi.json: generated requests, valid and not, never get
a 500 and never get a response that breaks the documented schema.

The caller holds every role, so the role checks let the requests through to the rules
and parsing underneath, where a crash would hide. Operations are driven with hypothesis
directly (schemathesis's own pytest plugin does not run on pytest 9)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.clock import utcnow
from app.models import Role
from tests.factories import make_user
from tests.helpers import api_token

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _operations(app: Flask) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_is_fuzzed_without_a_crash(app: Flask) -> None:
    person = make_user(
        *Role, totp_confirmed_at=utcnow(), totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    )
    headers = {"Authorization": f"Bearer {api_token(person)}"}
    operations = _operations(app)
    assert len(operations) >= 3
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(
                max_examples=8,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except Exception as exc:  # collect every operation's failure, then report all
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:400]}")
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/openapi.json"])
def test_plain_gets_are_json(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.content_type.startswith("application/json")


__all__ = ["st"]
