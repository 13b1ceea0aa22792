"""What the commands share: connection options, loading an inventory, errors to exit codes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from reconciler.directory import BACKENDS, Directory
from reconciler.errors import InventoryError, ReconcilerError
from reconciler.model import Entry

if TYPE_CHECKING:
    from reconciler.directory.ldif import Access
    from reconciler.planning.pipeline import Loaded

F = TypeVar("F", bound=Callable[..., Any])


def fail(error: ReconcilerError) -> NoReturn:
    click.echo(f"Error: {error}", err=True)
    sys.exit(1)


def problems(error: InventoryError, label: str) -> NoReturn:
    for problem in error.problems:
        click.echo(str(problem), err=True)
    n = len(error.problems)
    click.echo(f"{label}: {n} problem{'s' if n != 1 else ''} found", err=True)
    sys.exit(1)


def parse_now(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    from reconciler.inventory.activity import parse_moment

    try:
        return parse_moment(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or date-time") from None


def connection_options(command: F) -> F:
    """--directory and the bind options shared by every command that reads the directory."""
    options = [
        click.option(
            "--directory",
            "directory_url",
            envvar="RECONCILER_DIRECTORY",
            required=True,
            metavar="URL",
            help="ldap://, ldaps://, ldapi:// URL, or ldif:PATH for the file directory "
            "[env RECONCILER_DIRECTORY]",
        ),
        click.option(
            "--bind-dn",
            envvar="RECONCILER_BIND_DN",
            metavar="DN",
            help="bind DN [env RECONCILER_BIND_DN]; the password comes only from "
            "RECONCILER_BIND_PASSWORD or --bind-password-file",
        ),
        click.option(
            "--bind-password-file",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE",
            help="file holding the bind password",
        ),
        click.option("--starttls", is_flag=True, help="upgrade ldap:// with StartTLS"),
        click.option(
            "--insecure",
            is_flag=True,
            help="allow a simple bind over plain ldap:// to a non-loopback host",
        ),
        click.option(
            "--ca-file",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="CA certificates to verify the server's certificate",
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            envvar="RECONCILER_BACKEND",
            help="the LDAP library: python-ldap (OpenLDAP's libldap, about 3x faster; the "
            "default when installed) or ldap3 (pure Python) [env RECONCILER_BACKEND]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def open_from(kw: dict[str, Any], access: Access = "read") -> Directory:
    """The directory the connection options name. An `ldif:` file is read-only and must exist
    unless `access` says otherwise: only `apply` creates one ("create")."""
    from reconciler.directory import open_directory

    password = os.environ.get("RECONCILER_BIND_PASSWORD")
    password_file: Path | None = kw.pop("bind_password_file")
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ReconcilerError(
                f"cannot read --bind-password-file {password_file}: {error.strerror}"
            ) from None
    return open_directory(
        kw.pop("directory_url"),
        bind_dn=kw.pop("bind_dn"),
        password=password,
        starttls=kw.pop("starttls"),
        insecure=kw.pop("insecure"),
        ca_file=kw.pop("ca_file"),
        backend=kw.pop("backend"),
        access=access,
    )


def git_commit(folder: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def load_inventory(inventory: Path) -> Loaded:
    """The checked inventory (`pipeline.load`); its problems are printed, and the command ends."""
    from reconciler.planning import pipeline

    try:
        return pipeline.load(inventory)
    except InventoryError as error:
        problems(error, str(inventory))


def read_directory(
    connection: dict[str, Any], loaded: Loaded, *, progress: bool = False
) -> tuple[list[Entry], Directory]:
    """Open the directory the connection options name, read the inventory's part of it
    (`pipeline.read`) and close it: the entries, and the closed directory (its `url`, its
    `backend`)."""
    from reconciler.cli.progress import Progress
    from reconciler.planning import pipeline

    directory = open_from(connection)
    shown = Progress(f"reading the directory ({directory.backend})") if progress else None
    try:
        return pipeline.read(directory, loaded, shown), directory
    finally:
        if shown is not None:
            shown.close()
        directory.close()


def actor_name(actor: str | None) -> str:
    if actor:
        return actor
    for var in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER", "LOGNAME"):
        if os.environ.get(var):
            return f"{os.environ[var]} ({var})"
    return "unknown"


def inventory_and_audit_options(command: F) -> F:
    """--inventory (where the mailboxes are, and their regulation) and --audit-log, shared by the
    commands that change one mailbox outside a plan file (reset-password, suspend)."""
    command = click.option(
        "--audit-log",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path("plans/audit.jsonl"),
        show_default=True,
        help="JSON-lines audit log to append to",
    )(command)
    return click.option(
        "--inventory",
        "inventory_path",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="RECONCILER_INVENTORY",
        help="the inventory folder: where the mailboxes are, and their regulation "
        "[env RECONCILER_INVENTORY]",
    )(command)
