"""What the commands share: connection options, loading an inventory, errors to exit codes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

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
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


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
        password = read_password_file(password_file)
    elif password is not None and not _utf8(password):
        raise ReconcilerError("RECONCILER_BIND_PASSWORD is not UTF-8 text; set it as UTF-8")
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


def read_password_file(path: Path) -> str:
    """The bind password in `path`, refused when the file's mode lets its group or anyone else
    read or write it (as ssh refuses such a key): a password readable by others is not secret."""
    try:
        with path.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode & 0o777
            if mode & 0o077:
                raise ReconcilerError(
                    f"--bind-password-file {path} is readable by others (mode {mode:04o}): "
                    f"make it private with `chmod 600 {path}` and give it again"
                )
            data = f.read()
    except OSError as error:
        raise ReconcilerError(
            f"cannot read --bind-password-file {path}: {error.strerror}"
        ) from None
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ReconcilerError(f"--bind-password-file {path} is not UTF-8 text") from None


def _utf8(value: str) -> bool:
    """Is `value` (from the environment: undecodable bytes become surrogates) UTF-8 text?"""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


class Read(NamedTuple):
    """What a command read of the directory."""

    entries: list[Entry]
    #: the directory read, closed (its `url`, its `backend`)
    directory: Directory
    #: the audit records kept in the directory (`pipeline.history`), when asked for
    history: list[dict[str, Any]]
    #: the directory's identity (`Directory.identity`), which a plan records
    identity: str = ""


def read_directory(
    connection: dict[str, Any], loaded: Loaded, *, progress: bool = False, history: bool = False
) -> Read:
    """Open the directory the connection options name (an `ldif:` file read-only), read the
    inventory's part of it (`pipeline.read`), its identity (`pipeline.identity`, which a plan
    records) and, with `history`, its audit history, and close it."""
    from reconciler.cli.progress import Progress
    from reconciler.planning import pipeline

    directory = open_from(connection)
    shown = Progress(f"reading the directory ({directory.backend})") if progress else None
    try:
        entries = pipeline.read(directory, loaded, shown)
        records = pipeline.history(directory, loaded) if history else []
        return Read(entries, directory, records, pipeline.identity(directory, loaded))
    finally:
        if shown is not None:
            shown.close()
        directory.close()


#: The environment variable naming the audit log, between --audit-log and directory.yaml.
AUDIT_LOG_ENV = "RECONCILER_AUDIT_LOG"


def audit_log_option(help_text: str) -> Callable[[F], F]:
    """--audit-log FILE, from the environment when not given."""
    return click.option(
        "--audit-log",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=AUDIT_LOG_ENV,
        metavar="FILE",
        help=f"{help_text} [env {AUDIT_LOG_ENV}; else audit_log in directory.yaml]",
    )


def audit_log_path(option: Path | None, setting: str | None, command: str) -> Path:
    """Where `command` appends its audit log: --audit-log (or RECONCILER_AUDIT_LOG, which click
    puts there), else `audit_log` of directory.yaml; never the current folder by default, so
    that a command run in an inventory repository leaves nothing behind in it."""
    if option is not None:
        return option
    if setting:
        return Path(setting).expanduser()
    raise ReconcilerError(
        f"{command} needs to know where to keep its audit log: give --audit-log FILE, set "
        f"{AUDIT_LOG_ENV}, or set audit_log (an absolute path) in the inventory's directory.yaml. "
        "Nothing was changed. (The log is never put in the current folder by default; its "
        "records also go to the directory's own history, ou=history, which the report reads.)"
    )


def actor_name(actor: str | None) -> str:
    if actor:
        return actor
    for var in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER", "LOGNAME"):
        if os.environ.get(var):
            return f"{os.environ[var]} ({var})"
    return "unknown"


def inventory_and_audit_options(command: F) -> F:
    """--inventory (where the mailboxes are, their regulation, audit_log) and --audit-log, shared
    by the commands that change one mailbox outside a plan file (reset-password, suspend)."""
    command = audit_log_option("JSON-lines audit log to append to (0600)")(command)
    return click.option(
        "--inventory",
        "inventory_path",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="RECONCILER_INVENTORY",
        help="the inventory folder: where the mailboxes are, and their regulation "
        "[env RECONCILER_INVENTORY]",
    )(command)
