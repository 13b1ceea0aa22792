"""`reconciler show`."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.app import main
from reconciler.cli.common import fail
from reconciler.cli.plan_cmd import plan_format, print_plan, show_unmanaged_option
from reconciler.errors import ReconcilerError


@main.command()
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@plan_format
@show_unmanaged_option
def show(plan_file: Path, fmt: str, show_unmanaged: bool) -> None:
    """Print a plan saved by `reconciler plan --out`, for review: as `plan` prints it, with its
    digest. The file is checked as apply checks it (a plan edited by hand is refused); no
    directory is needed."""
    from reconciler.planning import planfile

    try:
        saved, digest = planfile.load_sealed(plan_file)
    except ReconcilerError as error:
        fail(error)
    print_plan(saved, fmt, show_unmanaged)
    if fmt == "text":
        click.echo(f"Digest {digest}, made at {saved.now:%Y-%m-%dT%H:%M:%SZ}.")
