"""Names to addresses: transliteration, splitting and allocation, driven by the regulation.

Pure: no I/O. The regulation (`reconciler.regulations`) says what an address looks like; this module
folds Vietnamese names to ASCII, splits them into family / middle / given names, and hands out
addresses over the set of addresses already taken, deterministically.

Decisions where the regulations are silent (each is also documented at the function concerned):

- Folding keeps only ``[a-z0-9]``: apostrophes (H'Hen), hyphens (Y-Moan), zero-width characters,
  soft hyphens and BOMs are dropped, never turned into a separator.
- A name's words are its whitespace-separated words after NFC; a word that folds to nothing (a lone
  apostrophe) is dropped. Split overrides must be part of the name (see `split`).
- Local parts are at most 64 characters (RFC 5321); the given name is shortened first, because the
  initials, the number and the agency part are what tell people apart.
- Built-in reserved local parts (`ALWAYS_RESERVED`) and the inventory's ``reserved`` are never
  issued to anyone new; an address a mailbox already holds is never taken back, even if it becomes
  reserved.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from unidecode import unidecode

from .errors import NamingError
from .model import Address, Kind

if TYPE_CHECKING:
    from .regulations import Regulation

#: Local parts no mailbox is ever given (RFC 2142 role addresses and the usual system ones).
ALWAYS_RESERVED = frozenset(
    {"postmaster", "abuse", "admin", "root", "webmaster", "noreply", "hostmaster", "security"}
)
#: RFC 5321 limit of a local part.
MAX_LOCAL = 64

# Đ/đ have no decomposition; Ð (U+00D0, Icelandic eth) and Ɖ/ɖ (African D) are look-alikes typed
# for it. Invisible characters are dropped before unidecode, which would turn U+200B into a space.
_PRE = str.maketrans(
    {
        "Đ": "d",
        "đ": "d",
        "Ð": "d",
        "Ɖ": "d",
        "ɖ": "d",
        "\u00ad": None,  # soft hyphen
        "\u180e": None,  # Mongolian vowel separator
        "\u200b": None,  # zero-width space
        "\u200c": None,  # zero-width non-joiner
        "\u200d": None,  # zero-width joiner
        "\u2060": None,  # word joiner
        "\ufeff": None,  # BOM / zero-width no-break space
    }
)
_SURROGATES = re.compile("[\ud800-\udfff]")
_NOT_ALNUM = re.compile("[^a-z0-9]+")
_INVISIBLE = re.compile("[\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff]")


@functools.lru_cache(maxsize=1 << 16)
def fold(text: str) -> str:
    """The ASCII form of `text` used in addresses: only ``[a-z0-9]``, possibly empty.

    Cached: a province's names are some thousands of distinct words, folded a few hundred
    thousand times (validate of 100,000 staff spent a fifth of its time here).

    NFC first (TCVN 6909:2001; NFD input is common), then Đ/đ and the look-alikes Ð, Ɖ, ɖ become
    ``d``, zero-width characters, soft hyphens and BOMs are dropped, unidecode removes every
    diacritic (ơ̆ and the Ê Đê letters included), and everything but ASCII letters and digits —
    apostrophes ' ’ ʼ, hyphens, spaces, punctuation — is dropped. Never raises.
    """
    text = _SURROGATES.sub("", text)  # unidecode warns on lone surrogates
    text = unicodedata.normalize("NFC", text).translate(_PRE)
    return _NOT_ALNUM.sub("", unidecode(text).lower())


# ---------------------------------------------------------------------------------------------
# Names


@dataclass(frozen=True, slots=True)
class NameParts:
    """A person's name split for the address rules; every word folded to ASCII (`fold`).

    `full` is the folded full name in the order it is written, words joined by one space: two
    people have "identical diacritic-free names" (hagiang-2024 Đ5.2 b) when their `full` are equal.
    """

    family: tuple[str, ...]
    middle: tuple[str, ...]
    given: str
    full: str

    @property
    def initials_words(self) -> tuple[str, ...]:
        """The words whose initials the address takes: family names, then middle names."""
        return self.family + self.middle


def _name_words(text: str) -> list[str]:
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", _SURROGATES.sub("", text)))
    return [f for f in (fold(w) for w in text.split()) if f]


def _find_span(words: Sequence[str], target: str, *, from_end: bool) -> tuple[int, int] | None:
    """A run words[i:j] whose concatenation equals `target` (so "Alăng" matches "A Lăng")."""
    starts = range(len(words) - 1, -1, -1) if from_end else range(len(words))
    for i in starts:
        joined = ""
        for j in range(i, len(words)):
            joined += words[j]
            if joined == target:
                return i, j + 1
            if len(joined) >= len(target):
                break
    return None


def split(
    name: str,
    family: str | None = None,
    middle: str | None = None,
    given: str | None = None,
) -> NameParts:
    """Split a full name into family, middle and given names, folded to ASCII.

    Without overrides: first word = family name, last word = given name, words between = middle
    names (Kinh order). Whitespace is collapsed, case and diacritics ignored, and a word that folds
    to nothing (a lone apostrophe) is dropped.

    Overrides win, for names whose family name is not first (Ê Đê "H'Hen Niê", Gia Rai "Nay H'Wil")
    or whose given name has two words (Khmer "Thạch Thị Sô Phia"):

    1. Each override must be a run of words of the name, compared without diacritics, case or
       spaces ("A Lăng" matches "Alăng"); it is cut out of the name. The given name is looked for
       from the end, the others from the start. An override not found → `NamingError`.
    2. The given name, if not overridden, is the last remaining word — except when the family name
       was overridden and ends the name (personal name first, clan last, Ê Đê): then it is every
       remaining word ("Y Ngông Niê Kdăm" with family "Niê Kdăm" → given "yngong").
    3. The family name, if not overridden, is the first remaining word when neither given nor middle
       was overridden (the default split); otherwise it is every remaining word, in order.
    4. The middle names, if not overridden, are what remains.

    An empty override (``family=""``) means "none": a name may then have no family name (Ba Na
    "A Huy" with given "A Huy"), and its address is the given name alone. A one-word name without
    any override, or an empty given name, raises `NamingError`.
    """
    words = _name_words(name)
    if not words:
        raise NamingError(f"the name {name!r} has no letters that can be used in an address")
    if family is None and middle is None and given is None and len(words) < 2:
        raise NamingError(
            f"the name {name!r} is a single word: the regulation needs a family name and a given "
            "name; say which is which with `family:` / `given:` in the inventory"
        )
    rest: list[str | None] = list(words)  # None marks a word taken by an override
    spans: dict[str, tuple[int, int]] = {}
    for label, value in (("given", given), ("family", family), ("middle", middle)):
        if value is None:
            continue
        target = "".join(_name_words(value))
        if not target:
            if label == "given":
                raise NamingError(f"the given name {value!r} of {name!r} has no usable letters")
            continue
        live = [w if w is not None else "\x00" for w in rest]
        span = _find_span(live, target, from_end=label == "given")
        if span is None:
            raise NamingError(
                f"the {label} name {value!r} is not part of the name {name!r} (compared without "
                "diacritics, case or spaces)"
            )
        spans[label] = span
        for i in range(*span):
            rest[i] = None
    remaining = [w for w in rest if w is not None]

    def part(label: str, value: str | None) -> tuple[str, ...]:
        if value is None:
            return ()
        span = spans.get(label)
        return tuple(words[span[0] : span[1]]) if span else ()

    family_w, middle_w, given_w = (
        part("family", family),
        part("middle", middle),
        part("given", given),
    )
    if given is None:
        family_span = spans.get("family")
        if family_span is not None and family_span[1] == len(words) and family_span[0] > 0:
            given_w, remaining = tuple(remaining), []
        else:
            given_w, remaining = tuple(remaining[-1:]), remaining[:-1]
    if family is None:
        if given is None and middle is None:
            family_w, remaining = tuple(remaining[:1]), remaining[1:]
        else:
            family_w, remaining = tuple(remaining), []
    if middle is None:
        middle_w = tuple(remaining)
    given_s = "".join(given_w)
    if not given_s:
        raise NamingError(f"the name {name!r} leaves no given name once the overrides are cut out")
    return NameParts(family=family_w, middle=middle_w, given=given_s, full=" ".join(words))


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


@dataclass(frozen=True, slots=True)
class Wanted:
    """One mailbox the inventory asks for, as the allocator needs it.

    `key` is the stable id (staff id, ``agency:<id>``, ``unit:<agency>/<unit>``); `parts` is set
    for people; `mailbox` is a quangnam-2020 organisation mailbox local part; `pinned` a full
    address fixed by the inventory; `current` the full address the directory holds now for `key`.
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


_MAILBOX = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
_DOMAIN = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*\Z")


def _order(w: Wanted) -> tuple[int, int, int, str]:
    kind = {Kind.AGENCY: 0, Kind.UNIT: 1, Kind.PERSON: 2}[w.kind]
    rank = (0, w.rank) if w.rank is not None else (1, 0)
    return (kind, *rank, w.key)


class _Allocator:
    """The state of one `allocate` run: every lookup is a dict or set probe."""

    def __init__(
        self,
        taken: Mapping[str, str],
        reserved: Iterable[str],
        domain: str,
        regulation: Regulation,
        holders: Mapping[str, str],
        pending: set[str],
    ) -> None:
        self.taken = taken
        self.reserved = ALWAYS_RESERVED | {r.strip().lower() for r in reserved}
        self.domain = domain
        self.regulation = regulation
        self.holders = holders  # address → folded full name of its holder (directory)
        self.names: dict[str, str] = {}  # address → folded full name (this run)
        self.allocated: set[str] = set()
        self.pending = pending  # keys not yet given an address in this run
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
        return self.names.get(address) or self.holders.get(address)

    def take(self, key: str, address: str, name: str | None) -> None:
        self.allocated.add(address)
        self.pending.discard(key)
        if name is not None:
            self.names[address] = name

    def numbered(self, key: str, parts: NameParts, stem: str, abbr: str) -> str:
        """The smallest free numbered form 1, 2, 3… of `stem`."""
        render = self.regulation.render
        hint_key = (stem + "\x00" + parts.given, abbr)
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
        reg = self.regulation
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
                return self.numbered(w.key, parts, stem, abbr), False
        return self.numbered(w.key, parts, first or "", abbr), False


def allocate(
    mailboxes: Sequence[Wanted],
    taken: Mapping[str, str],
    reserved: Iterable[str],
    domain: str,
    regulation: Regulation,
    *,
    holders: Mapping[str, str] | None = None,
) -> dict[str, Address]:
    """Give every mailbox its address under `regulation`; key → `Address(local, domain, clause)`.

    `taken` maps every address already in use (mail and aliases of every entry, managed or not, and
    the inventory's aliases; lower case) to the key holding it ("" when unmanaged or unknown).
    `holders` maps such addresses to their holder's folded full name (`NameParts.full`), for the
    hagiang-2024 Đ5.2 test "identical diacritic-free names"; a holder not in it counts as a
    different name. quangnam-2020 agencies without `mailbox` and quangnam-2020 units get no entry.

    Order, deterministic and independent of the order of `mailboxes`:

    1. Pinned addresses, kept exactly (their own domain), with the person clause (the plan knows
       it is pinned from the inventory). A pin held in `taken` by another key, pinned twice, or on a
       reserved local part that is not already the mailbox's own → `NamingError`.
    2. Sticky: a person keeps `current` when the regulation `accepts` its local part for the
       person's present name and agency (so a diacritic or case fix changes nothing);
       organisation and unit mailboxes whose `current` is their address keep it. If `domain`
       changed, the local part is kept in the new domain when free. A kept address may be
       reserved: an issued address is never revoked.
    3. The rest, in this order: organisation mailboxes, unit mailboxes (both by key), then people
       by (rank, no rank last, then key). Organisation and unit addresses are fixed by the
       regulation; one already held by another key → `NamingError` (never taken back).
       People get their first free candidate: the plain form (person clause), else the collision
       forms (collision clause). An address is free when it is not reserved, not allocated in this
       run, and not in `taken` under another key (a person's own former addresses are free to them).

    Collision forms: quangnam-2020 Đ4.2 appends the smallest free number (vanntt1). hagiang-2024
    Đ5.2: when the holder's name differs, lengthen the initials letter by letter (family names,
    then middle names); when it is identical, number the form that met it (nvson1.sotttt,
    ngvson1.sotttt); when lengthening is exhausted, number the plain form.
    """
    holders = holders or {}
    domain = domain.strip().lower()
    if not _DOMAIN.match(domain):
        raise NamingError(f"{domain!r} is not a mail domain")
    seen: set[str] = set()
    for w in mailboxes:
        if w.key in seen:
            raise NamingError(f"the key {w.key!r} is asked for twice")
        seen.add(w.key)
    taken_l = {a.lower(): k for a, k in taken.items()}
    holders_l = {a.lower(): n for a, n in holders.items()}
    ordered = sorted(mailboxes, key=_order)
    state = _Allocator(taken_l, reserved, domain, regulation, holders_l, set(seen))
    result: dict[str, Address] = {}
    problems: list[str] = []
    failed: set[str] = set()  # keys with a problem: no address is made up for them
    reg = regulation

    def give(w: Wanted, local: str, dom: str, clause: str) -> None:
        address = f"{local}@{dom}"
        state.take(w.key, address, w.parts.full if w.parts else None)
        result[w.key] = Address(local, dom, clause)

    def fixed_local(w: Wanted) -> str | None:
        if w.kind is Kind.AGENCY:
            local = reg.agency_local(w.agency_abbr, w.mailbox)
        elif w.kind is Kind.UNIT:
            local = reg.unit_local(w.unit_abbr or "", w.agency_abbr)
        else:
            return None
        if local is not None and (len(local) > MAX_LOCAL or not _MAILBOX.match(local)):
            raise NamingError(f"{local!r} cannot be the local part of an address")
        return local

    def newcomer(w: Wanted) -> None:
        if w.kind is Kind.PERSON:
            if w.parts is None:
                raise NamingError("a person without a split name")
            local, plain_form = state.person(w, w.parts)
            give(w, local, domain, reg.person_clause if plain_form else reg.collision_clause)
            return
        fixed = fixed_local(w)
        if fixed is None:
            state.pending.discard(w.key)
            return
        local = fixed
        address = state.full(local)
        if not state.free_for(address, local, w.key):
            holder = taken_l.get(address)
            if address in state.allocated:
                who = "another mailbox of this inventory"
            elif local in state.reserved:
                who = "the reserved local parts"
            else:
                who = f"mailbox {holder}" if holder else "an entry the tool does not manage"
            raise NamingError(
                f"its address {address} is fixed by {reg.code} but already held by {who}; "
                "addresses are never taken back"
            )
        give(w, local, domain, reg.unit_clause if w.kind is Kind.UNIT else reg.agency_clause)

    # 1. pins
    for w in ordered:
        if w.pinned is None:
            continue
        pinned = w.pinned.strip().lower()
        local, at, dom = pinned.rpartition("@")
        failed.add(w.key)
        if not at or not local or not dom or len(local) > MAX_LOCAL:
            problems.append(f"{w.key}: the pinned address {w.pinned!r} is not a valid address")
            continue
        holder = taken_l.get(pinned)
        own = holder == w.key or (w.current or "").lower() == pinned
        if pinned in state.allocated:
            problems.append(f"{w.key}: the pinned address {pinned} is pinned for another mailbox")
        elif holder is not None and holder != w.key:
            who = f"mailbox {holder}" if holder else "an entry the tool does not manage"
            problems.append(f"{w.key}: the pinned address {pinned} is already held by {who}")
        elif local in state.reserved and not own:
            problems.append(f"{w.key}: the pinned address {pinned} uses a reserved local part")
        else:
            clause = reg.agency_clause if w.kind is not Kind.PERSON else reg.person_clause
            give(w, local, dom, clause)
            failed.discard(w.key)

    # 2. sticky
    for w in ordered:
        if w.key in result or w.key in failed or w.current is None:
            continue
        local = w.current.strip().lower().rpartition("@")[0]
        address = state.full(local)
        if not local or address in state.allocated:
            continue
        holder = taken_l.get(address)
        if holder is not None and holder != w.key:
            continue
        try:
            if w.kind is Kind.PERSON:
                if w.parts is None or not reg.accepts(local, w.parts, w.agency_abbr):
                    continue
                plain = reg.plain(w.parts, w.agency_abbr)
                clause = reg.person_clause if local == plain else reg.collision_clause
            elif local == fixed_local(w):
                clause = reg.unit_clause if w.kind is Kind.UNIT else reg.agency_clause
            else:
                continue
        except NamingError:
            continue  # reported when it is allocated below
        give(w, local, domain, clause)

    # 3. newcomers and changed ones
    for w in ordered:
        if w.key in result or w.key in failed:
            continue
        try:
            newcomer(w)
        except NamingError as error:
            state.pending.discard(w.key)
            problems.append(f"{w.key}: {error}")

    if problems:
        raise NamingError("\n".join(sorted(problems)))
    return result
