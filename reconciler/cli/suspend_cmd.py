"""`reconciler suspend`."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    open_peers,
)
from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.directory import Directory


@main.command()
@click.argument("address")
@connection_options
@click.option(
    "--clause",
    required=True,
    help="the suspension ground: one of the regulation's, written as an agency file's "
    "`suspension: {clause: …}` writes it",
)
@click.option("--note", default="", help="the facts and the deciding document (recorded)")
@inventory_and_audit_options
@click.option("--actor", help="who suspends (default: the CI user or $USER)")
@click.option(
    "--notices-out",
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for the agency's notice (.eml) [default: notices/ beside the audit log]",
)
def suspend(
    address: str,
    clause: str,
    note: str,
    inventory_path: Path | None,
    audit_log: Path | None,
    actor: str | None,
    notices_out: Path | None,
    **connection: Any,
) -> None:
    """Suspend the mailbox ADDRESS now, citing --clause, and write the same suspension into its
    agency file for the pull request that follows.

    The suspension goes through apply (lock, stale check, audit, notice); if it does not go
    through, the agency file is put back. Commit the changed file: the next plan then neither
    restores the mailbox nor differs.
    """
    from reconciler.applying import apply as apply_module
    from reconciler.applying import suspend as suspend_module
    from reconciler.applying.audit import AuditLog
    from reconciler.cli.apply_cmd import notify
    from reconciler.directory import history
    from reconciler.planning import planfile

    if inventory_path is None:
        fail(ReconcilerError("give --inventory INVENTORY (or RECONCILER_INVENTORY)"))
    loaded = load_inventory(inventory_path)
    settings = loaded.inventory.settings
    who = actor_name(actor)
    try:
        log_path = audit_log_path(audit_log, settings.audit_log, "suspend")
        others = dict(connection)  # open_from takes what it uses: the other providers need it
        directory = open_from(connection, "write", "Writing to")
        peers: list[Directory] = []
        try:
            peers, unanswered = open_peers(others, directory)
            prepared = suspend_module.prepare(
                loaded,
                directory,
                address,
                clause.strip(),
                note.strip(),
                actor=who,
                now=dt.datetime.now(dt.UTC).replace(microsecond=0),
            )
            digest = planfile.digest(prepared.plan)
            audit = AuditLog(
                log_path,
                run=digest,
                actor=who,
                plan_digest=digest,
                commit="",
                directory=directory.url,
                domain=settings.domain,
                base_dn=settings.base_dn,
            )
            writer = history.Writer(directory, settings.base_dn, uuid.uuid4().hex[:12])
            try:
                audit.attach(writer.add)  # in the directory's history too, as apply's
                audit.record("apply", outcome="started", operations=len(prepared.plan.operations))
                recap = apply_module.execute(
                    prepared.plan,
                    digest,
                    directory,
                    audit,
                    None,
                    actor=who,
                    peers=peers,
                    unanswered=unanswered,
                )
                writer.close()
            except ReconcilerError:
                suspend_module.undo(prepared)
                raise
            finally:
                audit.close()
            if recap.failed:
                suspend_module.undo(prepared)
                raise ReconcilerError("; ".join(recap.messages) or "the suspension failed")
        finally:
            for peer in peers:
                peer.close()
            directory.close()
        # the plan is made here from the inventory: its owner's address is the inventory's
        notify(
            prepared.plan, recap, notices_out or log_path.parent / "notices", prepared.plan.owners
        )
    except ReconcilerError as error:
        fail(error)
    click.echo(
        f"{address} is suspended ({clause}). {prepared.file} now says so: commit it in a pull "
        "request, so that the next plan keeps the suspension."
    )
