"""Apply a saved plan: lock, check freshness, run the operations in order, audit each one.

Before writing, the entries the plan depends on are read (a few searches by stable id and DN, not
the whole directory): an operation whose result is already there is skipped ("ok"), one whose
entry changed since the plan is refused as stale before anything is written. So an apply cut off
half way can be run again and converges. Each write is then one round trip: a modify is a
compare-and-swap against what was read, so a hand change made while the apply runs is refused,
never overwritten.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.applying import carry, freshness, lockpeers, mailstore
from reconciler.applying.audit import AuditLog, Pending
from reconciler.applying.credentials import CredentialsFile, generate, read_password
from reconciler.applying.lock import Holder, Lock
from reconciler.applying.suspension import ensure_locking
from reconciler.attributes import (
    CASELESS_ATTRS,
    LOCK,
    LOCKED,
    PASSWORD,
    READ,
    SUSPEND_REASON,
    fingerprint,
    format_time,
    managed_digest,
)
from reconciler.directory import Directory
from reconciler.dn import parse_dn, split_dn
from reconciler.errors import (
    EntryExists,
    NoSuchEntry,
    ReconcilerError,
    Refused,
    StaleEntry,
    StalePlan,
)
from reconciler.model import (
    Action,
    Change,
    Deferred,
    Entry,
    Operation,
    Plan,
    Settings,
    agency_key,
    resolve,
)
from reconciler.names import fold
from reconciler.planning import invariants
from reconciler.text import count


@dataclass(slots=True)
class Recap:
    ok: int = 0  # already done
    changed: int = 0
    failed: int = 0
    skipped: int = 0  # not attempted (after a failure)
    messages: list[str] = field(default_factory=list)
    replaced_lock: str = ""
    #: each operation with what became of it ("changed", "ok", "failed", "skipped") and when:
    #: what the notices tell the agencies
    outcomes: list[tuple[Operation, str, dt.datetime]] = field(default_factory=list)
    #: passwords an interrupted run had put on file, used now (address and file)
    reused: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"ok={self.ok} changed={self.changed} failed={self.failed} skipped={self.skipped}"


Progress = Callable[[int, int], None]
#: Told of each operation's result as apply goes: the operation, "ok" (already done), "changed"
#: or "failed".
Shown = Callable[[Operation, str], None]
#: Actions whose writes change the managed attributes: their audit record keeps the digest of
#: what apply left (`attributes.managed_digest`), for the next plan's hand-change check.
_DIGESTED = frozenset({Action.CREATE, Action.RENAME, Action.UPDATE})


def _same(entry: Entry, change: Change) -> bool:
    """Does the entry hold what `change` writes? A value apply fills in matches any one value
    (a time stamped by an earlier run); an issued password is never read, so it cannot tell."""
    attr, have = change.attr, entry.all(change.attr)
    if change.after == (Deferred.PASSWORD,):  # never read: only how many values it has
        return entry.passwords is None or entry.passwords <= 1
    if change.deferred:
        return len(have) == len(change.after)
    values = [v for v in change.after if isinstance(v, str)]
    if attr in CASELESS_ATTRS or attr.lower() == "objectclass":
        return sorted(v.lower() for v in have) == sorted(v.lower() for v in values)
    return sorted(have) == sorted(values)


def _done(op: Operation, entry: Entry | None) -> bool:
    """Is the operation's result already in the directory? Each of its writes is one LDAP
    request, done whole or not at all, so one sign of it is enough."""
    if op.action is Action.DELETE:
        return entry is None
    if entry is None:
        return False
    if op.action is not Action.CREATE and fingerprint(entry) == op.fingerprint:
        return False  # the entry is as planned: not even an update whose values it holds
    if op.action is Action.CREATE:
        return _same(entry, next(c for c in op.attributes if c.attr == "mail"))
    if op.action is Action.SUSPEND:
        return bool(entry.all(LOCK))
    if op.action is Action.RESTORE:
        return not entry.all(LOCK) and not entry.all(SUSPEND_REASON)
    if op.action is Action.RENAME and entry.dn.lower() != op.new_dn.lower():
        return False
    return all(_same(entry, c) for c in op.changes)


def check(
    plan: Plan,
    live: dict[str, Entry],
    by_dn: dict[str, Entry],
    holders: Mapping[str, set[str]] | None = None,
) -> tuple[list[Operation], list[Operation], list[str]]:
    """Split the plan's operations into (to do, already done, stale reasons). `holders`: the
    lower-case DNs holding each address the plan gives (as mail or alias), to check that they
    are still free."""
    todo: list[Operation] = []
    done: list[Operation] = []
    stale: list[str] = []
    seen: dict[str, bool] = {}  # key -> an earlier operation on it is still to do
    for op in plan.operations:
        entry = live.get(op.id)
        if entry is None and op.dn.lower() in by_dn and not by_dn[op.dn.lower()].managed:
            entry = by_dn[op.dn.lower()]  # adopted by this plan: no employeeNumber yet
        earlier_todo = seen.get(op.id)
        if _done(op, entry):
            done.append(op)
            seen.setdefault(op.id, False)
            continue
        if earlier_todo is not None:
            # a later step on an entry an earlier step changes (or changed): its state is the
            # earlier step's result, which the plan could not fingerprint
            todo.append(op)
            continue
        if op.action is Action.CREATE:
            if entry is not None:
                stale.append(f"{op.id}: now exists in the directory as {entry.dn}")
            elif op.new_dn.lower() in by_dn:
                stale.append(f"{op.id}: the DN {op.new_dn} is now held by another entry")
            else:
                todo.append(op)
        elif entry is None:
            stale.append(f"{op.id} ({op.address}): no longer in the directory")
        elif fingerprint(entry) == op.fingerprint or _resumed(op, entry):
            todo.append(op)
        else:
            stale.append(f"{op.id} ({entry.dn}): changed since the plan was made")
        seen[op.id] = True
        taken = _taken(op, entry, holders or {}) if todo and todo[-1] is op else None
        if taken:
            todo.pop()
            stale.append(taken)
    return todo, done, stale


def _resumed(op: Operation, entry: Entry) -> bool:
    """Is `entry` what the plan read, renamed by an apply that stopped before changing the
    attributes? The rename is undone on paper and fingerprinted like any other entry, so a hand
    edit made since is never overwritten."""
    if op.action is not Action.RENAME or entry.dn.lower() != op.new_dn.lower():
        return False
    (old_attr, old), (new_attr, new) = parse_dn(op.dn)[0], parse_dn(op.new_dn)[0]
    attrs = dict(entry.attrs)
    attrs[new_attr.lower()] = tuple(v for v in attrs.get(new_attr.lower(), ()) if v != new)
    attrs[old_attr.lower()] = (*attrs.get(old_attr.lower(), ()), old)
    before = Entry(op.dn, {k: v for k, v in attrs.items() if v}, entry.passwords)
    return fingerprint(before) == op.fingerprint


def _added_addresses(op: Operation) -> set[str]:
    """The addresses (mail and aliases) an operation gives its entry that it did not have."""
    out: set[str] = set()
    for change in (*op.attributes, *op.changes):
        if change.attr in ("mail", "govMailAlias"):
            before = {v.lower() for v in change.before}
            out |= {v.lower() for v in change.after if isinstance(v, str)} - before
    return out


def _taken(op: Operation, entry: Entry | None, holders: Mapping[str, set[str]]) -> str | None:
    """Why an address the operation gives is no longer free (held by another entry), or None."""
    own = entry.dn.lower() if entry is not None else ""
    for address in sorted(_added_addresses(op)):
        others = sorted(dn for dn in holders.get(address, ()) if dn != own)
        if others:
            return (
                f"{op.id}: the address {address} is now held by {others[0]} (given by hand since "
                "the plan was made?); nothing was issued for it"
            )
    return None


def _base_entry(dn: str) -> dict[str, list[str]]:
    attr, value = parse_dn(dn)[0]
    attr = attr.lower()
    if attr == "dc":
        return {"objectClass": ["top", "dcObject", "organization"], "dc": [value], "o": [value]}
    if attr == "o":
        return {"objectClass": ["top", "organization"], "o": [value]}
    return {"objectClass": ["top", "organizationalUnit"], "ou": [value]}


def execute(
    plan: Plan,
    digest: str,
    directory: Directory,
    audit: AuditLog,
    credentials: CredentialsFile | None,
    *,
    actor: str,
    break_lock: str | None = None,
    progress: Progress | None = None,
    accept_unverified_lock: bool = False,
    accept_other_directory: bool = False,
    on_result: Shown | None = None,
    trusted: Settings | None = None,
    digest_bound: bool = False,
    wait_replication: float | None = None,
    peers: Sequence[Directory] = (),
    unanswered: Sequence[str] = (),
    source: Directory | None = None,
) -> Recap:
    """Apply the plan. Raises StalePlan before writing anything if an entry changed, and
    ReconcilerError if the plan suspends on a server that would not lock the accounts
    (`accept_unverified_lock`: where that cannot be read, go on), and one made for another
    directory unless `accept_other_directory` (an operator's word, recorded); stops at the first
    failing operation (recorded in the recap and the audit log). After each delete the plan's
    mail-store erase runs (again too for a delete already done, so that a failed erase is
    retried).
    `break_lock`: None, "" to take over a dead holder's lock, or the run id of a holder to take
    over (`Lock.acquire`). `trusted`: the inventory's own settings (apply --inventory), which
    the plan's declared containers and limits must match; `digest_bound`: the plan is the one
    reviewers saw (--expect-digest). On a replicated directory, a provider that lacks changes the
    plan was read with is waited for up to `wait_replication` seconds, then refused
    (`freshness`); the lock holds once every other provider listed, `peers`, holds it too
    (`lockpeers`), and is not taken while one listed does not answer (`unanswered`) unless
    `break_lock` says it is dead. A merger's plan carries password hashes from the
    `source` directory, only read (`applying.carry`)."""
    recap = Recap()
    carry.require_source(plan, source)
    freshness.provider_lacks(plan, directory, wait_replication)
    # what apply never does, whatever the plan says: checked before the first write
    broken = invariants.check_plan(plan)
    if trusted is not None:
        broken += invariants.settings_problems(plan, trusted, digest_bound=digest_bound)
    if not broken and invariants.rests_on_accounts(plan):
        counted = count_mailboxes(directory, plan.base_dn)
        broken += [p for p in (invariants.accounts_problem(plan, counted),) if p]
    _refuse_if(plan, audit, broken)
    wrong = invariants.identity_problem(plan, directory.identity(plan.base_dn))
    if wrong and accept_other_directory:
        audit.record("identity", outcome="overridden", message=wrong)
    elif wrong:
        audit.record("identity", outcome="refused", message=wrong)
        raise ReconcilerError(
            f"{wrong} Nothing was applied. (If this plan, made against another directory, is "
            "meant for this one, --accept-other-directory applies it.)"
        )
    ensure_locking(plan, directory, accept_unverified_lock)
    issued = sum(1 for op in plan.operations if _issues_password(op))
    if credentials is None and issued:
        raise ReconcilerError(
            f"this plan issues {issued} password{'s' if issued != 1 else ''}, which must go "
            "somewhere safe: give --credentials-out FILE (outside the repository). "
            "Nothing was applied."
        )
    for dn in plan.containers:
        try:
            directory.add(dn, _base_entry(dn))
            audit.record("container", dn=dn, outcome="changed")
        except EntryExists:
            pass
    held = Lock(directory, plan.base_dn, actor, digest)
    lockpeers.check_answered(unanswered, break_lock)
    replaced = held.acquire(break_lock)
    try:
        if peers or unanswered:  # a replicated directory: the lock holds once they all hold it
            try:
                took = lockpeers.confirm(
                    directory, peers, held.dn, held.value, holder=_who, timeout=lockpeers.CONFIRM
                )
            except lockpeers.Lost:
                held.value = ""  # not ours to give back: the winner's write replaces it
                raise
            audit.record(
                "lock",
                confirmed_on=[p.url for p in peers],
                not_answering=list(unanswered),
                seconds=round(took, 3),
                outcome="ok",
            )
        if replaced is not None:
            recap.replaced_lock = replaced.raw
            why = replaced.info.get("why", "")
            audit.record("break-lock", replaced=replaced.raw, why=why, outcome="changed")
        live, by_dn, holders = read_dependencies(directory, plan)
        missed = freshness.missed(
            plan, {e.dn.lower(): e for e in (*live.values(), *by_dn.values())}.values()
        )
        if missed:
            audit.record("stale", entries=missed, outcome="refused")
            raise freshness.refuse_missed(plan, missed)
        _refuse_if(
            plan,
            audit,
            invariants.entry_problems(plan, live, by_dn)
            + invariants.recipient_problems(plan, _organisations(directory, plan, live)),
        )
        todo, done, stale = check(plan, live, by_dn, holders)
        if stale:
            audit.record("stale", entries=stale, outcome="refused")
            shown = "\n".join(f"  - {s}" for s in stale[:20])
            more = f"\n  … and {len(stale) - 20} more" if len(stale) > 20 else ""
            raise StalePlan(
                f"the plan is stale: {count(len(stale), 'entry', 'entries')} changed in the "
                "directory since it was "
                f"made:\n{shown}{more}\nNothing was applied. Run `reconciler plan` again and "
                "review the new plan."
            )
        hashes = carry.read_hashes(plan, todo, source) if source is not None else {}
        recap.ok = len(done)
        for op in done:
            recap.outcomes.append((op, "ok", dt.datetime.now(dt.UTC)))
            audit.record(
                op.action.value,
                id=op.id,
                dn=op.dn or op.new_dn,
                address=op.address,
                agency=op.agency,
                outcome="ok",
                message="already done",
            )
            if op.action is Action.DELETE and plan.erase:
                mailstore.erase(plan.erase, op, audit)
            if on_result:
                on_result(op, "ok")
        pending = audit.pending_passwords() if issued else {}
        again = {op.address.lower() for op in todo if op.action is Action.CREATE and op.address}
        used = audit.used_passwords(again) if issued else {}
        current_dn = {key: e.dn for key, e in live.items()}
        # each entry as this run knows it: as read by the stale check, then as this run wrote it;
        # every modify is a compare-and-swap against it, so a hand change made while the apply
        # runs is never overwritten (no second read per operation)
        known: dict[str, dict[str, tuple[str, ...]]] = {}
        written: set[str] = set()  # keys this run has changed
        total = len(todo)
        for index, op in enumerate(todo):
            held.renew()  # the lease, every RENEW_EVERY seconds; stops if taken over
            dn = current_dn.get(op.id, op.dn)
            entry = live.get(op.id) or by_dn.get(op.dn.lower())
            state = known.setdefault(op.id, dict(entry.attrs) if entry else {})
            line = False  # this run put a password for the operation on file
            try:
                if op.action is Action.DELETE:
                    # irreversible (HG-2024 Đ7.2): the record of what goes is written first
                    whole = directory.get(dn, ["*", *READ])
                    if whole is not None and op.id not in written:
                        read_then = fingerprint(Entry(dn=whole.dn, attrs=state))
                        if fingerprint(_project(whole)) != read_then:
                            raise StalePlan(_CHANGED_WHILE.format(dn=dn))
                    audit.record(
                        "delete",
                        id=op.id,
                        dn=dn,
                        address=op.address,
                        clause=op.clause,
                        reason=op.reason,
                        before=_attrs(whole.attrs if whole else {}),
                        outcome="started",
                    )
                password = ""
                if _issues_password(op):
                    assert credentials is not None  # refused above
                    password, line = _hand_over(op, credentials, audit, pending, recap, used)
                new_dn, before, after = _run(
                    op, dn, state, directory, password, hashes.get(op.id, ())
                )
            except ReconcilerError as caught:
                error = (
                    StalePlan(_CHANGED_WHILE.format(dn=dn))
                    if isinstance(caught, StaleEntry)
                    else caught
                )
                recap.failed = 1
                recap.skipped = total - index - 1
                withdrawn = _settle_line(op, caught, line, credentials, recap)
                audit.record(
                    op.action.value,
                    id=op.id,
                    dn=dn,
                    address=op.address,
                    agency=op.agency,
                    outcome="failed",
                    message=str(error),
                    **({"withdrawn": True} if withdrawn else {}),
                )
                recap.messages.append(f"{op.action.value} {op.address} ({op.id}) failed: {error}")
                moment = dt.datetime.now(dt.UTC)
                recap.outcomes.append((op, "failed", moment))
                recap.outcomes += [(later, "skipped", moment) for later in todo[index + 1 :]]
                if on_result:
                    on_result(op, "failed")
                break
            current_dn[op.id] = new_dn
            written.add(op.id)
            recap.changed += 1
            recap.outcomes.append((op, "changed", dt.datetime.now(dt.UTC)))
            digested = {"digest": managed_digest(state)} if op.action in _DIGESTED else {}
            audit.record(
                op.action.value,
                id=op.id,
                dn=new_dn,
                address=op.address,
                agency=op.agency,
                clause=op.clause,
                reason=op.reason,
                before=before,
                after=after,
                outcome="changed",
                **digested,
            )
            if op.action is Action.DELETE and plan.erase:
                try:
                    mailstore.erase(plan.erase, op, audit)
                except ReconcilerError as error:
                    recap.failed, recap.skipped = 1, total - index - 1
                    recap.messages.append(f"delete {op.address} ({op.id}): {error}")
                    break
            if on_result:
                on_result(op, "changed")
            if progress:
                progress(index + 1, total)
    finally:
        held.release()
    return recap


def _who(raw: str) -> str:
    """The holder a lock entry's value names, in plain words."""
    holder = Holder.read(raw)
    return "a run that has given it back since" if holder.free else holder.text()


def _refuse_if(plan: Plan, audit: AuditLog, problems: list[str]) -> None:
    if problems:
        audit.record("invariants", outcome="refused", problems=problems[:100])
        raise invariants.refuse(plan, problems)


#: An issued password, as the audit log records it.
ISSUED = f"({Deferred.PASSWORD.value})"


def _issues_password(op: Operation) -> bool:
    return any(Deferred.PASSWORD in c.after for c in (*op.attributes, *op.changes))


_CHANGED_WHILE = (
    "{dn} changed in the directory while the plan was being applied (by hand?); it was not "
    "written. Run `reconciler plan` again and review the new plan."
)
_READ_LOWER = frozenset(a.lower() for a in READ)


def _project(entry: Entry) -> Entry:
    """`entry` with only the attributes a plan reads (what its fingerprint covers)."""
    return Entry(entry.dn, {k: v for k, v in entry.attrs.items() if k in _READ_LOWER})


#: What apply reads of the entries its plan depends on: what the plan read, and when each entry
#: last changed (a replicated directory's `entryCSN`, for `freshness.missed`).
DEPENDS = (*READ, "entryCSN")

#: Naming attributes the directory indexes for equality (README: the directory server): DNs named
#: by another attribute (legacy `cn=` entries being adopted) are read one by one instead.
_INDEXED_RDN = frozenset({"uid", "mail", "employeenumber"})


def count_mailboxes(directory: Directory, base_dn: str) -> int:
    """The mailboxes the tool manages under `base_dn`, counted as `plan` counts them."""
    read = directory.read(base_dn, ["objectClass", "employeeNumber"])
    return sum(1 for entry in read if entry.key and entry.managed)


def read_dependencies(
    directory: Directory, plan: Plan
) -> tuple[dict[str, Entry], dict[str, Entry], dict[str, set[str]]]:
    """The entries the plan depends on, by stable id and by lower-case DN: the entries holding
    its ids, and those at the DNs it reads or writes; and the lower-case DNs of the entries that
    hold an address the plan gives (mail or govMailAlias). A few searches on indexed attributes,
    not a read of the whole directory: the apply's cost follows the plan's size, not the
    directory's."""
    live: dict[str, Entry] = {}
    by_dn: dict[str, Entry] = {}
    holders: dict[str, set[str]] = {}
    if not plan.operations:
        return live, by_dn, holders
    ids = sorted({op.id for op in plan.operations})
    for entry in directory.find(plan.base_dn, "employeeNumber", ids, DEPENDS):
        by_dn[entry.dn.lower()] = entry
        if entry.key and entry.managed:  # as plan matches: an entry of someone else's is not ours
            live[entry.key] = entry
    wanted = {dn.lower(): dn for op in plan.operations for dn in (op.dn, op.new_dn) if dn}
    by_rdn: dict[str, set[str]] = {}
    for low, dn in sorted(wanted.items()):
        if low in by_dn:
            continue
        attr, value = parse_dn(dn)[0]
        if attr.lower() in _INDEXED_RDN:
            by_rdn.setdefault(attr.lower(), set()).add(value)
        else:
            found = directory.get(dn, DEPENDS)
            if found is not None:
                by_dn[low] = found
    for attr, values in sorted(by_rdn.items()):
        for entry in directory.find(plan.base_dn, attr, sorted(values), DEPENDS):
            if entry.dn.lower() in wanted:
                by_dn[entry.dn.lower()] = entry
    given = sorted(set().union(*(_added_addresses(op) for op in plan.operations)))
    for attr in ("mail", "govMailAlias") if given else ():
        for entry in directory.find(plan.base_dn, attr, given, [attr]):
            for address in entry.all(attr):
                holders.setdefault(address.lower(), set()).add(entry.dn.lower())
    return live, by_dn, holders


def _organisations(directory: Directory, plan: Plan, live: Mapping[str, Entry]) -> dict[str, Entry]:
    """The tool's organisation mailboxes of the agencies the plan sends a notice to, by stable
    id (one search; those the plan touches are already read)."""
    keys = {agency_key(c.agency) for c in plan.contacts if c.to}
    found = {key: live[key] for key in keys if key in live}
    missing = sorted(keys - found.keys())
    for entry in (
        directory.find(plan.base_dn, "employeeNumber", missing, DEPENDS) if missing else ()
    ):
        if entry.key in keys and entry.managed:
            found[entry.key] = entry
    return found


def _attrs(attrs: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in attrs.items()}


def _settle_line(
    op: Operation,
    caught: ReconcilerError,
    line: bool,
    credentials: CredentialsFile | None,
    recap: Recap,
) -> bool:
    """After a failed write, the password this run put on file for it: taken back when the
    server refused the write (nothing was written, it opens nothing); kept when the outcome is
    unknown (the connection was lost with the write on its way), for the next apply, which finds
    the mailbox written or writes it with that password. True when it was taken back."""
    if not line or credentials is None:
        return False
    if isinstance(caught, Refused):
        return credentials.withdraw()
    credentials.count -= 1  # not counted as handed over: it may open nothing yet
    recap.messages.append(
        f"the password for {op.address} stays in {credentials.path}: whether its mailbox was "
        "written is not known (the write got no answer); the next apply settles it, using that "
        "password if the mailbox is not there"
    )
    return False


def _hand_over(
    op: Operation,
    credentials: CredentialsFile,
    audit: AuditLog,
    pending: Mapping[str, Pending],
    recap: Recap,
    used: Mapping[str, Pending] | None = None,
) -> tuple[str, bool]:
    """The password the operation writes, on file before the entry has it, and whether this run
    put it on file. A password an interrupted run put on file for this address and never used
    is used now, so its line works and no second one is handed over; when that file cannot be
    read any more, a new password is issued and the old line said to be void. A create at an
    address whose mailbox an earlier run wrote with a password it handed over (`used`: the entry
    has gone since, deleted or lost with a provider that failed before it replicated) says that
    earlier line is void too. The audit log records (without the secret) which file holds it
    before it is written there."""
    earlier = pending.get(op.address.lower())
    gone = (used or {}).get(op.address.lower()) if op.action is Action.CREATE else None
    if earlier is None and gone is not None:
        void = (
            f"{op.address}: the password put in {gone.file} by run {gone.run} at {gone.time} no "
            "longer works: the mailbox it was written to is not in the directory now (deleted "
            "since, or lost with a directory server that stopped before it replicated) and is "
            f"created again; that line is void, the working one is in {credentials.path}"
        )
        audit.record(
            "password",
            id=op.id,
            address=op.address,
            credentials=gone.file,
            outcome="voided",
            message=void,
        )
        recap.messages.append(void)
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
            recap.reused.append(f"{op.address} ({earlier.file})")
            return kept, False
        void = (
            f"{op.address}: the password put in {earlier.file} by run {earlier.run} at "
            f"{earlier.time} was never used (that run stopped before the mailbox was written) and "
            f"that file cannot be read now: it is void; the working one is in {credentials.path}"
        )
        audit.record(
            "password",
            id=op.id,
            address=op.address,
            credentials=earlier.file,
            outcome="voided",
            message=void,
        )
        recap.messages.append(void)
    audit.record(
        op.action.value,
        id=op.id,
        address=op.address,
        credentials=str(credentials.path.resolve()),
        outcome="pending",
    )
    password = generate([fold(w) for w in op.name.split()])
    credentials.add(op.address, password)
    return password, True


def _run(
    op: Operation,
    dn: str,
    state: dict[str, tuple[str, ...]],
    directory: Directory,
    password: str,
    carried: tuple[str, ...] = (),
) -> tuple[str, dict[str, list[str]], dict[str, list[str]]]:
    """Carry out one operation on the entry whose attributes this run knows as `state`, and
    update `state` to what it wrote; returns (DN after, attributes before, attributes set).
    `carried`: the password hashes of a merger's create, read from its source entry."""
    if op.action is Action.DELETE:
        if op.attributes:  # its tombstone first: once the entry is gone, every plan knows
            # (already there when an apply stopped between the two)
            with suppress(EntryExists):
                directory.add(op.new_dn, _resolve(op.attributes, ""))
        directory.delete(dn)
        return dn, _attrs(state), {}
    listed = op.attributes if op.action is Action.CREATE else op.changes
    writes = _resolve(listed, password)
    if carried and PASSWORD in writes:
        writes[PASSWORD] = list(carried)  # every hash the source entry holds, as it is
    elif writes.get(PASSWORD) == [""]:
        raise ReconcilerError(f"{op.id}: no password was read from its source entry")
    # what the audit log keeps: the values written, a password only as issued or carried
    label = carry.CARRIED if carried else ISSUED
    shown = {**writes, PASSWORD: [label]} if PASSWORD in writes else dict(writes)
    if op.action is Action.CREATE:
        try:
            directory.add(op.new_dn, writes)
        except EntryExists:
            raise ReconcilerError(f"{op.new_dn} appeared while applying") from None
        state.update({k.lower(): tuple(v) for k, v in writes.items() if k != PASSWORD})
        return op.new_dn, {}, shown
    before = {c.attr: list(c.before) for c in op.changes}
    if op.action is Action.RENAME:
        if dn.lower() != op.new_dn.lower():
            (attr, old_value), (_, new_value) = parse_dn(dn)[0], parse_dn(op.new_dn)[0]
            dn = directory.rename(dn, split_dn(op.new_dn)[0])
            kept = tuple(v for v in state.get(attr.lower(), ()) if v.lower() != old_value.lower())
            state[attr.lower()] = (*kept, new_value)
        writes.pop("uid", None)  # the RDN carries it
    if writes:
        expect = {attr: state.get(attr.lower(), ()) for attr in writes if attr != PASSWORD}
        try:
            directory.modify(dn, writes, expect)
        except NoSuchEntry:
            raise ReconcilerError(f"{dn} disappeared while applying") from None
        state.update({a.lower(): tuple(v) for a, v in writes.items() if a != PASSWORD})
    return dn, before, shown


def _resolve(listed: tuple[Change, ...], password: str) -> dict[str, list[str]]:
    """The attributes the operation lists, as they are written now: an issued password is the one
    put on file (`_hand_over`), a time of apply is now."""
    after = {c.attr: c.after for c in listed}
    moment = format_time(dt.datetime.now(dt.UTC))
    return {attr: resolve(values, password, moment) for attr, values in after.items()}


__all__ = ["LOCKED", "Recap", "check", "execute", "read_dependencies"]
