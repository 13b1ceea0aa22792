"""Plan computation: the desired mailboxes against the live entries, matched by stable id.

Pure: `compute()` takes the inventory, the entries read from the directory and the clock, and
returns a `Plan`. No I/O, no ldap3, no click.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from reconciler import attributes
from reconciler.attributes import (
    CASELESS_ATTRS,
    LOCK,
    MANAGED,
    PERSON_CLASSES,
    SUSPEND_REASON,
    fingerprint,
    history_dn,
    mailbox_dn,
    managed_digest,
    people_containers,
    seen,
)
from reconciler.dn import child_dn, parent_dn, parse_dn
from reconciler.errors import InventoryError, Problem
from reconciler.inventory.activity import KINDS as ACTIVITY_COLUMNS
from reconciler.model import (
    Action,
    Change,
    Contact,
    Entry,
    Inventory,
    Kind,
    Mailbox,
    Operation,
    Owner,
    Plan,
    ReadState,
    Refusal,
    Seen,
    Source,
    State,
    agency_key,
)
from reconciler.planning import desired
from reconciler.rules import lifecycle, naming, regulations
from reconciler.rules.regulations import Regulation
from reconciler.text import count


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a plan depends on besides the inventory and the entries."""

    now: dt.datetime
    directory_url: str = ""
    directory_backend: str = ""
    inventory_commit: str = ""
    directory_identity: str = ""  # `Directory.identity` of the base DN
    activity: Mapping[str, Seen] = field(default_factory=dict)
    #: per stable id, the digest of the managed attributes the last apply left on the entry
    #: (`directory.history.applied_digests`): an entry that differs was changed by hand since
    applied: Mapping[str, str] = field(default_factory=dict)
    replication: ReadState | None = None
    #: a merger (`plan --source-directory`): the entry of the directory being merged in that
    #: each arriving record's mailbox is carried over from, by the record's id
    sources: Mapping[str, Entry] = field(default_factory=dict)
    source_url: str = ""
    source_base_dn: str = ""


#: Added to the reason of an update or rename that takes back a change made outside the tool.
BY_HAND = "changed in the directory by hand since the last apply"


def _values(entry: Entry, attr: str) -> tuple[str, ...]:
    values = entry.all(attr)
    if attr in CASELESS_ATTRS:
        return tuple(sorted(v.lower() for v in values))
    return tuple(sorted(values))


def live_attrs(entry: Entry) -> dict[str, tuple[str, ...]]:
    return {attr: _values(entry, attr) for attr in MANAGED}


_LOWER_NAMES = tuple(attr.lower() for attr in MANAGED)
_NONE = tuple(() for _ in MANAGED)
_CASELESS = tuple(sorted(CASELESS_ATTRS))


def _as_desired(entry: Entry, after: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether `live_attrs(entry)` equals `after` (a mailbox's attributes), known without
    building it when the entry holds exactly those values as read and they are one value each
    (what `live_attrs` makes of one value: itself, lower case where case does not count). Most
    mailboxes of most plans; the others are compared in full."""
    if tuple(after) != MANAGED:
        return live_attrs(entry) == after
    values = list(after.values())
    if list(map(entry.attrs.get, _LOWER_NAMES, _NONE)) != values:
        return False  # some value differs as read (maybe only in case: then `_diff` compares)
    if max(map(len, values)) > 1:
        return live_attrs(entry) == after
    caseless = "".join(v for attr in _CASELESS for v in after[attr])
    return caseless == caseless.lower()


def attribute_changes(
    before: Mapping[str, tuple[str, ...]], after: Mapping[str, tuple[str, ...]]
) -> tuple[Change, ...]:
    """The attributes whose values differ, before and after: an attribute one side lacks, or
    whose values differ as sets (the order and repetition of values do not count in LDAP).
    What deepdiff's `DeepDiff(..., ignore_order=True)` found, which took half the time of a
    plan with 10 % of 100,000 people changed (`tests/test_plan_pure.py` checks they agree)."""
    if before == after:
        return ()
    changed = {
        attr
        for attr in before.keys() | after.keys()
        if attr not in before or attr not in after or set(before[attr]) != set(after[attr])
    }
    return tuple(Change(a, before.get(a, ()), after.get(a, ())) for a in MANAGED if a in changed)


def _describe(
    before: Entry, box: Mailbox, changes: Sequence[Change], shared: desired.Shared
) -> str:
    """The reason for an update, in plain words; the changes themselves are listed beside it."""
    attrs = {c.attr for c in changes}
    parts = _lost_aliases(before, changes, shared)
    old_agency = before.get("govMailAgency")
    if "govMailAgency" in attrs and old_agency:
        parts.append(f"transferred from {old_agency} to {box.agency}")
    for attr, words in (
        ("cn", "name corrected"),
        ("title", "title changed"),
        ("govMailUnit", "moved to another unit"),
        ("govMailQuota", "quota changed"),
        ("govMailManager", "manager of the organisation mailbox changed"),
        ("govMailAlias", "aliases added"),
        ("o", "agency name changed"),
    ):
        if attr in attrs and not (attr == "o" and "govMailAgency" in attrs):
            parts.append(words)
    return "; ".join(parts) or "directory attributes brought in line with the inventory"


def _update_clause(regulation: Regulation, changes: Sequence[Change]) -> str:
    attrs = {c.attr for c in changes}
    if "govMailAgency" in attrs:
        return regulation.transfer_clause
    if "govMailManager" in attrs and regulation.manager_clause:
        return regulation.manager_clause
    if attrs & {"govMailQuota", "govMailQuotaDecision"}:
        return regulation.quota_clause
    return regulation.update_clause


_HANDOVER = (
    "the organisation mailbox is handed over with a new temporary password for the new manager, "
    "so the former manager's access ends"
)


def _handover(changes: Sequence[Change], regulation: Regulation) -> str | None:
    """The handover clause when the organisation mailbox passes from one manager to another."""
    for change in changes:
        if change.attr == "govMailManager" and change.before and change.after:
            return regulation.handover_clause
    return None


def _lost_aliases(entry: Entry, changes: Sequence[Change], shared: desired.Shared) -> list[str]:
    """The aliases an update removes because another entry keeps them (existing damage)."""
    parts = []
    for change in changes:
        if change.attr != "govMailAlias":
            continue
        for alias in sorted(set(change.before) - {str(v) for v in change.after}):
            keeper = shared.get(alias)
            if keeper and keeper[0] != entry.dn:
                parts.append(
                    f"the alias {alias} is also held by {keeper[0]}, which keeps it (two entries "
                    "on one address): removed here"
                )
    return parts


def _rename_reason(box: Mailbox, entry: Entry, shared: desired.Shared) -> str:
    old = entry.mail or ""
    keeper = shared.get(old)
    if keeper and keeper[0] != entry.dn:
        return (
            f"the address {old} is also held by {keeper[0]}, which keeps it (two entries on one "
            "address): this mailbox gets an address of its own"
        )
    before_agency = entry.get("govMailAgency")
    reasons = []
    if before_agency and before_agency != box.agency:
        reasons.append(f"transferred from {before_agency} to {box.agency}")
    if (entry.get("cn") or "") != box.name:
        reasons.append(f"name changed from {entry.get('cn')} to {box.name}")
    old_domain = (entry.mail or "").rpartition("@")[2]
    if old_domain and old_domain != box.address.domain:
        reasons.append(f"the domain changed from {old_domain} to {box.address.domain}")
    if not reasons:
        reasons.append("the agency's abbreviation changed")
    return "; ".join(reasons) + "; the old address stays as an alias"


#: How often `compute` reports its progress, in mailboxes compared.
PROGRESS_EVERY = 1000


def compute(
    inventory: Inventory,
    entries: Iterable[Entry],
    regulation: Regulation,
    ctx: Context,
    progress: Callable[[int, int], None] | None = None,
) -> Plan:
    """The operations that make the directory match the inventory and the regulation;
    `progress(done, total)` is told of the mailboxes compared, now and then."""
    settings = inventory.settings
    wanted = desired.resolve(inventory, entries, regulation, ctx.now)
    problems = [*wanted.problems, *_carry_problems(inventory, wanted, ctx.sources)]
    if problems:
        raise InventoryError(problems)
    live, boxes = wanted.live, wanted.boxes
    people = people_containers(settings)
    ops: list[Operation] = []
    total = len(boxes)
    for done, (key, box) in enumerate(boxes.items()):
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done, total)
        found = live.get(key)
        # a former territory kept under its own regulation after a merger: its mailboxes' rules
        rule = regulations.get(box.regulation) if box.regulation else regulation
        if found is None:
            ops.append(_create(box, people[0], rule, ctx.now, ctx.sources.get(key)))
            continue
        entry = found
        state = lifecycle.state_operations(box, entry, rule, ctx.now, ctx.activity)
        if entry.managed and not any(op.action is Action.RESTORE for op in state):
            expired = lifecycle.expiry(box, entry, rule, ctx.now)
            if expired is not None:
                # nothing else is worth doing to a mailbox about to go
                ops.append(_with_tombstone(expired, entry, settings.base_dn))
                continue
        ops.extend(_diff(box, entry, wanted.shared, rule, ctx.applied.get(key)))
        ops.extend(_repair_passwords(box, entry, rule))
        ops.extend(state)
        if entry.managed and not state:
            reissued = lifecycle.unrestored_password(box, entry, rule)
            if reissued is not None:
                ops.append(reissued)
    absent = {p.id: p for p in inventory.people if p.state is State.ABSENT}
    for key in live:
        if key in boxes:
            continue
        entry = live[key]  # unpacked only for the few that go
        if key in absent:
            reason = f"state: absent in {absent[key].loc.file}"
        elif key.startswith(("agency:", "unit:")):
            reason = "the agency or unit is no longer in the inventory"
        else:
            reason = "removed from the inventory"
        ops.append(_delete(entry, regulation.delete_clause, reason, settings.base_dn))

    ops.sort(key=lambda op: op.sort_key)
    notes = (
        _unknown_activity(ctx.activity, wanted.taken)
        + _uncounted_activity(ctx.activity, regulation)
        + _managers_suspended(ops, boxes)
        + _ids_held_elsewhere(ops, wanted)
        + _shared_elsewhere(wanted)
        + _not_carried(inventory, boxes, ctx, live)
    )
    deletes = any(op.action is Action.DELETE for op in ops)
    erase = settings.erase if deletes else ()
    if erase:
        notes = (
            *notes,
            "after each delete, apply erases the mailbox's mail with "
            f"`{' '.join(erase)}` (mail_store.erase in directory.yaml)",
        )
    needed = []
    if any(op.action is Action.CREATE for op in ops):
        needed += desired.container_chain(settings.base_dn, people[0])
    if any(op.action is Action.DELETE for op in ops):
        needed.append(history_dn(settings.base_dn))
    containers = tuple(dn for dn in needed if dn.lower() not in wanted.present)
    plan = Plan(
        regulation=regulation.id,
        domain=settings.domain,
        base_dn=settings.base_dn,
        now=ctx.now,
        inventory_digest=inventory.digest,
        inventory_commit=ctx.inventory_commit,
        directory_url=ctx.directory_url,
        directory_backend=ctx.directory_backend,
        directory_fingerprint=wanted.fingerprint,
        operations=tuple(ops),
        unmanaged=tuple(sorted(wanted.unmanaged)),
        # only a new entry (or a tombstone) needs them: updates change entries where they are
        containers=containers,
        accounts=len(live),
        notes=notes,
        erase=erase,
        refused=tuple(sorted(wanted.refused, key=lambda r: (r.agency, r.id))),
        contacts=_contacts(inventory, ops, wanted.refused, boxes),
        owners=_owners(inventory, ops),
        relay=settings.relay,
        sender=settings.sender,
        audit_log=settings.audit_log,
        audit_keep_months=settings.audit_keep_months,
        people=people,
        directory_identity=ctx.directory_identity,
        replication=ctx.replication,
        source_url=ctx.source_url if ctx.sources else "",
        source_base_dn=ctx.source_base_dn if ctx.sources else "",
    )
    return plan


def _source_addresses(entry: Entry) -> set[str]:
    return {a.lower() for a in (*entry.all("mail"), *entry.all("govMailAlias"))}


def _carry_problems(
    inventory: Inventory, wanted: desired.Desired, sources: Mapping[str, Entry]
) -> list[Problem]:
    """A merger keeps every former address on exactly one mailbox: the addresses an arriving
    mailbox carries from its source entry must be held by no other mailbox of the target, and an
    alias the merged record declares must not be another source entry's address (a merge made
    without the source directory can only compute the former addresses by the regulation)."""
    if not sources:
        return []
    by_address = {a: key for key, e in sources.items() for a in _source_addresses(e)}
    people = {p.id: p for p in inventory.people}
    problems: list[Problem] = []
    for key, entry in sorted(sources.items()):
        person = people.get(key)
        if person is None or key in wanted.live:
            continue
        for address in sorted(_source_addresses(entry)):
            holder = wanted.taken.get(address)
            if holder not in (None, key):
                problems.append(
                    inventory.problem(
                        person.loc,
                        f"staff {key}: its former address {address} (source entry {entry.dn}) "
                        f"is already held in this directory by {naming.describe_holder(holder)}"
                        ": an address is delivered to one mailbox only; remove it from one",
                    )
                )
        for alias in person.aliases:
            other = by_address.get(alias)
            if other is not None and other != key:
                problems.append(
                    inventory.problem(
                        person.loc,
                        f"staff {key}: alias {alias} is the address of {other}'s mailbox in the "
                        f"source directory ({sources[other].dn}), not this person's: run "
                        "`reconciler merge` again with --source-directory (it then takes the "
                        "addresses the mailboxes hold there), or correct the alias",
                    )
                )
    return problems


def _not_carried(
    inventory: Inventory, boxes: Mapping[str, Mailbox], ctx: Context, live: Mapping[str, Entry]
) -> tuple[str, ...]:
    """The merged records (`origin`) this plan creates without carrying their mailbox over:
    without a source directory, or not found in it. They get a new password, as any new mailbox:
    said so, since it is most often a forgotten --source-directory."""
    missing = sorted(
        p.id
        for p in inventory.people
        if p.origin is not None and p.id in boxes and p.id not in live and p.id not in ctx.sources
    )
    if not missing:
        return ()
    shown = ", ".join(missing[:10]) + (
        f", … and {len(missing) - 10} more" if len(missing) > 10 else ""
    )
    n = len(missing)
    records = f"{n} merged record{'s' if n != 1 else ''}"
    if not ctx.source_url:
        return (
            f"{records} from a former province get a new mailbox with a new password: to carry "
            f"their mailboxes over (password, suspension, last login), plan with "
            f"--source-directory: {shown}",
        )
    return (
        f"{records} have no mailbox in the source directory {ctx.source_url} (nothing to "
        f"carry over; a new password is issued): {shown}",
    )


def _contacts(
    inventory: Inventory,
    ops: Sequence[Operation],
    refused: Sequence[Refusal],
    boxes: Mapping[str, Mailbox],
) -> tuple[Contact, ...]:
    """The agencies a notice goes to after the apply (those with an operation or a refusal),
    each at its organisation mailbox when it has one."""
    touched = {op.agency for op in ops} | {r.agency for r in refused}
    contacts = []
    for agency in inventory.agencies:
        if agency.id in touched:
            key = agency_key(agency.id)
            to = (boxes[key].mail,) if key in boxes else ()
            contacts.append(Contact(agency.id, agency.name, to))
    return tuple(contacts)


def _owners(inventory: Inventory, ops: Sequence[Operation]) -> tuple[Owner, ...]:
    """The people this plan suspends who have an external address (`external_email`): each is
    told of their own suspension there too, since the mailbox cannot receive (QN-2020 Đ7.2)."""
    external = {p.id: p.external_email for p in inventory.people if p.external_email}
    return tuple(
        Owner(op.id, op.agency, external[op.id])
        for op in ops
        if op.action is Action.SUSPEND and op.kind is Kind.PERSON and op.id in external
    )


def _managers_suspended(ops: Sequence[Operation], boxes: Mapping[str, Mailbox]) -> tuple[str, ...]:
    """A warning for each suspension of a person who manages an organisation or unit mailbox
    (HG-2024 Đ11.2): nobody would hold that mailbox while the suspension lasts."""
    suspended = {op.id: op for op in ops if op.action is Action.SUSPEND}
    if not suspended:
        return ()
    notes = []
    for box in boxes.values():
        for manager in box.attrs.get("govMailManager", ()):
            op = suspended.get(manager)
            if op is not None:
                who = f"{op.name} ({op.id})" if op.name else op.id
                notes.append(
                    f"{who} manages the mailbox {box.mail} and is suspended by this plan: "
                    f"name another manager of it in agencies/{box.agency}.yaml"
                )
    return tuple(sorted(notes))


def _shared_elsewhere(wanted: desired.Desired) -> tuple[str, ...]:
    """Addresses two entries hold that no operation can sort out: none of the others is the
    tool's (the entries the tool does not manage are only reported)."""
    if not wanted.shared:
        return ()
    mine = {e.dn for e in wanted.live.values()}
    return tuple(
        f"the address {address} is held by {keeper} and also by {', '.join(others)}, entries the "
        "reconciler does not manage: sort it out in the directory"
        for address, (keeper, others) in sorted(wanted.shared.items())
        if not mine & set(others)
    )


def _ids_held_elsewhere(ops: Sequence[Operation], wanted: desired.Desired) -> tuple[str, ...]:
    """A new mailbox whose id is the employeeNumber of an entry the tool does not manage: the
    new one is created all the same (entries are matched among the tool's own), and said so."""
    notes = []
    for op in ops:
        if op.action is Action.CREATE and op.id in wanted.foreign_ids:
            notes.append(
                f"{op.id}: the entry {wanted.foreign_ids[op.id]}, which the reconciler does not "
                f"manage, also has employeeNumber {op.id}; it is left alone"
            )
    return tuple(notes)


def _unknown_activity(activity: Mapping[str, Seen], taken: Mapping[str, str]) -> tuple[str, ...]:
    """Activity rows naming no address or alias in the directory are ignored, and said so."""
    unknown = sorted(a for a in activity if a not in taken)
    if not unknown:
        return ()
    shown = ", ".join(unknown[:5]) + (
        f", … and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    )
    n = len(unknown)
    return (
        f"the activity file has {n} row{'s' if n != 1 else ''} for addresses that are not in "
        f"the directory (ignored): {shown}",
    )


def _uncounted_activity(activity: Mapping[str, Seen], regulation: Regulation) -> tuple[str, ...]:
    """An activity file none of whose columns the regulation counts (a bare
    `address,last_activity` under quangnam-2020, which counts logins only) changes nothing: the
    reviewers are told, rather than see active mailboxes suspended without a word."""
    kinds = {
        kind
        for seen in activity.values()
        for kind in ({"mail"} if isinstance(seen, dt.datetime) else seen)
    }
    if not kinds or kinds & regulation.activity_kinds:
        return ()
    column = {kind: name for name, kind in ACTIVITY_COLUMNS.items()}
    counted = ", ".join(sorted(column[k] for k in regulation.activity_kinds))
    return (
        f"the activity file was not used: {regulation.id} counts only {counted} as activity, "
        f"and the file has only {', '.join(sorted(column[k] for k in kinds))}; give the CSV "
        "`reconciler activity` writes from the mail logs",
    )


def _create(
    box: Mailbox,
    container: str,
    regulation: Regulation,
    now: dt.datetime,
    source: Entry | None = None,
) -> Operation:
    attrs: dict[str, tuple[str, ...]] = {
        "objectClass": PERSON_CLASSES,
        "employeeNumber": (box.key,),
    }
    attrs.update({a: v for a, v in box.attrs.items() if v})
    reason = "new in the inventory"
    clause = regulation.create_clause  # issued on request; the address rule goes beside it
    if box.kind is Kind.AGENCY:
        reason = "organisation mailbox of the agency"
    elif box.kind is Kind.UNIT:
        reason = "mailbox of the unit"
    if source is not None:
        reason = (
            f"moved from {source.dn} in the merger: its password, must-change state, "
            "suspension and last login are carried over, its former addresses kept as aliases"
        )
    elif box.person is not None and box.person.address:
        reason += "; keeps the address pinned in the inventory"
    if box.plain and not (box.person is not None and box.person.address):
        reason += f"; {box.plain_holder}, so the collision rule gives {box.mail}"
    declared = None
    if box.state is State.SUSPENDED and box.suspension:
        declared = lifecycle.declared_text(box.suspension)
    if source is None:
        written = list(attributes.issue_password())
    else:
        written = list(attributes.carry(source, declared))
        former = _source_addresses(source) - {box.mail}
        attrs["govMailAlias"] = tuple(sorted(set(attrs.get("govMailAlias", ())) | former))
    if box.suspension and declared and not (source is not None and source.all(LOCK)):
        written += attributes.suspend(None, declared)
        reason += f"; created suspended ({lifecycle.ground(box.suspension)})"
    written += (Change(a, (), tuple(v)) for a, v in attrs.items())
    return box.operation(
        Action.CREATE,
        clause,
        reason,
        new_dn=mailbox_dn(attrs["uid"][0], container),
        attributes=tuple(sorted(written, key=lambda c: c.attr)),
        address_clause="" if box.address.clause == clause else box.address.clause,
        source=None
        if source is None
        else Source(
            dn=source.dn,
            fingerprint=fingerprint(source),
            login=source.get("uid") or "",
            address=source.mail or "",
        ),
    )


def _diff(
    box: Mailbox,
    entry: Entry,
    shared: desired.Shared,
    regulation: Regulation,
    applied: str | None = None,
) -> list[Operation]:
    if entry.managed and _as_desired(entry, box.attrs):
        return []  # nothing differs
    before = live_attrs(entry)
    after = dict(box.attrs)
    changes = attribute_changes(before, after)
    if not entry.managed:
        return [_adopt(box, entry, changes, regulation)]
    if not changes:
        return []
    by_hand = f"; {BY_HAND}" if applied and managed_digest(entry.attrs) != applied else ""
    clause, reason = (
        _update_clause(regulation, changes),
        _describe(entry, box, changes, shared) + by_hand,
    )
    handover = _handover(changes, regulation)
    if handover is not None:
        clause, reason = handover, reason + f"; {_HANDOVER}"
        changes = (*changes, *attributes.issue_password(entry))
    update = box.operation(Action.UPDATE, clause, reason, **seen(entry), changes=changes)
    old = entry.mail or ""
    if old == box.mail:
        return [update]
    # a new address: one coherent step that renames and brings the attributes in line
    rename = replace(
        update,
        action=Action.RENAME,
        previous=old,
        address_clause=box.address.clause,
        reason=_rename_reason(box, entry, shared) + by_hand,
        new_dn=_renamed_dn(entry, box),
    )
    return [rename]


def _repair_passwords(box: Mailbox, entry: Entry, regulation: Regulation) -> list[Operation]:
    """A mailbox with more than one userPassword value (existing damage: each value opens it, a
    second one beside its owner's is a way in) gets one new password that replaces them all and
    must be changed at the next login. The plan knows how many values there are, never what."""
    if not entry.managed or (entry.passwords or 0) <= 1:
        return []
    return [
        box.operation(
            Action.UPDATE,
            regulation.reset_clause,
            f"the entry has {entry.passwords} passwords, and each of them opens the mailbox: one "
            "new password replaces them all, to be changed at the next login",
            **seen(entry),
            changes=attributes.issue_password(entry),
        )
    ]


def _renamed_dn(entry: Entry, box: Mailbox) -> str:
    """The DN after a rename, in place (an adopted entry keeps its legacy parent): named by the
    new uid when the entry is named by its uid; an entry named otherwise (a legacy `cn=`) or
    whose login is pinned keeps its DN, and only its attributes change."""
    uid = box.attrs["uid"][0]
    try:
        rdn_attr, value = parse_dn(entry.dn)[0]
    except (ValueError, IndexError):
        return entry.dn
    if rdn_attr.lower() != "uid" or value.lower() == uid.lower():
        return entry.dn
    return child_dn("uid", uid, parent_dn(entry.dn))


def _adopt(
    box: Mailbox, entry: Entry, changes: tuple[Change, ...], regulation: Regulation
) -> Operation:
    """The one update that makes an existing entry the tool's (see `desired.adoptions`): adds
    govMailAccount (objectClass as the full new list), employeeNumber, the govMail* attributes and
    whatever else differs, in place. Never a rename: the pinned address is the entry's mail."""
    classes = entry.all("objectClass")
    extra = [
        Change("objectClass", classes, (*classes, "govMailAccount")),
        Change("employeeNumber", entry.all("employeeNumber"), (box.key,)),
    ]
    if box.state is State.SUSPENDED and box.suspension and entry.all(LOCK):
        # the lock found becomes the declared suspension, so `state: active` lifts it
        reason = lifecycle.declared_text(box.suspension)
        extra.append(Change(SUSPEND_REASON, entry.all(SUSPEND_REASON), (reason,)))
    reason = (
        f"adopts the existing entry {entry.dn} in place (adds govMailAccount and employeeNumber);"
        " its DN, address and password are kept"
    )
    changes = (*extra, *(c for c in changes if c.attr != "employeeNumber"))
    return box.operation(
        Action.UPDATE, regulation.update_clause, reason, **seen(entry), changes=changes
    )


def _with_tombstone(op: Operation, entry: Entry, base_dn: str) -> Operation:
    """A delete that leaves its tombstone in the history (`attributes.tombstone`): written by
    apply before the entry goes, so that no plan creates the mailbox again and its addresses stay
    in quarantine."""
    dn, written = attributes.tombstone(entry, op.clause, op.reason, base_dn)
    return replace(op, new_dn=dn, attributes=written)


def _delete(entry: Entry, clause: str, reason: str, base_dn: str) -> Operation:
    op = Operation(
        action=Action.DELETE,
        id=entry.key or "",
        address=entry.mail or "",
        clause=clause,
        reason=reason,
        kind=Kind(entry.get("govMailKind") or "person")
        if (entry.get("govMailKind") or "person") in {k.value for k in Kind}
        else Kind.PERSON,
        agency=entry.get("govMailAgency") or "",
        name=entry.get("cn") or "",
        dn=entry.dn,
        fingerprint=fingerprint(entry),
    )
    return _with_tombstone(op, entry, base_dn)


def only_time_rules(plan: Plan, regulation: Regulation) -> Plan:
    """The part of `plan` that only the clock caused (`lifecycle.caused_by_time`): what the daily
    scheduled run applies on its own. The rest is left out, and a note says how much."""
    kept = tuple(op for op in plan.operations if lifecycle.caused_by_time(op, regulation))
    left = len(plan.operations) - len(kept)
    note = (
        (
            f"{count(left, 'other operation')} (changes of the inventory or of the directory "
            "not yet applied) left out: only the operations caused by the time rules are here",
        )
        if left
        else ()
    )
    return replace(plan, operations=kept, containers=(), notes=plan.notes + note)
