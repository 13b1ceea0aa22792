"""`reconciler report` (QN-2020 Đ13.6, HG-2024 Đ7.3)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import (
    connection_options,
    fail,
    load_inventory,
    parse_now,
    problems,
    read_directory,
)
from reconciler.errors import InventoryError, ReconcilerError
from reconciler.text import count


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    return None if value is None else parse_now(ctx, param, value)


def _start(records: list[dict[str, Any]]) -> dt.datetime | None:
    """When the directory's history begins (its oldest record kept)."""
    from reconciler.directory.history import moment

    times = [m for r in records if (m := moment(r.get("time"))) is not None]
    return min(times) if times else None


def read_audit(path: Path) -> list[dict[str, Any]]:
    """The audit log's records (`audit.read`); a line that is not a JSON object is an error naming
    the line, a cut-off last line is skipped with a note."""
    from reconciler.applying import audit

    records, found, torn = audit.read(path)
    if found:
        raise InventoryError(found)
    if torn is not None:
        click.echo(
            f"Note: the last line of {path} was cut off while it was written (a full disk or a "
            "power cut) and was skipped; the next apply removes it from the log.",
            err=True,
        )
    return records


@main.command()
@click.argument("inventory", type=click.Path(file_okay=False, path_type=Path))
@connection_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "csv", "html"]),
    default="markdown",
    show_default=True,
    help="markdown for people, csv for spreadsheets, html: one self-contained page with a chart",
)
@click.option(
    "--since",
    callback=_since,
    metavar="DATE",
    help="start of the period (ISO 8601; default: 6 months before --now)",
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="count what was done in the period (created, renamed, deleted, suspended, restored) "
    "from this local audit log (JSON lines; only its records of this directory count) instead "
    "of the directory's own history",
)
@click.option(
    "--activity",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="the last activity per address: the CSV `reconciler activity` makes from the mail "
    "logs (address,last_activity,…)",
)
@click.option(
    "--now",
    callback=parse_now,
    metavar="DATE",
    help="the report's date and the end of the period (ISO 8601, UTC when no zone)",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the report to FILE (UTF-8) instead of standard output",
)
def report(
    inventory: Path,
    fmt: str,
    since: dt.datetime | None,
    audit_log: Path | None,
    activity: Path | None,
    now: dt.datetime,
    out: Path | None,
    **connection: Any,
) -> None:
    """The periodic report of INVENTORY's directory, in Vietnamese: accounts per agency (active,
    suspended by clause), created / renamed / deleted / suspended / restored in the period (from
    the audit history the directory keeps in ou=history), the mailboxes a time rule has caught
    and that are not suspended yet (overdue), and those it will catch within 30 days."""
    from reconciler.inventory import activity as activity_module
    from reconciler.outputs import report as report_module
    from reconciler.outputs.report_render import RENDERERS

    loaded = load_inventory(inventory)
    settings = loaded.inventory.settings
    try:
        records: list[dict[str, Any]] | None
        seen = activity_module.load(activity, now) if activity else {}
        read = read_directory(connection, loaded, history=audit_log is None)
        started = None
        if audit_log is not None:
            mine, left = report_module.own_records(
                read_audit(audit_log), settings.domain, settings.base_dn
            )
            records = [dict(r) for r in mine]
            if left:
                click.echo(
                    f"{audit_log}: {count(left, 'record')} of other directories (or naming "
                    f"none: written by an older reconciler) left out; only those of "
                    f"{settings.domain} ({settings.base_dn}) count",
                    err=True,
                )
        else:
            records = read.history or None
            started = _start(read.history)
        result = report_module.build(
            loaded.inventory,
            read.entries,
            loaded.regulation,
            records,
            now,
            since,
            seen,
            history_from=started,
        )
    except InventoryError as error:
        problems(error, str(audit_log or activity or inventory))
    except ReconcilerError as error:
        fail(error)
    text = RENDERERS[fmt](result)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(ReconcilerError(f"cannot write {out}: {error.strerror}"))
    click.echo(f"Wrote the report to {out}.", err=True)
