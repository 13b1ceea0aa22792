"""Apply a saved plan: lock, check freshness, run the operations in order, audit each one.

Before writing, the entries the plan depends on are read (a few searches by stable id and DN, not
the whole directory): an operation whose result is already there is skipped ("ok"), one whose
entry changed since the plan is refused as stale before anything is written. So an apply cut off
half way can be run again and converges. The writes then go out pipelined, many in flight on
the one connection (`applying.inflight`: what waits for what, and how a failure stops the run);
a modify is a compare-and-swap against what was read, so a hand change made while the apply runs
is refused, never overwritten.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence

from reconciler.applying import carry, freshness, inflight, lockpeers, mailstore
from reconciler.applying.audit import AuditLog
from reconciler.applying.credentials import CredentialsFile
from reconciler.applying.inflight import Outcome, Progress, Recap, Shown
from reconciler.applying.lock import Holder, Lock
from reconciler.applying.suspension import ensure_locking
from reconciler.attributes import (
    ADDRESS_ATTRS,
    CASELESS_ATTRS,
    LOCK,
    LOCKED,
    READ,
    SUSPEND_REASON,
    fingerprint,
)
from reconciler.directory import Directory
from reconciler.dn import parse_dn
from reconciler.errors import (
    EntryExists,
    ReconcilerError,
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
)
from reconciler.planning import invariants
from reconciler.text import count


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


def _done(op: Operation, entry: Entry | None, as_planned: bool) -> bool:
    """Is the operation's result already in the directory? Each of its writes is one LDAP
    request, done whole or not at all, so one sign of it is enough. `as_planned`: the entry's
    fingerprint is the one the plan read (`_as_planned`)."""
    if op.action is Action.DELETE:
        return entry is None
    if entry is None:
        return False
    if as_planned:
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


def _as_planned(op: Operation, entry: Entry | None) -> bool:
    """Is `entry` as the plan read it (its fingerprint)? Worked out once per operation: the
    check asks it twice."""
    return (
        entry is not None
        and op.action is not Action.CREATE
        and fingerprint(entry) == op.fingerprint
    )


def check(
    plan: Plan,
    live: dict[str, Entry],
    by_dn: dict[str, Entry],
    holders: Mapping[str, set[str]] | None = None,
) -> tuple[list[Operation], list[Operation], list[str]]:
    """Split the plan's operations into (to do, already done, stale reasons). `holders`: the
    lower-case DNs holding each address the plan gives (as mail or alias), to check that they
    are still free, but for those an earlier operation of the plan frees (a rename gives up its
    DN, a mailbox an address: apply sends the later one once the earlier one is answered)."""
    todo: list[Operation] = []
    done: list[Operation] = []
    stale: list[str] = []
    seen: dict[str, bool] = {}  # key -> an earlier operation on it is still to do
    freed: dict[str, set[str]] = {}  # "dn:…" or "a:…" -> the DNs that give it up
    for op in plan.operations:
        entry = live.get(op.id)
        if entry is None and op.dn.lower() in by_dn and not by_dn[op.dn.lower()].managed:
            entry = by_dn[op.dn.lower()]  # adopted by this plan: no employeeNumber yet
        earlier_todo = seen.get(op.id)
        as_planned = _as_planned(op, entry)
        if _done(op, entry, as_planned):
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
            elif op.new_dn.lower() in by_dn and f"dn:{op.new_dn.lower()}" not in freed:
                stale.append(f"{op.id}: the DN {op.new_dn} is now held by another entry")
            else:
                todo.append(op)
        elif entry is None:
            stale.append(f"{op.id} ({op.address}): no longer in the directory")
        elif as_planned or _resumed(op, entry):
            todo.append(op)
        else:
            stale.append(f"{op.id} ({entry.dn}): changed since the plan was made")
        seen[op.id] = True
        taken = _taken(op, entry, holders or {}, freed) if todo and todo[-1] is op else None
        if taken:
            todo.pop()
            stale.append(taken)
        elif todo and todo[-1] is op and entry is not None:
            for given_up in _gives_up(op, entry):
                freed.setdefault(given_up, set()).add(entry.dn.lower())
    return todo, done, stale


def _gives_up(op: Operation, entry: Entry) -> set[str]:
    """The DN ("dn:…") and the addresses ("a:…") the entry no longer has after `op`."""
    held = {v.lower() for attr in ADDRESS_ATTRS for v in entry.all(attr)}
    if op.action is Action.DELETE:
        return {f"dn:{entry.dn.lower()}", *(f"a:{a}" for a in held)}
    out = set()
    if op.action is Action.RENAME and entry.dn.lower() != op.new_dn.lower():
        out.add(f"dn:{entry.dn.lower()}")
    listed = {c.attr: c for c in op.changes if c.attr in ADDRESS_ATTRS}
    if listed:
        after = {
            v.lower()
            for attr in ADDRESS_ATTRS
            for v in (listed[attr].after if attr in listed else entry.all(attr))
            if isinstance(v, str)
        }
        out |= {f"a:{a}" for a in held - after}
    return out


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
        if change.attr in ADDRESS_ATTRS:
            before = {v.lower() for v in change.before}
            out |= {v.lower() for v in change.after if isinstance(v, str)} - before
    return out


def _taken(
    op: Operation,
    entry: Entry | None,
    holders: Mapping[str, set[str]],
    freed: Mapping[str, set[str]],
) -> str | None:
    """Why an address the operation gives is no longer free (held by another entry that no
    earlier operation of the plan makes give it up), or None."""
    own = entry.dn.lower() if entry is not None else ""
    for address in sorted(_added_addresses(op)):
        gone = freed.get(f"a:{address}", set())
        others = sorted(dn for dn in holders.get(address, ()) if dn != own and dn not in gone)
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
    window: int = inflight.WINDOW,
    meanwhile: Callable[[], None] | None = None,
    idle: Callable[[Sequence[Outcome]], bool] | None = None,
) -> Recap:
    """Apply the plan. Raises StalePlan before writing anything if an entry changed, and
    ReconcilerError if the plan suspends on a server that would not lock the accounts
    (`accept_unverified_lock`: where that cannot be read, go on), and one made for another
    directory unless `accept_other_directory` (an operator's word, recorded); on the first
    failing operation sends nothing more, lets the writes in flight finish (each recorded in the
    recap and the audit log, like the failure) and returns. After each delete the plan's
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
    `source` directory, only read (`applying.carry`). `window`: the writes in flight at once
    (`applying.inflight`: on a failure, those finish and are recorded, nothing more is sent).
    `meanwhile`: what the caller does after the run, made ready once the first writes are in
    flight (it must not fail). `idle`: work for the moments writes are in flight and no answer has
    come, given the recap's outcomes so far (`Recap.outcomes`, appended in order): a slice of
    at most about a millisecond at a time, saying whether more is left (`inflight.Idle`)."""
    recap = Recap()
    carry.require_source(plan, source)
    freshness.provider_lacks(plan, directory, wait_replication)
    # what apply never does, whatever the plan says: checked before the first write
    broken = invariants.check_plan(plan)
    if trusted is not None:
        broken += invariants.settings_problems(plan, trusted, digest_bound=digest_bound)
    if not broken and invariants.rests_on_accounts(plan):
        counted = count_mailboxes(directory, plan)
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
    issued = sum(1 for op in plan.operations if inflight.issues_password(op))
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

        def before_delete(
            op: Operation, dn: str, state: dict[str, tuple[str, ...]], written: bool
        ) -> None:
            # irreversible (HG-2024 Đ7.2): the record of what goes is written first
            whole = directory.get(dn, ["*", *READ])
            if whole is not None and not written:
                read_then = fingerprint(Entry(dn=whole.dn, attrs=state))
                if fingerprint(_project(whole)) != read_then:
                    raise StalePlan(inflight.CHANGED_WHILE.format(dn=dn))
            audit.record(
                "delete",
                id=op.id,
                dn=dn,
                address=op.address,
                clause=op.clause,
                reason=op.reason,
                before=inflight.attrs_of(whole.attrs if whole else {}),
                outcome="started",
            )

        def after_delete(op: Operation) -> None:
            if plan.erase:
                mailstore.erase(plan.erase, op, audit)

        def read(op: Operation) -> dict[str, tuple[str, ...]]:
            entry = live.get(op.id) or by_dn.get(op.dn.lower())
            return dict(entry.attrs) if entry else {}

        sender = inflight.Sender(
            directory.pipeline(window),
            audit,
            credentials,
            recap,
            renew=held.renew,
            before_delete=before_delete,
            after_delete=after_delete,
            pending=pending,
            used=used,
            hashes=hashes,
            shown=on_result,
            progress=progress,
            meanwhile=meanwhile,
            idle=functools.partial(idle, recap.outcomes) if idle is not None else None,
        )
        sender.current_dn.update((key, e.dn) for key, e in live.items())
        sender.run(todo, read)
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


def count_mailboxes(directory: Directory, plan: Plan) -> int:
    """The mailboxes under the plan's base, counted as `plan` counts them (`Plan.accounts`): the
    stable ids of the tool's entries, each once, and the entries the plan adopts. One search on
    the indexed objectClass, for one attribute."""
    found = directory.find(plan.base_dn, "objectClass", ["govMailAccount"], ["employeeNumber"])
    ids = {entry.key for entry in found if entry.key}
    return len(ids | {op.id for op in plan.operations if invariants.adopts(op)})


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
    for attr in ADDRESS_ATTRS if given else ():
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


__all__ = ["LOCKED", "Recap", "check", "execute", "read_dependencies"]
