"""`reconciler merge` and `reconciler merge-lists` (README: The 2025 merger)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import (
    fail,
    load_inventory,
    open_source,
    parse_now,
    problems,
    source_options,
)
from reconciler.errors import InventoryError, ReconcilerError
from reconciler.text import count


def _comments(text: str) -> str:
    """The comment lines a file starts with, without their `#`."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" "))
    return "\n".join(lines)


def _files(folder: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """The inventory's files as parsed data, with their leading comments (already checked)."""
    from reconciler.inventory import yamlload

    out = {}
    for path in [folder / "directory.yaml", *sorted((folder / "agencies").glob("*.yaml"))]:
        blob = path.read_bytes()
        parsed = yamlload.parse(blob)
        rel = path.relative_to(folder).as_posix()
        out[rel] = (parsed.data, _comments(blob.decode("utf-8-sig")))
    return out


@main.command()
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="the former province's inventory (merged in)",
)
@click.option(
    "--into",
    "target",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="the merged province's inventory (kept as it is, with what arrives added)",
)
@click.option(
    "--map",
    "map_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the merge map (YAML, schemas/merge-map.schema.json)",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="the merged inventory folder to write (must not exist, or be empty)",
)
@click.option(
    "--now",
    callback=parse_now,
    metavar="DATE",
    help="the day of the merger when the map gives none (default: today)",
)
@source_options
def merge(
    source: Path, target: Path, map_file: Path, out: Path, now: dt.datetime, **connection: Any
) -> None:
    """Write the merged province's inventory: every person and agency of --from placed into
    --into by the map, ids kept (or prefixed), every former address kept as an alias, and each
    moved record's origin.

    The former addresses are those the source's regulation gives its records, or, with
    --source-directory (only read), those their mailboxes hold there, aliases included.
    Then: `reconciler validate OUT`, and `reconciler plan OUT --directory TARGET_URL
    --source-directory SOURCE_URL` to move the mailboxes with their passwords.
    """
    from reconciler.inventory import mergemap
    from reconciler.outputs import merger

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(ReconcilerError(f"{out} exists and is not empty: merge writes a new inventory"))
    s_loaded = load_inventory(source)
    t_loaded = load_inventory(target)
    try:
        mmap = mergemap.load(map_file, now.date())
        held = _held(connection, s_loaded)
        result = merger.merge(
            merger.Side(s_loaded.inventory, s_loaded.regulation, _files(source), held),
            merger.Side(t_loaded.inventory, t_loaded.regulation, _files(target)),
            mmap,
        )
    except InventoryError as error:
        problems(error, str(map_file))
    except ReconcilerError as error:
        fail(error)
    for rel, content in result.files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    merged = load_inventory(out).inventory  # what was written must be a valid inventory
    aliases = count(
        result.aliases, "organisation or unit address", "organisation and unit addresses"
    )
    click.echo(
        f"{out}: {result.moved} staff of {source} placed into {target} "
        f"({count(result.agencies_merged, 'agency', 'agencies')} merged into the target's, "
        f"{result.agencies_new} new; {aliases} kept as aliases); "
        f"{count(len(merged.agencies), 'agency', 'agencies')}, {len(merged.people)} staff, "
        f"{merged.settings.domain} ({merged.settings.regulation})"
    )


def _held(connection: dict[str, Any], loaded: Any) -> dict[str, tuple[str, ...]]:
    """With --source-directory: the addresses each source record's mailbox holds there (mail,
    then aliases), found by its id (employeeNumber); only read."""
    from reconciler.attributes import SOURCE_READ
    from reconciler.planning.collector import paused

    connection.update(starttls=False, insecure=False, ca_file=None, backend=None)
    opened = open_source(connection)
    if opened is None:
        return {}
    directory, base = opened
    ids = [p.id for p in loaded.inventory.people]
    held: dict[str, tuple[str, ...]] = {}
    try:
        with paused():
            for entry in directory.find(base, "employeeNumber", ids, SOURCE_READ):
                if entry.key and entry.mail:
                    aliases = sorted({a.lower() for a in entry.all("govMailAlias")} - {entry.mail})
                    held[entry.key] = (entry.mail, *aliases)
    finally:
        directory.close()
    click.echo(
        f"Read the addresses of {len(held):,} of {len(ids):,} records' mailboxes in "
        f"{directory.url} ({base}); the source is only read.",
        err=True,
    )
    return held


@main.command("merge-lists")
@click.argument("plan_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="the folder to write the lists to",
)
def merge_lists(plan_file: Path, out: Path) -> None:
    """Write a merger's lists from its saved plan: per agency, each moved person's former and new
    address (agencies/<id>.csv and .html, in Vietnamese, for the letters); imap-sync-jobs.csv
    (source login → target login, for imapsync or `doveadm sync`); mail-routing.txt (the former
    domains the mail server accepts as alias domains). Files are 0600: they hold personal data.
    """
    import os

    from reconciler.outputs import mergelists
    from reconciler.planning import planfile

    try:
        saved = planfile.load(plan_file)
    except ReconcilerError as error:
        fail(error)
    files = mergelists.build(saved)
    if len(files) <= 2:
        fail(ReconcilerError(f"{plan_file} moves no mailbox (make it with --source-directory)"))
    for rel, content in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(content)
    moved = len(mergelists.moves(saved))
    agencies = (len(files) - 2) // 2
    click.echo(
        f"{out}: lists of {count(moved, 'moved mailbox', 'moved mailboxes')}, "
        f"{count(agencies, 'agency', 'agencies')}"
    )
