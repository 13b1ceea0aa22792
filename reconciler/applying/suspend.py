"""Suspension at once (HG-2024 Đ8.1, Đ8.2.b): a security warning cannot wait for a pull request.

`prepare()` finds the mailbox, checks the clause is one of the regulation's suspension grounds,
writes the matching `state: suspended` into the agency's file (its record's lines only, read back
by the loader) and returns a one-operation plan; the caller applies it with `apply.execute`, the
same machinery as any plan (lock, stale check, locking policy, audit), and puts the file back
with `undo()` if the apply does not go through. The next plan then neither restores the mailbox
nor differs from the directory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from reconciler import attributes
from reconciler.applying.reset import find
from reconciler.attributes import LOCK, READ, fingerprint
from reconciler.directory import Directory
from reconciler.errors import InventoryError, ReconcilerError
from reconciler.inventory import edit, loader
from reconciler.model import (
    Action,
    Contact,
    Inventory,
    Kind,
    Limits,
    Operation,
    Owner,
    Plan,
    State,
    Suspension,
    agency_key,
)
from reconciler.planning.pipeline import Loaded
from reconciler.rules import lifecycle, regulations


@dataclass(frozen=True, slots=True)
class Prepared:
    plan: Plan
    file: Path  # the agency file changed
    before: str  # its text before


def prepare(
    loaded: Loaded,
    directory: Directory,
    address: str,
    clause: str,
    note: str,
    *,
    actor: str,
    now: dt.datetime,
) -> Prepared:
    inventory, regulation = loaded.inventory, loaded.regulation
    settings = inventory.settings
    problem = regulation.suspension_problem(clause)
    entry = find(directory, settings.base_dn, address, READ, verb="suspend")
    person = next((p for p in inventory.people if p.id == entry.key), None)
    if person is not None and person.regulation:
        # a former territory kept under its own regulation: its grounds
        problem = regulations.get(person.regulation).suspension_problem(clause)
    if problem:
        raise ReconcilerError(f"--clause {clause!r} {problem}")
    if person is None:
        raise ReconcilerError(
            f"{address} is {entry.key}, which has no staff record in the inventory: only a "
            "person's mailbox is suspended this way"
        )
    if entry.all(LOCK):
        raise ReconcilerError(
            f"{address} is already suspended ({entry.get('govMailSuspendReason')})"
        )
    path = Path(inventory.folder) / person.loc.file
    before = path.read_text(encoding="utf-8")
    index = _index(inventory, person.id)
    edit.replace_file(path, edit.suspension_lines(before, index, clause, note))
    try:
        again = loader.load(Path(inventory.folder), regulations.get)
        record = next((p for p in again.people if p.id == person.id), None)
        wanted = Suspension(clause, note)
        if record is None or record.state is not State.SUSPENDED or record.suspension != wanted:
            raise ReconcilerError(f"{path} did not read back as the suspension asked for")
    except (InventoryError, ReconcilerError) as error:
        edit.replace_file(path, before)
        problems = getattr(error, "problems", None)
        shown = "; ".join(str(p) for p in problems) if problems else str(error)
        raise ReconcilerError(
            f"could not write the suspension into {path} ({shown}); nothing was changed"
        ) from None
    op = Operation(
        action=Action.SUSPEND,
        id=person.id,
        address=entry.mail or address,
        clause=clause,
        reason=(
            f"suspended at once by {actor}"
            + (f": {note}" if note else "")
            + f"; {person.loc.file} now says so, for the pull request that follows"
        ),
        kind=Kind.PERSON,
        agency=person.agency,
        name=person.name,
        changes=attributes.suspend(entry, lifecycle.declared_text(wanted)),
        dn=entry.dn,
        fingerprint=fingerprint(entry),
    )
    agency = again.agency(person.agency)
    org = list(
        directory.find(settings.base_dn, "employeeNumber", [agency_key(person.agency)], READ)
    )
    plan = Plan(
        regulation=regulation.id,
        domain=settings.domain,
        base_dn=settings.base_dn,
        now=now,
        inventory_digest=again.digest,
        inventory_commit="",
        directory_url=directory.url,
        directory_fingerprint="sha256:" + hashlib.sha256(fingerprint(entry).encode()).hexdigest(),
        operations=(op,),
        accounts=1,
        contacts=(
            Contact(
                person.agency,
                agency.name if agency else person.agency,
                tuple(e.mail for e in org if e.mail),
            ),
        ),
        # the owner is told at their own address too (QN-2020 Đ7.2), as the inventory gives it
        owners=(
            (Owner(person.id, person.agency, person.external_email),)
            if person.external_email
            else ()
        ),
        relay=settings.relay,
        sender=settings.sender,
        people=attributes.people_containers(settings),
        directory_identity=directory.identity(settings.base_dn),
        limits=Limits(settings.max_deletes, allow_suspends=1),  # the one asked for
    )
    return Prepared(plan, path, before)


def undo(prepared: Prepared) -> None:
    """Put the agency file back as it was (the suspension did not go through)."""
    edit.replace_file(prepared.file, prepared.before)


def _index(inventory: Inventory, key: str) -> int:
    """The position of `key`'s record among its file's staff."""
    person = next(p for p in inventory.people if p.id == key)
    mine = [p for p in inventory.people if p.loc.file == person.loc.file]
    return mine.index(person)
