"""The desired mailboxes: the inventory turned into directory entries by the regulation.

Pure: no I/O. `mailboxes()` gives every mailbox the inventory asks for, with its address allocated
by the regulation against the addresses the directory already holds, and the exact LDAP attributes
the tool manages on its entry. `resolve()` puts the steps together against the entries read from
the directory, the one way `plan` and `report` both see what the inventory wants.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler import names
from reconciler.attributes import (
    DELETE_REASON,
    DELETED_AT,
    FORMER_ADDRESS,
    FORMER_ID,
    ORIGIN,
    TOMBSTONE,
    fingerprint,
    history_dn,
    parse_time,
    people_containers,
)
from reconciler.dn import normalize_dn, parent_dn, parse_dn
from reconciler.errors import NamingError, Problem
from reconciler.model import (
    Address,
    Agency,
    Entry,
    Inventory,
    Kind,
    Loc,
    Mailbox,
    Person,
    Refusal,
    Settings,
    State,
    Tombstone,
    Unit,
    agency_key,
    deleted_key,
    unit_key,
)
from reconciler.packed import Packed
from reconciler.rules import lifecycle, naming, regulations
from reconciler.rules.regulations import Regulation


def rule_of(regulation_id: str | None) -> Regulation | None:
    """The regulation a record names for itself (a former territory's, after a merger)."""
    return regulations.get(regulation_id) if regulation_id else None


def _display_split(person: Person) -> tuple[str, str]:
    """(sn, givenName) in Vietnamese, for the directory: the overrides, else first and last word."""
    words = person.name.split()
    details = person.details
    return details.family or words[0], details.given or words[-1]


def _wanted(
    inventory: Inventory, current: Mapping[str, str | None], refused: frozenset[str] = frozenset()
) -> tuple[list[naming.Wanted], list[Problem]]:
    """What the allocator needs of every mailbox the inventory asks for; `current` gives the
    address each stable id's entry has now."""
    wanted: list[naming.Wanted] = []
    problems: list[Problem] = []
    for agency in inventory.agencies:
        key = agency_key(agency.id)
        now = current.get(key)
        wanted.append(
            naming.Wanted(
                key=key,
                kind=Kind.AGENCY,
                parts=None,
                agency_abbr=agency.abbreviation,
                unit_abbr=None,
                mailbox=agency.mailbox,
                rank=None,
                pinned=None,
                current=now,
                regulation=rule_of(agency.regulation),
            )
        )
        for unit in agency.units:
            key = unit_key(agency.id, unit.id)
            now = current.get(key)
            wanted.append(
                naming.Wanted(
                    key=key,
                    kind=Kind.UNIT,
                    parts=None,
                    agency_abbr=agency.abbreviation,
                    unit_abbr=unit.abbreviation,
                    mailbox=None,
                    rank=None,
                    pinned=None,
                    current=now,
                    regulation=rule_of(agency.regulation),
                )
            )
    agencies = {a.id: a for a in inventory.agencies}
    for person in inventory.people:
        if person.state is State.ABSENT or person.id in refused:
            continue
        try:
            parts = names.split(person.name, person.family, person.middle, person.given)
        except NamingError as error:
            problems.append(inventory.problem(person.loc, f"staff {person.id}: {error}"))
            continue
        now = current.get(person.id)
        wanted.append(
            naming.Wanted(
                key=person.id,
                kind=Kind.PERSON,
                parts=parts,
                agency_abbr=agencies[person.agency].abbreviation,
                unit_abbr=None,
                mailbox=None,
                rank=person.rank,
                pinned=person.address,
                current=now,
                regulation=rule_of(person.regulation),
            )
        )
    return wanted, problems


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entry the inventory may adopt (`adoptions`): an inetOrgPerson the tool does not
    manage, with its position among the entries read."""

    position: int
    dn: str
    key: str  # its employeeNumber, "" when it has none
    mail: str | None  # its address (`Entry.mail`)
    mails: frozenset[str]  # every mail value, lower case
    claimed: tuple[str, ...]  # the addresses it was the first entry read to hold


def adoptions(
    candidates: Iterable[Candidate],
    inventory: Inventory,
    live: Container[str],
    entries: Iterable[Entry] = (),
) -> dict[str, Candidate]:
    """The entries the inventory adopts, by stable id: the one exception to matching by
    employeeNumber.

    An inetOrgPerson entry without govMailAccount (a mailbox issued before the tool, typically
    written into the inventory by `reconciler import`) belongs to the record whose pinned
    `address` equals its `mail`, ignoring case, when the entry has no employeeNumber or the
    record's id as employeeNumber, and no managed entry has that id. Only an entry directly
    inside a declared mailbox container (`people` in directory.yaml) is adopted, never a service
    account elsewhere (`uid=helpdesk,ou=services`), and never one whose address a managed
    mailbox already holds (as its address or an alias: the managed ones among `entries`, gone
    over only when there is an adoption to check). An address claimed by two such entries
    adopts neither (the pin then fails as held by an entry the tool does not manage). The plan
    turns each adoption into one update that adds govMailAccount and employeeNumber in place,
    keeping the entry's DN, address and password."""
    pins = {
        p.address.lower(): p
        for p in inventory.people
        if p.address and p.state is not State.ABSENT and p.id not in live
    }
    found: dict[str, Candidate] = {}
    if not pins:
        return found
    containers = {normalize_dn(c) for c in people_containers(inventory.settings)}
    claimed: set[str] = set()
    for candidate in candidates:
        for mail in candidate.mails:
            person = pins.get(mail)
            if person is None or (candidate.key and candidate.key != person.id):
                continue
            if not _inside(candidate.dn, containers):
                break  # not in a mailbox container: a service account, or someone else's
            if person.id in claimed:
                found.pop(person.id, None)
            else:
                claimed.add(person.id)
                found[person.id] = candidate
            break  # one record per entry
    if not found:
        return found
    owned: set[str] = set()  # every address a managed mailbox holds
    for entry in entries:
        if entry.managed:
            owned.update(a.lower() for a in (*entry.all("mail"), *entry.all("govMailAlias")))
    return {key: c for key, c in found.items() if c.mail not in owned}


def _inside(dn: str, containers: set[str]) -> bool:
    """Is the entry at `dn` directly inside one of `containers` (normalized DNs)?"""
    try:
        return normalize_dn(parent_dn(dn)) in containers
    except ValueError:
        return False


#: An address held by two entries: the entry that keeps it, and the others (DNs).
Shared = dict[str, tuple[str, tuple[str, ...]]]


def taken_addresses(
    entries: Iterable[Entry], inventory: Inventory
) -> tuple[dict[str, str], dict[str, str]]:
    """Every address in use: mail and aliases of every entry, managed or not, and the inventory's
    own aliases; mapped to the stable id holding it ("" when not the tool's). Also the folded
    full name of each address's holder, for the hagiang-2024 collision rule."""
    taken, holders = _taken(list(entries), {}, None)
    _inventory_aliases(taken, inventory)
    return taken, holders


def _taken(
    entries: Sequence[Entry], owner: Mapping[int, str], shared: Shared | None
) -> tuple[dict[str, str], dict[str, str]]:
    """`taken_addresses` of the entries alone, `owner` giving the adopted ones' stable ids by
    their positions."""
    taken: dict[str, str] = {}
    holders: dict[str, str] = {}
    contested: set[str] = set()
    for position, entry in enumerate(entries):
        key = entry.key if entry.managed else owner.get(position)
        name = entry.get("cn") or ""
        folded = names.folded_name(name)
        for address in {a.lower() for a in entry.all("mail") + entry.all("govMailAlias")}:
            held = taken.setdefault(address, key or "")
            if held != (key or "") or (not held and address in holders):
                contested.add(address)  # a second entry (or perhaps the same one again)
            if folded:
                holders.setdefault(address, folded)
    if contested:
        found = _shared(entries, contested, owner, taken)
        if shared is not None:
            shared.update(found)
    return taken, holders


def _inventory_aliases(taken: dict[str, str], inventory: Inventory) -> None:
    """The inventory's own aliases are taken too, by their agency, unit or person."""
    for agency in inventory.agencies:
        for alias in agency.aliases:
            taken.setdefault(alias, agency_key(agency.id))
    for person in inventory.people:
        for alias in person.aliases:
            taken.setdefault(alias, person.id)


def _shared(
    entries: Sequence[Entry], contested: set[str], owner: Mapping[int, str], taken: dict[str, str]
) -> Shared:
    """The addresses of `contested` that two entries hold, each given to the entry that keeps it
    (`taken` is corrected to its id)."""
    found: dict[str, list[tuple[tuple[int, int, str, str], int, str, str | None]]] = {}
    for position, entry in enumerate(entries):
        key = entry.key if entry.managed else owner.get(position)
        mails = {a.lower() for a in entry.all("mail")}
        for address in contested & (mails | {a.lower() for a in entry.all("govMailAlias")}):
            holder = (_keeper(entry, address in mails, key), position, entry.dn, key)
            found.setdefault(address, []).append(holder)
    shared: Shared = {}
    for address, holding in found.items():
        if len({position for _, position, _, _ in holding}) < 2:
            continue
        holding.sort(key=lambda held: held[0])
        _, _, keeper, key = holding[0]
        taken[address] = key or ""
        shared[address] = (keeper, tuple(dn for _, _, dn, _ in holding[1:]))
    return shared


def _keeper(entry: Entry, as_mail: bool, key: str | None) -> tuple[int, int, str, str]:
    """Which of the entries holding one address keeps it (the smallest): the one whose address
    it is over one holding it as an alias, an entry the tool does not manage (it cannot change
    it) over its own, then the older, then by DN."""
    created = entry.get("createTimestamp") or "~"
    return (0 if as_mail else 1, 1 if key else 0, created, entry.dn.lower())


#: Whether a list of object classes is the tool's, a tombstone's, a person's, an
#: inetOrgPerson's: a directory's entries have a few lists of classes.
_KINDS: dict[tuple[str, ...], tuple[bool, bool, bool, bool]] = {}


def _classes(classes: tuple[str, ...]) -> tuple[bool, bool, bool, bool]:
    found = _KINDS.get(classes)
    if found is None:
        low = {c.lower() for c in classes}
        found = (
            "govmailaccount" in low,
            TOMBSTONE.lower() in low,
            bool(low & {"inetorgperson", "person", "account", "posixaccount"}),
            "inetorgperson" in low,
        )
        if len(_KINDS) < 4096:
            _KINDS[classes] = found
    return found


def container_chain(base_dn: str, container: str) -> list[str]:
    """The base and every DN from it down to `container`, parents first."""
    chain = [container]
    while chain[-1].lower() != base_dn.lower() and parent_dn(chain[-1]):
        chain.append(parent_dn(chain[-1]))
    return [base_dn, *(dn for dn in reversed(chain) if dn.lower() != base_dn.lower())]


#: The attributes of an entry that `Survey.add` (with `tombstone`) and `pipeline.read`'s `skip`
#: read: an entry read is unpacked with these only to be surveyed (`Surveyed.append_packed`).
SURVEYED = frozenset(
    name.lower()
    for name in (
        "objectClass",
        "employeeNumber",
        "cn",
        "mail",
        "govMailAlias",
        DELETE_REASON,
        FORMER_ID,
        FORMER_ADDRESS,
        DELETED_AT,
        "displayName",
        "govMailAgency",
    )
)


class Survey:
    """What a plan needs of every entry read, gathered in one pass in the directory's order
    (`add`), so that the entries themselves can stay packed (`reconciler.packed`) and be
    unpacked only when a mailbox is compared with its entry.

    `positions` and `current`: the managed entries by stable id (their positions among the
    entries read, their addresses); `taken` and `holders`: every address in use, with the stable
    id of its first holder ("" when not the tool's) and that holder's folded full name;
    `repeated`: whether an address is held by two entries (then `resolve` goes over the entries
    again for who keeps it, `taken_addresses`); `unmanaged`, `foreign_ids`, `candidates`,
    `stones`: the person entries the tool does not manage, the employeeNumbers of entries not its
    own, the entries the inventory may adopt, the tombstones of the history; `fingerprint`: a
    summary of the entries as read (`add`), the plan file's directory fingerprint; `present`:
    which of the containers a plan may create exist (lower case)."""

    def __init__(
        self,
        settings: Settings,
        shapes: Sequence[tuple[str, ...]],
        common: Mapping[str, tuple[str, ...]],
    ) -> None:
        #: the tables of the store the entries surveyed are packed into (`Packed.shapes`,
        #: `Packed.common`): a packed entry holds only their numbers (`fingerprint`)
        self._tables = (shapes, common)
        people = people_containers(settings)
        self.own = {settings.base_dn.lower(), *(c.lower() for c in people)}
        self.containers = {
            dn.lower()
            for dn in (*container_chain(settings.base_dn, people[0]), history_dn(settings.base_dn))
        }
        self.count = 0
        self.positions: dict[str, int] = {}
        self.current: dict[str, str | None] = {}
        self.taken: dict[str, str] = {}
        self.holders: dict[str, str] = {}
        self.repeated = False
        self.unmanaged: list[tuple[int, str]] = []
        self.foreign_ids: dict[str, str] = {}
        self.candidates: list[Candidate] = []
        self.stones: list[Tombstone] = []
        self.present: set[str] = set()
        self._digest = hashlib.sha256()
        self._folded: dict[str, str] = {}  # full name (cn) -> its folded words
        #: the inventory's stable ids (each to itself), given while reading: an entry's id is
        #: kept as the inventory's str, not a copy per entry (5 MB at 100,000 mailboxes)
        self.ids: dict[str, str] = {}

    @classmethod
    def of(cls, settings: Settings, entries: Iterable[Entry]) -> Survey:
        """The survey of `entries`, packed as `pipeline.read` packs them (the fingerprint is
        of them packed)."""
        surveyed = Surveyed(settings)
        for entry in entries:
            surveyed.append(entry)
        return surveyed.survey

    @property
    def fingerprint(self) -> str:
        """The directory's fingerprint in a plan file: the SHA-256 of every entry read as it is
        kept packed (`reconciler.packed`: its DN and the values of the attributes a plan reads,
        in the order the server sent them, userPassword only as how many values it has), in the
        order read, then of what the packing numbered (the attribute names of each shape, the
        common values); an entry packing cannot keep exactly counts as its
        `attributes.fingerprint`. Each piece is preceded by its length. A summary of what was
        read, for the record: two reads of an unchanged directory give the same, any change
        read (a login's pwdLastSuccess too) another. Nothing compares it: apply's stale-plan
        check is each operation's own entry fingerprint."""
        digest = self._digest.copy()
        shapes, common = self._tables
        for table in (shapes, list(common.values())):
            _framed(digest, b"%d" % len(table))
            for strings in table:
                _framed(digest, "\x00".join(strings).encode("utf-8", "surrogatepass"))
        return "sha256:" + digest.hexdigest()

    def hand_over(self) -> dict[str, str | None]:
        """`current`, no longer kept here (a 100,000-entry dict at the allocation's peak)."""
        current, self.current = self.current, {}
        return current

    def read(self) -> None:
        """Every entry is surveyed: the full names met are no longer needed (at 100,000
        mailboxes some 6 MB of names, alive through the allocation otherwise)."""
        self._folded = {}
        self.ids = {}

    def add(self, entry: Entry, kept: bytes | Entry) -> None:
        """Survey `entry`, read next; `kept`: what is kept of it (`Packed.pack`), which the
        fingerprint covers."""
        position = self.count
        self.count += 1
        _framed(self._digest, kept if isinstance(kept, bytes) else fingerprint(kept).encode())
        dn = entry.dn.lower()
        if dn in self.containers:
            self.present.add(dn)
        managed, stone, person, inet = _classes(entry.all("objectClass"))
        key = entry.key
        if key:
            key = self.ids.get(key, key)
        if managed and key:
            self.positions[key] = position
        elif stone:
            self.stones.append(tombstone(entry))
        else:
            if key:
                self.foreign_ids.setdefault(key, entry.dn)
            if person and dn not in self.own:
                self.unmanaged.append((position, entry.dn))
        candidate = inet and not managed
        owner = (key or "") if managed else ""
        name = entry.get("cn") or ""
        folded = self._folded.get(name)
        if folded is None:
            folded = names.folded_name(name)
            if len(self._folded) < 1 << 16:
                self._folded[name] = folded
        taken, holders = self.taken, self.holders
        claimed = []
        mails = entry.all("mail")
        mail = None  # the entry's address (`Entry.mail`), kept as the same str as in `taken`
        for address in dict.fromkeys(a.lower() for a in (*mails, *entry.all("govMailAlias"))):
            if mail is None and mails:
                mail = address
            if address in taken:
                self.repeated = True  # a second entry holds it
            else:
                taken[address] = owner
                if candidate:
                    claimed.append(address)
            if folded and address not in holders:
                holders[address] = folded
        if managed and key:
            self.current[key] = mail
        if candidate:
            lowered = frozenset(m.lower() for m in mails)
            self.candidates.append(
                Candidate(position, entry.dn, key or "", mail, lowered, tuple(claimed))
            )


def _framed(digest: Any, data: bytes) -> None:
    """`data` into `digest`, after its length: where one piece ends is never in doubt."""
    digest.update(len(data).to_bytes(4, "big"))
    digest.update(data)


class Live(Mapping[str, Entry]):
    """The entries by stable id, unpacked from the entries read when asked for; the last one
    asked for is kept, since a mailbox's entry is asked for a few times in a row."""

    def __init__(self, entries: Sequence[Entry], positions: dict[str, int]) -> None:
        self._entries = entries
        self._positions = positions
        self._last: tuple[str, Entry] | None = None

    def __getitem__(self, key: str) -> Entry:
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        entry = self._entries[self._positions[key]]
        self._last = (key, entry)
        return entry

    def get(self, key: str, default: Entry | None = None) -> Entry | None:  # type: ignore[override]
        return self[key] if key in self._positions else default

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions)

    def __len__(self) -> int:
        return len(self._positions)


class Surveyed(Packed):
    """Entries read and packed (`reconciler.packed`) with their `Survey`, made as they were
    read (`pipeline.read`): `resolve` need not go over them again. `skip`, when given, leaves
    out the entries it says yes to."""

    __slots__ = ("skip", "survey")

    def __init__(self, settings: Settings, skip: Callable[[Entry], bool] | None = None) -> None:
        super().__init__()
        self.survey = Survey(settings, self.shapes, self.common)
        self.skip = skip

    def append(self, entry: Entry) -> None:
        kept = self.pack(entry)  # skipped or not, as `append_packed` (one fingerprint)
        if self.skip is None or not self.skip(entry):
            self.survey.add(entry, kept)
            self.items.append(kept)

    def append_packed(self, item: bytes) -> None:
        entry = self.unpack(item, SURVEYED)
        if self.skip is None or not self.skip(entry):
            self.survey.add(entry, item)
            self.items.append(item)

    def append_kept(self, entry: Entry) -> None:
        if self.skip is None or not self.skip(entry):
            self.survey.add(entry, entry)
            super().append_kept(entry)


class Mailboxes(Mapping[str, "Mailbox"]):
    """The desired mailboxes by stable id, each built when it is asked for and not kept.

    Every address is allocated up front (collisions need them all); the entries themselves are
    built one at a time, as `plan` compares them: holding a province's 100,000 desired entries at
    once was more than a third of plan's peak memory. Building is pure, so asking twice gives
    equal mailboxes.
    """

    def __init__(self, build: _Builder, sources: dict[str, Any]) -> None:
        self._build = build
        self._sources = sources  # key -> the agency, (agency, unit) or person it is built from

    def __getitem__(self, key: str) -> Mailbox:
        return self._build(key, self._sources[key])

    def __contains__(self, key: object) -> bool:
        return key in self._sources

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


@dataclass(frozen=True, slots=True)
class _Builder:
    """What building a mailbox needs besides its own record."""

    live: Mapping[str, Entry]
    addresses: naming.Allocation  # each mailbox's `Address` made as it is built
    parts_of: Mapping[str, names.NameParts]
    agencies: Mapping[str, Agency]
    regulation: Regulation
    default_quota: int
    taken: Mapping[str, str] = field(default_factory=dict)
    inventory_people: Sequence[Person] = ()
    #: `inventory_people` by id, made the first time a collision is put in words (most plans
    #: have none, and at 100,000 mailboxes the index is some 5 MB)
    _people: dict[str, Person] = field(default_factory=dict)

    @property
    def people(self) -> Mapping[str, Person]:
        if not self._people and self.inventory_people:
            self._people.update((p.id, p) for p in self.inventory_people)
        return self._people

    def holder(self, address: str, person: Person) -> str:
        """Who holds `address`, which `person` would have had, in words: named, and for a
        regulation whose collision rule favours the higher rank, why it is kept."""
        key = self.taken.get(address)
        if key is None:  # given to another newcomer in this plan
            given = self.addresses.addresses
            key = next((k for k, a in given.items() if a == address), "")
            return f"{address} goes to {self._who(key)} in this plan"
        who = self._who(key)
        text = f"{address} is held by {who}"
        rival = self.people.get(key)
        better = person.rank is not None and (
            rival is None or rival.rank is None or person.rank < rival.rank
        )
        rule = rule_of(person.regulation) or self.regulation
        if rule.rank_keeps_plain and key in self.live and better:
            text += (
                f"; {rule.collision_clause} gives the plain form to the higher rank, "
                "but an issued address is never taken back (this project's policy)"
            )
        return text

    def _who(self, key: str) -> str:
        if key in self.live:
            return f"{self.live[key].get('cn') or key} ({key})"
        if key in self.people:
            return f"{self.people[key].name} ({key})"
        return naming.describe_holder(key)

    def __call__(self, key: str, source: Any) -> Mailbox:
        if isinstance(source, Person):
            return self.person(source)
        if isinstance(source, tuple):
            return self.unit(key, *source)
        return self.agency(key, source)

    def kept_aliases(self, key: str, declared: Iterable[str]) -> tuple[str, ...]:
        # Aliases are never dropped: every former address keeps receiving mail; unless another
        # entry keeps the address too (two entries on one address: `taken_addresses`)
        aliases = set(declared)
        entry = self.live.get(key)
        mail = self.addresses.addresses.get(key, "")
        if entry is not None:
            taken = self.taken
            mine = entry.all("govMailAlias")
            if mine:
                aliases.update(a for a in map(str.lower, mine) if taken.get(a, key) == key)
            old = entry.mail
            if old and old != mail and taken.get(old) == key:
                aliases.add(old)
        if not aliases:
            return ()
        if mail:
            aliases.discard(mail)
        return tuple(sorted(aliases))

    def agency(self, key: str, agency: Agency) -> Mailbox:
        address = self.addresses[key]
        attrs = _attrs(
            address,
            cn=agency.name,
            sn=agency.name,
            given=None,
            title=None,
            o=agency.name,
            ou=None,
            kind=Kind.AGENCY,
            agency=agency.id,
            unit=None,
            manager=agency.manager,
            quota=self.default_quota,
            decision=None,
            aliases=self.kept_aliases(key, agency.aliases),
        )
        return Mailbox(
            key,
            Kind.AGENCY,
            agency.id,
            agency.name,
            address,
            attrs,
            State.ACTIVE,
            None,
            None,
            agency.loc,
            regulation=agency.regulation or "",
        )

    def unit(self, key: str, agency: Agency, unit: Unit) -> Mailbox:
        address = self.addresses[key]
        name = f"{unit.name} – {agency.name}"
        attrs = _attrs(
            address,
            cn=name,
            sn=unit.name,
            given=None,
            title=None,
            o=agency.name,
            ou=unit.name,
            kind=Kind.UNIT,
            agency=agency.id,
            unit=unit.id,
            manager=None,
            quota=self.default_quota,
            decision=None,
            aliases=self.kept_aliases(key, unit.aliases),
        )
        return Mailbox(
            key,
            Kind.UNIT,
            agency.id,
            name,
            address,
            attrs,
            State.ACTIVE,
            None,
            None,
            unit.loc,
            regulation=agency.regulation or "",
        )

    def person(self, person: Person) -> Mailbox:
        address = self.addresses[person.id]
        agency = self.agencies[person.agency]
        home = agency.unit(person.unit) if person.unit else None
        family, given = _display_split(person)
        details = person.details  # what few records state, read once (`Person`'s properties)
        attrs = _attrs(
            address,
            cn=person.name,
            sn=family,
            given=given,
            title=person.title,
            o=agency.name,
            ou=home.name if home else None,
            kind=Kind.PERSON,
            agency=agency.id,
            unit=home.id if home else None,
            manager=None,
            quota=details.quota if details.quota is not None else self.default_quota,
            decision=details.quota_decision,
            aliases=self.kept_aliases(person.id, details.aliases),
        )
        if details.login:  # an adopted login is kept as it is
            attrs["uid"] = (details.login.lower(),)
        if details.origin is not None:
            attrs[ORIGIN] = (f"{details.origin.domain} {details.origin.id}",)
        entry = self.live.get(person.id)
        if entry is not None:
            attrs["cn"] = _with_rdn(entry, "cn", attrs["cn"])
        plain = holder = ""
        # only a mailbox to create says why it does not get the plain form (`plan._create`)
        if details.address is None and person.id in self.parts_of and entry is None:
            rule = rule_of(person.regulation) or self.regulation
            plain = rule.plain(self.parts_of[person.id], agency.abbreviation)
            plain = "" if plain == address.local else f"{plain}@{address.domain}"
            holder = self.holder(plain, person) if plain else ""
        return Mailbox(
            person.id,
            Kind.PERSON,
            agency.id,
            person.name,
            address,
            attrs,
            person.state,
            details.suspension,
            person,
            person.loc,
            plain,
            holder,
            regulation=person.regulation or "",
        )


def mailboxes(
    inventory: Inventory,
    regulation: Regulation,
    live: Mapping[str, Entry],
    taken: Mapping[str, str],
    holders: Mapping[str, str],
    refused: frozenset[str] = frozenset(),
    current: Mapping[str, str | None] | None = None,
) -> tuple[Mailboxes, list[Problem]]:
    """The desired mailboxes keyed by stable id (agencies with their units, then people, in
    inventory order), and the names the regulation cannot turn into an address (as problems with
    file and line). The `refused` records get none. `current`: the address of each stable id's
    entry (by default read from `live`)."""
    settings = inventory.settings
    if current is None:
        current = {key: entry.mail for key, entry in live.items()}
    wanted, problems = _wanted(inventory, current, refused)
    del current  # in the wanted mailboxes now: not alive through the allocation, its peak
    addresses = _allocated(inventory, regulation, wanted, taken, holders, problems)
    # only a mailbox to create is told why it does not get the plain form (`person`)
    parts_of = {w.key: w.parts for w in wanted if w.parts is not None and w.key not in live}
    del wanted  # 100,000 of them, not alive while the sources are gathered
    build = _Builder(
        live=live,
        addresses=addresses,
        parts_of=parts_of,
        agencies={a.id: a for a in inventory.agencies},
        regulation=regulation,
        default_quota=settings.quota if settings.quota is not None else regulation.default_quota,
        taken=taken,
        inventory_people=inventory.people,
    )
    sources: dict[str, Any] = {}
    for agency in inventory.agencies:
        key = agency_key(agency.id)
        if key in addresses:
            sources[key] = agency
        for unit in agency.units:
            key = unit_key(agency.id, unit.id)
            if key in addresses:
                sources[key] = (agency, unit)
    for person in inventory.people:
        if person.state is not State.ABSENT and person.id in addresses:
            sources[person.id] = person
    return Mailboxes(build, sources), problems


def _with_rdn(entry: Entry, attr: str, values: tuple[str, ...]) -> tuple[str, ...]:
    """`values` of `attr`, with the value naming the entry when its DN is named by `attr` (an
    adopted legacy entry `cn=Nguyễn Văn A,ou=…` keeps its cn: LDAP refuses to remove it)."""
    if entry.dn.partition("=")[0].strip().lower() != attr:
        return values  # named by another attribute (the tool's uid=…): nothing to parse
    try:
        rdn_attr, named = parse_dn(entry.dn)[0]
    except (ValueError, IndexError):
        return values
    if rdn_attr.lower() != attr or named in values:
        return values
    return tuple(sorted((*values, named)))


def _attrs(
    address: Address,
    *,
    cn: str,
    sn: str,
    given: str | None,
    title: str | None,
    o: str,
    ou: str | None,
    kind: Kind,
    agency: str,
    unit: str | None,
    manager: str | None,
    quota: int,
    decision: str | None,
    aliases: tuple[str, ...],
) -> dict[str, tuple[str, ...]]:
    def one(value: str | None) -> tuple[str, ...]:
        return (value,) if value else ()

    return {
        "uid": (address.local,),
        "mail": (str(address),),
        "cn": (cn,),
        "displayName": (cn,),
        "sn": (sn,),
        "givenName": one(given),
        "title": one(title),
        "o": (o,),
        "ou": one(ou),
        "govMailKind": (kind.value,),
        "govMailAgency": (agency,),
        "govMailUnit": one(unit),
        "govMailManager": one(manager),
        "govMailQuota": (str(quota),),
        "govMailQuotaDecision": one(decision),
        "govMailAlias": aliases,
        ORIGIN: (),  # a merged person's (`_Builder.person`)
    }


def _allocated(
    inventory: Inventory,
    regulation: Regulation,
    wanted: list[naming.Wanted],
    taken: Mapping[str, str],
    holders: Mapping[str, str],
    problems: list[Problem],
) -> naming.Allocation:
    """The allocated address of every `wanted` mailbox; the records that get none are added to
    `problems` (at the record's file and line)."""
    settings = inventory.settings
    allocation = naming.allocate(
        wanted, taken, settings.reserved, settings.domain, regulation, holders=holders
    )
    _report(inventory, allocation.problems, problems)
    return allocation


def _report(inventory: Inventory, refused: Mapping[str, str], problems: list[Problem]) -> None:
    """Add to `problems` why each `refused` mailbox (by stable id) gets no address, at its
    record's file and line."""
    if refused:
        records = _records(inventory)
        for key, reason in refused.items():
            loc, who = records[key]
            problems.append(inventory.problem(loc, f"{who}: {reason}"))


def _records(inventory: Inventory) -> dict[str, tuple[Loc, str]]:
    """Where each mailbox's record is, and how a message names it, by stable id."""
    found: dict[str, tuple[Loc, str]] = {}
    for agency in inventory.agencies:
        found[agency_key(agency.id)] = (agency.loc, f"agency {agency.id}")
        for unit in agency.units:
            found[unit_key(agency.id, unit.id)] = (unit.loc, f"unit {unit.id}")
    for person in inventory.people:
        found[person.id] = (person.loc, f"staff {person.id}")
    return found


@dataclass(frozen=True, slots=True)
class Desired:
    """The inventory's mailboxes against the entries read from the directory."""

    live: Mapping[str, Entry]  # by stable id: the managed entries, then the adopted ones
    unmanaged: list[str]  # DNs of the person entries the tool neither manages nor adopts
    taken: dict[str, str]  # every address in use → the stable id holding it ("" when none)
    boxes: Mailboxes
    problems: list[Problem]  # names the regulation cannot turn into an address
    #: records of deleted mailboxes (not recoverable) the plan does not create again
    refused: list[Refusal] = field(default_factory=list)
    history: list[Tombstone] = field(default_factory=list)
    foreign_ids: dict[str, str] = field(default_factory=dict)  # employeeNumber → DN, of others'
    #: the addresses two entries hold: who keeps each, and the others
    shared: Shared = field(default_factory=dict)
    #: a digest of every entry read (`Survey.fingerprint`), and which of the containers a plan
    #: may create exist (lower case)
    fingerprint: str = ""
    present: frozenset[str] = frozenset()


def tombstone(entry: Entry) -> Tombstone:
    reason = entry.get(DELETE_REASON) or ""
    return Tombstone(
        id=entry.get(FORMER_ID) or "",
        addresses=tuple(a.lower() for a in entry.all(FORMER_ADDRESS)),
        deleted_at=parse_time(entry.get(DELETED_AT)),
        clause=reason.split(":", 1)[0].strip(),
        name=entry.get("displayName") or "",
        agency=entry.get("govMailAgency") or "",
    )


def _quarantined(stone: Tombstone, now: dt.datetime | None, months: int) -> bool:
    """Its addresses are still kept from anyone else: within `months` of the deletion (always,
    when the time of the deletion or the clock is unknown)."""
    if stone.deleted_at is None or now is None:
        return True
    return not lifecycle.elapsed(stone.deleted_at, now, months)


def _refusals(
    inventory: Inventory,
    history: Mapping[str, Tombstone],
    live: Mapping[str, Entry],
    regulation: Regulation,
) -> list[Refusal]:
    """The records whose mailbox was deleted and is not in the directory: a deleted mailbox is
    not recoverable, so the plan creates none for them unless the record states a new request
    dated on or after the deletion (which gets a new address)."""
    refused = []
    for person in inventory.people:
        stone = history.get(person.id)
        if stone is None or person.state is State.ABSENT or person.id in live:
            continue
        day = lifecycle.local_day(stone.deleted_at) if stone.deleted_at else None
        request = person.new_request
        if request is not None and (day is None or (request.date or dt.date.min) >= day):
            continue
        when = f" on {day.isoformat()}" if day else ""
        cited = regulation.irreversible_delete_clause or stone.clause or regulation.delete_clause
        under = f" under {stone.clause}" if stone.clause else ""
        held = ", ".join(stone.addresses) or "its address"
        refused.append(
            Refusal(
                id=person.id,
                agency=person.agency,
                name=person.name,
                clause=cited,
                reason=(
                    f"its mailbox ({held}) was deleted{when}{under} and is not recoverable: "
                    f"remove the record from {person.loc.file}, or, for a new mailbox, state the "
                    "new request on it (`new_request: {ref, date}`); it gets a new address, "
                    "never a deleted one"
                ),
            )
        )
    return refused


def resolve(
    inventory: Inventory,
    entries: Iterable[Entry],
    regulation: Regulation,
    now: dt.datetime | None = None,
) -> Desired:
    """Match the entries by stable id, adopt what the inventory pins (`adoptions`), refuse the
    records of deleted mailboxes (`_refusals`), and allocate every address against the addresses
    in use and those of deleted mailboxes still in quarantine at `now`. The entries read by
    `pipeline.read` come surveyed (`Surveyed`): they are unpacked again only to be compared."""
    settings = inventory.settings
    read: Sequence[Entry]
    if isinstance(entries, Surveyed):
        survey, read = entries.survey, entries
        survey.read()
    else:
        read = entries if isinstance(entries, Sequence) else list(entries)
        survey = Survey.of(settings, read)
        survey.read()
    positions = survey.positions
    unmanaged = survey.unmanaged
    adopted = adoptions(survey.candidates, inventory, positions, read)
    for key, candidate in adopted.items():
        positions[key] = candidate.position
        survey.current[key] = candidate.mail
    if adopted:
        kept = {c.position for c in adopted.values()}
        unmanaged = [(at, dn) for at, dn in unmanaged if at not in kept]
    shared: Shared = {}
    if survey.repeated:  # an address two entries hold: who keeps it, over every entry again
        owner = {c.position: key for key, c in adopted.items()}
        taken, holders = _taken(read, owner, shared)
    else:
        taken, holders = survey.taken, survey.holders
        for key, candidate in adopted.items():
            for address in candidate.claimed:
                taken[address] = key
    _inventory_aliases(taken, inventory)
    live = Live(read, positions)
    stones = survey.stones
    latest: dict[str, Tombstone] = {}
    for stone in sorted(
        stones, key=lambda t: t.deleted_at or dt.datetime.min.replace(tzinfo=dt.UTC)
    ):
        latest[stone.id] = stone
    refused = _refusals(inventory, latest, live, regulation)
    renewed = {p.id for p in inventory.people if p.new_request is not None}
    for stone in stones:
        # kept from everyone during the quarantine, and from the person for good
        if stone.id in renewed or _quarantined(stone, now, settings.quarantine_months):
            folded = names.folded_name(stone.name)
            for address in stone.addresses:
                taken.setdefault(address, deleted_key(stone.id))
                if folded:
                    holders.setdefault(address, folded)
    boxes, problems = mailboxes(
        inventory,
        regulation,
        live,
        taken,
        holders,
        frozenset(r.id for r in refused),
        current=survey.hand_over(),  # not kept here: `mailboxes` drops it before allocating
    )
    return Desired(
        live,
        [dn for _, dn in unmanaged],
        taken,
        boxes,
        problems,
        refused,
        stones,
        dict(survey.foreign_ids),
        shared,
        fingerprint=survey.fingerprint,
        present=frozenset(survey.present),
    )


def _offline(
    inventory: Inventory, regulation: Regulation
) -> tuple[list[naming.Wanted], dict[str, str], dict[str, str], list[Problem]]:
    """What the allocator is asked in an empty directory: every mailbox, the addresses taken
    (the inventory's own aliases and pins) with their holders' names, and the names the
    regulation cannot split."""
    taken, holders = taken_addresses((), inventory)
    for person in inventory.people:
        if person.address:
            # a pin is taken at face value here (one on a reserved local part is there only where
            # the record says it was issued before: the loader refuses it otherwise); the plan
            # checks it against the directory
            taken.setdefault(person.address.lower(), person.id)
    wanted, problems = _wanted(inventory, {})
    return wanted, taken, holders, problems


def check(inventory: Inventory, regulation: Regulation) -> list[Problem]:
    """The regulation's checks that need the address rules: every name gives an address, and the
    inventory's own addresses do not collide. Run by `validate` without a directory: the
    allocation's problems (`naming.problems`: the addresses of people who cannot fail are not
    worked out) and no entries."""
    wanted, taken, holders, problems = _offline(inventory, regulation)
    settings = inventory.settings
    refused = naming.problems(
        wanted, taken, settings.reserved, settings.domain, regulation, holders=holders
    )
    _report(inventory, refused, problems)
    return problems


def addresses(inventory: Inventory, regulation: Regulation) -> dict[str, Address]:
    """The address of every mailbox of the inventory (by stable id) as the regulation gives them
    without a directory: what a merge records as each record's former address, when the former
    province's directory was made from this inventory."""
    wanted, taken, holders, problems = _offline(inventory, regulation)
    return dict(_allocated(inventory, regulation, wanted, taken, holders, problems))
