"""openapi.json, built from every `ApiBlueprint.operation` the app has registered."""

from __future__ import annotations

from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.api.core import ApiBlueprint, Operation, openapi_path
from app.api.schemas import ErrorResponse

REF = "#/components/schemas/{model}"


def api_operations(app: Flask) -> list[tuple[str, Operation]]:
    """(url prefix, operation) for every operation of every registered ApiBlueprint."""
    found: list[tuple[str, Operation]] = []
    for blueprint in app.blueprints.values():
        if isinstance(blueprint, ApiBlueprint):
            for operation in blueprint.operations:
                found.append(("/api/v1", operation))
    return found


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    import re

    params = []
    for converter, name in re.findall(r"<(?:([a-z]+):)?([a-zA-Z_][a-zA-Z0-9_]*)>", rule):
        schema: dict[str, Any] = {"type": "integer"} if converter == "int" else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def build_spec(app: Flask) -> dict[str, Any]:
    operations = api_operations(app)
    models: set[type[BaseModel]] = {ErrorResponse}
    for _, op in operations:
        for model in (op.body, op.response, op.query):
            if model is not None:
                models.add(model)
    ordered = sorted(models, key=lambda m: m.__name__)
    mode_pairs = [(m, "validation") for m in ordered] + [(m, "serialization") for m in ordered]
    refs, top = models_json_schema(mode_pairs, ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))

    def ref_for(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return refs[(model, mode)]  # type: ignore[index]

    paths: dict[str, dict[str, Any]] = {}
    for prefix, op in operations:
        path = prefix + openapi_path(op.rule)
        responses: dict[str, Any] = {}
        success: dict[str, Any] = {"description": "Success"}
        if op.response is not None:
            success["content"] = {
                "application/json": {"schema": ref_for(op.response, "serialization")}
            }
        responses[str(op.status)] = success
        error_content = {"application/json": {"schema": ref_for(ErrorResponse, "serialization")}}
        statuses: dict[int, list[str]] = {}
        for status, code in op.errors:
            statuses.setdefault(status, []).append(code)
        if op.roles is not None:
            statuses.setdefault(401, []).extend(["unauthorized", "invalid_token"])
            statuses.setdefault(403, []).append("forbidden")
        if op.body is not None or op.query is not None:
            statuses.setdefault(422, []).append("validation_failed")
        if op.body is not None:
            statuses.setdefault(400, []).append("invalid_json")
        for status, codes in sorted(statuses.items()):
            responses[str(status)] = {
                "description": "Error codes: " + ", ".join(dict.fromkeys(codes)),
                "content": error_content,
            }
        operation: dict[str, Any] = {
            "operationId": op.endpoint.replace(".", "_"),
            "summary": op.summary,
            "tags": list(op.tags),
            "responses": responses,
        }
        if op.roles is not None:
            operation["security"] = [{"bearer": []}]
            operation["description"] = "Roles: " + ", ".join(sorted(str(r) for r in op.roles))
        if op.description:
            roles_line = operation.get("description", "")
            operation["description"] = f"{roles_line}\n\n{op.description}".strip()
        parameters = _path_parameters(op.rule)
        if op.query is not None:
            query_schema = op.query.model_json_schema(ref_template=REF)
            required = set(query_schema.get("required", []))
            for name, prop in query_schema.get("properties", {}).items():
                parameters.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if op.idempotent:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": (
                        "A repeat with the same key and body gets the first response again "
                        "(a refusal such as 409 or 402 too, but never 401, 403, 429 or 5xx) "
                        "and changes nothing."
                    ),
                    "schema": {"type": "string", "maxLength": 255},
                }
            )
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref_for(op.body, "validation")}},
            }
        paths.setdefault(path, {})[op.method] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Carers' breaks and emergency cards API",
            "version": "1",
            "description": "The JSON API of ../shared/design/api.md. Money in integer pence; times in UTC.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
