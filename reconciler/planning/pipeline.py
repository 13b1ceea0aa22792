"""The pipeline, wired in one place: load the inventory and check it against its regulation
(`load`), read the directory (`read`), compute the plan and guard it (`make_plan`).

The command line (plan, validate, report, publish, reset-password) and the tests call these steps
instead of wiring the stages themselves, as octoDNS's `Manager.sync` does. I/O goes only through
the inventory loader and the `Directory` given; no click here: the caller parses and renders.
Each step runs with the cyclic garbage collector paused (`collector.paused`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler import csn
from reconciler.attributes import HISTORY_READ, READ, SOURCE_READ, TOMBSTONE, history_dn
from reconciler.directory import replicas
from reconciler.directory.base import Directory
from reconciler.directory.history import is_audit, records
from reconciler.directory.snapshot import read_tree_into
from reconciler.errors import InventoryError, NoSuchEntry, ReconcilerError
from reconciler.inventory import loader
from reconciler.model import Action, Entry, Inventory, Limits, Plan, ReadState
from reconciler.packed import Packed, Relay
from reconciler.planning import desired, invariants
from reconciler.planning.collector import paused
from reconciler.planning.limits import check_limits
from reconciler.planning.plan import Context, compute, only_time_rules
from reconciler.rules import regulations
from reconciler.rules.regulations import Regulation


@dataclass(frozen=True, slots=True)
class Loaded:
    """An inventory that passed every check, with the regulation it names."""

    inventory: Inventory
    regulation: Regulation

    def limits(self, allow_deletes: int | None = None, allow_suspends: int | None = None) -> Limits:
        """The guard: `max_deletes` of directory.yaml, and what the person planning allows."""
        return Limits(
            max_deletes=self.inventory.settings.max_deletes,
            allow_deletes=allow_deletes,
            allow_suspends=allow_suspends,
        )


def load(folder: Path) -> Loaded:
    """Read the inventory in `folder` and check it against the schemas and its regulation; raise
    InventoryError with every problem as FILE:LINE: message."""
    with paused():
        try:
            inventory = loader.load(folder, regulations.get)
        except InventoryError as error:
            if error.partial is None:
                raise
            # the regulation's checks of what could be read: every problem in one run
            found = desired.check(error.partial, regulations.get(error.partial.settings.regulation))
            raise InventoryError([*error.problems, *found]) from None
        regulation = regulations.get(inventory.settings.regulation)
        found = desired.check(inventory, regulation)
    if found:
        raise InventoryError(found)
    return Loaded(inventory, regulation)


def settings_alone(folder: Path) -> Loaded | None:
    """The inventory's `directory.yaml` alone, as a `Loaded` with neither agencies nor people:
    what reading the directory needs (`read`, `history`, `identity`), before the rest is
    loaded and checked (`plan` reads the directory meanwhile, `reconciler.ahead`). None when it
    has a problem, which `load` reports."""
    found = loader.read_settings(folder)
    if found is None:
        return None
    try:
        return Loaded(Inventory(found, (), ()), regulations.get(found.regulation))
    except ReconcilerError:
        return None


def read(
    directory: Directory,
    loaded: Loaded,
    progress: Callable[[int], None] | None = None,
    relay: Callable[[tuple[object, ...]], None] | None = None,
) -> Sequence[Entry]:
    """Every entry under the inventory's base DN, with the attributes a plan reads, and the
    history's tombstones (`read_history`) with theirs; not the batches of the audit history
    (`directory.history`), which are no part of what a plan compares.

    Streamed: each entry is surveyed for the plan and packed as it arrives (`desired.Surveyed`:
    at 100,000 mailboxes some 45 MB instead of 140 MB of entry objects). With `relay`, the
    entries are surveyed in another process (`plan` reads in a child, `reconciler.ahead`): the
    tombstones and the entries packed go to `relay` as they are read, and what is returned is
    the packing's tables alone, for that process's `Received` to finish with."""
    base = loaded.inventory.settings.base_dn
    with paused():
        history = read_history(directory, base)
        if relay is not None:
            relay((_HISTORY, history))
            store = Relay(lambda part: relay((_ENTRIES, *part)))
            read_tree_into(directory, base, READ, store, progress)
            store.close()
            return store
        found = _surveyed(loaded, history)
        read_tree_into(directory, base, READ, found, progress)
        _finish(found, history)
    return found


_HISTORY, _ENTRIES = "history", "entries"  # the parts of a read with `relay`


def _surveyed(loaded: Loaded, history: list[Entry]) -> desired.Surveyed:
    """The store a read's entries are surveyed into, leaving out the audit batches and, until
    they come last (`_finish`), the `history`'s tombstones."""
    seen = {e.dn.lower() for e in history}
    found = desired.Surveyed(
        loaded.inventory.settings,
        lambda entry: is_audit(entry) or (bool(seen) and entry.dn.lower() in seen),
    )
    found.survey.ids = {p.id: p.id for p in loaded.inventory.people}
    return found


def _finish(found: desired.Surveyed, history: list[Entry]) -> None:
    found.skip = None
    for entry in history:
        found.append(entry)


class Received:
    """This side of a `read` made with `relay` in another process: its parts surveyed as they
    come (`take`), then finished with the tables the read returned (`done`): the same entries,
    survey and fingerprint as a `read` made here."""

    def __init__(self, loaded: Loaded) -> None:
        self._loaded = loaded
        self._history: list[Entry] = []
        self._found: desired.Surveyed | None = None
        self.count = 0  # entries taken so far, tombstones and audit batches included

    def take(self, part: tuple[Any, ...]) -> None:
        """Take a part of the read (call it with the garbage collector `paused`, as `read`)."""
        if part[0] == _HISTORY:
            self._history = part[1]
            self._found = _surveyed(self._loaded, self._history)
        elif self._found is not None and part[0] == _ENTRIES:
            self._found.take(*part[1:])
            self.count += len(part[3])
        else:
            raise RuntimeError(f"a read's part out of order: {part[0]!r}")

    def done(self, tables: Sequence[Entry]) -> Sequence[Entry]:
        """The entries read, from the tables the read returned (a `Relay`)."""
        if self._found is None or not isinstance(tables, Packed):
            raise RuntimeError("a read that sent no entries")
        with paused():
            self._found.adopt(tables)
            _finish(self._found, self._history)
        return self._found


def read_history(directory: Directory, base_dn: str) -> list[Entry]:
    """The tombstones of the mailboxes the tool deleted: one search under ou=history (a
    directory without one has none)."""
    try:
        return list(directory.find(history_dn(base_dn), "objectClass", [TOMBSTONE], HISTORY_READ))
    except NoSuchEntry:
        return []


def history(directory: Directory, loaded: Loaded) -> list[dict[str, Any]]:
    """The audit records kept in the directory (`directory.history`), oldest first."""
    with paused():
        return records(directory, loaded.inventory.settings.base_dn)


def read_at_state(
    source: Directory,
    loaded: Loaded,
    providers: Sequence[Directory] = (),
    *,
    replica: bool = False,
    wait: float | None = None,
    progress: Callable[[int], None] | None = None,
    relay: Callable[[tuple[object, ...]], None] | None = None,
) -> tuple[Sequence[Entry], ReadState | None]:
    """`read` `source` and record the replication state it was read at: the newest contextCSNs
    of the `providers` (the others, when `source` is a provider itself; all of them when it is a
    `replica`), read first, then the source's own, just before its entries. With `wait`, wait up
    to that many seconds for the source to hold every change the providers hold
    (DirectoryError naming the lag after that). A directory that keeps no contextCSN (not
    replicated, or a file) gives no state. `relay`: as `read`'s."""
    base = loaded.inventory.settings.base_dn
    want = csn.newest(replicas.state(p, base) for p in providers)
    if wait is not None and want:
        replicas.wait_until_holds(source, base, want, wait)
    read_at = dt.datetime.now(dt.UTC)
    held = replicas.state(source, base)
    entries = read(source, loaded, progress, relay)
    if not held:
        return entries, None
    if not replica:  # the source is a provider: what it holds, the providers hold
        want = csn.newest([want, held])
    return entries, ReadState(
        read_from=source.url,
        read_at=read_at,
        held=tuple(sorted(held.values())),
        providers=tuple(sorted(want.values())),
    )


def read_sources(directory: Directory, base_dn: str, loaded: Loaded) -> dict[str, Entry]:
    """A merger: the mailbox of the former province's directory that each merged record
    (`origin`) was, by the record's id: found by its former id (employeeNumber), else by its
    former address (mail); a few searches, and the source is only read. An entry two records
    claim is given to neither (the plan then issues them new passwords, and says so)."""
    origins = {p.id: p.origin for p in loaded.inventory.people if p.origin is not None}
    if not origins:
        return {}
    by_former_id = {o.id: pid for pid, o in origins.items()}
    found: dict[str, Entry] = {}
    with paused():
        for entry in directory.find(base_dn, "employeeNumber", sorted(by_former_id), SOURCE_READ):
            pid = by_former_id.get(entry.key or "")
            if pid is not None and entry.mail:
                found[pid] = entry
        by_address = {
            o.address.lower(): pid for pid, o in origins.items() if o.address and pid not in found
        }
        if by_address:
            for entry in directory.find(base_dn, "mail", sorted(by_address), SOURCE_READ):
                pid = by_address.get(entry.mail or "")
                if pid is not None:
                    found.setdefault(pid, entry)
    claimed: dict[str, list[str]] = {}
    for pid, entry in found.items():
        claimed.setdefault(entry.dn.lower(), []).append(pid)
    return {pid: e for pid, e in found.items() if len(claimed[e.dn.lower()]) == 1}


def make_plan(
    loaded: Loaded,
    entries: Iterable[Entry],
    context: Context,
    *,
    limits: Limits | None,
    progress: Callable[[int, int], None] | None = None,
    time_rules_only: bool = False,
) -> Plan:
    """The plan that makes the directory match the inventory, guarded by `limits`: past them it
    raises UnsafePlan, which carries the plan so that it can be shown before it is refused.
    `limits=None` computes without the guard (the tests' scenarios, which check it on their own)."""
    with paused():
        result = compute(loaded.inventory, entries, loaded.regulation, context, progress)
    if time_rules_only:  # guarded on its own: what is left out is not applied
        result = only_time_rules(result, loaded.regulation)
    if limits is not None:
        check_limits(result, limits)
    else:  # the caller allowed what the plan holds
        limits = loaded.limits(result.count(Action.DELETE), result.count(Action.SUSPEND))
    result = replace(result, limits=limits)
    broken = invariants.check_plan(result)  # what apply would refuse is refused here
    if broken:
        raise invariants.refuse(result, broken)
    return result


def identity(directory: Directory, loaded: Loaded) -> str:
    """The identity of the directory the inventory's base DN is in (`Directory.identity`)."""
    return directory.identity(loaded.inventory.settings.base_dn)
