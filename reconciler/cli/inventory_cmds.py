"""Commands that need no directory: validate, address."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import click

from reconciler.cli.app import main
from reconciler.cli.common import fail
from reconciler.errors import InventoryError, Problem, ReconcilerError
from reconciler.text import count

#: How `validate` prints problems: for people, as GitHub workflow commands (annotations on the
#: pull request's diff), or as a GitLab code-quality report.
FORMATS = ("text", "github", "gitlab")


def _relative(file: str) -> str:
    """A problem's file as the repository names it (the CI runs at the repository's root)."""
    path = os.path.normpath(file)
    if os.path.isabs(path):
        try:
            path = os.path.relpath(path)
        except ValueError:
            return path
    return path.replace(os.sep, "/")


def _escape(text: str, *, property_value: bool = False) -> str:
    """A workflow command's data (or property value), escaped as GitHub's runner expects."""
    out = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return out.replace(":", "%3A").replace(",", "%2C") if property_value else out


def github(problems: tuple[Problem, ...]) -> str:
    """`::error file=…,line=…::message` per problem: GitHub shows each on the diff's line."""
    lines = []
    for p in problems:
        where = f"file={_escape(_relative(p.file), property_value=True)}"
        if p.line > 0:
            where += f",line={p.line}"
        lines.append(f"::error {where},title=reconciler validate::{_escape(p.message)}")
    return "\n".join(lines) + "\n"


def gitlab(problems: tuple[Problem, ...]) -> str:
    """A GitLab code-quality report (JSON), shown on the merge request's diff."""
    issues = []
    for p in problems:
        path = _relative(p.file)
        issues.append(
            {
                "description": p.message,
                "check_name": "reconciler-validate",
                "fingerprint": hashlib.sha256(f"{path}:{p.line}:{p.message}".encode()).hexdigest(),
                "severity": "major",
                "location": {"path": path, "lines": {"begin": max(p.line, 1)}},
            }
        )
    return json.dumps(issues, ensure_ascii=False, indent=1) + "\n"


@main.command()
@click.argument("inventory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="text (FILE:LINE: message on stderr); github: annotations on the pull request (the "
    "default under GitHub Actions); gitlab: a code-quality report (JSON) on stdout",
)
def validate(inventory: Path, fmt: str | None) -> None:
    """Check an inventory folder against the schemas and the regulation.

    Every problem is reported in one run, those of the schemas and of the regulation together,
    as FILE:LINE: message; the exit status is 1 when there is any.
    """
    from reconciler.inventory import loader
    from reconciler.planning import pipeline

    fmt = fmt or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text")
    try:
        with loader.parsed_ahead():  # on a second core, while the files parsed are checked
            checked = pipeline.load(inventory).inventory
    except InventoryError as error:
        if fmt == "github":
            click.echo(github(error.problems), nl=False)
        elif fmt == "gitlab":
            click.echo(gitlab(error.problems), nl=False)
        for problem in error.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{inventory}: {count(len(error.problems), 'problem')} found", err=True)
        raise SystemExit(1) from None
    if fmt == "gitlab":
        click.echo("[]")
    else:
        click.echo(
            f"{inventory}: valid — {checked.settings.regulation}, "
            f"{count(len(checked.agencies), 'agency', 'agencies')}, "
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
