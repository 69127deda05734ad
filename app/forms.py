"""Putting a service's refusal on a page's form, so base.html shows the GOV.UK error
summary with links to the fields at fault."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import DomainError


def show_domain_error(
    form: Any,
    exc: DomainError,
    *,
    fallback: str | None = None,
    field_names: Mapping[str, str] | None = None,
) -> None:
    """Each message the service names a field for goes on that field (`field_names` maps
    the service's names to the form's; `a.b` means field `a`). A message no field takes
    goes on `fallback`, or above the form when there is none."""
    placed = False
    for name, message in exc.fields.items():
        form_name = (field_names or {}).get(name, name).split(".")[0]
        field = getattr(form, form_name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*list(field.errors), message]
            placed = True
    if placed:
        return
    if fallback is not None:
        field = getattr(form, fallback)
        field.errors = [*list(field.errors), exc.message]
    else:
        form.form_errors.append(exc.message)
