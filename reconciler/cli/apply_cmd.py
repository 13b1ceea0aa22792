"""`reconciler apply`."""

from __future__ import annotations

import atexit
import datetime as dt
import gc
import sys
import uuid
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import (
    actor_name,
    audit_log_option,
    audit_log_path,
    connection_options,
    fail,
    load_inventory,
    open_from,
    open_peers,
    open_source,
    source_options,
    wait_for_providers,
    wait_option,
    warn_unlisted,
)
from reconciler.errors import ReconcilerError
from reconciler.text import count

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reconciler.applying.apply import Recap
    from reconciler.applying.inflight import Outcome
    from reconciler.directory import Directory
    from reconciler.model import Operation, Owner, Plan
    from reconciler.outputs import notices


@main.command()
@click.argument("plan_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@connection_options
@source_options
@click.option(
    "--credentials-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="new CSV file (mode 0600, outside the repository) for the issued passwords",
)
@click.option("--expect-digest", metavar="D", help="apply only if the plan's digest is D")
@click.option(
    "--inventory",
    "inventory_path",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RECONCILER_INVENTORY",
    help="the inventory the plan was made from (the reviewed branch's checkout): the plan's "
    "regulation, base DN, mailbox containers and max_deletes must be its own "
    "[env RECONCILER_INVENTORY]",
)
@audit_log_option("JSON-lines audit log to append to (0600); the applied plan is kept beside it")
@click.option("--actor", help="who applies (default: the CI user or $USER)")
@click.option(
    "--break-lock",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[=RUN]",
    help="take over a lock left by a dead apply (its process gone on this host, or its lease "
    "run out); --break-lock=RUN takes over the run named, even a live one. With a list of "
    "providers: also go ahead when one of them does not answer (it is down), the others "
    "confirming the lock",
)
@click.option(
    "--suspend-without-lock-check",
    "accept_unverified_lock",
    is_flag=True,
    help="suspend even though the server's password policy could not be read: if it lacks "
    "pwdLockout: TRUE, suspended mailboxes still log in (check first with `reconciler doctor`)",
)
@click.option(
    "--accept-other-directory",
    is_flag=True,
    help="apply a plan made against another directory (its LDIF snapshot, a copy of the "
    "server): its identity is not checked, and the refusal is recorded as overridden; every "
    "entry the plan touches must still be as it read it",
)
@click.option(
    "--notices-out",
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for the agencies' notices (.eml) [default: notices/ beside the audit log]",
)
@wait_option(
    "the provider to hold every change the plan was read with, and afterwards for the other "
    "providers listed to hold this run's changes"
)
@click.option(
    "--in-flight",
    type=click.IntRange(1, 1024),
    default=32,
    show_default=True,
    envvar="RECONCILER_IN_FLIGHT",
    help="writes sent before their answers come (python-ldap; ldap3 and an LDIF file write one "
    "at a time); on a failure those already sent finish, nothing more is sent "
    "[env RECONCILER_IN_FLIGHT]",
)
def apply(
    plan_file: Path,
    credentials_out: Path | None,
    expect_digest: str | None,
    inventory_path: Path | None,
    audit_log: Path | None,
    actor: str | None,
    break_lock: str | None,
    accept_unverified_lock: bool,
    accept_other_directory: bool,
    notices_out: Path | None,
    wait_replication: float | None,
    in_flight: int,
    **connection: Any,
) -> None:
    """Apply a plan saved by `reconciler plan --out`.

    Refuses a stale plan (an entry changed since it was made) before writing anything; skips what
    is already done, so an interrupted apply can simply be run again. An entry changed by hand
    while the apply runs stops it: the change is never overwritten. A plan that suspends is
    refused, before anything is written, on a server whose password policy would not lock the
    accounts (pwdLockout). After each delete, the plan's mail-store erase command runs. Prints
    one line per operation as it goes (its result, action and address), then the recap. Every
    record goes to the audit log and to the directory's own history (ou=history), which the
    report reads.
    """
    _freeze_at_exit()
    from reconciler.applying import apply as apply_module
    from reconciler.applying.audit import AuditLog
    from reconciler.applying.credentials import CredentialsFile
    from reconciler.cli.progress import Progress
    from reconciler.directory import history, replicas
    from reconciler.model import DEFAULT_KEEP_MONTHS
    from reconciler.planning import collector, invariants, planfile

    # the inventory, when given, is checked first: its problems are printed as FILE:LINE
    loaded = load_inventory(inventory_path).inventory if inventory_path else None
    trusted = loaded.settings if loaded is not None else None
    try:
        with collector.paused():  # a plan's operations: many objects, all kept, few cycles
            saved, digest = planfile.load_sealed(plan_file)
        if expect_digest and expect_digest != digest:
            raise ReconcilerError(
                f"the plan's digest is {digest}, not the expected {expect_digest}: this is not "
                "the plan that was reviewed. Nothing was applied."
            )
        # what the plan makes apply do outside the directory (run a command, log in to a relay,
        # append to a file) is trusted only bound to what was reviewed: before the log is opened
        if trusted is not None:
            beyond = invariants.settings_problems(saved, trusted, digest_bound=bool(expect_digest))
        elif not expect_digest:
            beyond = invariants.unbound_problems(saved, audit_log_given=audit_log is not None)
        else:
            beyond = []
        if beyond:
            raise invariants.refuse(saved, beyond)
        setting = trusted.audit_log if trusted is not None else saved.audit_log
        log_path = audit_log_path(audit_log, setting, "apply")
        audit = AuditLog(
            log_path,
            run=digest,
            actor=actor_name(actor),
            plan_digest=digest,
            commit=saved.inventory_commit,
            directory=str(connection["directory_url"]).rstrip("/"),
            domain=saved.domain,
            base_dn=saved.base_dn,
        )
    except ReconcilerError as error:
        fail(error)
    progress = Progress("applying", len(saved.operations))
    drafting = Drafting(saved)

    def shown(op: Operation, result: str) -> None:
        what = f"{op.previous} → {op.address}" if op.previous else op.address
        progress.clear()
        click.echo(f"{result:<7} {op.action.value:<7} {what} ({op.id})")

    kept: Path | None = None
    others = dict(connection)  # open_from takes what it uses: the other providers need it too
    written: dict[int, str] = {}  # the provider's state after the run (--wait-replication)
    failure: ReconcilerError | None = None
    credentials = None
    directory = None
    source = None
    writer = None
    recap = None
    peers: list[Directory] = []
    try:
        # On record before anything can change: a log that cannot be written (full disk) stops
        # the apply here, and a server that cannot be reached is on record too.
        audit.record("apply", outcome="started", operations=len(saved.operations))
        credentials = CredentialsFile(credentials_out) if credentials_out else None
        # a merger's source directory, only read; by default at the base the plan read
        if not connection.get("source_base_dn"):
            connection["source_base_dn"] = saved.source_base_dn or None
        opened = open_source(connection)
        if opened is not None:
            source = opened[0]
            if saved.source_base_dn and opened[1] != saved.source_base_dn:
                raise ReconcilerError(
                    f"the plan carries mailboxes from {saved.source_base_dn}, not {opened[1]}: "
                    f"give --source-base-dn {saved.source_base_dn}"
                )
        directory = open_from(connection, "create", "Writing to")
        if len(directory.providers) > 1:  # which provider of the list this run writes to
            audit.record(
                "provider", url=directory.url, skipped=list(directory.skipped), outcome="ok"
            )
        peers, unanswered = open_peers(dict(others), directory)
        warn_unlisted(directory, saved.base_dn)
        # the directory's own history: every record of the run from its first on (a directory
        # whose schema lacks the history's object class stops the apply here, unchanged)
        writer = history.Writer(directory, saved.base_dn, uuid.uuid4().hex[:12])
        audit.attach(writer.add)
        try:
            recap = apply_module.execute(
                saved,
                digest,
                directory,
                audit,
                credentials,
                actor=actor_name(actor),
                break_lock=break_lock,
                progress=progress,
                on_result=shown,
                accept_unverified_lock=accept_unverified_lock,
                accept_other_directory=accept_other_directory,
                trusted=trusted,
                digest_bound=bool(expect_digest),
                wait_replication=wait_replication,
                peers=peers,
                unanswered=unanswered,
                source=source,
                window=in_flight,
                meanwhile=drafting.ready,
                idle=drafting.idle,
            )
        finally:
            progress.close()
            for peer in peers:
                peer.close()
        if not recap.failed:  # the history past its retention goes, after a run that went well
            from reconciler.rules.lifecycle import add_months

            months = saved.audit_keep_months or DEFAULT_KEEP_MONTHS
            cutoff = dt.datetime.combine(
                add_months(dt.datetime.now(dt.UTC).date(), -months), dt.time(), dt.UTC
            )
            try:
                pruned = history.prune(directory, saved.base_dn, cutoff)
            except ReconcilerError as error:
                click.echo(f"Warning: the audit history was not pruned: {error}", err=True)
                pruned = 0
            if pruned:
                audit.record("history", outcome="changed", pruned=pruned, kept_months=months)
        audit.record("apply", outcome="failed" if recap.failed else "done", recap=recap.line())
    except ReconcilerError as error:
        failure = error
        audit.last_words("failed", str(error))
    finally:
        if writer is not None:
            try:
                writer.close()
            except ReconcilerError as error:
                if failure is None and not (recap and recap.failed):
                    failure = error
                else:  # the run failed anyway: that failure is what to report
                    click.echo(f"Warning: {error} (the local audit log has every record)", err=True)
        if directory is not None:
            if wait_replication is not None and recap is not None and not recap.failed:
                with suppress(ReconcilerError):  # what the run left, history included
                    written = replicas.state(directory, saved.base_dn)
            try:
                directory.close()
            except ReconcilerError as error:
                failure = failure or error
        if source is not None:
            with suppress(ReconcilerError):
                source.close()
        if credentials:
            credentials.close()
        with suppress(ReconcilerError):
            kept = audit.keep_plan(plan_file, digest)
        audit.close()
    if failure is not None or recap is None:
        fail(failure or ReconcilerError("the apply did not finish"))
    if recap.replaced_lock:
        click.echo(f"Took over the lock of a previous run: {recap.replaced_lock}", err=True)
    for message in recap.messages:
        click.echo(message, err=True)
    click.echo(f"Recap: {recap.line()}")
    click.echo(
        f"Audit log: {log_path}; applied plan kept as {kept}"
        if kept
        else f"Audit log: {log_path}; the applied plan could not be kept beside it",
        err=True,
    )
    if credentials and credentials.count:  # only the lines whose mailbox was written
        click.echo(
            f"{count(credentials.count, 'initial password')} written to {credentials_out}",
            err=True,
        )
    if recap.reused:
        click.echo(
            f"{count(len(recap.reused), 'password')} already on file, put there by a run that "
            "stopped before writing the mailboxes: the working ones, " + "; ".join(recap.reused),
            err=True,
        )
    try:
        owners, withheld = invariants.trusted_owners(
            saved, loaded.people if loaded else None, digest_bound=bool(expect_digest)
        )
        for message in withheld:
            click.echo(message, err=True)
        folder = notices_out or log_path.parent / "notices"
        notify(saved, recap, folder, owners, drafting.drafts)
    except ReconcilerError as error:
        fail(error)
    if recap.failed:
        click.echo(
            "The apply stopped at the failure above: the writes already sent with it finished "
            "and are recorded, the operations after them were not attempted. Fix the cause and "
            "run the same apply again.",
            err=True,
        )
        sys.exit(1)
    if written and directory is not None and wait_replication is not None:
        try:
            wait_for_providers(others, directory, saved.base_dn, written, wait_replication)
        except ReconcilerError as error:
            fail(error)


_FROZEN_AT_EXIT: list[bool] = []


def _freeze_at_exit() -> None:
    """At the process's exit, every object still alive is moved out of the cyclic collector's
    reach (`gc.freeze`) before the interpreter's last collections, which would otherwise walk
    them all to find little: what the run made goes with the process. Files are closed by the
    run itself, never left to the collector. Registered once per process."""
    if not _FROZEN_AT_EXIT:
        _FROZEN_AT_EXIT.append(True)
        atexit.register(gc.freeze)


class Drafting:
    """The end of a run made ready while its writes are in flight: `ready` (apply's `meanwhile`,
    once the first writes are sent) imports the notices and the email package, the regulations,
    the calendar of the history's retention, some 20 ms that a run of 1,000 operations would
    otherwise add before its first write or after its last; `idle` (apply's `idle`) drafts the
    notices as the outcomes come (`notices.Drafts`), 0.6 s after the last of 20,000 creates
    otherwise. Never fails: what cannot be made ready here is made at the end, where a failure
    is reported."""

    def __init__(self, saved: Plan) -> None:
        self.saved = saved
        self.drafts: notices.Drafts | None = None

    def ready(self) -> None:
        with suppress(Exception):
            import reconciler.rules.lifecycle  # noqa: F401
            from reconciler.outputs import notices
            from reconciler.rules import regulations

            saved = self.saved
            self.drafts = notices.Drafts(regulations.get(saved.regulation), saved, sender(saved))

    def idle(self, outcomes: Sequence[Outcome]) -> bool:
        return self.drafts.step(outcomes) if self.drafts is not None else False


def sender(saved: Plan) -> str:
    """Who the notices are from."""
    return saved.sender or f"noreply@{saved.domain}"


def notify(
    saved: Plan,
    recap: Recap,
    folder: Path,
    owners: Sequence[Owner] = (),
    drafts: notices.Drafts | None = None,
) -> None:
    """The agencies' notices of what this apply did (and refused), and to each of `owners` (the
    trusted ones: `invariants.trusted_owners`) whose mailbox it suspended: written, and sent when
    the plan names a relay. `drafts`: their items worked out while apply ran (`Drafting`)."""
    from reconciler.outputs import notices
    from reconciler.rules import regulations

    when = dt.datetime.now(dt.UTC)
    regulation = regulations.get(saved.regulation)
    built = notices.build(saved, recap.outcomes, regulation, when, owners, drafts)
    if not built:
        return
    written = notices.write(built, folder, sender(saved), when)
    agencies = count(sum(1 for n, _ in written if not n.owner), "agency", "agencies")
    told = sum(1 for n, _ in written if n.owner)
    people = f" and {count(told, 'person', 'people')} at their own address" if told else ""
    click.echo(f"Notices for {agencies}{people} written to {folder}", err=True)
    if saved.relay:
        sent = notices.send(written, saved.relay, sender(saved))
        click.echo(f"{count(sent, 'notice')} sent through {saved.relay}", err=True)
