"""The audit log (HG-2024 Đ7.3, Đ9.1): one JSON line per operation attempted, appended and synced.

Every record reaches the operating system as it is written, so a killed apply loses none. Records
that start, refuse or end something (an irreversible delete is recorded as started before it
happens) are synced to disk at once; the records of a run of changes are synced together, at most
`SYNC_EVERY` seconds apart and by the run's closing record (syncing each one cost a third of an
apply's time). A power cut can lose at most that fraction of a second of "changed" records, and
the next apply finds those changes done and records them as such.

Records hold no secret: no password, no password hash. Each names the directory it changed (its
domain and base DN), so that a log shared by several directories is still read right by the report
of each. The file is personal data (addresses, names): created 0600, like the applied plans kept
beside it. The log is only ever appended to, never rotated by the tool; the history the report
reads is also kept in the directory itself (`directory.history`, fed through `attach`).

A full disk never leaves half a record: a write that fails is cut back to the last whole line
(`_append`), and a log whose last line was cut off anyway (a power cut) is repaired when it is next
opened for writing (`repair`) and skipped, with a note, when it is read (`read`). A small spare
file beside the log (`.NAME.spare`, `SPARE` bytes) is given back to a full disk so that the run's
closing "apply failed" record still fits (`last_words`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Collection
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.attributes import SECRET
from reconciler.errors import InventoryError, Problem, ReconcilerError

_TORN = (
    "the log's last line was cut off (a full disk or a power cut while it was written); it was "
    "removed from the log and is kept here as `fragment`"
)

#: Seconds between disk syncs of the records of a run of changes.
SYNC_EVERY = 0.2
#: Bytes kept beside the log for the closing record of a run that fills the disk.
SPARE = 16384
#: json.dumps(…, ensure_ascii=False, sort_keys=True), made once (not an encoder per record).
_ENCODE = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
#: Outcomes recorded in bulk; every other record is synced at once.
_BULK = frozenset({"changed", "ok", "pending"})


def scrub(attrs: dict[str, Any]) -> dict[str, Any]:
    """`attrs` without the secrets (`attributes.SECRET`): what a record keeps of an entry."""
    return {k: v for k, v in attrs.items() if k.lower() not in SECRET}


#: Mode of the audit log and of the applied plans kept beside it (personal data).
PRIVATE = 0o600


def repair(path: Path) -> str | None:
    """Cut a torn last line (one without its newline: a power cut or a full disk while writing)
    off the log, so that the next record starts on a line of its own; the fragment cut off is
    returned to be kept in a record, or None when the log ends with a whole line."""
    try:
        with path.open("rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return None
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return None
            start = max(0, size - 65536)
            f.seek(start)
            tail = f.read()
            cut = tail.rfind(b"\n")
            keep = start + cut + 1 if cut >= 0 else (0 if start == 0 else size)
            if keep == size:  # a line longer than 64 KiB: not ours, leave it
                return None
            fragment = tail[keep - start :].decode("utf-8", "replace")
            f.truncate(keep)
            os.fsync(f.fileno())
    except FileNotFoundError:
        return None
    return fragment


@dataclass(frozen=True, slots=True)
class Pending:
    """A password put on file for an operation whose end no record tells: the run stopped (was
    killed) between handing it over and recording the write."""

    file: str  # the credentials file that holds it
    run: str
    time: str


#: What every record of a handed-over password holds (`AuditLog.record` sorts keys, one line).
_PENDING = b'"outcome": "pending"'
#: The address of a record, as `AuditLog.record` writes it (sorted keys, one line of JSON).
_ADDRESS = re.compile(rb'"address": ("(?:[^"\\]|\\.)*")')


def used_passwords(path: Path, addresses: Collection[str]) -> dict[str, Pending]:
    """By lower-case address among `addresses` (lower case), the last password the log says was
    handed over and then written (its write recorded "changed", or found done by a later run:
    "ok"; a line taken back, "failed" and withdrawn, opens nothing and is not counted). When a
    mailbox is created again at such an address (its entry was deleted, or lost with a provider
    that stopped before it replicated), that file's line for it no longer works, and apply says
    so. One pass over the log; only the records of `addresses` are parsed."""
    if not addresses:
        return {}
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    if _PENDING not in data:  # no password was ever handed over through this log
        return {}
    handed: dict[str, Pending] = {}
    used: dict[str, Pending] = {}
    for line in data.splitlines():
        found = _ADDRESS.search(line)
        if found is None:
            continue
        try:
            address = str(json.loads(found.group(1))).lower()
            if address not in addresses:
                continue
            record = json.loads(line)
        except ValueError:
            continue
        outcome = record.get("outcome")
        if outcome == "pending" and record.get("credentials"):
            handed[address] = Pending(
                str(record["credentials"]), str(record.get("run", "")), str(record["time"])
            )
        elif outcome in ("changed", "ok") and address in handed:
            used[address] = handed.pop(address)  # written, by this run or found so by the next
        elif outcome == "failed" and record.get("withdrawn"):
            handed.pop(address, None)  # its line was taken back: it opens nothing
        elif outcome == "voided" and record.get("credentials"):
            handed.pop(address, None)
            if address in used and used[address].file == record["credentials"]:
                del used[address]
    return used


#: The outcomes that end a pending password: the entry has it, or its line was taken back.
_SETTLED = frozenset({"changed", "ok", "voided"})


def pending_passwords(path: Path) -> dict[str, Pending]:
    """By lower-case address, the passwords the log says were handed over for a write that no
    later record settles. Cheap when there are none: the file is searched as bytes first, and
    only the lines of those addresses are read."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    if _PENDING not in data:
        return {}
    found: dict[str, Pending] = {}
    needles: list[bytes] = []
    for line in data.splitlines():
        if _PENDING in line or any(n in line for n in needles):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            address = str(record.get("address", "")).lower()
            outcome = record.get("outcome")
            if outcome == "pending" and record.get("credentials"):
                found[address] = Pending(
                    str(record["credentials"]), str(record.get("run", "")), str(record["time"])
                )
                needles.append(json.dumps(address).encode())
            elif address in found and (
                outcome in _SETTLED or (outcome == "failed" and record.get("withdrawn"))
            ):
                del found[address]
    return found


def read(path: Path) -> tuple[list[dict[str, Any]], list[Problem], str | None]:
    """The log's records, the lines that are not records (as problems with their line), and a
    torn last line (not a problem: a write cut off by a full disk or a power cut; the next apply
    repairs it), skipped."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ReconcilerError(f"cannot read the audit log {path}: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InventoryError([Problem(str(path), 0, "the file is not UTF-8 text")]) from None
    torn = None
    if text and not text.endswith("\n"):
        text, _, torn = text.rpartition("\n")
    records: list[dict[str, Any]] = []
    found: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            found.append(Problem(str(path), number, f"not a JSON line: {error.msg}"))
            continue
        if not isinstance(record, dict):
            found.append(Problem(str(path), number, "not a JSON object"))
            continue
        records.append(record)
    return records, found, torn


def _keep_spare(path: Path, fd: int) -> Path | None:
    """The spare file beside a log that is a regular file, made when missing and the disk has
    room; None when there is none."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return None  # /dev/full, a pipe: nothing to keep beside it
    spare = path.with_name(f".{path.name}.spare")
    if spare.exists():
        return spare
    try:
        spare.write_bytes(b"\0" * SPARE)
    except OSError:
        spare.unlink(missing_ok=True)
        return None
    return spare


class AuditLog:
    def __init__(
        self,
        path: Path,
        *,
        run: str,
        actor: str,
        plan_digest: str,
        commit: str,
        directory: str,
        domain: str = "",
        base_dn: str = "",
    ) -> None:
        self.path = path
        self.common = {
            "run": run,
            "actor": actor,
            "plan": plan_digest,
            "inventory_commit": commit,
            "directory": directory,
            "domain": domain,
            "base_dn": base_dn,
        }
        self.broken = False  # a write failed (full disk, I/O error): nothing more goes there
        self._synced = time.monotonic()
        self._sinks: list[Callable[[dict[str, Any]], None]] = []
        self._first: dict[str, Any] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torn = repair(path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)
            if os.fstat(fd).st_mode & 0o077:  # a log made by an older version: personal data
                with suppress(OSError):
                    os.fchmod(fd, PRIVATE)
            self._fd = fd
        except OSError as error:
            raise ReconcilerError(
                f"cannot open the audit log {path}: {error.strerror}. Nothing was applied."
            ) from None
        self._spare = _keep_spare(path, self._fd)
        if torn is not None:
            self.record("repair", outcome="repaired", fragment=torn[:4096], message=_TORN)

    def attach(self, sink: Callable[[dict[str, Any]], None]) -> None:
        """Give every record from now on to `sink` too (the directory's history), starting with
        the run's first record, already written here. A sink's ReconcilerError stops the run,
        but for a record of a failure, which stays the error reported."""
        self._sinks.append(sink)
        if self._first is not None:
            sink(self._first)

    def record(self, event: str, **fields: Any) -> None:
        entry = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "event": event,
            **self.common,
            **fields,
        }
        for key in ("before", "after"):
            if isinstance(entry.get(key), dict):
                entry[key] = scrub(entry[key])
        line = _ENCODE(entry) + "\n"
        if self.broken:
            raise ReconcilerError(f"the audit log {self.path} could not be written before")
        try:
            self._append(line.encode("utf-8"))
            now = time.monotonic()
            if fields.get("outcome") not in _BULK or now - self._synced >= SYNC_EVERY:
                os.fsync(self._fd)
                self._synced = now
        except OSError as error:
            self.broken = True
            raise ReconcilerError(
                f"cannot write the audit log {self.path}: {error.strerror}. The apply stopped "
                "so that no change goes unrecorded."
            ) from None
        if self._first is None:
            self._first = entry
        for sink in self._sinks:
            try:
                sink(entry)
            except ReconcilerError:
                if fields.get("outcome") != "failed":
                    raise
                # a failure being recorded is the news (the directory may be what failed): it
                # is in this log; the sink tries again with its next record, or says so at close

    def _append(self, data: bytes) -> None:
        """Write one whole record, or nothing: a write cut short (a full disk) is cut back off
        the file, so the next record never continues half a line."""
        size = os.fstat(self._fd).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError:
            with suppress(OSError):
                os.ftruncate(self._fd, size)
            raise

    def last_words(self, outcome: str, message: str) -> bool:
        """The run's closing record, even after a write failed: a record that does not fit is
        cut back off, and a shorter one (without the message) may still fit. True when one was
        written."""
        if self.broken and self._spare is not None:
            with suppress(OSError):
                self._spare.unlink()  # room for the record
        for fields in ({"message": message}, {}):
            self.broken = False
            try:
                self.record("apply", outcome=outcome, **fields)
            except ReconcilerError:
                continue
            return True
        self.broken = True
        return False

    def pending_passwords(self) -> dict[str, Pending]:
        """`pending_passwords` of this log."""
        return pending_passwords(self.path)

    def used_passwords(self, addresses: Collection[str]) -> dict[str, Pending]:
        """`used_passwords` of this log."""
        return used_passwords(self.path, addresses)

    def keep_plan(self, plan_file: Path, digest: str) -> Path | None:
        """Keep the applied plan beside the log, named by time and digest; None when the log's
        disk already failed (nothing more is written there)."""
        if self.broken:
            return None
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.parent / "applied" / f"{stamp}-{digest.split(':')[-1][:12]}.json"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
            with os.fdopen(fd, "wb") as out, plan_file.open("rb") as source:
                os.fchmod(out.fileno(), PRIVATE)
                shutil.copyfileobj(source, out)
        except OSError as error:
            with suppress(OSError):
                target.unlink()  # half a copy is no copy
            raise ReconcilerError(
                f"cannot keep a copy of the applied plan as {target}: {error.strerror}"
            ) from None
        return target

    def close(self) -> None:
        # every record was flushed when written and the closing record synced them all; a failing
        # close (full disk) adds nothing to report beyond the write error already raised
        if self._fd < 0:
            return
        with suppress(OSError):
            os.fsync(self._fd)
        with suppress(OSError):
            os.close(self._fd)
        self._fd = -1
