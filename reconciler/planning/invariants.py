"""What apply never does, whatever a plan says (README: Safety). Pure: no I/O.

A plan file is data that anyone who can write the file can change, and its digest is only a
SHA-256 of its own body, which anyone can recompute; `--expect-digest` is what ties a plan to the
one reviewers saw. Apply checks every plan against these invariants before its first write and
refuses it whole, naming each operation that breaks one:

- the directory is the one the plan was made for: the same base DN and the same identity (the
  base entry's entryUUID, `Directory.identity`; `identity_problem`);
- every DN an operation writes is directly inside a mailbox container the plan declares
  (`people` in directory.yaml, under the base DN), and is neither a container, the base, the lock
  entry nor a record of `ou=history`; a rename stays in its container; the containers a plan
  creates lead from the base to a declared container (or are `ou=history`);
- an operation writes only the tool's attributes (`attributes.WRITABLE`, spelled as the tool
  spells them), each at most once, with the values the tool writes: a new mailbox's object
  classes, id and address are its own; `objectClass` and `employeeNumber` change only when an
  entry is adopted (govMailAccount and the record's id added, nothing else); the lock is
  `LOCKED` or nothing, `pwdReset` TRUE or nothing; userPassword only as the password apply issues
  (`password_problem`);
- the deletion and suspension guards hold for the limits the plan records;
- an agency's notice goes only to its organisation mailbox: a plain address in the plan's domain
  (`check_plan`), the one the directory gives the agency's organisation mailbox or this plan
  gives it (`recipient_problems`), from a plain sender address; a notice to a person's own
  address outside the domain is only for a person the plan suspends, a plain address
  (`_owners`), and is sent only when the inventory gives that person that address or the plan
  is the one reviewed (`trusted_owners`);
- the entries touched are the tool's: they carry govMailAccount, or the plan adopts them from a
  declared container with the address its record pins and no other record's id; never a password
  policy, a configuration or a service entry (`entry_problems`, with the entries apply reads).

`check_plan` costs O(plan): apply runs it before it writes anything, and `pipeline.make_plan`
runs it too, so that a plan apply would refuse is refused where it is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from reconciler.attributes import (
    HISTORY_OU,
    LOCK,
    LOCK_RDN,
    LOCKED,
    MUST_CHANGE,
    PASSWORD,
    PERSON_CLASSES,
    TOMBSTONE,
    TOMBSTONE_WRITABLE,
    WRITABLE,
    history_dn,
    misplaced,
    people_containers,
)
from reconciler.dn import is_descendant, normalize_dn, normalized_rdns, parent_dn, parse_dn
from reconciler.errors import UnsafePlan
from reconciler.model import (
    MIN_KEEP_MONTHS,
    SUSPEND_SHARE,
    Action,
    Change,
    Deferred,
    Entry,
    Kind,
    Operation,
    Owner,
    Person,
    Plan,
    Settings,
    agency_key,
)
from reconciler.names import RESERVED
from reconciler.planning.limits import check_limits
from reconciler.rules import regulations
from reconciler.text import all_strings, external_address_problem

_WRITABLE = {a.lower(): a for a in WRITABLE}
_TOMBSTONE_WRITABLE = {a.lower(): a for a in TOMBSTONE_WRITABLE}
_PERSON_CLASSES = frozenset(c.lower() for c in PERSON_CLASSES)
_PASSWORD = PASSWORD.lower()
#: The attributes whose values `_value` checks beyond their place (lower case).
_CHECKED = frozenset({"objectclass", "employeenumber", "mail", LOCK.lower(), MUST_CHANGE.lower()})
#: Object classes of entries the tool never touches, whatever else they carry.
_NEVER = frozenset({"pwdpolicy", "pwdpolicychecker", "subentry", "applicationprocess"})
#: The stable ids the tool gives (a person's, as agency.schema.json says; an organisation's and a
#: unit's mailbox): the mail store's folder name too, which the erase command is handed.
_KEY = re.compile(
    r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,255}|agency:[a-z0-9-]+|unit:[a-z0-9-]+/[a-z0-9-]+)\Z"
)
#: An agency's id (agency.schema.json): a notice's recipient and file name.
_AGENCY = re.compile(r"[a-z0-9-]{1,256}\Z")
#: An address handed to the erase command: no blank, no shell or path syntax, no leading dash.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_%+][A-Za-z0-9._%+-]*@[A-Za-z0-9.-]+\Z")
#: The longest retention of the audit history a plan may record (100 years).
_MAX_KEEP_MONTHS = 1200


class Scope:
    """Where a plan may write: the normalized DNs of its base, its declared containers, the lock
    entry and the history container."""

    def __init__(self, plan: Plan) -> None:
        self.base = normalize_dn(plan.base_dn)
        self.containers = frozenset(normalize_dn(c) for c in plan.people)
        self.lock = normalize_dn(f"{LOCK_RDN},{plan.base_dn}")
        self.history = normalize_dn(history_dn(plan.base_dn))

    def not_a_record(self, dn: str) -> str | None:
        """Why `dn` is not where a tombstone goes (directly in ou=history), or None."""
        try:
            inside = normalize_dn(parent_dn(dn)) == self.history
        except ValueError:
            return f"{dn!r} is not a distinguished name"
        if not inside:
            return f"{dn} is not a record of {HISTORY_OU} under the base DN"
        return None if _naming_attribute(dn) else f"{dn} is not named by one attribute"

    def outside(self, dn: str) -> str | None:
        """Why an operation may not write the entry at `dn`, or None."""
        try:
            rdns = normalized_rdns(dn)  # the DN parsed once, for itself and for its parent
        except ValueError:
            return f"{dn!r} is not a distinguished name"
        here, parent = ",".join(rdns), ",".join(rdns[1:])
        if here in self.containers or here in (self.base, self.lock, self.history):
            return f"{dn} is a container or the lock entry, not a mailbox"
        if parent not in self.containers:
            return (
                f"{dn} is not directly inside a mailbox container the plan declares "
                "(people in directory.yaml)"
            )
        # apply parses the naming attribute of what it renames, deletes or records
        return None if _naming_attribute(dn) else f"{dn} is not named by one attribute"


def check_plan(plan: Plan) -> list[str]:
    """Every way the plan breaks an invariant that needs only the plan, in plain words, each
    naming its operation; empty when it keeps them all."""
    problems: list[str] = []
    try:
        scope = Scope(plan)
    except ValueError as error:
        return [f"the plan's base DN or containers cannot be read: {error}"]
    problems += _containers(plan, scope)
    if plan.regulation not in regulations.KNOWN:  # its clauses, notices and limits' words
        problems.append(
            f"the plan's regulation {plan.regulation!r} is not one this release knows "
            f"({', '.join(regulations.KNOWN)})"
        )
    if plan.limits is None:
        problems.append("the plan records no limits for deletions and suspensions")
    else:
        if plan.limits.suspend_share != SUSPEND_SHARE:
            problems.append(
                f"the plan records a suspension guard of {plan.limits.suspend_share:.0%} of the "
                f"mailboxes; the tool's is {SUSPEND_SHARE:.0%} (--allow-suspends allows more)"
            )
        try:
            check_limits(plan, plan.limits)
        except UnsafePlan as error:
            problems.append(f"the plan goes past the limits it records: {error}")
    keep = plan.audit_keep_months
    if keep is not None and not MIN_KEEP_MONTHS <= keep <= _MAX_KEEP_MONTHS:
        problems.append(
            f"the plan keeps the audit history {keep} months (audit_keep_months): at least "
            f"{MIN_KEEP_MONTHS}, at most {_MAX_KEEP_MONTHS}"
        )
    problems += _notices(plan)
    for number, op in enumerate(plan.operations, 1):
        problems += [f"{_name(number, op)}: {why}" for why in _operation(op, scope)]
        if plan.erase and op.action is Action.DELETE and not _PLAIN_ADDRESS.match(op.address):
            problems.append(
                f"{_name(number, op)}: the erase command is never handed the address {op.address!r}"
            )
    return problems


def rests_on_accounts(plan: Plan) -> bool:
    """Whether the plan's suspensions pass the guard only through the number of mailboxes the
    plan says the directory held (`Plan.accounts`, a number apply must not take on trust)."""
    suspends = plan.count(Action.SUSPEND)
    return plan.limits is not None and suspends > (plan.limits.allow_suspends or 0)


def accounts_problem(plan: Plan, counted: int) -> str | None:
    """The suspension guard again, on the `counted` mailboxes apply found in the directory
    rather than on the plan's own count: None when it holds."""
    if plan.limits is None:
        return None
    try:
        check_limits(replace(plan, accounts=counted), plan.limits)
    except UnsafePlan as error:
        return (
            f"the plan says the directory held {plan.accounts} mailboxes; it holds {counted}, "
            f"and on that count {error}"
        )
    return None


def _notices(plan: Plan) -> list[str]:
    """Where and from whom the agencies' notices go: each recipient a plain address in the
    plan's domain (an agency's organisation mailbox; `recipient_problems` checks whose), the
    sender a plain address. A forged recipient got the notice (names, addresses, what was done);
    a line break in a header stopped the notices after the directory was written."""
    problems = []
    domain = plan.domain.lower()
    if not _PLAIN_ADDRESS.match(f"noreply@{plan.domain}"):
        problems.append(f"the plan's domain {plan.domain!r} is not a mail domain")
    if plan.sender and not _PLAIN_ADDRESS.match(plan.sender):
        problems.append(f"the notices' sender (notices.from) {plan.sender!r} is not an address")
    for contact in plan.contacts:
        if not _AGENCY.match(contact.agency):  # it names the notice's file, too
            problems.append(f"the plan sends a notice to the agency {contact.agency!r}, not an id")
        for to in contact.to:
            if not _PLAIN_ADDRESS.match(to) or to.rpartition("@")[2].lower() != domain:
                problems.append(
                    f"the notice to {contact.agency} goes to {to!r}, outside the domain "
                    f"{plan.domain}: a notice goes only to the agency's organisation mailbox"
                )
    return problems + _owners(plan)


def _owners(plan: Plan) -> list[str]:
    """A notice to a person's own address (QN-2020 Đ7.2) goes only to a person this plan
    suspends, once, at a plain address outside the domain: a forged one told a stranger of
    someone's case, or put a header of its own in the notice."""
    suspended = {
        op.id: op.agency
        for op in plan.operations
        if op.action is Action.SUSPEND and op.kind is Kind.PERSON
    }
    problems = []
    seen: set[str] = set()
    for owner in plan.owners:
        if suspended.get(owner.id) != owner.agency or owner.id in seen:
            problems.append(
                f"the plan sends {owner.id!r} of {owner.agency!r} a notice at {owner.to!r}: an "
                "owner's notice is only for a person the plan suspends, once"
            )
        seen.add(owner.id)
        reason = external_address_problem(owner.to, plan.domain)
        if reason:
            problems.append(
                f"the notice to the owner {owner.id!r} goes to {owner.to!r}, which {reason}"
            )
    return problems


def trusted_owners(
    plan: Plan, people: Iterable[Person] | None, *, digest_bound: bool
) -> tuple[list[Owner], list[str]]:
    """The owners' notices apply sends, and in plain words each one it does not send. An owner's
    address is the plan's word, which anyone can re-seal: apply sends to it only when the
    inventory (--inventory) gives that person that address, or, without the inventory, when the
    plan is bound by --expect-digest to the one reviewed."""
    if people is None:
        if digest_bound:
            return list(plan.owners), []
        return [], [
            f"The notice of {owner.id}'s suspension was not sent to {owner.to}: apply sends to "
            "an address outside the directory only when the inventory gives it (--inventory) or "
            "the plan is the one reviewed (--expect-digest). The agency's notice still goes."
            for owner in plan.owners
        ]
    given = {p.id: p.external_email for p in people}
    sent, withheld = [], []
    for owner in plan.owners:
        own = given.get(owner.id)
        if own is not None and own.lower() == owner.to.lower():
            sent.append(owner)
        else:
            withheld.append(
                f"The notice of {owner.id}'s suspension was not sent to {owner.to}: the "
                f"inventory gives {owner.id} {own or 'no external address'} (external_email). "
                "The agency's notice still goes."
            )
    return sent, withheld


def recipient_problems(plan: Plan, organisations: Mapping[str, Entry]) -> list[str]:
    """Every recipient of a notice that is not its agency's organisation mailbox: the address of
    the tool's entry with the agency's id (`organisations`, by stable id, read by apply) or the
    mail this plan writes to that mailbox (a create, a rename). Inside the domain, a forged
    recipient would still be someone else's mailbox."""
    given: dict[str, set[str]] = {}
    for op in plan.operations:
        written = op.attributes if op.action is Action.CREATE else op.changes
        for change in written if op.action is not Action.DELETE else ():
            if change.attr.lower() == "mail":
                mail = {v.lower() for v in change.after if isinstance(v, str)}
                given.setdefault(op.id, set()).update(mail)
    problems = []
    for contact in plan.contacts:
        key = agency_key(contact.agency)
        entry = organisations.get(key)
        own = given.get(key, set()) | ({entry.mail.lower()} if entry and entry.mail else set())
        for to in contact.to:
            if to.lower() not in own:
                known = ", ".join(sorted(own)) or "none in the directory or the plan"
                problems.append(
                    f"the notice to {contact.agency} goes to {to}, which is not the agency's "
                    f"organisation mailbox ({key}: {known}): a notice goes only there"
                )
    return problems


def _name(number: int, op: Operation) -> str:
    where = f" {op.dn or op.new_dn}" if op.dn or op.new_dn else ""
    return f"operation {number} ({op.action.value} {op.id or '(no id)'}{where})"


def _containers(plan: Plan, scope: Scope) -> list[str]:
    problems = []
    if not plan.people:
        problems.append("the plan declares no mailbox container (people)")
    for dn in plan.people:
        if not is_descendant(dn, plan.base_dn):
            problems.append(f"the mailbox container {dn} is outside the base DN {plan.base_dn}")
        elif normalize_dn(dn) == scope.lock or is_descendant(dn, history_dn(plan.base_dn)):
            problems.append(f"{dn} cannot be a mailbox container")
    for dn in plan.containers:
        leads = any(is_descendant(c, dn) for c in plan.people)
        if not is_descendant(dn, plan.base_dn) or not (leads or normalize_dn(dn) == scope.history):
            problems.append(
                f"the plan creates the container {dn}, which does not lead from the base DN to "
                "a declared mailbox container"
            )
    return problems


def adopts(op: Operation) -> bool:
    """Does the operation adopt an existing entry (add govMailAccount to it)?"""
    return op.action is Action.UPDATE and any(
        c.attr.lower() == "objectclass"
        and "govmailaccount" not in {v.lower() for v in c.before}
        and "govmailaccount" in {v.lower() for v in c.after if isinstance(v, str)}
        for c in op.changes
    )


def _operation(op: Operation, scope: Scope) -> Iterable[str]:
    if not op.id:
        yield "it names no stable id"
    elif not _KEY.match(op.id):
        # the erase command gets it as the mail store's folder: `HG-0001/` is HG-0001's
        yield f"{op.id!r} is not a stable id the tool gives"
    if op.action is Action.CREATE:
        if op.dn or op.changes:
            yield "a create changes no existing entry"
        why = scope.outside(op.new_dn)
        if why:
            yield why
        elif _naming_attribute(op.new_dn) != "uid":
            yield f"a new mailbox is named by uid=, not {op.new_dn}"
    else:
        if op.attributes and op.action is not Action.DELETE:
            yield f"a {op.action.value} lists no new entry's attributes"
        why = scope.outside(op.dn)
        if why:
            yield why
        if op.action is Action.RENAME:
            why = scope.outside(op.new_dn)
            if why:
                yield why
            elif normalize_dn(parent_dn(op.new_dn)) != normalize_dn(parent_dn(op.dn)):
                yield f"a rename keeps the entry in its container ({parent_dn(op.dn)})"
        elif op.action is Action.DELETE:
            if op.changes:
                yield "a delete writes no attribute of the entry it deletes"
            if op.new_dn or op.attributes:  # the tombstone it leaves in the history
                why = scope.not_a_record(op.new_dn)
                if why:
                    yield why
        elif op.new_dn:
            yield f"a {op.action.value} does not move the entry"
    yield from _writes(op)


def _naming_attribute(dn: str) -> str:
    """The attribute naming the entry at `dn`, lower-case; "" when its first RDN is not one
    attribute's value (a multi-valued RDN, `uid=a+cn=b`)."""
    try:
        return parse_dn(dn)[0][0].lower()
    except ValueError:
        return ""


def _writes(op: Operation) -> Iterable[str]:
    listed = (*op.attributes, *op.changes)
    seen: set[str] = set()
    adoption = adopts(op)
    allowed = _TOMBSTONE_WRITABLE if op.action is Action.DELETE else _WRITABLE
    for change in listed:
        name = change.attr.lower()
        if allowed.get(name) != change.attr:  # not one of them, or not spelled as the tool does
            yield f"it writes {change.attr}, which apply never writes there"
            continue
        if name in seen:
            yield f"it writes {change.attr} twice"
        seen.add(name)
        if name not in _CHECKED and name != _PASSWORD and all_strings(change.after):
            continue  # what `_value` finds nothing wrong with (most of the values of a plan)
        why = _value(op, change, adoption)
        if why:
            yield why


def _value(op: Operation, change: Change, adoption: bool) -> str | None:
    name = change.attr.lower()
    after = change.after
    if name == _PASSWORD:
        return password_problem(op, change)
    # a value apply fills in, in its place (strings alone, outside userPassword, always are)
    misplaced_value = None if all_strings(after) else misplaced(change.attr, after)
    if misplaced_value:
        return misplaced_value
    if name not in _CHECKED:  # what follows looks at these attributes only
        return None
    strings = {v.lower() for v in after if isinstance(v, str)}
    if op.action is Action.DELETE:  # its tombstone
        if name == "objectclass" and strings != {"top", TOMBSTONE.lower()}:
            return "a tombstone is a govMailTombstone and nothing else"
        return None
    if name == "objectclass":
        if op.action is Action.CREATE:
            return None if strings == _PERSON_CLASSES else "a new mailbox has the tool's classes"
        if not adoption:
            return "only an adoption changes an entry's object classes"
        if strings != {v.lower() for v in change.before} | {"govmailaccount"}:
            return "an adoption adds govMailAccount and no other object class"
    if name == "employeenumber":
        if after != (op.id,):
            return f"employeeNumber is the operation's own id {op.id}"
        if op.action is not Action.CREATE and not adoption:
            return "only a create or an adoption sets employeeNumber"
    if name == "mail" and op.action is Action.CREATE and strings != {op.address.lower()}:
        return f"a new mailbox's mail is its address {op.address}"
    if name == LOCK.lower() and after not in ((), (LOCKED,)):
        return f"{LOCK} is only ever {LOCKED} (suspended) or nothing"
    if name == MUST_CHANGE.lower() and after not in ((), ("TRUE",)):
        return f"{MUST_CHANGE} is only ever TRUE or nothing"
    return None


def password_problem(op: Operation, change: Change) -> str | None:
    """Why `change` is not a password apply may write: the one it issues itself, or, for a
    create in a merger, the hash apply reads from the source entry the operation names (its DN
    and fingerprint: `applying.carry`), each as the operation's one value; nothing else ever
    reaches userPassword."""
    if change.after == (Deferred.PASSWORD,):
        return None
    if change.after == (Deferred.CARRIED,):
        if op.action is not Action.CREATE or op.source is None:
            return f"{PASSWORD} is carried only by a create that names its source entry"
        if not op.source.dn or not op.source.fingerprint:
            return f"{PASSWORD} is carried from a source entry named by its DN and fingerprint"
        return None
    return f"{PASSWORD} is only ever a password apply issues, never a value in the plan"


def identity_problem(plan: Plan, found: str) -> str | None:
    """Why the directory reached (identity `found` of the plan's base DN) is not the one the plan
    was made for, or None. A plan made before its base entry existed (identity "") may find the
    base it creates."""
    if plan.directory_identity == found:
        return None
    creates_base = any(normalize_dn(c) == normalize_dn(plan.base_dn) for c in plan.containers)
    if not plan.directory_identity and creates_base:
        return None
    made_for = plan.directory_identity or "a directory without the base entry"
    here = found or "no base entry"
    return (
        f"the plan was made for the directory {made_for} (base {plan.base_dn}), and this one is "
        f"{here}: a plan applies only to the directory it was computed from, whatever URL "
        "reaches it. Make a new plan against this directory."
    )


def entry_problems(plan: Plan, live: Mapping[str, Entry], by_dn: Mapping[str, Entry]) -> list[str]:
    """Every operation that would touch an entry that is not the tool's (read by apply: `live` by
    stable id, `by_dn` by lower-case DN); O(plan)."""
    scope = Scope(plan)
    problems = []
    for number, op in enumerate(plan.operations, 1):
        if op.action is Action.CREATE:
            continue
        entry = live.get(op.id)
        if entry is None and op.dn:
            entry = by_dn.get(op.dn.lower())
        if entry is None:
            continue  # gone: the stale check says so
        why = _entry(op, entry, scope)
        if why:
            problems.append(f"{_name(number, op)}: {why}")
    return problems


def _entry(op: Operation, entry: Entry, scope: Scope) -> str | None:
    classes = {c.lower() for c in entry.all("objectClass")}
    never = classes & _NEVER or {c for c in classes if c.startswith("olc")}
    if never:
        return f"{entry.dn} is a {', '.join(sorted(never))} entry, which apply never touches"
    if "inetorgperson" not in classes:
        return f"{entry.dn} is not a mailbox (no inetOrgPerson)"
    why = scope.outside(entry.dn)
    if why:
        return why
    if entry.managed:
        return None
    if not adopts(op):
        return f"{entry.dn} is not the tool's (no govMailAccount), and the plan does not adopt it"
    local = (entry.mail or "").partition("@")[0]
    if entry.mail != op.address.lower():
        return f"an adoption takes the entry whose address its record pins, not {entry.dn}"
    if entry.key and entry.key != op.id:
        return f"{entry.dn} has the id {entry.key} of another record"
    if local in RESERVED and entry.key != op.id:
        # a role address is a service's, never adopted; one whose entry carries the record's
        # staff number is a person's legacy mailbox (`reconciler import` keeps it pinned)
        return f"{entry.dn} is a service address ({local}), never adopted"
    return None


def settings_problems(plan: Plan, settings: Settings, *, digest_bound: bool) -> list[str]:
    """What the plan declares about where and how much it may write, against the inventory's
    own directory.yaml (apply --inventory): the regulation, domain and base DN, the mailbox
    containers and max_deletes. A forged plan can declare its own containers and limits and
    re-seal itself; the inventory checked out from the reviewed branch cannot be forged so. The
    allowances above the limits (--allow-deletes/--allow-suspends at plan time) are a person's
    decision recorded in the plan: trusted only when the plan is bound by --expect-digest."""
    problems = []
    for what, declared, trusted in (
        ("regulation", plan.regulation, settings.regulation),
        ("domain", plan.domain.lower(), settings.domain.lower()),
        ("base DN", normalize_dn(plan.base_dn), normalize_dn(settings.base_dn)),
    ):
        if declared != trusted:
            problems.append(f"the plan's {what} is {declared}, the inventory's is {trusted}")
    containers = {normalize_dn(c) for c in people_containers(settings)}
    if {normalize_dn(c) for c in plan.people} != containers:
        problems.append(
            f"the plan declares the mailbox containers {', '.join(plan.people) or '(none)'}, the "
            f"inventory declares {', '.join(people_containers(settings))} (people in "
            "directory.yaml)"
        )
    problems += _outside_world(plan, settings)
    limits = plan.limits
    if limits is not None:
        if limits.max_deletes != settings.max_deletes:
            problems.append(
                f"the plan records max_deletes {limits.max_deletes}, the inventory's "
                f"directory.yaml says {settings.max_deletes}"
            )
        allowed = [
            f"{flag} {n}"
            for flag, n in (
                ("--allow-deletes", limits.allow_deletes),
                ("--allow-suspends", limits.allow_suspends),
            )
            if n
        ]
        if allowed and not digest_bound:
            problems.append(
                f"the plan was made with {' and '.join(allowed)}: a decision only a reviewed "
                "plan carries, so apply it with --expect-digest and the digest reviewers saw"
            )
    return problems


def _outside_world(plan: Plan, settings: Settings) -> list[str]:
    """What the plan makes apply do beyond the directory (the command it runs after a delete, the
    relay it logs in to and sends through, where it keeps its audit log and how long the history
    stays), against the inventory's directory.yaml."""
    problems = []
    if plan.erase and plan.erase != settings.erase:
        problems.append(
            f"the plan runs the mail_store erase command {list(plan.erase)}, the inventory's "
            f"directory.yaml names {list(settings.erase) or 'none'}"
        )
    for what, declared, trusted in (
        ("notices.relay", plan.relay, settings.relay),
        ("notices.from", plan.sender, settings.sender),
    ):
        if declared and declared != trusted:
            problems.append(
                f"the plan's {what} is {declared}, the inventory's is {trusted or 'none'}"
            )
    for what, declared_value, trusted_value in (
        ("audit_log", plan.audit_log, settings.audit_log),
        ("audit_keep_months", plan.audit_keep_months, settings.audit_keep_months),
    ):
        if declared_value != trusted_value:
            problems.append(
                f"the plan's {what} is {declared_value}, the inventory's directory.yaml says "
                f"{trusted_value}"
            )
    return problems


def unbound_problems(plan: Plan, *, audit_log_given: bool) -> list[str]:
    """What a plan neither bound by --expect-digest nor checked against --inventory may not make
    apply do: run its own command (mail_store.erase, after a delete), log in to and send through
    its own relay (with RECONCILER_SMTP_USER / RECONCILER_SMTP_PASSWORD), or name the file apply
    appends its audit log to (and reads its passwords pending from). Anyone can write these in a
    plan file and re-seal it; only the reviewed inventory or the reviewed digest says them."""
    problems = []
    why = (
        "apply takes it only from the inventory (--inventory, its directory.yaml) or from a plan "
        "bound by --expect-digest"
    )
    if plan.erase and any(op.action is Action.DELETE for op in plan.operations):
        problems.append(f"the plan runs the mail_store erase command {list(plan.erase)}: {why}")
    if plan.relay:
        problems.append(f"the plan sends its notices through notices.relay {plan.relay}: {why}")
    if plan.audit_log and not audit_log_given:
        problems.append(
            f"the plan names the audit log {plan.audit_log}: {why}, or give --audit-log"
        )
    return problems


def refuse(plan: Plan, problems: list[str]) -> UnsafePlan:
    """The error that refuses the whole plan, listing (the first 20 of) its problems."""
    shown = "\n".join(f"  - {p}" for p in problems[:20])
    more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
    return UnsafePlan(
        f"the plan breaks what apply never does ({len(problems)} problem"
        f"{'s' if len(problems) != 1 else ''}), so none of it was applied:\n{shown}{more}\n"
        "A plan made by `reconciler plan` keeps these; was this one edited? Make a new plan.",
        plan,
    )
