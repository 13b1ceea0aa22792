"""`reconciler reset-password`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import (
    actor_name,
    connection_options,
    fail,
    inventory_and_audit_options,
    load_inventory,
    open_from,
)
from reconciler.errors import ReconcilerError


@main.command("reset-password")
@click.argument("address")
@connection_options
@click.option(
    "--credentials-out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="new CSV file (mode 0600, outside the repository) for the temporary password",
)
@inventory_and_audit_options
@click.option("--actor", help="who resets (default: the CI user or $USER)")
def reset_password(
    address: str,
    credentials_out: Path,
    inventory_path: Path | None,
    audit_log: Path,
    actor: str | None,
    **connection: Any,
) -> None:
    """Issue a temporary password for ADDRESS that must be changed at the next login.

    The password is written only to --credentials-out; the message cites the clause of the
    inventory's regulation that asks for the change.
    """
    from reconciler.applying.audit import AuditLog
    from reconciler.applying.credentials import CredentialsFile
    from reconciler.applying.reset import reset_password as reset
    from reconciler.planning import collector

    if inventory_path is None:
        fail(
            ReconcilerError(
                "give --inventory INVENTORY (or RECONCILER_INVENTORY): its "
                "directory.yaml says where the mailboxes are"
            )
        )
    loaded = load_inventory(inventory_path)
    regulation = loaded.regulation
    try:
        credentials = CredentialsFile(credentials_out)
        try:
            directory = open_from(connection, "write")
            audit = AuditLog(
                audit_log,
                run="reset-password",
                actor=actor_name(actor),
                plan_digest="",
                commit="",
                directory=directory.url,
            )
            try:
                with collector.paused():  # it reads the whole directory to find the address
                    entry = reset(
                        directory,
                        loaded.inventory.settings.base_dn,
                        address,
                        credentials,
                        audit,
                        regulation.reset_clause,
                        regulation.restore_clause,
                    )
            finally:
                audit.close()
                directory.close()
        finally:
            credentials.close()
    except ReconcilerError as error:
        fail(error)
    click.echo(
        f"A temporary password for {entry.mail} is in {credentials_out} (a reset on request, "
        f"{regulation.reset_clause}); it must be changed at the first login "
        f"({regulation.must_change_clause})."
    )
