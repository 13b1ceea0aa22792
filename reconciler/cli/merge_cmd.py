"""`reconciler merge` and `reconciler merge-lists` (README: The 2025 merger)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import fail, load_inventory, parse_now, problems
from reconciler.errors import InventoryError, ReconcilerError


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
def merge(source: Path, target: Path, map_file: Path, out: Path, now: dt.datetime) -> None:
    """Write the merged province's inventory: every person and agency of --from placed into
    --into by the map, ids kept (or prefixed), every former address kept as an alias, and each
    moved record's origin.

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
        result = merger.merge(
            merger.Side(s_loaded.inventory, s_loaded.regulation, _files(source)),
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
    click.echo(
        f"{out}: {result.moved} staff of {source} placed into {target} "
        f"({result.agencies_merged} agencies merged into the target's, {result.agencies_new} "
        f"new; {result.aliases} organisation and unit addresses kept as aliases); "
        f"{len(merged.agencies)} agencies, {len(merged.people)} staff, {merged.settings.domain} "
        f"({merged.settings.regulation})"
    )
