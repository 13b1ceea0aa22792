"""The mail store follows the directory: after `apply` deletes a mailbox, the command that
directory.yaml names (`mail_store.erase`, carried by the plan so that reviewers see it) erases its
mail (HG-2024 Đ7.2: a deleted account is erased and cannot be restored). The outcome goes to the
audit log. The command runs without a shell, `{id}` and `{address}` filled in, with neither the
bind password nor any other RECONCILER_* secret in its environment.
"""

from __future__ import annotations

import os
import subprocess

from reconciler.applying.audit import AuditLog
from reconciler.errors import ReconcilerError
from reconciler.model import Operation

TIMEOUT = 300.0  # seconds: removing a large Maildir takes a while
_SECRETS = ("RECONCILER_BIND_PASSWORD", "RECONCILER_SOURCE_BIND_PASSWORD")


def command_for(command: tuple[str, ...], op: Operation) -> list[str]:
    return [part.replace("{id}", op.id).replace("{address}", op.address) for part in command]


def _tail(text: str, limit: int = 500) -> str:
    text = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= limit else "…" + text[-limit:]


def erase(command: tuple[str, ...], op: Operation, audit: AuditLog) -> None:
    """Run the erase command for the deleted mailbox of `op`; raise with its words unless it
    exits 0. Either way the audit log has a record `erase` with the command and its outcome."""
    argv = command_for(command, op)
    env = {k: v for k, v in os.environ.items() if k not in _SECRETS}
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        why = (
            f"did not finish within {TIMEOUT:g} s"
            if isinstance(error, subprocess.TimeoutExpired)
            else f"could not run: {error}"
        )
        audit.record(
            "erase", id=op.id, address=op.address, command=argv, outcome="failed", message=why
        )
        raise ReconcilerError(_failed(op, argv, why)) from None
    said = _tail(done.stdout + "\n" + done.stderr)
    ok = done.returncode == 0
    audit.record(
        "erase",
        id=op.id,
        address=op.address,
        command=argv,
        outcome="changed" if ok else "failed",
        status=done.returncode,
        message=said,
    )
    if not ok:
        why = f"exit status {done.returncode}" + (f": {said}" if said else "")
        raise ReconcilerError(_failed(op, argv, why))


def _failed(op: Operation, argv: list[str], why: str) -> str:
    return (
        f"the mailbox was deleted from the directory, but erasing its mail failed "
        f"(`{' '.join(argv)}`: {why}). Fix the cause and apply the same plan again: the erase "
        "is run again for every deleted mailbox of the plan"
    )
