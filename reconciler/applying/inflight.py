"""Apply's writes, pipelined: up to `window` requests in flight on the one connection.

Each operation is one write, or a few that depend on each other (a rename, then the modify of its
attributes; a deleted mailbox's tombstone, then the delete), sent one after the other; the writes
of different operations go out without waiting for each other's answers, `window` at most
unanswered (`Directory.pipeline`). The server may carry out requests in flight in any order, so:

- an operation that shares a stable id, a DN or an address (mail, alias, uid: given or given up)
  with one in flight waits for that one's answer: an address a rename frees is reused only once
  the rename is acknowledged;
- a delete waits until every write before it is answered, and is sent alone (deletes come last
  in a plan: nothing irreversible happens while an earlier write may still fail);
- the passwords of the writes sent together are on file, synced, before the first is sent.

On the first failed operation nothing more is sent; the operations already in flight finish (a
rename whose modify is still to come included) and are recorded like the others, in the audit
log and the recap, then the run ends with what failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.applying import carry
from reconciler.applying.audit import AuditLog, Pending
from reconciler.applying.credentials import CredentialsFile, generate, read_password
from reconciler.attributes import PASSWORD, format_time, managed_digest
from reconciler.directory.base import Pipeline, Write
from reconciler.dn import parse_dn, split_dn
from reconciler.errors import (
    DirectoryError,
    EntryExists,
    NoSuchEntry,
    ReconcilerError,
    Refused,
    StaleEntry,
    StalePlan,
)
from reconciler.model import Action, Change, Deferred, Operation, resolve
from reconciler.names import fold

#: Requests in flight by default: enough to keep slapd's threads busy and hide the round trips,
#: few enough that a failure leaves little to finish (`apply --in-flight`).
WINDOW = 32

#: An issued password, as the audit log records it.
ISSUED = f"({Deferred.PASSWORD.value})"

CHANGED_WHILE = (
    "{dn} changed in the directory while the plan was being applied (by hand?); it was not "
    "written. Run `reconciler plan` again and review the new plan."
)
#: Actions whose writes change the managed attributes: their audit record keeps the digest of
#: what apply left (`attributes.managed_digest`), for the next plan's hand-change check.
_DIGESTED = frozenset({Action.CREATE, Action.RENAME, Action.UPDATE})
_ADDRESSES = frozenset({"mail", "govmailalias", "uid"})


def issues_password(op: Operation) -> bool:
    return any(Deferred.PASSWORD in c.after for c in (*op.attributes, *op.changes))


def resolve_listed(listed: tuple[Change, ...], password: str) -> dict[str, list[str]]:
    """The attributes the operation lists, as they are written now: an issued password is the one
    put on file (`hand_over`), a time of apply is now."""
    after = {c.attr: c.after for c in listed}
    moment = format_time(dt.datetime.now(dt.UTC))
    return {attr: resolve(values, password, moment) for attr, values in after.items()}


def attrs_of(attrs: Mapping[str, tuple[str, ...] | list[str]]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in attrs.items()}


#: The key of a delete in flight (`keys`): no write is sent until it is answered, since a later
#: one may take an address of the entry being deleted (its aliases are not in the operation).
DELETING = "delete:"


def keys(op: Operation, dn: str) -> frozenset[str]:
    """What an operation must not share with one in flight: its stable id, its DNs, and every
    address it gives or gives up."""
    out = {f"id:{op.id.lower()}"}
    if op.action is Action.DELETE:
        out.add(DELETING)  # it frees addresses this list does not name: nothing goes beside it
    out.update(f"dn:{name.lower()}" for name in (dn, op.new_dn) if name)
    for change in (*op.attributes, *op.changes):
        if change.attr.lower() in _ADDRESSES:
            values = (*change.before, *change.after)
            out.update(f"a:{v.lower()}" for v in values if isinstance(v, str))
    return frozenset(out)


@dataclass(slots=True)
class Prepared:
    """An operation's writes, in order, and what its audit record says."""

    writes: list[Write]
    new_dn: str
    before: dict[str, list[str]]
    shown: dict[str, list[str]]


def prepare(
    op: Operation,
    dn: str,
    state: dict[str, tuple[str, ...]],
    password: str,
    carried: tuple[str, ...] = (),
) -> Prepared:
    """The writes of one operation on the entry whose attributes this run knows as `state`, and
    `state` updated to what they leave (the writes of one entry are never in flight together,
    and a failure ends the run: `state` is only read again after they succeeded). `carried`:
    the password hashes of a merger's create, read from its source entry."""
    if op.action is Action.DELETE:
        tombstone = [Write("add", op.new_dn, resolve_listed(op.attributes, ""))]
        # the tombstone first: once the entry is gone, every plan knows (already there when an
        # apply stopped between the two)
        return Prepared(
            [*(tombstone if op.attributes else []), Write("delete", dn)], dn, attrs_of(state), {}
        )
    listed = op.attributes if op.action is Action.CREATE else op.changes
    writes = resolve_listed(listed, password)
    if carried and PASSWORD in writes:
        writes[PASSWORD] = list(carried)  # every hash the source entry holds, as it is
    elif writes.get(PASSWORD) == [""]:
        raise ReconcilerError(f"{op.id}: no password was read from its source entry")
    # what the audit log keeps: the values written, a password only as issued or carried
    label = carry.CARRIED if carried else ISSUED
    shown = {**writes, PASSWORD: [label]} if PASSWORD in writes else dict(writes)
    if op.action is Action.CREATE:
        state.update({k.lower(): tuple(v) for k, v in writes.items() if k != PASSWORD})
        return Prepared([Write("add", op.new_dn, writes)], op.new_dn, {}, shown)
    before = {c.attr: list(c.before) for c in op.changes}
    out: list[Write] = []
    if op.action is Action.RENAME:
        if dn.lower() != op.new_dn.lower():
            (attr, old_value), (_, new_value) = parse_dn(dn)[0], parse_dn(op.new_dn)[0]
            rdn, parent = split_dn(op.new_dn)[0], split_dn(dn)[1]
            out.append(Write("rename", dn, new_rdn=rdn))
            dn = f"{rdn},{parent}" if parent else rdn
            kept = tuple(v for v in state.get(attr.lower(), ()) if v.lower() != old_value.lower())
            state[attr.lower()] = (*kept, new_value)
        writes.pop("uid", None)  # the RDN carries it
    if writes:
        expect = {attr: state.get(attr.lower(), ()) for attr in writes if attr != PASSWORD}
        out.append(Write("modify", dn, writes, expect))
        state.update({a.lower(): tuple(v) for a, v in writes.items() if a != PASSWORD})
    return Prepared(out, dn, before, shown)


def explain(op: Operation, write: Write, error: DirectoryError) -> ReconcilerError | None:
    """What a failed write means for its operation; None when it is no failure (a tombstone an
    interrupted run already wrote)."""
    if isinstance(error, StaleEntry):
        return StalePlan(CHANGED_WHILE.format(dn=write.dn))
    if isinstance(error, EntryExists) and write.kind == "add":
        if op.action is Action.DELETE:
            return None
        return ReconcilerError(f"{write.dn} appeared while applying")
    if isinstance(error, NoSuchEntry) and write.kind == "modify":
        return ReconcilerError(f"{write.dn} disappeared while applying")
    return error


@dataclass(slots=True)
class Flight:
    """An operation whose writes are being sent."""

    index: int
    op: Operation
    dn: str
    keys: frozenset[str]
    prepared: Prepared
    line: bool  # this run put a password on file for it
    next: int = 0  # its next write


#: An operation, what became of it ("changed", "ok", "failed", "skipped") and when.
Outcome = tuple[Operation, str, dt.datetime]


@dataclass(slots=True)
class Recap:
    ok: int = 0  # already done
    changed: int = 0
    failed: int = 0
    skipped: int = 0  # not attempted (after a failure)
    messages: list[str] = field(default_factory=list)
    replaced_lock: str = ""
    #: each operation with what became of it and when, appended as it comes: what the notices
    #: tell the agencies
    outcomes: list[Outcome] = field(default_factory=list)
    #: passwords an interrupted run had put on file, used now (address and file)
    reused: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"ok={self.ok} changed={self.changed} failed={self.failed} skipped={self.skipped}"


#: Told of each operation's result as apply goes: the operation, "ok" (already done), "changed"
#: or "failed".
Shown = Callable[[Operation, str], None]
#: Told how many operations are done, of how many.
Progress = Callable[[int, int], None]
#: Before a delete is sent (nothing in flight): raises when it must not go (checked against the
#: state known), and records that it starts.
BeforeDelete = Callable[[Operation, str, dict[str, tuple[str, ...]], bool], None]
#: After a delete succeeded (the mail store's erase): raises when that fails.
AfterDelete = Callable[[Operation], None]
#: Work for the moments the writes are in flight and no answer has come: a slice of at most
#: about a millisecond (the server writes one request in about half of one), which says whether
#: more is left now. It must not raise; one that does is not called again.
Idle = Callable[[], bool]


class Sender:
    """Sends a plan's operations to do through `pipeline` (see the module docstring)."""

    def __init__(
        self,
        pipeline: Pipeline,
        audit: AuditLog,
        credentials: CredentialsFile | None,
        result: Recap,
        *,
        renew: Callable[[], None],
        before_delete: BeforeDelete,
        after_delete: AfterDelete,
        pending: Mapping[str, Pending],
        hashes: Mapping[str, tuple[str, ...]],
        used: Mapping[str, Pending] | None = None,
        shown: Shown | None = None,
        progress: Progress | None = None,
        meanwhile: Callable[[], None] | None = None,
        idle: Idle | None = None,
    ) -> None:
        self.pipeline = pipeline
        #: work for after the run, done once the first writes are in flight (the server busy
        #: with them: hidden behind its synced writes, where it would add to the run's end)
        self.meanwhile = meanwhile
        #: work done in slices while waiting for answers (`Idle`)
        self.idle = idle
        self.audit = audit
        self.credentials = credentials
        self.result = result
        self.renew = renew
        self.before_delete = before_delete
        self.after_delete = after_delete
        self.pending = pending
        self.used = used or {}
        self.credentials_path = str(credentials.path.resolve()) if credentials else ""
        self.hashes = hashes
        self.shown = shown
        self.progress = progress
        self.flights: dict[int, Flight] = {}
        self.busy: set[str] = set()
        self.stopped = False
        self.finished = 0
        self.total = 0
        # each entry as this run knows it: as read by the stale check, then as this run wrote
        # it; every modify is a compare-and-swap against it, so a hand change made while the
        # apply runs is never overwritten (no second read per operation)
        self.known: dict[str, dict[str, tuple[str, ...]]] = {}
        self.current_dn: dict[str, str] = {}
        self.written: set[str] = set()  # keys this run has changed

    # the run -----------------------------------------------------------------------------------

    def run(
        self, todo: list[Operation], read: Callable[[Operation], dict[str, tuple[str, ...]]]
    ) -> None:
        """Send every operation of `todo` (`read`: the attributes the stale check read of its
        entry, {} for none), until one fails."""
        self.total = len(todo)
        window = max(1, self.pipeline.window)
        refill = max(1, window // 2)  # send again once the window is this empty: in batches
        position = 0
        try:
            while True:
                if not self.stopped and self.pipeline.in_flight <= window - refill:
                    position = self._fill(todo, position, window, read)
                    if self.meanwhile is not None and self.pipeline.in_flight:
                        meanwhile, self.meanwhile = self.meanwhile, None
                        meanwhile()
                if not self.pipeline.in_flight:
                    if self.stopped or position >= len(todo):
                        break
                    continue  # a delete went alone, or its turn came
                self._collect()
        except BaseException:
            self._settle_in_flight()
            raise
        self.result.skipped = len(todo) - position
        moment = dt.datetime.now(dt.UTC)
        self.result.outcomes += [(op, "skipped", moment) for op in todo[position:]]

    def _fill(
        self,
        todo: list[Operation],
        position: int,
        window: int,
        read: Callable[[Operation], dict[str, tuple[str, ...]]],
    ) -> int:
        """Prepare and send the next operations, as many as the window takes and none that
        conflicts with one in flight; the position of the first one not sent."""
        self.renew()  # the lease, every RENEW_EVERY seconds; stops if taken over
        batch: list[Flight] = []
        while position < len(todo) and self.pipeline.in_flight + len(batch) < window:
            op = todo[position]
            dn = self.current_dn.get(op.id, op.dn)
            conflicts = keys(op, dn)
            if op.action is Action.DELETE and (batch or self.pipeline.in_flight):
                break  # alone, once every write before it is answered
            if DELETING in self.busy:
                break  # nothing beside a delete: it may free an address a later write takes
            if conflicts & self.busy:
                break  # after the one in flight that shares an entry, a DN or an address
            state = self.known.get(op.id)
            if state is None:
                state = self.known[op.id] = read(op)
            flight = self._prepare(position, op, dn, conflicts, state)
            position += 1
            if flight is None:
                break  # failed before anything was sent
            batch.append(flight)
            self.busy |= conflicts
            if op.action is Action.DELETE:
                break
        if self.credentials is not None and any(f.line for f in batch):
            try:
                self.credentials.sync()
            except ReconcilerError as error:  # none of them is sent: their lines taken back
                for flight in batch:
                    if flight.line:
                        self.credentials.withdraw(flight.op.address)
                        flight.line = False
                    self._failed(flight, error)
                return position
        for flight in batch:
            self._send(flight)
        return position

    def _prepare(
        self,
        index: int,
        op: Operation,
        dn: str,
        conflicts: frozenset[str],
        state: dict[str, tuple[str, ...]],
    ) -> Flight | None:
        flight = Flight(index, op, dn, conflicts, Prepared([], dn, {}, {}), False)
        try:
            if op.action is Action.DELETE:
                self.before_delete(op, dn, state, op.id in self.written)
            password = ""
            if issues_password(op):
                assert self.credentials is not None  # refused before the run
                password, flight.line = self._hand_over(op)
            flight.prepared = prepare(op, dn, state, password, self.hashes.get(op.id, ()))
        except ReconcilerError as error:
            if self.audit.broken:  # the audit log cannot be written: that stops the run
                raise
            self._failed(flight, error)
            return None
        return flight

    def _send(self, flight: Flight) -> None:
        self.flights[flight.index] = flight
        writes = flight.prepared.writes
        if flight.next >= len(writes):  # nothing left to write (a rename already done)
            self._answered(flight, None)
            return
        self.pipeline.send(writes[flight.next], flight.index)

    def _answered(self, flight: Flight, error: DirectoryError | None) -> None:
        writes = flight.prepared.writes
        if writes and flight.next < len(writes):
            write = writes[flight.next]
            failure = explain(flight.op, write, error) if error is not None else None
            if failure is not None:
                self._failed(flight, failure, refused=isinstance(error, Refused))
                return
            flight.next += 1
            if flight.next < len(writes):  # the next write of the same operation
                self.pipeline.send(writes[flight.next], flight.index)
                return
        self._done(flight)

    # outcomes ----------------------------------------------------------------------------------

    def _release(self, flight: Flight) -> None:
        self.flights.pop(flight.index, None)
        self.busy -= flight.keys
        self.finished += 1

    def _done(self, flight: Flight) -> None:
        self._release(flight)
        op, prepared = flight.op, flight.prepared
        self.current_dn[op.id] = prepared.new_dn
        self.written.add(op.id)
        if flight.line and self.credentials is not None:
            self.credentials.settled(op.address)
        self.result.changed += 1
        self.result.outcomes.append((op, "changed", dt.datetime.now(dt.UTC)))
        state = self.known.get(op.id, {})
        digested = {"digest": managed_digest(state)} if op.action in _DIGESTED else {}
        self.audit.record(
            op.action.value,
            id=op.id,
            dn=prepared.new_dn,
            address=op.address,
            agency=op.agency,
            clause=op.clause,
            reason=op.reason,
            before=prepared.before,
            after=prepared.shown,
            outcome="changed",
            **digested,
        )
        if op.action is Action.DELETE:
            try:
                self.after_delete(op)
            except ReconcilerError as error:
                self.result.failed += 1
                self.result.messages.append(f"delete {op.address} ({op.id}): {error}")
                self.stopped = True
        if self.shown:
            self.shown(op, "changed")
        if self.progress:
            self.progress(self.finished, self.total)

    def _failed(self, flight: Flight, error: ReconcilerError, *, refused: bool = False) -> None:
        """`refused`: the server refused the write (nothing written), whatever it means."""
        self._release(flight)
        self.stopped = True
        op = flight.op
        withdrawn = self._settle_line(op, refused or isinstance(error, Refused), flight.line)
        self.result.failed += 1
        self.audit.record(
            op.action.value,
            id=op.id,
            dn=flight.dn,
            address=op.address,
            agency=op.agency,
            outcome="failed",
            message=str(error),
            **({"withdrawn": True} if withdrawn else {}),
        )
        self.result.messages.append(f"{op.action.value} {op.address} ({op.id}) failed: {error}")
        self.result.outcomes.append((op, "failed", dt.datetime.now(dt.UTC)))
        if self.shown:
            self.shown(op, "failed")

    def _settle_in_flight(self) -> None:
        """After an unexpected stop (the audit log cannot be written, the lock taken over): the
        answers of the writes in flight, recorded where that still works."""
        self.stopped = True
        self.idle = None
        with suppress(Exception):
            while self.pipeline.in_flight:
                self._collect()

    def _collect(self) -> None:
        """Take the answers come in, at least one: while none has, the idle work is done a
        slice at a time between looks, and only once there is none left does it wait. An answer
        that comes during a slice waits for the slice's end (under a millisecond): with the
        window full, the server has more than that queued; with a write alone in flight (a
        delete goes alone), it may idle that long, until the drafts have caught up."""
        answers = self.pipeline.answers(wait=False) if self.idle is not None else []
        while not answers:
            if not self._idle_slice():
                answers = self.pipeline.answers(wait=True)
                break
            answers = self.pipeline.answers(wait=False)
        for tag, error in answers:
            assert isinstance(tag, int)
            self._answered(self.flights[tag], error)

    def _idle_slice(self) -> bool:
        """One slice of the idle work; whether more is left. Idle work that fails is given up
        (its owner does that work the old way): the run goes on."""
        if self.idle is None:
            return False
        try:
            return self.idle()
        except Exception:  # whatever it is: the writes matter, not it
            self.idle = None
            return False

    # passwords ---------------------------------------------------------------------------------

    def _settle_line(self, op: Operation, refused: bool, line: bool) -> bool:
        """After a failed write, the password this run put on file for it: taken back when the
        server refused the write (nothing was written, it opens nothing); kept when the outcome
        is unknown (the connection was lost with the write on its way), for the next apply,
        which finds the mailbox written or writes it with that password. True when it was
        taken back."""
        credentials = self.credentials
        if not line or credentials is None:
            return False
        if refused:
            return credentials.withdraw(op.address)
        credentials.unanswered(op.address)  # not counted as handed over: it may open nothing yet
        self.result.messages.append(
            f"the password for {op.address} stays in {credentials.path}: whether its mailbox "
            "was written is not known (the write got no answer); the next apply settles it, "
            "using that password if the mailbox is not there"
        )
        return False

    def _void(self, op: Operation, line: Pending, why: str) -> None:
        """Say, in the output and the audit log, that an earlier run's credentials line for the
        operation's address opens nothing (`why`, ending in its punctuation), and where the
        working one is."""
        assert self.credentials is not None
        void = (
            f"{op.address}: the password put in {line.file} by run {line.run} at {line.time} "
            f"{why} the working one is in {self.credentials.path}"
        )
        self.audit.record(
            "password",
            id=op.id,
            address=op.address,
            credentials=line.file,
            outcome="voided",
            message=void,
        )
        self.result.messages.append(void)

    def _hand_over(self, op: Operation) -> tuple[str, bool]:
        """The password the operation writes, on file (synced before it is sent) before the
        entry has it, and whether this run put it on file. A password an interrupted run put on
        file for this address and never used is used now, so its line works and no second one
        is handed over; when that file cannot be read any more, a new password is issued and
        the old line said to be void. A create at an address whose mailbox an earlier run wrote
        with a password it handed over (`used`: the entry has gone since, deleted or lost with a
        provider that failed before it replicated) says that earlier line is void too. The audit
        log records (without the secret) which file holds it before it is written there."""
        assert self.credentials is not None
        audit, credentials = self.audit, self.credentials
        earlier = self.pending.get(op.address.lower())
        gone = self.used.get(op.address.lower()) if op.action is Action.CREATE else None
        if earlier is None and gone is not None:
            self._void(
                op,
                gone,
                "no longer works: the mailbox it was written to is not in the directory now "
                "(deleted since, or lost with a directory server that stopped before it "
                "replicated) and is created again; that line is void,",
            )
        if earlier is not None:
            kept = read_password(Path(earlier.file), op.address)
            if kept is not None:
                audit.record(
                    op.action.value,
                    id=op.id,
                    address=op.address,
                    credentials=earlier.file,
                    reused=True,
                    outcome="pending",
                )
                self.result.reused.append(f"{op.address} ({earlier.file})")
                return kept, False
            self._void(
                op,
                earlier,
                "was never used (that run stopped before the mailbox was written) and that file "
                "cannot be read now: it is void;",
            )
        audit.record(
            op.action.value,
            id=op.id,
            address=op.address,
            credentials=self.credentials_path,
            outcome="pending",
        )
        password = generate([fold(w) for w in op.name.split()])
        credentials.add(op.address, password, sync=False)
        return password, True
