"""Command-line set-up: councils, users, demo data, jobs and the scheduler."""

from __future__ import annotations

from datetime import date

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.clock import utcnow
from app.errors import DomainError
from app.extensions import db
from app.models import Council, Role
from app.money import format_pence, parse_pounds

councils_cli = AppGroup("councils", help="Manage councils (tenants).")
users_cli = AppGroup("users", help="Manage people and their roles.")
demo_cli = AppGroup("demo", help="Demo data.")
jobs_cli = AppGroup("jobs", help="Run scheduled jobs by hand.")
scheduler_cli = AppGroup("scheduler", help="The job scheduler.")


@councils_cli.command("create")
@click.option("--slug", required=True)
@click.option("--name", required=True)
@click.option("--emergency-phone", default=None)
@click.option(
    "--cancellation-fee",
    "cancellation_fee",
    default=None,
    metavar="POUNDS",
    help="What a carer pays for a late cancellation, in pounds, like 15.00.",
)
def create_council_command(
    slug: str, name: str, emergency_phone: str | None, cancellation_fee: str | None
) -> None:
    """Create a council; prints its id."""
    from app.auth.services import create_council

    fee_pence = _parse_fee(cancellation_fee) if cancellation_fee is not None else None
    try:
        council = create_council(slug=slug, name=name, emergency_phone=emergency_phone)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    if fee_pence is not None:
        _set_cancellation_fee(council, fee_pence)
    click.echo(council.id)


@councils_cli.command("set-fee")
@click.option("--council", "council_slug", required=True, help="The council's slug.")
@click.option(
    "--fee",
    required=True,
    metavar="POUNDS",
    help="What a carer pays for a late cancellation, in pounds, like 15.00.",
)
def set_fee_command(council_slug: str, fee: str) -> None:
    """Set the council's late-cancellation fee."""
    fee_pence = _parse_fee(fee)
    council = db.session.scalar(select(Council).where(Council.slug == council_slug))
    if council is None:
        raise click.ClickException(f"No council with slug {council_slug!r}.")
    old = council.cancellation_fee_pence
    _set_cancellation_fee(council, fee_pence)
    click.echo(f"{council.name}: cancellation fee {format_pence(old)} -> {format_pence(fee_pence)}")


def _parse_fee(text: str) -> int:
    """Pounds to pence, or a ClickException that says what to type."""
    try:
        pence = parse_pounds(text)
    except ValueError as exc:
        raise click.ClickException(f"Cancellation fee {text!r}: {exc}.") from exc
    if pence < 0:
        raise click.ClickException("The cancellation fee cannot be less than £0.00.")
    return pence


def _set_cancellation_fee(council: Council, fee_pence: int) -> None:
    """Set the fee and add an audit entry in the same transaction."""
    from app import audit

    old = council.cancellation_fee_pence
    council.cancellation_fee_pence = fee_pence
    audit.record(
        "council.cancellation_fee_set",
        actor=None,
        council_id=council.id,
        subject=council,
        details={"old_pence": old, "new_pence": fee_pence, "via": "cli"},
    )
    db.session.commit()


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option(
    "--role", "roles", multiple=True, required=True, type=click.Choice([r.value for r in Role])
)
@click.option("--council", "council_slug", default=None)
@click.option("--name", default=None)
@click.option("--phone", default=None)
@click.option("--postcode", default=None)
@click.option("--date-of-birth", default=None)
@click.option("--totp-secret", default=None)
@click.option("--reference", default=None)
def create_user_command(
    email: str,
    password: str,
    roles: tuple[str, ...],
    council_slug: str | None,
    name: str | None,
    phone: str | None,
    postcode: str | None,
    date_of_birth: str | None,
    totp_secret: str | None,
    reference: str | None,
) -> None:
    """Create a person; prints their id on the last line."""
    from app.auth.services import create_user

    council = None
    if council_slug:
        council = db.session.scalar(select(Council).where(Council.slug == council_slug))
        if council is None:
            raise click.ClickException(f"No council with slug {council_slug!r}.")
    try:
        born = date.fromisoformat(date_of_birth) if date_of_birth else None
    except ValueError as exc:
        raise click.ClickException("--date-of-birth must be YYYY-MM-DD.") from exc
    if phone:
        from app.phone_numbers import normalise_uk_phone

        try:
            phone = normalise_uk_phone(phone)
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
    try:
        user = create_user(
            email=email,
            password=password,
            roles=[Role(r) for r in roles],
            name=name or email.split("@")[0],
            council=council,
            phone=phone,
            postcode=postcode,
            date_of_birth=born,
            totp_secret=totp_secret,
            reference=reference,
            password_method=current_app.config["PASSWORD_HASH_METHOD"],
            now=utcnow(),
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"Created {user.email} with roles {', '.join(roles)}")
    click.echo(user.id)


@demo_cli.command("seed")
def seed_command() -> None:
    """Load a realistic demo council. Running it twice changes nothing."""
    from app.demo import seed

    if current_app.config.get("APP_ENV") == "production":
        # The demo logins, passwords and TOTP secret are published in the README.
        raise click.ClickException(
            "The demo data is not for production: it makes accounts whose passwords are "
            "published. Nothing was written. Unset APP_ENV=production to seed a test copy."
        )

    for line in seed(now=utcnow(), password_method=current_app.config["PASSWORD_HASH_METHOD"]):
        click.echo(line)


@jobs_cli.command("run")
@click.argument("name")
def run_job_command(name: str) -> None:
    """Run one scheduled job once, now."""
    from app.scheduler import JOBS, run_job

    if name not in JOBS:
        raise click.ClickException(f"No job {name!r}. Jobs: {', '.join(sorted(JOBS))}")
    click.echo(f"{name}: {run_job(name)}")


@jobs_cli.command("list")
def list_jobs_command() -> None:
    from app.scheduler import JOBS

    for job in sorted(JOBS.values(), key=lambda j: j.name):
        click.echo(f"{job.name}\t{job.trigger} {job.trigger_args}\t{job.description.strip()}")


@scheduler_cli.command("run")
def run_scheduler_command() -> None:
    """Run the scheduler in this process (one leader across all hosts)."""
    from app.scheduler import run_forever

    run_forever(current_app._get_current_object())  # type: ignore[attr-defined]


@click.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def serve_command(host: str, port: int) -> None:
    """Development server with the scheduler in-process (what `make run` starts)."""
    from werkzeug.serving import run_simple

    from app.scheduler import start_embedded

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    start_embedded(app)
    click.echo(f"Serving on http://{host}:{port}/ with the scheduler in-process (Ctrl+C stops)")
    run_simple(host, port, app, use_reloader=False, threaded=True)


def register_cli(app: Flask) -> None:
    for group in (councils_cli, users_cli, demo_cli, jobs_cli, scheduler_cli):
        app.cli.add_command(group)
    app.cli.add_command(serve_command)
