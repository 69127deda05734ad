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
