"""Editing one staff record in its agency file, keeping the rest of the file as it was.

`reconciler suspend` writes the suspension it made into the inventory for the pull request that
follows: the record's own lines change (its `state` and `suspension` keys), every other line,
comment and blank line of the file stays byte for byte. The file is then read again by the
loader; anything it does not read back as asked is put back and refused.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.inventory import yamlload

_ITEM = re.compile(r"(\s*)-(\s+)")
_KEY = re.compile(r"\s*([A-Za-z_]+)\s*:")


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(text, ensure_ascii=False)


def suspension_lines(text: str, index: int, clause: str, note: str) -> str:
    """`text` (an agency file) with staff record `index` set to `state: suspended` and this
    `suspension`, in its own style (block or one-line flow mapping)."""
    parsed = yamlload.parse(text.encode("utf-8"))
    if parsed.data is None:
        raise ReconcilerError("the agency file does not parse")
    start = parsed.lines.at(("staff", index)) - 1
    if not text.endswith("\n"):
        text += "\n"  # the record may be the last one
    lines = text.splitlines(keepends=True)
    first = lines[start]
    item = _ITEM.match(first)
    if item is None:
        raise ReconcilerError(f"line {start + 1} is not the start of the staff record")
    value = f"{{clause: {_quoted(clause)}" + (f", note: {_quoted(note)}" if note else "") + "}"
    rest = first[item.end() :]
    if rest.startswith("{"):  # a one-line flow mapping: `- {id: …, name: …}`
        if re.search(r"[{,]\s*(state|suspension)\s*:", rest):
            raise ReconcilerError(
                f"line {start + 1}: the record already has a state or suspension in its "
                "one-line form; edit it by hand"
            )
        body = rest.rstrip()
        if not body.endswith("}"):
            raise ReconcilerError(f"line {start + 1}: the record spans lines; edit it by hand")
        ending = rest[len(body) :]
        lines[start] = (
            first[: item.end()] + body[:-1] + f", state: suspended, suspension: {value}}}" + ending
        )
        return "".join(lines)
    column = item.end()
    end = start
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(lines[i]) - len(lines[i].lstrip(" ")) < column:
            break
        end = i
    kept: list[str] = []
    skipping = False
    for i in range(start + 1, end + 1):
        line = lines[i]
        indent = len(line) - len(line.lstrip(" "))
        key = _KEY.match(line)
        if indent == column and key is not None:
            skipping = key.group(1) in ("state", "suspension")
        elif indent <= column and line.strip():
            skipping = False
        if not skipping:
            kept.append(line)
    key = _KEY.match(rest)
    if key is not None and key.group(1) in ("state", "suspension"):
        raise ReconcilerError(f"line {start + 1}: edit the record by hand")
    pad = " " * column
    added = [f"{pad}state: suspended\n", f"{pad}suspension: {value}\n"]
    return "".join([*lines[:start], first, *kept, *added, *lines[end + 1 :]])


def replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, keeping its mode."""
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
