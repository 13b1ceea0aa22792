"""`python -m tests.killpoint POINT N -- ARGS…`: `reconciler ARGS`, killed with SIGKILL at POINT of
the N-th mailbox it creates (the kill harness of the exactly-once password tests):

- `pending`: the audit log says which credentials file will hold the password; nothing on file;
- `on-file`: the password is on file (synced), the entry is not written;
- `added`: the entry is written, the audit log does not say so yet;
- `recorded`: the audit log says the entry was written.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from reconciler.applying.audit import AuditLog
from reconciler.applying.credentials import CredentialsFile
from reconciler.directory.ldap import LdapDirectory

try:
    from reconciler.directory.python_ldap import PythonLdapDirectory
except ImportError:  # python-ldap not installed: ldap3 only
    PythonLdapDirectory = LdapDirectory  # type: ignore[assignment,misc]

Counts = Callable[..., bool]


def _audit(outcome: str) -> Counts:
    return lambda _self, event, **fields: event == "create" and fields.get("outcome") == outcome


def _added(_self: Any, dn: str, _attrs: Any) -> bool:
    return dn.startswith("uid=")


#: Each point: the classes whose method to wrap (both LDAP backends), the method, and which of
#: its calls count.
POINTS: dict[str, tuple[tuple[type, ...], str, Counts]] = {
    "pending": ((AuditLog,), "record", _audit("pending")),
    "on-file": ((CredentialsFile,), "add", lambda *_a: True),
    "added": ((LdapDirectory, PythonLdapDirectory), "add", _added),
    "recorded": ((AuditLog,), "record", _audit("changed")),
}


def main(point: str, n: int, args: list[str]) -> None:
    owners, name, counts = POINTS[point]
    seen = 0

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*a: Any, **kw: Any) -> Any:
            nonlocal seen
            result = original(*a, **kw)
            if counts(*a, **kw):
                seen += 1
                if seen == n:
                    os.kill(os.getpid(), signal.SIGKILL)
            return result

        return wrapped

    for owner in set(owners):
        setattr(owner, name, wrap(getattr(owner, name)))
    from reconciler.cli import main as cli

    cli(args, prog_name="reconciler")


if __name__ == "__main__":
    where, nth, sep, *rest = sys.argv[1:]
    assert sep == "--", "usage: python -m tests.killpoint POINT N -- ARGS…"
    main(where, int(nth), rest)
