"""`python -m tests.killpoint POINT N -- ARGS…`: `reconciler ARGS`, killed with SIGKILL at POINT of
the N-th mailbox it creates (the kill harness of the exactly-once password tests):

- `pending`: the audit log says which credentials file will hold the password; nothing on file;
- `on-file`: the password is on file, the entry is not written (the passwords of the writes sent
  together are put on file together: those before it in its batch are on file too);
- `added`: the entry is written, the audit log does not say so yet (with python-ldap's pipeline:
  its answer is in, and the other writes in flight may be written too);
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

try:
    from reconciler.directory.python_ldap import _Pipeline as Pipelined
except ImportError:
    Pipelined = LdapDirectory  # type: ignore[assignment,misc]

#: How many of the N counted a call made: from its result and its arguments.
Counts = Callable[..., int]


def _audit(outcome: str) -> Counts:
    return lambda _r, _self, event, **fields: event == "create" and fields.get("outcome") == outcome


def _added(_result: Any, _self: Any, dn: str, _attrs: Any) -> bool:
    return dn.startswith("uid=")


def _answered(result: Any, *_a: Any, **_kw: Any) -> int:
    """Writes answered as done (every write of the plan of these tests is a create)."""
    return sum(1 for _, error in result if error is None)


#: Each point: the methods to wrap (of both LDAP backends), and how many of the N each call counts.
POINTS: dict[str, list[tuple[type, str, Counts]]] = {
    "pending": [(AuditLog, "record", _audit("pending"))],
    "on-file": [(CredentialsFile, "add", lambda *_a, **_kw: True)],
    "added": [
        (LdapDirectory, "add", _added),
        (PythonLdapDirectory, "add", _added),
        (Pipelined, "answers", _answered),
    ],
    "recorded": [(AuditLog, "record", _audit("changed"))],
}


def main(point: str, n: int, args: list[str]) -> None:
    seen = 0

    def wrap(original: Callable[..., Any], counts: Counts) -> Callable[..., Any]:
        def wrapped(*a: Any, **kw: Any) -> Any:
            nonlocal seen
            result = original(*a, **kw)
            seen += int(counts(result, *a, **kw))
            if seen >= n:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return wrapped

    for owner, name, counts in {(o, m, c) for o, m, c in POINTS[point]}:
        setattr(owner, name, wrap(getattr(owner, name), counts))
    from reconciler.cli import main as cli

    cli(args, prog_name="reconciler")


if __name__ == "__main__":
    where, nth, sep, *rest = sys.argv[1:]
    assert sep == "--", "usage: python -m tests.killpoint POINT N -- ARGS…"
    main(where, int(nth), rest)
