"""The data model: what the inventory declares, what the directory holds, what a plan does.

Everything here is a frozen, slotted dataclass or a closed enum. No I/O, no ldap3, no click.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import PurePath
from typing import Any, TypeVar

from reconciler.errors import Problem

# ---------------------------------------------------------------------------------------------
# Where a value came from: every problem is reported as FILE:LINE.


@dataclass(frozen=True, slots=True)
class Loc:
    """A place in an inventory file (line is 1-based; 0 when unknown)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


# ---------------------------------------------------------------------------------------------
# The inventory (desired state)


class State(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Suspension:
    """Why a mailbox is suspended: a clause of the regulation (one of its suspension grounds), or,
    for a lock found when an existing directory was imported under a regulation with no neutral
    ground, the day it was found (`clause` is then "")."""

    clause: str
    note: str = ""
    found_at_import: dt.date | None = None


#: What the mail server saw of an address (`--activity`): its latest moment of each kind
#: ("login", "sent", "received"; "mail" for a moment of unknown kind, the CSV's last_activity),
#: or one moment of unknown kind.
Seen = dt.datetime | Mapping[str, dt.datetime]


@dataclass(frozen=True, slots=True)
class Exemption:
    """An exemption from a time rule (`inactivity` or `password-change`), decided by a document."""

    rule: str
    ref: str


@dataclass(frozen=True, slots=True)
class Request:
    """A written request the inventory names: its document and its date."""

    ref: str
    date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Unit:
    id: str
    name: str
    abbreviation: str
    loc: Loc = field(default=Loc(""), compare=False)
    aliases: tuple[str, ...] = ()  # former unit addresses kept as aliases (e.g. after a merger)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from in a merger (`reconciler merge`): the former province's domain,
    the person's id, address and agency there, and the day of the merge. The directory move
    finds the former mailbox by `id` (its employeeNumber), else by `address`."""

    domain: str
    id: str
    address: str = ""
    agency: str = ""
    merged: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Agency:
    id: str
    name: str
    abbreviation: str
    units: tuple[Unit, ...] = ()
    mailbox: str | None = None  # quangnam-2020: optional organisation mailbox local part
    manager: str | None = None  # staff id managing the organisation mailbox
    manager_delegation: str | None = None  # the written delegation of a manager not the head
    aliases: tuple[str, ...] = ()  # former organisation addresses kept as aliases
    loc: Loc = field(default=Loc(""), compare=False)
    #: the regulation governing its organisation and unit mailboxes when not the inventory's (a
    #: former territory kept under its own regulation after a merger); None: the inventory's
    regulation: str | None = None

    def unit(self, unit_id: str) -> Unit | None:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        return None


@dataclass(frozen=True, slots=True)
class Details:
    """What a staff record may say besides what every record says (`Person`): most records say
    none of it, and share the one `NO_DETAILS` (`details`), so that the inventory's 100,000
    people do not each hold fifteen empty fields (11 MB at the peak of a plan)."""

    family: str | None = None  # split overrides
    middle: str | None = None
    given: str | None = None
    suspension: Suspension | None = None
    quota: int | None = None  # bytes
    quota_decision: str | None = None
    address: str | None = None  # pinned full address
    aliases: tuple[str, ...] = ()
    restored: dt.date | None = None
    restore_ref: str | None = None
    exempt: tuple[Exemption, ...] = ()
    #: a new request for a person whose mailbox was deleted (not recoverable): document, date
    new_request: Request | None = None
    #: an adopted login that differs from the address's local part (uid), kept as it is
    login: str | None = None
    origin: Origin | None = None  # where the record came from in a merger
    #: the person's own address outside the directory (`external_email`): where the notice of
    #: their mailbox's suspension reaches them (QN-2020 Đ7.2: a suspended mailbox cannot receive)
    external_email: str | None = None


NO_DETAILS = Details()
_DETAILS = frozenset(Details.__dataclass_fields__)


def details(**fields: Any) -> Details:
    """The `Details` of a record: the shared `NO_DETAILS` when it states none of them."""
    if any(value is not None and value != () for value in fields.values()):
        return Details(**fields)
    if not fields.keys() <= _DETAILS:
        raise TypeError(f"no such details: {', '.join(sorted(fields.keys() - _DETAILS))}")
    return NO_DETAILS


@dataclass(frozen=True, slots=True)
class Person:
    """A staff record: what every record says, and its `details` (read as its own fields:
    `person.suspension` is `person.details.suspension`)."""

    id: str
    name: str  # full name, NFC
    agency: str  # agency id (the file the record is in)
    unit: str | None = None
    title: str | None = None
    rank: int | None = None
    state: State = State.ACTIVE
    loc: Loc = field(default=Loc(""), compare=False)
    #: the regulation governing this mailbox when not the inventory's (a former territory kept
    #: under its own regulation after a merger); None: the inventory's
    regulation: str | None = None
    details: Details = NO_DETAILS

    @property
    def family(self) -> str | None:
        return self.details.family

    @property
    def middle(self) -> str | None:
        return self.details.middle

    @property
    def given(self) -> str | None:
        return self.details.given

    @property
    def suspension(self) -> Suspension | None:
        return self.details.suspension

    @property
    def quota(self) -> int | None:
        return self.details.quota

    @property
    def quota_decision(self) -> str | None:
        return self.details.quota_decision

    @property
    def address(self) -> str | None:
        return self.details.address

    @property
    def aliases(self) -> tuple[str, ...]:
        return self.details.aliases

    @property
    def restored(self) -> dt.date | None:
        return self.details.restored

    @property
    def restore_ref(self) -> str | None:
        return self.details.restore_ref

    @property
    def exempt(self) -> tuple[Exemption, ...]:
        return self.details.exempt

    @property
    def new_request(self) -> Request | None:
        return self.details.new_request

    @property
    def login(self) -> str | None:
        return self.details.login

    @property
    def origin(self) -> Origin | None:
        return self.details.origin

    @property
    def external_email(self) -> str | None:
        return self.details.external_email


_T = TypeVar("_T")


def builder(cls: type[_T]) -> Callable[..., _T]:
    """A constructor of the frozen, slotted dataclass `cls` for a loader's bulk: every field
    given (by name or in order), no `__post_init__` to call. It writes each slot through the
    slot's own descriptor, where the `__init__` of a frozen dataclass calls `object.__setattr__`
    with each field's name: `Person` in 0.55 us against 1.0 (0.045 s at 100,000 staff). What it
    builds is the same: an instance of `cls`, as frozen as any other."""
    params = getattr(cls, "__dataclass_params__", None)
    if not (params and params.frozen and "__slots__" in vars(cls)) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} is not a frozen, slotted dataclass without __post_init__")
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    env.update({f"_set_{name}": vars(cls)[name].__set__ for name in names})
    source = [
        f"def build({', '.join(names)}):",
        "    made = _new(_cls)",
        *(f"    _set_{name}(made, {name})" for name in names),
        "    return made",
    ]
    exec("\n".join(source), env)  # our own source, as dataclasses writes __init__
    built: Callable[..., _T] = env["build"]
    return built


@dataclass(frozen=True, slots=True)
class Settings:
    """`directory.yaml`."""

    regulation: str
    domain: str
    base_dn: str
    quota: int | None = None  # bytes; None = the regulation's default
    max_deletes: int = 10
    reserved: tuple[str, ...] = ()
    loc: Loc = field(default=Loc(""), compare=False)
    #: mail_store.erase: the command apply runs after a delete ({id}, {address} filled in)
    erase: tuple[str, ...] = ()
    #: months a deleted mailbox's addresses are not issued to anyone else (this project's policy)
    quarantine_months: int = 12
    relay: str = ""  # notices.relay: the SMTP relay notices go through ("" = .eml files only)
    sender: str = ""  # notices.from
    #: where apply appends its local audit log when no --audit-log / RECONCILER_AUDIT_LOG says
    #: (an absolute path, or ~/…); None: nowhere, and apply asks for one
    audit_log: str | None = None
    #: months the audit history kept in the directory is kept (None: DEFAULT_KEEP_MONTHS)
    audit_keep_months: int | None = None
    #: the domains of former provinces merged in: their addresses are kept as aliases
    former_domains: tuple[str, ...] = ()

    #: the mailbox containers (`people`), full DNs; new mailboxes go to the first; empty: the
    #: default `ou=people,<base_dn>` (`attributes.people_containers`)
    people: tuple[str, ...] = ()


#: How long the audit history in the directory is kept by default, in months (at least 12: the
#: 6-month report of QN-2020 Đ13.6 and the year before it).
DEFAULT_KEEP_MONTHS = 24
MIN_KEEP_MONTHS = 12


@dataclass(frozen=True, slots=True)
class Inventory:
    settings: Settings
    agencies: tuple[Agency, ...]
    people: tuple[Person, ...]
    digest: str = ""  # sha256 of the files' bytes, "sha256:<hex>"
    folder: str = field(default="", compare=False)  # as the user named it; `Loc.file` is below it

    def problem(self, loc: Loc, message: str) -> Problem:
        """`message` at `loc`, its file named as the loader names it (the folder joined)."""
        return Problem(str(PurePath(self.folder, loc.file)), loc.line, message)

    def agency(self, agency_id: str) -> Agency | None:
        for agency in self.agencies:
            if agency.id == agency_id:
                return agency
        return None


# ---------------------------------------------------------------------------------------------
# Mailboxes (desired, after the address rules) and entries (as read from the directory)


class Kind(enum.Enum):
    AGENCY = "agency"
    UNIT = "unit"
    PERSON = "person"


def agency_key(agency_id: str) -> str:
    """The stable id (and employeeNumber) of an organisation mailbox."""
    return f"agency:{agency_id}"


def unit_key(agency_id: str, unit_id: str) -> str:
    """The stable id (and employeeNumber) of a unit mailbox."""
    return f"unit:{agency_id}/{unit_id}"


@dataclass(frozen=True, slots=True)
class Address:
    """An address given to a mailbox by the regulation, with the clause that produced it."""

    local: str
    domain: str
    clause: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


@dataclass(frozen=True, slots=True)
class Entry:
    """A directory entry as read: DN and attributes (lower-case names, values NFC strings).

    Binary or hashed values (userPassword) are never read: asked for userPassword, a directory
    says only how many values it has (`passwords`; None when not asked), never what they are.
    """

    dn: str
    attrs: Mapping[str, tuple[str, ...]]
    passwords: int | None = None

    def get(self, name: str) -> str | None:
        values = self.attrs.get(_LOWER.get(name) or _lower(name))
        return values[0] if values else None

    def all(self, name: str) -> tuple[str, ...]:
        return self.attrs.get(_LOWER.get(name) or _lower(name), ())

    @property
    def managed(self) -> bool:
        classes = self.attrs.get("objectclass", ())
        found = _MANAGED.get(classes)
        if found is None:
            found = any(v.lower() == "govmailaccount" for v in classes)
            if len(_MANAGED) < 1024:  # a directory's entries have a few lists of classes
                _MANAGED[classes] = found
        return found

    @property
    def key(self) -> str | None:
        return self.get("employeeNumber")

    @property
    def mail(self) -> str | None:
        mail = self.get("mail")
        return mail.lower() if mail else None


_MANAGED: dict[tuple[str, ...], bool] = {}  # objectClass values -> Entry.managed
#: attribute names as the code spells them -> lower case (a plan asks an entry some 16 times)
_LOWER: dict[str, str] = {}


def _lower(name: str) -> str:
    lowered = name.lower()
    if len(_LOWER) < 1024:
        _LOWER[name] = lowered
    return lowered


def deleted_key(key: str) -> str:
    """Who holds an address kept from reissue after the mailbox `key` was deleted."""
    return f"deleted:{key}"


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A mailbox the tool deleted, as its history entry says (ou=history)."""

    id: str
    addresses: tuple[str, ...]
    deleted_at: dt.datetime | None
    clause: str
    name: str = ""
    agency: str = ""


# ---------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True, slots=True)
class ReadState:
    """The replication state a plan was read at, in OpenLDAP's contextCSNs (`reconciler.csn`):
    `held`, the server read (a provider, or a replica with `--read-from`), just before the read;
    `providers`, per serverID the newest the providers listed held just before that, or () when
    none could be read. Apply compares them with the provider it writes to."""

    read_from: str
    read_at: dt.datetime
    held: tuple[str, ...]
    providers: tuple[str, ...] = ()


class Action(enum.Enum):
    """A closed set of operations, in the order `apply` runs them."""

    RENAME = "rename"
    CREATE = "create"
    UPDATE = "update"
    RESTORE = "restore"
    SUSPEND = "suspend"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def order(self) -> int:
        return list(Action).index(self)


_SYMBOLS = {
    Action.CREATE: "+",
    Action.RENAME: "→",
    Action.UPDATE: "~",
    Action.SUSPEND: "⏸",
    Action.RESTORE: "▶",
    Action.DELETE: "−",
}


class Deferred(enum.Enum):
    """A value a plan cannot hold, which apply fills in as it writes the entry: the plan says
    that the attribute is written and what with, apply resolves it (`resolve`)."""

    #: a new random password, handed over in the credentials file (never in the plan)
    PASSWORD = "issued password"
    #: the moment apply writes the entry, as GeneralizedTime
    APPLY_TIME = "time of apply"
    #: the password hash of the operation's source entry in the directory being merged in
    #: (`Operation.source`), read by apply from there and written as it is (never in the plan)
    CARRIED = "carried password"


#: A value an operation writes: the value itself, or one that apply fills in.
Value = str | Deferred


@dataclass(frozen=True, slots=True)
class Change:
    """One attribute's values before and after (empty tuple = absent). `after` may hold a
    `Deferred` value; `before` is always what was read."""

    attr: str
    before: tuple[str, ...]
    after: tuple[Value, ...]

    @property
    def deferred(self) -> bool:
        return any(isinstance(v, Deferred) for v in self.after)


def resolve(values: tuple[Value, ...], password: str, moment: str, carried: str = "") -> list[str]:
    """`values` as written: each `Deferred` value replaced by the `password` issued, the
    GeneralizedTime `moment` of the write, or the hash `carried` from the source entry."""
    return [
        v
        if isinstance(v, str)
        else password
        if v is Deferred.PASSWORD
        else carried
        if v is Deferred.CARRIED
        else moment
        for v in values
    ]


@dataclass(frozen=True, slots=True)
class Source:
    """The entry of the directory being merged in that a create carries over (its password hash,
    must-change state, suspension and last login): its DN, the fingerprint of what the plan read
    of it (apply refuses an entry changed since), and its login and address there (for the mail
    team's job list)."""

    dn: str
    fingerprint: str
    login: str = ""
    address: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    action: Action
    id: str  # stable id = employeeNumber
    address: str  # the address the operation is about (after a rename: the new one)
    clause: str
    reason: str
    kind: Kind = Kind.PERSON
    agency: str = ""  # agency id, for grouping
    name: str = ""  # display name, for people reading the plan
    dn: str = ""  # the entry's DN before the operation ("" for create)
    new_dn: str = ""  # create and rename: the DN after
    previous: str = ""  # rename: the former address
    changes: tuple[Change, ...] = ()  # update/rename/suspend/restore: attribute changes
    attributes: tuple[Change, ...] = ()  # create: every attribute of the new entry (before = ())
    fingerprint: str = ""  # of the live entry this operation was computed from ("" for create)
    address_clause: str = ""  # create and rename: the rule that gave the address, beside `clause`
    source: Source | None = None  # create in a merger: the source entry it carries over

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.action.order, self.agency, self.id)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record the plan does not carry out, and why (shown, and told to its agency)."""

    id: str
    agency: str
    name: str
    clause: str
    reason: str


@dataclass(frozen=True, slots=True)
class Contact:
    """Where an agency's notice goes: its organisation mailbox, when it has one."""

    agency: str
    name: str
    to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Owner:
    """A person told of their own mailbox's suspension at their external address (QN-2020 Đ7.2:
    the owner is notified; a suspended mailbox cannot receive). Apply sends to `to` only when the
    inventory gives that person that address, or the plan is the one reviewed."""

    id: str  # the person's stable id: the suspend operation's
    agency: str
    to: str


#: The share of a directory's mailboxes one plan may suspend without --allow-suspends.
SUSPEND_SHARE = 0.10


@dataclass(frozen=True, slots=True)
class Limits:
    """How much destruction a plan may carry (`limits.check_limits`): deletions up to `max_deletes`
    of directory.yaml, suspensions up to `suspend_share` of the mailboxes, unless the person
    planning allows more (--allow-deletes, --allow-suspends). A plan records them, and apply
    checks them again."""

    max_deletes: int
    allow_deletes: int | None = None
    suspend_share: float = SUSPEND_SHARE
    allow_suspends: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    regulation: str
    domain: str
    base_dn: str
    now: dt.datetime
    inventory_digest: str
    inventory_commit: str
    directory_url: str
    directory_fingerprint: str
    operations: tuple[Operation, ...]
    unmanaged: tuple[str, ...] = ()  # DNs of entries the tool does not own
    containers: tuple[str, ...] = ()  # organisational-unit DNs that must exist first
    notes: tuple[str, ...] = ()  # plain-words remarks (e.g. activity rows for unknown addresses)
    accounts: int = 0  # managed mailboxes in the directory when the plan was made
    erase: tuple[str, ...] = ()  # mail_store.erase, run by apply after each delete
    directory_backend: str = ""  # the library that read it (python-ldap, ldap3, ldif)
    refused: tuple[Refusal, ...] = ()  # records the plan does not carry out, and why
    contacts: tuple[Contact, ...] = ()  # the agencies told after the apply (notices)
    owners: tuple[Owner, ...] = ()  # suspended people told at their external address too
    relay: str = ""  # the SMTP relay of the notices ("" = written as files only)
    sender: str = ""  # the notices' From
    audit_log: str | None = None  # directory.yaml's audit_log, for apply
    audit_keep_months: int | None = None  # directory.yaml's audit_keep_months, for apply
    people: tuple[str, ...] = ()  # the declared mailbox containers (full DNs), new ones first
    #: the directory the plan was made for (`Directory.identity`; "" when its base was missing)
    directory_identity: str = ""
    limits: Limits | None = None  # the guard the plan passed, checked again by apply
    replication: ReadState | None = None  # a replicated directory: the state the plan read
    #: a merger's source directory (`plan --source-directory`): its URL and base DN, and the
    #: fingerprint of every source entry the plan carries over; "" when none
    source_url: str = ""
    source_base_dn: str = ""

    def count(self, action: Action) -> int:
        return sum(1 for op in self.operations if op.action is action)

    @property
    def empty(self) -> bool:
        return not self.operations and not self.containers


# ---------------------------------------------------------------------------------------------
# A desired mailbox (the inventory after the address rules)


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One desired mailbox."""

    key: str
    kind: Kind
    agency: str
    name: str
    address: Address
    attrs: Mapping[str, tuple[str, ...]]  # the managed attributes, sorted values, absent = ()
    state: State
    suspension: Suspension | None
    person: Person | None
    loc: Loc
    #: for a mailbox to create: the plain form of a person's address, when the regulation gave
    #: another, and who holds it, in words
    plain: str = ""
    plain_holder: str = ""
    regulation: str = ""  # the regulation governing it when not the inventory's ("")

    @property
    def mail(self) -> str:
        return str(self.address)

    def operation(self, action: Action, clause: str, reason: str, **fields: Any) -> Operation:
        """An operation on this mailbox; on an existing one, give the `dn` and `fingerprint` of
        the entry it was computed from (`attributes.seen(entry)`)."""
        return Operation(
            action=action,
            id=self.key,
            address=self.mail,
            clause=clause,
            reason=reason,
            kind=self.kind,
            agency=self.agency,
            name=self.name,
            **fields,
        )
