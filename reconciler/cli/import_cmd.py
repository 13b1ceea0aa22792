"""`reconciler import`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import connection_options, fail, open_from, parse_now
from reconciler.errors import ReconcilerError
from reconciler.text import count


@main.command("import")
@connection_options
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="the inventory folder to write (must not exist, or be empty)",
)
@click.option("--regulation", help="quangnam-2020 or hagiang-2024 (default: by the domain)")
@click.option("--domain", help="mail domain (default: the most frequent one of the addresses)")
@click.option(
    "--base-dn", metavar="DN", help="base_dn of the inventory (default: the server's suffix)"
)
@click.option(
    "--people-base", metavar="DN", help="import the people below this DN (default: --base-dn)"
)
@click.option(
    "--agency-attribute",
    default="ou",
    show_default=True,
    metavar="ATTR",
    help="attribute naming a person's agency (ou, departmentNumber, o…), or `parent` for the "
    "entry's parent OU",
)
@click.option(
    "--map",
    "map_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML mapping of attribute values or DN suffixes to agencies {id, name, abbreviation}",
)
@click.option(
    "--report-format",
    type=click.Choice(["csv", "markdown"]),
    default="csv",
    show_default=True,
    help="import-report.csv or import-report.md",
)
@click.option(
    "--now",
    callback=parse_now,
    metavar="DATE",
    help="the date written in the notes (default: today)",
)
def import_(
    out: Path,
    regulation: str | None,
    domain: str | None,
    base_dn: str | None,
    people_base: str | None,
    agency_attribute: str,
    map_file: Path | None,
    report_format: str,
    now: dt.datetime,
    **connection: Any,
) -> None:
    """Write an inventory from an existing directory, keeping every address as it is.

    Every person entry keeps its address pinned; entries that cannot be placed without guessing
    are listed in the report beside the inventory. The first plan then adopts the entries (one
    update each, no rename, no password change), and the plan after it is empty.
    """
    from reconciler.cli.progress import Progress
    from reconciler.directory.snapshot import naming_context, read_tree
    from reconciler.outputs import importer
    from reconciler.planning import collector
    from reconciler.rules import regulations

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(ReconcilerError(f"{out} exists and is not empty: import writes a new inventory"))
    try:
        mapping = importer.AgencyMap()
        if map_file is not None:
            mapping = importer.parse_map(_read_map(map_file))
        directory = open_from(connection)
        try:
            base = base_dn or naming_context(directory)
            attributes = (*importer.READ, agency_attribute)
            progress = Progress("reading the directory")
            try:
                with collector.paused():
                    entries = read_tree(directory, base, attributes, progress)
            finally:
                progress.close()
        finally:
            directory.close()
        domain = domain or importer.infer_domain(entries)
        if domain is None and regulation is not None:
            domain = regulations.get(regulation).domain
        if domain is None:
            raise ReconcilerError("no addresses found to infer the domain from: give --domain")
        regulation = regulation or importer.infer_regulation(domain)
        if regulation is None:
            raise ReconcilerError(
                f"no built-in regulation is decided for {domain}: give --regulation"
            )
        options = importer.Options(
            regulation=regulation,
            domain=domain.lower(),
            base_dn=base,
            people_base=people_base or base,
            today=now.date(),
            agency_attribute=agency_attribute,
            mapping=mapping,
            source=directory.url,
        )
        result = importer.build(entries, options)
        written = importer.files(result, options, report_format)
    except ReconcilerError as error:
        fail(error)
    for rel, content in written.items():
        path = out / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        except OSError as error:
            fail(ReconcilerError(f"cannot write {path}: {error.strerror}"))
    report = next(rel for rel in written if rel.startswith("import-report"))
    click.echo(
        f"{out}: {count(len(result.agencies), 'agency', 'agencies')}, {result.staff} staff "
        f"({options.regulation}, {options.domain}, base_dn {options.base_dn})"
    )
    click.echo(
        f"{count(len(result.left_out), 'entry', 'entries')} left out, "
        f"{sum(r.status == importer.UNMANAGED for r in result.report)} unmanaged: see "
        f"{out / report}",
        err=True,
    )
    if result.staff == 0:
        fail(
            ReconcilerError(
                f"no mailbox was imported from {options.source} under {options.people_base}: "
                f"see {out / report} for every entry and why (check --people-base, --domain and "
                "--agency-attribute)"
            )
        )


def _read_map(path: Path) -> Any:
    from reconciler.inventory import yamlload

    parsed = yamlload.parse(path.read_bytes())
    if parsed.problems:
        line, message = parsed.problems[0]
        raise ReconcilerError(f"{path}:{line}: {message}")
    return parsed.data
