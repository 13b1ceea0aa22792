"""`reconciler publish` (QN-2020 Đ13.4): the public e-mail directory of each agency."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import connection_options, fail, load_inventory, read_directory
from reconciler.errors import ReconcilerError
from reconciler.text import count


def _write(path: Path, text: str) -> None:
    """Write atomically, so a web server never serves half a page."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8", newline="")
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk leaves no half page behind
        raise


@main.command()
@click.argument("inventory", type=click.Path(file_okay=False, path_type=Path))
@connection_options
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for index.html and <agency>.html / <agency>.csv (created when missing)",
)
def publish(inventory: Path, out: Path, **connection: Any) -> None:
    """Write the public e-mail directory of each agency of INVENTORY: name, title, unit and
    address of its active mailboxes, as a static HTML page and a CSV (UTF-8 with a BOM, for
    Excel), plus index.html. Suspended mailboxes and internal data are left out."""
    from reconciler.outputs import publish as publish_module

    loaded = load_inventory(inventory)
    try:
        public = publish_module.build(loaded.inventory, read_directory(connection, loaded).entries)
        files = publish_module.files(public)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            _write(out / name, text)
    except OSError as error:
        fail(ReconcilerError(f"cannot write to {out}: {error.strerror}"))
    except ReconcilerError as error:
        fail(error)
    listed = sum(len(a.staff) + len(a.mailboxes) for a in public.agencies)
    click.echo(
        f"Wrote the public directory of {count(len(public.agencies), 'agency', 'agencies')} "
        f"({count(listed, 'address', 'addresses')}) "
        f"to {out}.",
        err=True,
    )
