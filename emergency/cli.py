"""`flask emergency ...` commands."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from emergency import services
from emergency.crypto import cipher_from_config

emergency_cli = AppGroup("emergency", help="Emergency card service.")


@emergency_cli.command("rotate-keys")
def rotate_keys_command() -> None:
    """Re-encrypt every sensitive plan field with the newest key in PLAN_ENCRYPTION_KEYS.

    Put the new key first in PLAN_ENCRYPTION_KEYS, run this, then remove the old key."""
    changed = services.rotate_encryption_keys(cipher_from_config(current_app.config))
    click.echo(f"Re-encrypted {changed} fields with the newest key.")


@emergency_cli.command("scheme")
@click.option("--council", "council_slug", required=True, help="The council's slug.")
@click.option("--name", default=None, help="The scheme's name, as printed on its cards.")
@click.option("--line-phone", default=None, help="The 24-hour number printed on the cards.")
@click.option(
    "--free-hours",
    type=int,
    default=None,
    help="The free replacement-care window: 24, 48 or 72 hours.",
)
@click.option("--cascade-timeout", type=int, default=None, help="Minutes to wait for each contact.")
@click.option(
    "--warning", type=int, default=None, help="Minutes before free care ends to warn staff."
)
@click.option("--budget", default=None, metavar="POUNDS", help="The emergency budget, in pounds.")
def scheme_command(
    council_slug: str,
    name: str | None,
    line_phone: str | None,
    free_hours: int | None,
    cascade_timeout: int | None,
    warning: int | None,
    budget: str | None,
) -> None:
    """Set up or change a council's emergency card scheme; prints the settings."""
    from sqlalchemy import select

    from app.errors import DomainError
    from app.extensions import db
    from app.models import Council
    from app.money import format_pence
    from emergency.services.schemes import SchemeChanges, update_scheme

    council = db.session.scalar(select(Council).where(Council.slug == council_slug))
    if council is None:
        raise click.ClickException(f"No council with slug {council_slug!r}.")
    changes = SchemeChanges(
        name=name,
        line_phone=line_phone,
        free_care_hours=free_hours,
        cascade_timeout_minutes=cascade_timeout,
        window_warning_minutes=warning,
        budget_pounds=budget,
    )
    try:
        scheme = update_scheme(council, changes)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from exc
    click.echo(f"{council.name}: {scheme.name}")
    click.echo(f"  24-hour number:              {scheme.line_phone}")
    click.echo(f"  free replacement care:       {scheme.free_care_hours} hours")
    click.echo(f"  wait for each contact:       {scheme.cascade_timeout_minutes} minutes")
    click.echo(f"  warn before free care ends:  {scheme.window_warning_minutes} minutes")
    click.echo(f"  emergency budget:            {format_pence(scheme.emergency_budget_pence)}")
