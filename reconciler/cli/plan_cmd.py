"""`reconciler plan`."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import (
    Read,
    connection_options,
    fail,
    git_commit,
    load_inventory,
    open_source,
    parse_now,
    problems,
    read_for_plan,
    replica_note,
    say,
    source_options,
    wait_option,
)
from reconciler.errors import InventoryError, ReconcilerError, UnsafePlan
from reconciler.model import Plan, ReadState

if TYPE_CHECKING:  # yaml, which it loads, is for the commands that read an inventory
    from reconciler.ahead import Ahead
    from reconciler.inventory.gitdiff import InventoryChanges
    from reconciler.planning.pipeline import Loaded

#: --format of the commands that print a plan (plan, show).
plan_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="how to print the plan",
)
#: --show-unmanaged of the same commands.
show_unmanaged_option = click.option(
    "--show-unmanaged", is_flag=True, help="list the entries the tool does not manage"
)


@main.command()
@click.argument("inventory", type=click.Path(file_okay=False, path_type=Path))
@connection_options
@source_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="save the plan as JSON for `reconciler apply`",
)
@plan_format
@click.option(
    "--now",
    callback=parse_now,
    metavar="DATE",
    help="evaluate the time rules at this ISO 8601 date or date-time (UTC when no zone)",
)
@click.option(
    "--activity",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="the last activity per address: the CSV `reconciler activity` makes from the mail "
    "logs (address,last_activity,…)",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="exit 0 when there is nothing to do, 2 when there are changes, 1 on error",
)
@click.option(
    "--allow-deletes",
    type=click.IntRange(min=0),
    metavar="N",
    help="allow up to N deletions (above max_deletes in directory.yaml)",
)
@click.option(
    "--allow-suspends",
    type=click.IntRange(min=0),
    metavar="N",
    help="allow up to N suspensions (above 10 % of the mailboxes)",
)
@show_unmanaged_option
@click.option(
    "--only-time-rules",
    is_flag=True,
    help="keep only the operations the time rules cause (suspensions for inactivity or an "
    "unchanged password, deletions after a long suspension): what the daily scheduled run "
    "applies on its own; the guard applies to them alone",
)
@click.option(
    "--read-from",
    metavar="URL",
    help="read the entries from this replica (a consumer) instead of the first provider; the "
    "plan records the replication state it read, and apply refuses it if that was behind",
)
@wait_option("the server read to hold every change the providers listed hold")
@click.option(
    "--base-ref",
    metavar="REF",
    help="also list the staff records added, removed, moved or edited since this git revision "
    "(the pull request's merge base); a transfer is one move",
)
def plan(
    inventory: Path,
    out: Path | None,
    fmt: str,
    now: dt.datetime,
    activity: Path | None,
    detailed_exitcode: bool,
    allow_deletes: int | None,
    allow_suspends: int | None,
    show_unmanaged: bool,
    only_time_rules: bool,
    base_ref: str | None,
    read_from: str | None,
    wait_replication: float | None,
    **connection: Any,
) -> None:
    """Show what would change in the directory to match INVENTORY and the regulation.

    Reads the live directory, gives every mailbox its address by the regulation, and lists the
    create / rename / update / suspend / restore / delete operations, each with its clause. On
    a replicated directory the plan records the state it read (each provider's contextCSN).
    """
    from reconciler.ahead import Ahead
    from reconciler.cli.progress import Progress
    from reconciler.directory.history import applied_digests
    from reconciler.inventory import activity as activity_module
    from reconciler.inventory.gitdiff import changes_since
    from reconciler.planning import collector, pipeline, planfile
    from reconciler.planning.plan import Context

    # the directory is read in a child process while the inventory is loaded here (`ahead`)
    alone = pipeline.settings_alone(inventory) if Ahead.possible() else None
    reading = None
    if alone is not None:
        reading = Ahead.start(partial(_read_ahead, connection, alone, read_from, wait_replication))
    try:
        loaded = load_inventory(inventory)
        changes: InventoryChanges | None = None
        if base_ref is not None:
            with collector.paused():  # both sides of the inventory, parsed
                changes = changes_since(inventory, base_ref)
        seen = activity_module.load(activity, now) if activity else {}
        sources, source_url, source_base = _sources(connection, loaded)
        if (
            reading is not None
            and alone is not None  # (it is, when there is a child reading)
            and alone.inventory.settings == loaded.inventory.settings
        ):
            read, state, seconds = _taken(reading, loaded)
        else:  # read here, now (directory.yaml changed while it was read, or no child)
            if reading is not None:
                reading.cancel()  # a read of other settings: not kept going meanwhile
            started = time.monotonic()
            read, state = read_for_plan(
                connection, loaded, read_from=read_from, wait=wait_replication
            )
            seconds = time.monotonic() - started
        said = (
            f"Read {len(read.entries):,} entries from {read.url} with {read.backend} "
            f"in {seconds:.1f} s." + (replica_note(state) if read_from is not None else "")
        )
        context = Context(
            now=now,
            directory_url=read.url,
            directory_backend=read.backend,
            inventory_commit=git_commit(inventory),
            activity=seen,
            applied=applied_digests(read.history),
            directory_identity=read.identity,
            replication=state,
            sources=sources,
            source_url=source_url,
            source_base_dn=source_base,
        )
        computing = Progress("computing the plan")
        try:
            result = pipeline.make_plan(
                loaded,
                read.entries,
                context,
                limits=loaded.limits(allow_deletes, allow_suspends),
                progress=computing,
                time_rules_only=only_time_rules,
            )
        finally:
            computing.close()
        # the entries read and the inventory, not kept while the plan is printed and saved
        # (freed now rather than when the command ends: at 100,000, 60 MB less at the peak)
        del read, loaded
    except UnsafePlan as error:
        print_plan(error.plan, fmt, show_unmanaged, changes)  # the refused plan, then why
        fail(error)
    except InventoryError as error:
        problems(error, str(inventory))
    except ReconcilerError as error:
        fail(error)
    finally:
        if reading is not None:
            reading.cancel()
    click.echo(said, err=True)  # once there is a plan: problems alone on stderr otherwise
    print_plan(result, fmt, show_unmanaged, changes)
    if out is not None:
        try:
            sealed = planfile.save(result, out)
        except ReconcilerError as error:
            fail(error)
        click.echo(f"Saved the plan to {out} (digest {sealed}).", err=True)
    if detailed_exitcode and not result.empty:
        sys.exit(2)


_TOLD = "told"  # a part the child sends: a line to print (`_read_ahead`, `_taken`)


def _read_ahead(
    connection: dict[str, Any],
    alone: Loaded,
    read_from: str | None,
    wait: float | None,
    send: Callable[[Any], None],
) -> tuple[Read, ReadState | None, float]:
    """In the child (`ahead`): the directory read for a plan (`read_for_plan`) with
    directory.yaml `alone`, its entries sent as they are read (`pipeline.read`'s relay) and
    the lines it has to tell sent as they come; its seconds."""
    started = time.monotonic()
    read, state = read_for_plan(
        connection,
        alone,
        read_from=read_from,
        wait=wait,
        tell=lambda line: send((_TOLD, line)),
        relay=send,
    )
    return read, state, time.monotonic() - started


def _taken(reading: Ahead[Any], loaded: Loaded) -> tuple[Read, ReadState | None, float]:
    """The read the child made (`_read_ahead`), each part taken as it comes: its lines printed,
    its entries surveyed here (`pipeline.Received`) with the progress shown."""
    from reconciler.cli.progress import Progress
    from reconciler.planning import collector, pipeline

    received = pipeline.Received(loaded)
    shown: Progress | None = None

    def take(part: tuple[Any, ...]) -> None:
        nonlocal shown
        if part[0] == _TOLD:
            say(part[1])
            return
        received.take(part)
        if shown is None:
            shown = Progress("reading the directory")
        shown(received.count)

    try:
        with collector.paused():
            read, state, seconds = reading.result(take)
    finally:
        if shown is not None:
            shown.close()
    return read._replace(entries=received.done(read.entries)), state, seconds


def _sources(connection: dict[str, Any], loaded: Any) -> tuple[dict[str, Any], str, str]:
    """A merger's source entries (`pipeline.read_sources`), the source's URL and base DN."""
    from reconciler.planning import pipeline

    opened = open_source(connection)
    if opened is None:
        return {}, "", ""
    directory, base = opened
    try:
        started = time.monotonic()
        found = pipeline.read_sources(directory, base, loaded)
        click.echo(
            f"Found {len(found):,} of the merged records' mailboxes in {directory.url} ({base}) "
            f"in {time.monotonic() - started:.1f} s; the source is only read.",
            err=True,
        )
        return found, directory.url, base
    finally:
        directory.close()


def print_plan(
    result: Plan, fmt: str, show_unmanaged: bool, changes: InventoryChanges | None = None
) -> None:
    from reconciler.planning import planfile, render

    if fmt == "json":
        click.echo(planfile.to_json(result), nl=False)
    elif fmt == "markdown":
        click.echo(
            render.markdown(
                result, planfile.digest(result), show_unmanaged=show_unmanaged, changes=changes
            ),
            nl=False,
        )
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        lines = render.text_lines(
            result, color=color, show_unmanaged=show_unmanaged, changes=changes
        )
        while batch := list(itertools.islice(lines, 1000)):  # never the whole text at once
            click.echo("\n".join(batch))
