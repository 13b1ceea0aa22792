"""What an attacker who can write a plan file does: edit it and re-seal it (the digest is a SHA-256
of the plan's own body, which anyone can recompute), so that `reconciler apply` without
`--expect-digest` takes it for a plan `reconciler plan` wrote."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.attributes import fingerprint, tombstone
from reconciler.model import Deferred, Entry
from reconciler.planning import planfile

Edit = Callable[[dict[str, Any]], None]


def reseal(path: Path, edit: Edit, *, loads: bool = True) -> str:
    """Edit the plan file's JSON in place and give it the digest of its new body; returns it.
    With `loads`, check that the plan file reader takes it (its own checks pass)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    data.pop("digest", None)
    covered = json.loads(json.dumps(data))
    covered["directory"].pop("backend", None)  # the one field the digest leaves out
    canonical = json.dumps(covered, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    data["digest"] = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    if loads:
        resealed = planfile.load(path)  # reads as a plan `reconciler plan` wrote
        assert planfile.digest(resealed) == data["digest"]
    return str(data["digest"])


def operation(action: str, entry: Entry, base_dn: str = "", **more: Any) -> dict[str, Any]:
    """An operation on `entry` with the fingerprint apply's stale check will find; a delete with
    the tombstone every delete leaves (under `base_dn`)."""
    op = {
        "action": action,
        "id": entry.key or "x",
        "address": entry.mail or "",
        "clause": "HG-2024 Đ7.1",
        "reason": "removed from the inventory",
        "kind": "person",
        "agency": "",
        "name": entry.get("cn") or "",
        "dn": entry.dn,
        "fingerprint": fingerprint(entry),
    }
    if action == "delete":
        dn, changes = tombstone(entry, op["clause"], op["reason"], base_dn)
        op["new_dn"] = dn
        op["attributes"] = {c.attr: [_value(v) for v in c.after] for c in changes}
    op.update(more)
    return op


def _value(value: Any) -> Any:
    return {"deferred": value.value} if isinstance(value, Deferred) else value
