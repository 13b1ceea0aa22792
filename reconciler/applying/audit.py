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
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError

SECRET_ATTRIBUTES = frozenset({"userpassword", "pwdhistory", "authpassword"})
#: Seconds between disk syncs of the records of a run of changes.
SYNC_EVERY = 0.2
#: Outcomes recorded in bulk; every other record is synced at once.
_BULK = frozenset({"changed", "ok"})


def scrub(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k.lower() not in SECRET_ATTRIBUTES}


#: Mode of the audit log and of the applied plans kept beside it (personal data).
PRIVATE = 0o600


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
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)
            if os.fstat(fd).st_mode & 0o077:  # a log made by an older version: personal data
                with suppress(OSError):
                    os.fchmod(fd, PRIVATE)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as error:
            raise ReconcilerError(
                f"cannot open the audit log {path}: {error.strerror}. Nothing was applied."
            ) from None

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
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
        try:
            self._file.write(line)
            self._file.flush()
            now = time.monotonic()
            if fields.get("outcome") not in _BULK or now - self._synced >= SYNC_EVERY:
                os.fsync(self._file.fileno())
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
            raise ReconcilerError(
                f"cannot keep a copy of the applied plan as {target}: {error.strerror}"
            ) from None
        return target

    def close(self) -> None:
        # every record was flushed when written and the closing record synced them all; a failing
        # close (full disk) adds nothing to report beyond the write error already raised
        with suppress(OSError):
            os.fsync(self._file.fileno())
        with suppress(OSError):
            self._file.close()
