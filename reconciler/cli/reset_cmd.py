"""`reconciler reset-password`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import (
    actor_name,
    audit_log_path,
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
@click.option(
    "--base-dn",
    metavar="DN",
    help="where the mailboxes are (default: the inventory's base_dn, else the directory's suffix)",
)
@click.option("--actor", help="who resets (default: the CI user or $USER)")
def reset_password(
    address: str,
    credentials_out: Path,
    inventory_path: Path | None,
    base_dn: str | None,
    audit_log: Path | None,
    actor: str | None,
    **connection: Any,
) -> None:
    """Issue a temporary password for ADDRESS that must be changed at the next login.

    The password is written only to --credentials-out; the message cites the clause of the
    regulation that asks for the change. The reset is recorded in the audit log and in the
    directory's own history (ou=history).
    """
    from reconciler.applying.audit import AuditLog
    from reconciler.applying.credentials import CredentialsFile
    from reconciler.applying.reset import reset_password as reset
    from reconciler.directory import history
    from reconciler.directory.snapshot import naming_context
    from reconciler.rules import regulations

    settings = load_inventory(inventory_path).inventory.settings if inventory_path else None
    domain = address.rpartition("@")[2].lower()
    regulation = (
        regulations.get(settings.regulation) if settings else regulations.for_domain(domain)
    )
    clause = regulation.reset_clause if regulation else ""
    try:
        log_path = audit_log_path(
            audit_log, settings.audit_log if settings else None, "reset-password"
        )
        credentials = CredentialsFile(credentials_out)
        try:
            directory = open_from(connection, "write")
            try:
                base = base_dn or (settings.base_dn if settings else naming_context(directory))
                audit = AuditLog(
                    log_path,
                    run="reset-password",
                    actor=actor_name(actor),
                    plan_digest="",
                    commit="",
                    directory=directory.url,
                    domain=settings.domain if settings else domain,
                    base_dn=base,
                )
                writer = history.Writer(directory, base, uuid.uuid4().hex[:12])
                try:
                    audit.attach(writer.add)
                    # on record, in the directory too, before the password changes: a directory
                    # that cannot keep the history stops the reset here
                    audit.record("reset-password", address=address, outcome="started")
                    entry = reset(
                        directory,
                        base,
                        address,
                        credentials,
                        audit,
                        clause,
                        regulation.restore_clause if regulation else "",
                    )
                    writer.close()
                finally:
                    audit.close()
            finally:
                directory.close()
        finally:
            credentials.close()
    except ReconcilerError as error:
        fail(error)
    if regulation is None:
        click.echo(
            f"A temporary password for {entry.mail} is in {credentials_out}; it must be "
            "changed at the first login."
        )
        return
    click.echo(
        f"A temporary password for {entry.mail} is in {credentials_out} (a reset on request, "
        f"{regulation.reset_clause}); it must be changed at the first login "
        f"({regulation.must_change_clause})."
    )
