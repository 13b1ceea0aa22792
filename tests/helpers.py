"""Helpers for tests that use the throwaway slapd (ldap3 is fine here: tests are not the tool)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3

from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory, LockPolicy, Progress
from reconciler.model import Entry


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`reconciler ARGS` in a subprocess, with no RECONCILER_* variable but those in `env`."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
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
