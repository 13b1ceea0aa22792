"""Commands that need no directory: validate, address."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.app import main
from reconciler.cli.common import fail, load_inventory
from reconciler.errors import ReconcilerError


@main.command()
@click.argument("inventory", type=click.Path(file_okay=False, path_type=Path))
def validate(inventory: Path) -> None:
    """Check an inventory folder against the schemas and the regulation.

    Every problem is printed as FILE:LINE: message; the exit status is 1 when there is any.
    """
    checked = load_inventory(inventory).inventory
    click.echo(
        f"{inventory}: valid — {checked.settings.regulation}, {len(checked.agencies)} agencies, "
        f"{len(checked.people)} staff"
    )


@main.command()
@click.argument("name")
@click.option("--regulation", required=True, help="quangnam-2020 or hagiang-2024")
@click.option(
    "--agency",
    "agency_abbr",
    metavar="ABBR",
    help="the agency's abbreviation (hagiang-2024 puts it in the address)",
)
@click.option("--domain", help="mail domain (default: the regulation's)")
def address(name: str, regulation: str, agency_abbr: str | None, domain: str | None) -> None:
    """Print the address NAME would get, before any collision is taken into account.

    Example: reconciler address "Nguyễn Văn Sơn" --regulation hagiang-2024 --agency sotttt
    """
    from reconciler.rules import naming, regulations

    try:
        reg = regulations.get(regulation)
        click.echo(naming.address_for(name, reg, agency_abbr, domain))
    except ReconcilerError as error:
        fail(error)
