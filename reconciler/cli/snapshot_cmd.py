"""`reconciler snapshot`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from reconciler.cli.app import main
from reconciler.cli.common import connection_options, fail, open_from
from reconciler.errors import ReconcilerError


@main.command()
@connection_options
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the LDIF file to write (replaced atomically), e.g. snapshot/directory.ldif",
)
@click.option(
    "--base-dn",
    metavar="DN",
    help="the part of the directory to export (default: the directory's one suffix)",
)
def snapshot(out: Path, base_dn: str | None, **connection: Any) -> None:
    """Export the directory, without any password or secret, as an LDIF file that pull requests
    from forks plan against (`--directory ldif:FILE`).

    Entries, attributes and values are written in a fixed order, so that the diff of a refreshed
    snapshot shows only what changed in the directory. The tool's own history and lock are left
    out. Commit the file (e.g. snapshot/directory.ldif) and refresh it now and then.
    """
    from reconciler.directory.snapshot import export, naming_context
    from reconciler.planning import collector

    try:
        directory = open_from(connection)
        try:
            base = base_dn or naming_context(directory)
            with collector.paused():
                data = export(directory, base)
        finally:
            directory.close()
        _write(out, data)
    except ReconcilerError as error:
        fail(error)
    entries = data.count(b"\ndn:")
    click.echo(f"Wrote {out}: {entries:,} entries under {base}, no password.", err=True)


def _write(path: Path, data: bytes) -> None:
    """Write atomically (a reader never sees half a snapshot), mode 0600: it names people."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise ReconcilerError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise ReconcilerError(f"cannot write {path}: {error.strerror}") from None
