"""What the commands share: connection options, loading an inventory, errors to exit codes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

import click

from reconciler.directory import BACKENDS, Directory
from reconciler.errors import InventoryError, ReconcilerError
from reconciler.model import Entry

if TYPE_CHECKING:
    from reconciler.directory.ldif import Access
    from reconciler.model import ReadState
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


def wait_option(what: str) -> Callable[[F], F]:
    """--wait-replication SECONDS, saying what it waits for."""
    return click.option(
        "--wait-replication",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help=f"on a replicated directory, wait up to SECONDS for {what}",
    )


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
            metavar="URL[,URL…]",
            help="ldap://, ldaps://, ldapi:// URL, or ldif:PATH for the file directory; a "
            "comma-separated list names replicated providers, tried in order "
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


def source_options(command: F) -> F:
    """--source-directory and its bind, for a merger's merge, plan and apply: the directory of
    the province being merged in, only read (README: The 2025 merger)."""
    options = [
        click.option(
            "--source-directory",
            "source_url",
            metavar="URL",
            help="a merger: the former province's directory, only read; merge takes the "
            "addresses its mailboxes hold, plan and apply carry each mailbox over (password "
            "hash, must-change state, suspension, last login)",
        ),
        click.option(
            "--source-bind-dn",
            envvar="RECONCILER_SOURCE_BIND_DN",
            metavar="DN",
            help="bind DN for --source-directory [env RECONCILER_SOURCE_BIND_DN]; the password "
            "only from RECONCILER_SOURCE_BIND_PASSWORD or --source-bind-password-file",
        ),
        click.option(
            "--source-bind-password-file",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE",
            help="file holding the source bind password",
        ),
        click.option(
            "--source-base-dn",
            metavar="DN",
            help="the source directory's base DN (default: for apply, the plan's; else the "
            "server's first naming context)",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def open_source(kw: dict[str, Any]) -> tuple[Directory, str] | None:
    """The source directory the --source-* options name (None without --source-directory),
    opened with the connection options' TLS settings and backend, and its base DN."""
    from reconciler.directory import open_directory

    url = kw.pop("source_url")
    bind_dn = kw.pop("source_bind_dn")
    password_file: Path | None = kw.pop("source_bind_password_file")
    base_dn = kw.pop("source_base_dn")
    if url is None:
        return None
    password = os.environ.get("RECONCILER_SOURCE_BIND_PASSWORD")
    if password_file is not None:
        password = read_password_file(password_file, "--source-bind-password-file")
    directory = open_directory(
        url,
        bind_dn=bind_dn,
        password=password,
        starttls=kw.get("starttls", False),
        insecure=kw.get("insecure", False),
        ca_file=kw.get("ca_file"),
        backend=kw.get("backend"),
    )
    if not base_dn:
        root = directory.get("", ["namingContexts"])
        contexts = root.all("namingContexts") if root is not None else ()
        if not contexts:
            directory.close()
            raise ReconcilerError(
                f"cannot find the base of the source directory {directory.url}: give "
                "--source-base-dn"
            )
        base_dn = str(contexts[0])
    return directory, base_dn


def _connection(kw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Pop the connection options: the `--directory` value, and what opens each URL of it."""
    password = os.environ.get("RECONCILER_BIND_PASSWORD")
    password_file: Path | None = kw.pop("bind_password_file")
    if password_file is not None:
        password = read_password_file(password_file)
    elif password is not None and not _utf8(password):
        raise ReconcilerError("RECONCILER_BIND_PASSWORD is not UTF-8 text; set it as UTF-8")
    return str(kw.pop("directory_url")), {
        "bind_dn": kw.pop("bind_dn"),
        "password": password,
        "starttls": kw.pop("starttls"),
        "insecure": kw.pop("insecure"),
        "ca_file": kw.pop("ca_file"),
        "backend": kw.pop("backend"),
    }


def open_from(
    kw: dict[str, Any], access: Access = "read", doing: str = "Reading from"
) -> Directory:
    """The directory the connection options name: of a list of providers, the first that
    answers, saying which (on stderr). An `ldif:` file is read-only and must exist unless
    `access` says otherwise: only `apply` creates one ("create")."""
    from reconciler.directory import open_directory

    url, options = _connection(kw)
    directory = open_directory(url, access=access, **options)
    say_which(directory, doing)
    return directory


def say(line: str) -> None:
    """A line for the person running the command: on stderr, beside the output."""
    click.echo(line, err=True)


def say_which(directory: Directory, doing: str, tell: Callable[[str], None] = say) -> None:
    """For a list of providers: which one answered, and why those before it were passed over."""
    if len(directory.providers) < 2:
        return
    for reason in directory.skipped:
        url, _, why = reason.partition(": ")
        tell(f"{url} did not answer: {why}")
    position = len(directory.skipped) + 1
    tell(f"{doing} {directory.url} (provider {position} of the {len(directory.providers)} listed)")


def open_peers(connection: dict[str, Any], home: Directory) -> tuple[list[Directory], list[str]]:
    """The other providers of the list `home` was opened from: those that answer (they confirm
    the lock, `applying.lockpeers`; the caller closes them) and the URLs of those that do not."""
    from reconciler.directory import open_directory
    from reconciler.directory.replicas import open_each

    if len(home.providers) < 2:
        return [], []
    _, options = _connection(connection)
    unanswered = [reason.partition(": ")[0] for reason in home.skipped]
    peers: list[Directory] = []
    after = home.providers[len(home.skipped) + 1 :]
    for url, other in open_each(after, lambda u: open_directory(u, **options)):
        if isinstance(other, str):
            click.echo(f"{url} did not answer: {other}", err=True)
            unanswered.append(url)
        else:
            peers.append(other)
    return peers, unanswered


def warn_unlisted(directory: Directory, base_dn: str) -> None:
    """Say so when the directory holds the changes of more providers than `--directory` lists:
    the lock is confirmed only on the providers listed (`applying.lockpeers`)."""
    from reconciler.directory.replicas import state

    writers = sorted(sid for sid in state(directory, base_dn) if sid)
    listed = max(len(directory.providers), 1)
    if len(writers) > listed:
        click.echo(
            f"Warning: {directory.url} holds changes made by {len(writers)} providers "
            f"(serverIDs {', '.join(map(str, writers))}) but --directory lists {listed}: the lock "
            "is confirmed only on the providers listed, so an apply on another one could run at "
            "the same time. List every provider (a decommissioned one's serverID stays in "
            "contextCSN: then ignore this).",
            err=True,
        )


def wait_for_providers(
    connection: dict[str, Any],
    written: Directory,
    base_dn: str,
    state: Mapping[int, str],
    timeout: float,
) -> None:
    """Wait until every other provider listed holds `state` (what `written` held after the
    run), saying how long each took; ReconcilerError naming the lag of one that does not."""
    from reconciler.directory import open_directory
    from reconciler.directory.replicas import open_each, wait_until_holds

    _, options = _connection(connection)
    passed = {reason.partition(": ")[0] for reason in written.skipped}
    others = [u for u in written.providers if u != written.url and u not in passed]
    for url, other in open_each(others, lambda u: open_directory(u, **options)):
        if isinstance(other, str):
            click.echo(f"{url} did not answer: {other}", err=True)
            continue
        try:
            took = wait_until_holds(other, base_dn, state, timeout)
        finally:
            other.close()
        click.echo(f"{url} holds this run's changes ({took:.1f} s after it ended)", err=True)


def read_for_plan(
    connection: dict[str, Any],
    loaded: Loaded,
    *,
    read_from: str | None = None,
    wait: float | None = None,
    tell: Callable[[str], None] = say,
    relay: Callable[[tuple[object, ...]], None] | None = None,
) -> tuple[Read, ReadState | None]:
    """Read the directory for a plan (`pipeline.read_at_state`) and its audit history: from the
    first provider that answers, or from the replica `read_from`; every other provider listed is
    read for its replication state. What was read, and the state it was read at; which
    providers did not answer is told to `tell`. `relay`: `pipeline.read`'s (no progress is
    shown then: whoever takes the entries shows it)."""
    from reconciler.cli.progress import Progress
    from reconciler.directory import open_directory
    from reconciler.directory.replicas import open_each, split_urls
    from reconciler.planning import pipeline

    url, options = _connection(connection)
    opened: list[Directory] = []
    try:
        if read_from is not None:
            source = open_directory(read_from, access="read", **options)
            others = split_urls(url)
        else:
            source = open_directory(url, access="read", **options)
            say_which(source, "Reading from", tell)
            others = source.providers[len(source.skipped) + 1 :]
        opened.append(source)
        providers = []
        for other, reached in open_each(others, lambda u: open_directory(u, **options)):
            if isinstance(reached, str):
                tell(f"{other} did not answer: {reached}")
            else:
                opened.append(reached)
                providers.append(reached)
        # with a relay, the progress is the taker's, who sees the entries come (`plan`)
        shown = Progress(f"reading the directory ({source.backend})") if relay is None else None
        try:
            entries, state = pipeline.read_at_state(
                source,
                loaded,
                providers,
                replica=read_from is not None,
                wait=wait,
                progress=shown,
                relay=relay,
            )
        finally:
            if shown is not None:
                shown.close()
        records = pipeline.history(source, loaded)
        identity = pipeline.identity(source, loaded)
    finally:
        for directory in opened:
            directory.close()
    return Read(entries, source.url, source.backend, records, identity), state


def replica_note(state: ReadState | None) -> str:
    """For a plan read from a replica: how far behind the providers it was, in words."""
    from reconciler import csn

    if state is None:
        return ""
    held, newest = csn.state(state.held), csn.state(state.providers)
    if not newest:
        return " It is a replica, and no provider answered: how up to date it was is unknown."
    if not csn.lacking(held, newest):
        return " It is a replica, up to date with the providers."
    return (
        f" It is a replica, at least {csn.age(held, newest, state.read_at):.1f} s behind the "
        f"providers: it lacked {csn.window(held, newest)}."
    )


def read_password_file(path: Path, option: str = "--bind-password-file") -> str:
    """The bind password in `path`, refused when the file's mode lets its group or anyone else
    read or write it (as ssh refuses such a key): a password readable by others is not secret."""
    try:
        with path.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode & 0o777
            if mode & 0o077:
                raise ReconcilerError(
                    f"{option} {path} is readable by others (mode {mode:04o}): "
                    f"make it private with `chmod 600 {path}` and give it again"
                )
            data = f.read()
    except OSError as error:
        raise ReconcilerError(f"cannot read {option} {path}: {error.strerror}") from None
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ReconcilerError(f"{option} {path} is not UTF-8 text") from None


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

    entries: Sequence[Entry]  # packed (`pipeline.read`): each unpacked when asked for
    url: str  # of the directory read
    backend: str  # the LDAP library it was read with (`Directory.backend`)
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
        identity = pipeline.identity(directory, loaded)
        return Read(entries, directory.url, directory.backend, records, identity)
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
