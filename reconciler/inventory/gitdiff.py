"""What changed in an inventory between a git revision and the working tree, by staff id.

`compare()` is pure: it takes the agency files' bytes on both sides and says which staff records
were added, removed, moved between agency files or edited, so that a transfer is one move, not a
removal plus an addition. `read_revision()` / `read_worktree()` are the thin readers (git and the
file system). The old side is parsed leniently: it was valid when it was merged, and a file that no
longer parses is listed, not fatal.
"""

from __future__ import annotations

import enum
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.inventory import yamlload

AGENCIES = "agencies"
DIRECTORY = "directory.yaml"


class Kind(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    MOVED = "moved"
    EDITED = "edited"


@dataclass(frozen=True, slots=True)
class StaffChange:
    kind: Kind
    id: str
    name: str
    file: str  # where the record is now (where it was, for a removal)
    from_file: str = ""  # where it was, for a move
    fields: tuple[str, ...] = ()  # fields whose value changed (an edit, or a move with edits)


@dataclass(frozen=True, slots=True)
class FileChange:
    file: str
    status: str  # "added" | "removed" | "changed"
    staff: int  # staff records of this file among `changes` (either side of a move)


@dataclass(frozen=True, slots=True)
class InventoryChanges:
    base: str
    changes: tuple[StaffChange, ...] = ()
    files: tuple[FileChange, ...] = ()
    unreadable: tuple[str, ...] = ()  # files of either side that did not parse

    @property
    def empty(self) -> bool:
        return not self.changes and not self.files

    def count(self, kind: Kind) -> int:
        return sum(1 for c in self.changes if c.kind is kind)


def _records(data: Any) -> list[dict[str, Any]]:
    staff = data.get("staff") if isinstance(data, dict) else None
    if not isinstance(staff, list):
        return []
    return [r for r in staff if isinstance(r, dict) and isinstance(r.get("id"), str)]


def _parse(blob: bytes) -> Any:
    parsed = yamlload.parse(blob)
    return parsed.data if parsed.data is not None and not parsed.problems else None


def _people(
    files: Mapping[str, bytes], unreadable: list[str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    people: dict[str, tuple[str, dict[str, Any]]] = {}
    for rel in sorted(files):
        data = _parse(files[rel])
        if data is None:
            unreadable.append(rel)
            continue
        for record in _records(data):
            people.setdefault(record["id"], (rel, record))
    return people


def _edited(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)))


def compare(base: str, old: Mapping[str, bytes], new: Mapping[str, bytes]) -> InventoryChanges:
    """Compare the files (relative path → bytes) of the base revision with the working tree's."""
    unreadable: list[str] = []
    before = _people({k: v for k, v in old.items() if k != DIRECTORY}, unreadable)
    after = _people({k: v for k, v in new.items() if k != DIRECTORY}, unreadable)
    changes: list[StaffChange] = []
    for pid in sorted(set(before) | set(after)):
        if pid not in after:
            rel, record = before[pid]
            changes.append(StaffChange(Kind.REMOVED, pid, str(record.get("name", "")), rel))
            continue
        rel, record = after[pid]
        name = str(record.get("name", ""))
        if pid not in before:
            changes.append(StaffChange(Kind.ADDED, pid, name, rel))
            continue
        old_rel, old_record = before[pid]
        fields = _edited(old_record, record)
        if old_rel != rel:
            changes.append(StaffChange(Kind.MOVED, pid, name, rel, old_rel, fields))
        elif fields:
            changes.append(StaffChange(Kind.EDITED, pid, name, rel, fields=fields))
    touched: dict[str, int] = {}
    for c in changes:
        for rel in {c.file, c.from_file} - {""}:
            touched[rel] = touched.get(rel, 0) + 1
    files = []
    for rel in sorted(set(old) | set(new)):
        if rel not in old:
            status = "added"
        elif rel not in new:
            status = "removed"
        elif old[rel] != new[rel]:
            status = "changed"
        else:
            continue
        files.append(FileChange(rel, status, touched.get(rel, 0)))
    return InventoryChanges(base, tuple(changes), tuple(files), tuple(sorted(set(unreadable))))


# --- the thin readers ------------------------------------------------------------------------


def _git(folder: Path, *args: str) -> bytes:
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise ReconcilerError(f"--base-ref needs git: {error}") from None
    if out.returncode != 0:
        message = out.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ReconcilerError(
            f"git {' '.join(args)}: {message[-1] if message else 'failed'}"
            " (in CI, fetch the base first: `fetch-depth: 0` or `git fetch origin main`)"
        )
    return out.stdout


def read_revision(folder: Path, ref: str) -> dict[str, bytes]:
    """The inventory's files as they were at `ref` (paths relative to the inventory folder)."""
    try:
        _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ReconcilerError:
        raise ReconcilerError(
            f"--base-ref {ref}: not a revision of the git repository holding {folder} (in CI, "
            "fetch the base first: `fetch-depth: 0` or `git fetch origin main`)"
        ) from None
    names = _git(folder, "ls-tree", "-r", "-z", "--name-only", ref, "--", DIRECTORY, AGENCIES)
    files: dict[str, bytes] = {}
    for name in names.decode("utf-8", "surrogateescape").split("\0"):
        if name == DIRECTORY or (name.startswith(f"{AGENCIES}/") and name.endswith(".yaml")):
            files[name] = _git(folder, "show", f"{ref}:./{name}")
    return files


def read_worktree(folder: Path) -> dict[str, bytes]:
    """The inventory's files as they are now."""
    files: dict[str, bytes] = {}
    if (folder / DIRECTORY).is_file():
        files[DIRECTORY] = (folder / DIRECTORY).read_bytes()
    agencies = folder / AGENCIES
    if agencies.is_dir():
        for path in sorted(agencies.glob("*.yaml")):
            if path.is_file() and not path.name.startswith("."):
                files[f"{AGENCIES}/{path.name}"] = path.read_bytes()
    return files


def changes_since(folder: Path, ref: str) -> InventoryChanges:
    return compare(ref, read_revision(folder, ref), read_worktree(folder))
