"""Helpers for tests: the CLI run in-process or in a process, and for tests that use the throwaway
slapd (ldap3 is fine here: tests are not the tool)."""

from __future__ import annotations

import contextlib
import gc
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap3
from click import formatting as click_formatting
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory, LockPolicy, Progress
from reconciler.directory.ldapcommon import entry, entry_name
from reconciler.model import Entry
from reconciler.packed import Packed


@dataclass(frozen=True)
class CliResult:
    """What a test reads of one `reconciler` run: its exit status and its two output streams,
    and `output`, both interleaved as they were written (what a terminal shows)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    output: str


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> CliResult:
    """`reconciler ARGS` in this process, as a user's run into a pipe would see it.

    click's CliRunner swaps stdin/stdout/stderr for buffers (not terminals: no colour, as in a
    pipe) and sets the environment: no RECONCILER_* variable but those in `env`. The help is as
    wide as in a pipe. The run starts in `cwd`. What the run changes in the process is put back:
    the environment, the working directory, the garbage collector's thresholds and on/off state,
    tempfile's folder (computed again from TMPDIR for the run, as a new process would).

    The exit status is the one the interpreter would give (`sys.exit(None)` 0, an int modulo
    256, anything else printed on stderr and 1). An exception that is not SystemExit would be a
    traceback for the user: it is raised here, so the test fails.
    """
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RECONCILER_")}
    overrides.update(env or {})
    # a pipe has no size: shutil.get_terminal_size falls back to 80 columns unless COLUMNS says
    overrides.setdefault("COLUMNS", os.environ.get("COLUMNS", "80"))
    environ, threshold, enabled = dict(os.environ), gc.get_threshold(), gc.isenabled()
    tempdir, tempfile.tempdir = tempfile.tempdir, None
    try:
        with (
            contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext(),
            CliRunner().isolation(env=overrides) as (out, err, mixed),
        ):
            click_formatting.FORCED_WIDTH = None  # the runner forces 80; a pipe is 78 wide
            try:
                main.main(args=list(args), prog_name="reconciler")
            except SystemExit as exit_:
                returncode = _exit_status(exit_.code)
            except BaseException as error:
                error.add_note(f"`reconciler {shlex.join(args)}` ended in a traceback")
                raise
            else:  # pragma: no cover - click's standalone mode always ends in SystemExit
                returncode = 0
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            stdout, stderr, output = out.getvalue(), err.getvalue(), mixed.getvalue()
    finally:
        if os.environ != environ:  # the runner puts back only the variables it was given
            for name in os.environ.keys() - environ.keys():
                del os.environ[name]
            os.environ.update(environ)
        gc.set_threshold(*threshold)
        (gc.enable if enabled else gc.disable)()
        tempfile.tempdir = tempdir
    return CliResult(args, returncode, _text(stdout), _text(stderr), _text(output))


def _text(data: bytes) -> str:
    """Bytes read as `subprocess.run(text=True)` reads them: UTF-8, universal newlines."""
    return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


def _exit_status(code: object) -> int:
    """The status the interpreter exits with for `SystemExit(code)` (Python's handle_system_exit),
    printing a message as it does."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


#: The console script pip installed beside the interpreter.
CONSOLE_SCRIPT = Path(sys.executable).with_name("reconciler")


def run_cli_process(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    console_script: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`python -m reconciler ARGS` (or the `console_script`) in a process of its own, with no
    RECONCILER_* variable but those in `env`: for the few tests that prove the real thing."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    full.update(env or {})
    start = [str(CONSOLE_SCRIPT)] if console_script else [sys.executable, "-m", "reconciler"]
    return subprocess.run(
        [*start, *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


class PassThrough(Directory):
    """A directory that passes every call to `inner`: subclass it to watch or disturb calls."""

    def __init__(self, inner: Directory) -> None:
        self.inner, self.url, self.backend = inner, inner.url, inner.backend

    def read(
        self, base_dn: str, attributes: Any, progress: Progress | None = None
    ) -> Iterator[Entry]:
        return self.inner.read(base_dn, attributes, progress)

    def find(self, base_dn: str, attribute: str, values: Any, attributes: Any) -> Iterator[Entry]:
        return self.inner.find(base_dn, attribute, values, attributes)

    def get(self, dn: str, attributes: Any) -> Entry | None:
        return self.inner.get(dn, attributes)

    def password_hashes(self, base_dn: str, attribute: str, values: Any) -> dict[str, Any]:
        return self.inner.password_hashes(base_dn, attribute, values)

    def add(self, dn: str, attrs: Any) -> None:
        self.inner.add(dn, attrs)

    def modify(self, dn: str, changes: Any, expect: Any = None) -> None:
        self.inner.modify(dn, changes, expect)

    def rename(self, dn: str, new_rdn: str) -> str:
        return self.inner.rename(dn, new_rdn)

    def delete(self, dn: str) -> None:
        self.inner.delete(dn)

    def lock_policy(self, base_dn: str) -> LockPolicy:
        return self.inner.lock_policy(base_dn)

    def identity(self, base_dn: str) -> str:
        return self.inner.identity(base_dn)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


@contextlib.contextmanager
def admin_connection(server: Slapd) -> Iterator[ldap3.Connection]:
    """An ldap3 connection bound as the rootdn, unbound on exit."""
    conn = ldap3.Connection(
        ldap3.Server(server.url, get_info=ldap3.NONE),
        user=server.root_dn,
        password=server.root_pw,
        auto_bind=True,
        raise_exceptions=True,
    )
    try:
        yield conn
    finally:
        conn.unbind()


def person_attrs(uid: str, employee_number: str, **extra: str | list[str]) -> dict[str, object]:
    """Attributes of a managed mailbox entry (inetOrgPerson + govMailAccount)."""
    attrs: dict[str, object] = {
        "objectClass": ["inetOrgPerson", "govMailAccount"],
        "cn": uid,
        "sn": uid,
        "uid": uid,
        "mail": f"{uid}@example.gov.vn",
        "employeeNumber": employee_number,
    }
    attrs.update(extra)
    return attrs


def ldapwhoami(server: Slapd, dn: str, password: str) -> subprocess.CompletedProcess[str]:
    """`ldapwhoami -e ppolicy` as `dn`: stdout and stderr show password-policy responses."""
    return subprocess.run(
        ["ldapwhoami", "-x", "-e", "ppolicy", "-H", server.url, "-D", dn, "-w", password],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )


def write_people_ldif(path: Path, suffix: str, count: int, ou: str = "people") -> Path:
    """An LDIF with `ou=<ou>,<suffix>` and `count` managed mailboxes under it (for slapadd)."""
    with path.open("w", encoding="utf-8") as out:
        out.write(f"dn: ou={ou},{suffix}\nobjectClass: organizationalUnit\nou: {ou}\n\n")
        for i in range(count):
            uid = f"user{i:06d}"
            out.write(
                f"dn: uid={uid},ou={ou},{suffix}\n"
                "objectClass: inetOrgPerson\nobjectClass: govMailAccount\n"
                f"uid: {uid}\ncn: User {i}\nsn: User\nmail: {uid}@example.gov.vn\n"
                f"employeeNumber: T-{i:06d}\ngovMailQuota: 5368709120\n\n"
            )
    return path


def keep_as_read(store: Packed, found: Sequence[tuple[str, Mapping[str, Sequence[bytes]]]]) -> None:
    """`found` (DNs and values by attribute name as python-ldap returns them) appended to
    `store` as `PythonLdapDirectory.read_into` appends them: packed straight from the values
    when they can be, else as the entry made of them."""
    for dn, raw in found:
        packed = store.pack_raw(dn, raw, entry_name)
        if packed is None:
            store.append(entry(dn, raw))
        else:
            store.append_packed(packed)
