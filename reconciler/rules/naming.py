"""Handing out addresses: the regulation's forms over the addresses already taken.

Pure: no I/O. The regulation (`reconciler.rules.regulations`) says what an address looks like; this
module gives every mailbox the inventory asks for its address, deterministically, over the set of
addresses already taken (`allocate`), and the plain address of a name (`address_for`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter

from reconciler.errors import NamingError
from reconciler.model import Address, Kind
from reconciler.names import MAX_LOCAL, RESERVED, NameParts, split, why_reserved
from reconciler.rules.regulations import Regulation


def address_for(
    name: str, regulation: Regulation, agency_abbr: str | None, domain: str | None = None
) -> str:
    """The plain address a person called `name` would get (`reconciler address`), no collisions.

    Uses the default split; `domain` defaults to the regulation's province domain.
    """
    if regulation.transfer_renames and not agency_abbr:
        raise NamingError(
            f"{regulation.id} puts the agency abbreviation in every personal address: "
            "--agency is needed"
        )
    parts = split(name)
    local = regulation.plain(parts, agency_abbr or "")
    return f"{local}@{(domain or regulation.domain).lower()}"


# ---------------------------------------------------------------------------------------------
# Allocation


@dataclass(slots=True)
class Wanted:
    """One mailbox the inventory asks for, as the allocator needs it.

    `key` is the stable id (staff id, ``agency:<id>``, ``unit:<agency>/<unit>``); `parts` is set
    for people; `mailbox` is a quangnam-2020 organisation mailbox local part; `pinned` a full
    address fixed by the inventory; `current` the full address the directory holds now for `key`.

    Not frozen, though nothing changes one once made: a plan makes one per mailbox twice (the
    check, then the comparison), and a frozen dataclass's `__init__` took three times as long
    (0.17 s for 100,000).
    """

    key: str
    kind: Kind
    parts: NameParts | None = None
    agency_abbr: str = ""
    unit_abbr: str | None = None
    mailbox: str | None = None
    rank: int | None = None
    pinned: str | None = None
    current: str | None = None
    #: the regulation that gives this mailbox its address when not the allocation's (a former
    #: territory kept under its own regulation after a merger)
    regulation: Regulation | None = None


_MAILBOX = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
# the labels of directory.schema.json's domain: hyphens inside a label, even two (xn--)
_DOMAIN = re.compile(r"[a-z0-9]+(?:(?:\.|-+)[a-z0-9]+)*\Z")


class Allocation(Mapping[str, Address]):
    """What `allocate` gave: the address of every mailbox that got one, by key, and in `problems`
    why each of the others got none (key → a sentence in plain words, without the key).

    Each `Address` is made when asked for: the allocation keeps a mailbox's address as one str
    (for a mailbox that keeps its address, the very str read from its entry) and its clause only
    where it is not `clause`, the regulation's person clause. 100,000 addresses kept as `Address`
    objects with their local parts were some 12 MB at a plan's peak."""

    def __init__(
        self,
        addresses: dict[str, str],
        clauses: dict[str, str],
        clause: str,
        problems: dict[str, str],
    ) -> None:
        self.addresses = addresses  # key → the full address, lower case
        self.clauses = clauses  # key → its clause, where it is not `clause`
        self.clause = clause
        self.problems = problems

    def address(self, key: str) -> str:
        """The full address of `key` (`str(self[key])`, without making the `Address`)."""
        return self.addresses[key]

    def __getitem__(self, key: str) -> Address:
        local, _, domain = self.addresses[key].rpartition("@")
        return Address(local, domain, self.clauses.get(key, self.clause))

    def __contains__(self, key: object) -> bool:
        return key in self.addresses

    def __iter__(self) -> Iterator[str]:
        return iter(self.addresses)

    def __len__(self) -> int:
        return len(self.addresses)


def describe_holder(key: str) -> str:
    """Who holds an address, in words, from its holder's key ("" = not the tool's)."""
    if not key:
        return "an entry the tool does not manage"
    if key.startswith("deleted:"):
        return (
            f"the deleted mailbox of {key.removeprefix('deleted:')} (kept from reissue: the "
            "quarantine in directory.yaml)"
        )
    if key.startswith("agency:"):
        return f"the organisation mailbox of agency {key.removeprefix('agency:')}"
    if key.startswith("unit:"):
        agency, _, unit = key.removeprefix("unit:").partition("/")
        return f"the mailbox of unit {unit} of agency {agency}"
    return f"the mailbox of staff {key}"


_KIND_ORDER = {Kind.AGENCY: 0, Kind.UNIT: 1, Kind.PERSON: 2}


#: the place of a mailbox without a rank, by kind: one tuple shared by most mailboxes
_UNRANKED = {kind: (order, 1, 0) for kind, order in _KIND_ORDER.items()}


def _order(w: Wanted) -> tuple[int, int, int]:
    """A mailbox's place in the allocation's order, before its key: kind, then rank, no rank
    last."""
    rank = w.rank
    if rank is None:
        return _UNRANKED[w.kind]
    return (_KIND_ORDER[w.kind], 0, rank)


def _ordered(mailboxes: Sequence[Wanted]) -> list[Wanted]:
    """`mailboxes` in the allocation's order: by `_order`, then by key. Two stable sorts, the
    second by a tuple most mailboxes share: one sort by a tuple made for each mailbox was some
    9 MB of tuples at 100,000."""
    ordered = sorted(mailboxes, key=attrgetter("key"))
    ordered.sort(key=_order)
    return ordered


class _Allocator:
    """The state of one `allocate` run: every lookup is a dict or set probe."""

    def __init__(
        self,
        taken: Mapping[str, str],
        reserved: Iterable[str],
        domain: str,
        regulation: Regulation,
        holders: Mapping[str, str],
    ) -> None:
        self.taken = taken
        self.reserved = RESERVED | {r.strip().lower() for r in reserved}
        self.domain = domain
        self.regulation = regulation
        self.holders = holders  # address → folded full name of its holder (directory)
        #: key → the address given it in this run
        self.given: dict[str, str] = {}
        #: address → the mailbox given it in this run (its key, and its holder's folded full
        #: name, `NameParts.full`), unless `taken` and `holders` say as much (`take`)
        self.allocated: dict[str, Wanted] = {}
        #: keys not yet given an address in this run, as the newcomers (`allocate`'s step 3, the
        #: only one that asks) are allocated
        self.pending: set[str] = set()
        self.hint: dict[tuple[str, str], int] = {}  # numbering: first number maybe free

    def full(self, local: str) -> str:
        return f"{local}@{self.domain}"

    def free_for(self, address: str, local: str, key: str) -> bool:
        if address in self.allocated or local in self.reserved:
            return False
        holder = self.taken.get(address)
        return holder is None or holder == key

    def gone(self, address: str, local: str) -> bool:
        """Unavailable to everyone for the rest of the run."""
        if address in self.allocated or local in self.reserved:
            return True
        holder = self.taken.get(address)
        return holder is not None and holder not in self.pending

    def holder_name(self, address: str) -> str | None:
        given = self.allocated.get(address)
        if given is not None and given.parts is not None and given.parts.full:
            return given.parts.full
        return self.holders.get(address)

    def is_given(self, address: str) -> bool:
        """Is `address` given to a mailbox in this run?"""
        if address in self.allocated:
            return True
        holder = self.taken.get(address)
        return holder is not None and self.given.get(holder) == address

    def take(self, w: Wanted, address: str) -> None:
        self.given[w.key] = address
        self.pending.discard(w.key)
        # A mailbox that keeps the address `taken` says it holds, under the name `holders`
        # gives it (most, in a plan), is not in `allocated` (4 MB at 100,000): to every other
        # mailbox the address is not free, and gone, as held by it in `taken`; its holder's
        # name is the same in `holders`. Only `is_given` must look at `given` too.
        parts = w.parts
        if self.taken.get(address) != w.key or (
            parts is not None and parts.full and parts.full != self.holders.get(address)
        ):
            self.allocated[address] = w

    def numbered(
        self, key: str, parts: NameParts, stem: str, abbr: str, reg: Regulation | None = None
    ) -> str:
        """The smallest free numbered form 1, 2, 3… of `stem`."""
        reg = reg or self.regulation
        render = reg.render
        hint_key = (stem + "\x00" + parts.given + "\x00" + reg.id, abbr)
        n = self.hint.get(hint_key, 1)
        contiguous = True
        while True:
            local = render(stem, parts.given, n, abbr)
            address = self.full(local)
            if self.free_for(address, local, key):
                if contiguous:
                    self.hint[hint_key] = n
                return local
            if contiguous and self.gone(address, local):
                self.hint[hint_key] = n + 1
            else:
                contiguous = False
            n += 1

    def person(self, w: Wanted, parts: NameParts) -> tuple[str, bool]:
        """(local part, is the plain form) for a person who needs a new address."""
        reg = w.regulation or self.regulation
        abbr = w.agency_abbr
        first: str | None = None
        for stem in reg.stems(parts):
            if first is None:
                first = stem
            local = reg.render(stem, parts.given, None, abbr)
            address = self.full(local)
            if self.free_for(address, local, w.key):
                return local, stem == first
            if not reg.lengthens_initials:
                break
            if self.holder_name(address) == parts.full:
                # hagiang-2024 Đ5.2 b: identical names are numbered on the form that met them
                return self.numbered(w.key, parts, stem, abbr, reg), False
        return self.numbered(w.key, parts, first or "", abbr, reg), False


def _lowered(addresses: Mapping[str, str]) -> Mapping[str, str]:
    """`addresses` with lower-case keys: itself when they are (a plan's 100,000 addresses in
    use are, and a copy of them was some 15 MB)."""
    if all(a.isascii() and a.islower() for a in addresses):
        return addresses
    return {a.lower(): k for a, k in addresses.items()}


def _domain(domain: str) -> str:
    domain = domain.strip().lower()
    if not _DOMAIN.match(domain):
        raise NamingError(f"{domain!r} is not a mail domain")
    return domain


def _check_keys(mailboxes: Sequence[Wanted]) -> None:
    """`NamingError` for a key asked for twice or a person without `parts` (the caller's
    mistakes)."""
    seen: set[str] = set()
    for w in mailboxes:
        if w.key in seen:
            raise NamingError(f"the key {w.key!r} is asked for twice")
        if w.kind is Kind.PERSON and w.parts is None:
            raise NamingError(f"the person {w.key!r} has no split name")
        seen.add(w.key)


def allocate(
    mailboxes: Sequence[Wanted],
    taken: Mapping[str, str],
    reserved: Iterable[str],
    domain: str,
    regulation: Regulation,
    *,
    holders: Mapping[str, str] | None = None,
) -> Allocation:
    """Give every mailbox its address under `regulation`: key → `Address(local, domain, clause)`,
    and for a mailbox that cannot have the address it asks for, the reason (`Allocation.problems`).

    `taken` maps every address already in use (mail and aliases of every entry, managed or not, and
    the inventory's aliases; lower case) to the key holding it ("" when unmanaged or unknown).
    `holders` maps such addresses to their holder's folded full name (`NameParts.full`), for the
    hagiang-2024 Đ5.2 test "identical diacritic-free names"; a holder not in it counts as a
    different name. `reserved` are the inventory's reserved local parts, besides `RESERVED`.
    quangnam-2020 agencies without `mailbox` and quangnam-2020 units get no entry.

    Order, deterministic and independent of the order of `mailboxes`:

    1. Pinned addresses, kept exactly (their own domain), with the person clause (the plan knows
       it is pinned from the inventory). A pin held in `taken` by another key, pinned twice, or on a
       reserved local part that is not already the mailbox's own → a problem.
    2. Sticky: a person keeps `current` when the regulation `accepts` its local part for the
       person's present name and agency (so a diacritic or case fix changes nothing);
       organisation and unit mailboxes whose `current` is their address keep it. If `domain`
       changed, the local part is kept in the new domain when free. A kept address may be
       reserved: an issued address is never revoked.
    3. The rest, in this order: organisation mailboxes, unit mailboxes (both by key), then people
       by (rank, no rank last, then key). Organisation and unit addresses are fixed by the
       regulation; one that is reserved, too long, or already held by another key is a problem
       (an address is never taken back). People get their first free candidate: the plain form
       (person clause), else the collision forms (collision clause). An address is free when it
       is not reserved, not allocated in this run, and not in `taken` under another key (a
       person's own former addresses are free to them). A name whose every form is too long for
       a local part (the agency part leaves no room) is a problem.

    Collision forms: quangnam-2020 Đ4.2 appends the smallest free number (vanntt1). hagiang-2024
    Đ5.2: when the holder's name differs, lengthen the initials letter by letter (family names,
    then middle names); when it is identical, number the form that met it (nvson1.sotttt,
    ngvson1.sotttt); when lengthening is exhausted, number the plain form.

    A domain that is no mail domain, a key asked for twice, or a person without `parts` is a
    mistake of the caller, not of the inventory: `NamingError`.
    """
    holders = holders or {}
    domain = _domain(domain)
    _check_keys(mailboxes)
    own_reserved = {r.strip().lower() for r in reserved}
    taken_l = _lowered(taken)
    holders_l = _lowered(holders)
    ordered = _ordered(mailboxes)
    state = _Allocator(taken_l, own_reserved, domain, regulation, holders_l)
    result = state.given  # key → its full address
    clauses: dict[str, str] = {}  # key → its clause, where not the person clause (`Allocation`)
    problems: dict[str, str] = {}  # keys with a problem: no address is made up for them
    reg = regulation

    def give(w: Wanted, address: str, clause: str) -> None:
        state.take(w, address)
        if clause != reg.person_clause:
            clauses[w.key] = clause

    def refuse(w: Wanted, reason: str) -> None:
        state.pending.discard(w.key)
        problems[w.key] = reason

    def who_holds(address: str) -> str:
        if address in state.allocated:
            return describe_holder(state.allocated[address].key)
        return describe_holder(taken_l.get(address) or "")

    def fixed_local(w: Wanted) -> str | None:
        rule = w.regulation or reg
        if w.kind is Kind.AGENCY:
            return rule.agency_local(w.agency_abbr, w.mailbox)
        return rule.unit_local(w.unit_abbr or "", w.agency_abbr)

    def fixed(w: Wanted) -> None:
        """An organisation or unit mailbox: its address is the regulation's, or a problem."""
        rule = w.regulation or reg
        what = "unit mailbox" if w.kind is Kind.UNIT else "organisation mailbox"
        if w.kind is Kind.UNIT:
            change = "another unit abbreviation"
        elif rule.agency_mailboxes:
            change = "another agency abbreviation"
        else:
            change = "another `mailbox`"
        try:
            local = fixed_local(w)
        except NamingError as error:
            refuse(w, str(error))
            return
        if local is None:
            state.pending.discard(w.key)  # the regulation gives it no mailbox
            return
        address = state.full(local)
        if len(local) > MAX_LOCAL:
            refuse(
                w,
                f"its {what} {address} would have {len(local)} characters before the @, more "
                f"than {MAX_LOCAL}: choose {change}",
            )
        elif not _MAILBOX.match(local):
            refuse(w, f'"{local}" cannot be the local part of an address: choose {change}')
        elif local in state.reserved:
            refuse(w, f"its {what} would be {address}, but {why_reserved(local)}: choose {change}")
        elif not state.free_for(address, local, w.key):
            refuse(
                w,
                f"its {what} would be {address}, already held by {who_holds(address)}: choose "
                f"{change} (an address is never taken back)",
            )
        else:
            give(w, address, rule.unit_clause if w.kind is Kind.UNIT else rule.agency_clause)

    def newcomer(w: Wanted) -> None:
        if w.kind is not Kind.PERSON:
            fixed(w)
            return
        assert w.parts is not None
        try:
            local, plain_form = state.person(w, w.parts)
        except NamingError as error:
            refuse(w, f"no address fits: {error}")
            return
        rule = w.regulation or reg
        give(w, state.full(local), rule.person_clause if plain_form else rule.collision_clause)

    # 1. pins
    for w in ordered:
        if w.pinned is None:
            continue
        pinned = w.pinned.strip().lower()
        local, at, dom = pinned.rpartition("@")
        if not at or not local or not dom or len(local) > MAX_LOCAL:
            refuse(w, f'the pinned address "{w.pinned}" is not a valid address')
            continue
        held_by = taken_l.get(pinned)
        own = held_by == w.key or (w.current or "").lower() == pinned
        if state.is_given(pinned):
            refuse(w, f"the pinned address {pinned} is pinned on {who_holds(pinned)} too")
        elif held_by is not None and held_by != w.key:
            refuse(w, f"the pinned address {pinned} is already held by {describe_holder(held_by)}")
        elif local in state.reserved and not own:
            refuse(w, f"the pinned address {pinned} cannot be issued: {why_reserved(local)}")
        else:
            rule = w.regulation or reg
            clause = rule.agency_clause if w.kind is not Kind.PERSON else rule.person_clause
            give(w, pinned, clause)

    # 2. sticky
    for w in ordered:
        if w.key in result or w.key in problems or w.current is None:
            continue
        current = w.current.strip()
        if not (current.isascii() and current.islower()):
            current = current.lower()
        local = current.rpartition("@")[0]
        address = state.full(local)
        if address == current:
            address = current  # the str the caller holds, not a copy of it for each mailbox
        if not local or address in state.allocated:
            continue
        held_by = taken_l.get(address)
        if held_by is not None and held_by != w.key:
            continue
        rule = w.regulation or reg
        try:
            if w.kind is Kind.PERSON:
                if w.parts is None:
                    continue
                # the plain form is always one the regulation accepts: most people hold it
                if local == rule.plain(w.parts, w.agency_abbr):
                    clause = rule.person_clause
                elif rule.accepts(local, w.parts, w.agency_abbr):
                    clause = rule.collision_clause
                else:
                    continue
            elif local == fixed_local(w):
                clause = rule.unit_clause if w.kind is Kind.UNIT else rule.agency_clause
            else:
                continue
        except NamingError:
            continue  # reported when it is allocated below
        give(w, address, clause)

    # 3. newcomers and changed ones
    state.pending = {w.key for w in ordered if w.key not in result and w.key not in problems}
    for w in ordered:
        if w.key not in result and w.key not in problems:
            newcomer(w)

    return Allocation(result, clauses, reg.person_clause, problems)


def problems(
    mailboxes: Sequence[Wanted],
    taken: Mapping[str, str],
    reserved: Iterable[str],
    domain: str,
    regulation: Regulation,
    *,
    holders: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`allocate(...).problems` for mailboxes of which none has a `current` address (an
    inventory checked alone, `validate`), without allocating every person's address.

    A person with neither a pin nor a current address comes last in the allocation's order
    (step 3, after every organisation and unit mailbox): what it is given changes no other
    mailbox's problem, and it always gets an address — the plain form, a collision form or a
    numbered one — unless the regulation cannot render one (`NamingError`: an agency
    abbreviation that is no address part, or leaves no room for a name). A regulation's
    `render` fails or not whatever the initials and given name, and a number of more digits
    never fits where a shorter one does not (`test_render_fits_whatever_the_name`); no
    allocation numbers a form beyond one plus every address it could meet (those given, taken
    and reserved). So when each such person's forms render bare and with that bound, these
    persons have no problem and only the other mailboxes are allocated; otherwise everyone is,
    for the exact message."""
    reserved = tuple(reserved)
    if any(w.current is not None for w in mailboxes):
        return allocate(mailboxes, taken, reserved, domain, regulation, holders=holders).problems
    _domain(domain)
    _check_keys(mailboxes)
    newcomers = [w for w in mailboxes if w.kind is Kind.PERSON and w.pinned is None]
    bound = len(mailboxes) + len(taken) + len(RESERVED) + len(reserved) + 1
    fits: set[tuple[int, str]] = set()  # (regulation, agency abbreviation) known to render
    for w in newcomers:
        rule = w.regulation or regulation
        if (id(rule), w.agency_abbr) in fits:
            continue
        assert w.parts is not None
        stem = next(iter(rule.stems(w.parts)))
        try:
            rule.render(stem, w.parts.given, None, w.agency_abbr)
            rule.render(stem, w.parts.given, bound, w.agency_abbr)
        except NamingError:
            return allocate(
                mailboxes, taken, reserved, domain, regulation, holders=holders
            ).problems
        fits.add((id(rule), w.agency_abbr))
    others = [w for w in mailboxes if w.kind is not Kind.PERSON or w.pinned is not None]
    return allocate(others, taken, reserved, domain, regulation, holders=holders).problems
