"""Marketplace commands: `flask budgets import FILE`."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.clock import utcnow
from app.errors import DomainError
from app.extensions import db
from app.models import Council

budgets_cli = AppGroup("budgets", help="Personal budgets.")


@budgets_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--council", "council_slug", required=True, help="The council's slug.")
@click.option("--check-only", is_flag=True, help="Check every row and write nothing.")
def import_command(file: Path, council_slug: str, check_only: bool) -> None:
    """Import allocations from a resource allocation CSV: every row, or none."""
    from booking.services import budgets as service

    council = db.session.scalar(select(Council).where(Council.slug == council_slug))
    if council is None:
        raise click.ClickException(f"No council with slug {council_slug!r}.")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.ClickException("The file must be UTF-8 text.") from exc
    rows = service.count_rows(text)

    with click.progressbar(length=rows, label="Checking rows") as bar:
        preview = service.preview_import(council.id, text, on_progress=lambda _n: bar.update(1))
    if not preview.ok:
        for error in preview.errors:
            click.echo(f"line {error.line}: {error.message}", err=True)
        raise click.ClickException(
            f"{len(preview.errors)} problem(s) in the file. Nothing was imported."
        )
    if check_only:
        click.echo(f"{len(preview.rows)} rows are ready to import. Nothing was written.")
        return
    try:
        with click.progressbar(length=len(preview.rows), label="Importing") as bar:
            budgets = service.import_allocations(
                council.id, text, actor=None, now=utcnow(), on_progress=lambda _n: bar.update(1)
            )
    except DomainError as exc:
        # Rows changed since the check (e.g. a budget saved meanwhile): nothing was written.
        db.session.rollback()
        line = getattr(exc, "line", None)
        for error in getattr(exc, "errors", []):
            click.echo(f"line {error.line}: {error.message}", err=True)
        prefix = f"line {line}: " if line else ""
        raise click.ClickException(f"{prefix}{exc.message}") from exc  # says nothing was saved
    click.echo(f"Imported {len(budgets)} budgets.")
