"""The audit history kept in the directory itself, under `ou=history,<base DN>`.

Every run of `apply` (and every `reset-password`) writes its audit records there as well as to the
local JSON-lines log, so the history the periodic report needs (QN-2020 Đ13.6: every 6 months)
is where every run can read and append it, whatever machine or CI runner made the change. The
report reads it back (`records`), a plan reads the last digest apply left on each mailbox
(`applied_digests`), and apply prunes what is older than the retention (`prune`).

Layout: one `govMailAuditLog` entry per batch of records of one run,
`cn=<UTC time of the run>-<run id>-<batch>,ou=history,<base DN>`, with `govMailAuditTime` (the
batch's first record) and one `govMailAuditRecord` value per record: a compact JSON object (the
keys of `COMPACT`), never a secret. A batch is written whole, by one add, when it holds `BATCH`
records, `EVERY` seconds after the previous one, or on a record that starts, refuses or ends
something; so a run of 50,000 operations is some 50 adds (README, "Audit history": one entry per
operation would cost ten times the apply's own time in writes alone).

The container belongs to the tool: apply may create `ou=history` and writes only
`govMailAuditLog` entries there (other tools of the project keep their own object classes in it,
which `prune` never touches).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import Any

from reconciler.attributes import HISTORY_OU, format_time, history_dn, parse_time
from reconciler.directory.base import Directory
from reconciler.dn import child_dn
from reconciler.errors import DirectoryError, EntryExists, NoSuchEntry, ReconcilerError
from reconciler.model import Entry

OBJECT_CLASS = "govMailAuditLog"
TIME = "govMailAuditTime"
RECORD = "govMailAuditRecord"
#: Records per batch entry (about 150 bytes each).
BATCH = 1000
#: Seconds between batches of a run's records.
EVERY = 2.0
#: Outcomes written at once: a run's start, a refusal, a failure, its end.
_AT_ONCE = frozenset({"started", "refused", "failed", "done"})
#: The audit record's fields kept in the directory, and their short names there.
COMPACT: dict[str, str] = {
    "time": "t",
    "event": "e",
    "outcome": "o",
    "id": "id",
    "address": "m",
    "agency": "a",
    "clause": "c",
    "digest": "h",
    "run": "r",
    "actor": "w",
    "plan": "p",
    "inventory_commit": "g",
    "message": "x",
    "operations": "n",
    "recap": "s",
}
_LONG = {short: long for long, short in COMPACT.items()}
#: json.dumps(…, ensure_ascii=False, sort_keys=True), made once (not an encoder per record).
_ENCODE = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def is_audit(entry: Entry) -> bool:
    """Is `entry` a batch of the audit history (no part of what a plan compares)?"""
    return any(v.lower() == OBJECT_CLASS.lower() for v in entry.all("objectClass"))


def compact(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an audit record the directory keeps, under their short names."""
    out: dict[str, Any] = {}
    for key, short in COMPACT.items():
        value = record.get(key)
        if value in (None, "", [], {}):
            continue
        out[short] = value if isinstance(value, str | int) else str(value)
    return out


def expand(value: str) -> dict[str, Any] | None:
    """An audit record read back from the directory (long names), or None when unreadable."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    return {str(_LONG.get(k, k)): v for k, v in data.items()}


class Writer:
    """The records of one run, written to `ou=history` in batches (see the module docstring).

    `add` takes audit records as the JSON-lines log writes them; a batch that cannot be written
    because the base DN does not exist yet (a new directory, whose plan creates it) waits for the
    next one. Any other failure is a ReconcilerError: apply stops, as for its local log."""

    def __init__(
        self, directory: Directory, base_dn: str, run: str, *, started: dt.datetime | None = None
    ) -> None:
        self.directory = directory
        self.base_dn = base_dn
        start = started or dt.datetime.now(dt.UTC)
        self._prefix = f"{start.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}-{run}"
        self._pending: list[str] = []
        self._first: str = ""
        self._batch = 0
        self._sequence = 0
        self._last = time.monotonic()
        self._container = False
        self.written = 0

    def add(self, record: Mapping[str, Any]) -> None:
        data = compact(record)
        self._sequence += 1
        data["q"] = self._sequence  # values of one attribute must differ: two equal records can't
        if not self._pending:
            self._first = str(record.get("time") or "")
        self._pending.append(_ENCODE(data))
        if (
            len(self._pending) >= BATCH
            or record.get("outcome") in _AT_ONCE
            or time.monotonic() - self._last >= EVERY
        ):
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        if not self._pending:
            return
        first = moment(self._first) or dt.datetime.now(dt.UTC)
        dn = child_dn("cn", f"{self._prefix}-{self._batch:05d}", history_dn(self.base_dn))
        attrs = {
            "objectClass": ["top", OBJECT_CLASS],
            TIME: [format_time(first)],
            RECORD: list(self._pending),
        }
        try:
            self._ensure_container()
            self.directory.add(dn, attrs)
        except NoSuchEntry:
            if final:
                raise ReconcilerError(
                    f"cannot keep the audit history in {history_dn(self.base_dn)}: the base DN "
                    f"{self.base_dn} does not exist in {self.directory.url}"
                ) from None
            return  # the plan's containers come first; the next batch tries again
        except DirectoryError as error:
            hint = (
                " The directory needs the reconciler's LDAP schema of this release (schemas/ldap:"
                f" object class {OBJECT_CLASS}) and a bind DN that may write there."
                if "refused" in str(error)
                else ""
            )
            raise ReconcilerError(
                f"cannot write the audit history to {history_dn(self.base_dn)}: {error}.{hint} "
                "The run stopped so that no change goes unrecorded."
            ) from None
        self.written += len(self._pending)
        self._pending = []
        self._batch += 1
        self._last = time.monotonic()

    def _ensure_container(self) -> None:
        if self._container:
            return
        with suppress(EntryExists):
            self.directory.add(
                history_dn(self.base_dn),
                {"objectClass": ["top", "organizationalUnit"], "ou": [HISTORY_OU]},
            )
        self._container = True

    def close(self) -> None:
        self.flush(final=True)


def moment(value: Any) -> dt.datetime | None:
    """An audit record's ISO 8601 time (UTC when it has no zone), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _batches(directory: Directory, base_dn: str, attributes: Iterable[str]) -> list[Entry]:
    """The history's batches, found by their object class: the directory's objectClass index
    answers that at once, where every entry under the container (`objectClass=*`) costs a
    tenth of a second of the server's time at 100,000 mailboxes, on every apply (`prune`)."""
    try:
        found = directory.find(
            history_dn(base_dn), "objectClass", [OBJECT_CLASS], [*attributes, "objectClass"]
        )
        return [e for e in found if is_audit(e)]
    except NoSuchEntry:
        return []


def present(directory: Directory, base_dn: str) -> bool:
    """Does the directory keep an audit history (the container exists)?"""
    return directory.get(history_dn(base_dn), ["objectClass"]) is not None


def records(
    directory: Directory, base_dn: str, since: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """The audit records kept in the directory, oldest first (those of batches begun before
    `since` included when they hold later records)."""
    out: list[dict[str, Any]] = []
    for entry in _batches(directory, base_dn, [TIME, RECORD]):
        for value in entry.all(RECORD):
            record = expand(value)
            if record is None:
                continue
            when = moment(record.get("time"))
            if since is not None and when is not None and when < since:
                continue
            out.append(record)
    out.sort(key=lambda r: (str(r.get("time", "")), int(r.get("q", 0))))
    return out


def applied_digests(history: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Per stable id, the digest of the managed attributes apply last left on the entry (records
    in time order, as `records` returns them)."""
    out: dict[str, str] = {}
    for record in history:
        key, digest = record.get("id"), record.get("digest")
        if record.get("outcome") == "changed" and isinstance(key, str) and isinstance(digest, str):
            out[key] = digest
        elif record.get("event") == "delete" and record.get("outcome") == "changed":
            out.pop(str(key), None)
    return out


def earliest(directory: Directory, base_dn: str) -> dt.datetime | None:
    """When the oldest batch kept begins (after pruning, the start of the history)."""
    times = [parse_time(e.get(TIME)) for e in _batches(directory, base_dn, [TIME])]
    known = [t for t in times if t is not None]
    return min(known) if known else None


def prune(directory: Directory, base_dn: str, before: dt.datetime) -> int:
    """Delete the batches that begin before `before`; the number deleted. Only the history's
    own entries (`govMailAuditLog`) are ever deleted."""
    gone = 0
    for entry in _batches(directory, base_dn, [TIME]):
        moment = parse_time(entry.get(TIME))
        if moment is not None and moment < before:
            try:
                directory.delete(entry.dn)
            except NoSuchEntry:
                continue
            gone += 1
    return gone
