"""A merger's apply: the password hashes carried from the former province's directory.

A plan never holds a password. A create moved from a source entry lists userPassword as the
marker "carried password" and names the entry (`Operation.source`: its DN and the fingerprint of
what the plan read of it); apply reads the hash there, from the source directory it is given
(`--source-directory`, only read), and writes it as it is. Before anything is written, every
source entry still to carry is read again: one changed since the plan (a password changed, a
suspension lifted) makes the plan stale, one whose password this bind may not read stops the
apply, each named.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.attributes import SOURCE_READ, fingerprint
from reconciler.directory import Directory
from reconciler.dn import parse_dn
from reconciler.errors import ReconcilerError, StalePlan
from reconciler.model import Action, Entry, Operation, Plan

#: What the audit log records for a carried password.
CARRIED = "(carried password)"


def carrying(ops: Iterable[Operation]) -> list[Operation]:
    return [op for op in ops if op.action is Action.CREATE and op.source is not None]


def require_source(plan: Plan, source: Directory | None) -> None:
    """Refuse, before anything is written, a plan that carries mailboxes over without the
    directory they come from."""
    count = len(carrying(plan.operations))
    if count and source is None:
        raise ReconcilerError(
            f"this plan carries {count} mailbox{'es' if count != 1 else ''} over from "
            f"{plan.source_url} ({plan.source_base_dn}): give --source-directory (it is only "
            "read) and its bind (RECONCILER_SOURCE_BIND_DN, RECONCILER_SOURCE_BIND_PASSWORD or "
            "--source-bind-password-file). Nothing was applied."
        )


def read_hashes(plan: Plan, ops: list[Operation], source: Directory) -> dict[str, tuple[str, ...]]:
    """The password hashes of the source entries `ops` carry over, by operation id; StalePlan
    naming every source entry changed or gone since the plan, ReconcilerError naming those whose
    password cannot be read."""
    todo = carrying(ops)
    if not todo:
        return {}
    by_attr: dict[str, set[str]] = {}
    for op in todo:
        assert op.source is not None
        attr, value = parse_dn(op.source.dn)[0]
        by_attr.setdefault(attr.lower(), set()).add(value)
    entries: dict[str, Entry] = {}
    hashes: dict[str, tuple[str, ...]] = {}
    for attr, values in sorted(by_attr.items()):
        for read in source.find(plan.source_base_dn, attr, sorted(values), SOURCE_READ):
            entries[read.dn.lower()] = read
        hashes.update(source.password_hashes(plan.source_base_dn, attr, sorted(values)))
    stale: list[str] = []
    unreadable: list[str] = []
    out: dict[str, tuple[str, ...]] = {}
    for op in todo:
        assert op.source is not None
        key = op.source.dn.lower()
        entry = entries.get(key)
        if entry is None:
            stale.append(f"{op.id}: its source entry {op.source.dn} is gone from {source.url}")
        elif fingerprint(entry) != op.source.fingerprint:
            stale.append(f"{op.id}: its source entry {op.source.dn} changed since the plan")
        elif not hashes.get(key):
            unreadable.append(f"{op.id}: {op.source.dn}")
        else:
            out[op.id] = hashes[key]
    if stale:
        shown = "\n".join(f"  - {s}" for s in stale[:20])
        more = f"\n  … and {len(stale) - 20} more" if len(stale) > 20 else ""
        raise StalePlan(
            f"the plan is stale: {len(stale)} source entries changed since it was made:\n"
            f"{shown}{more}\nNothing was applied. Run `reconciler plan --source-directory` again."
        )
    if unreadable:
        shown = "\n".join(f"  - {s}" for s in unreadable[:20])
        raise ReconcilerError(
            f"the password of {len(unreadable)} source entries cannot be read from "
            f"{source.url}:\n{shown}\nThe source bind DN must be allowed to read userPassword "
            "there. Nothing was applied."
        )
    return out
