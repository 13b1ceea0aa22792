"""`reconciler import`: an inventory written from an existing directory, keeping every address.

Pure: `build()` takes the entries read and the options and returns the inventory documents as
Python data with the report of the entries it left out; `files()` renders them as the text of
`directory.yaml`, `agencies/<id>.yaml` and the report. No I/O, no click, no ldap3.

What is imported, and how (the README's "Adopting an existing directory" says it for users):

- Every `inetOrgPerson` entry under the people base with one `mail` in the domain becomes a staff
  record whose current address is pinned (`address:`), its other addresses (`mail` values,
  `govMailAlias`, `mailAlternateAddress`) kept as `aliases`. A pin on a reserved local part (a
  person's legacy `admin@` mailbox, which has a staff number) says it was issued before:
  `legacy: true`, which validate asks of it.
- The stable id is the entry's `employeeNumber`, or else ``IMP-`` followed by the first 10 hex
  digits of the SHA-256 of the lower-cased address: deterministic, so importing twice gives the
  same ids, and meant to be replaced by the real staff number before adopting.
- The name is `displayName`, else `cn` (NFC, spaces collapsed); a locked account
  (`pwdAccountLockedTime`) is `state: suspended` on a neutral ground: the regulation's suspension
  on request (hagiang-2024 Đ8.1), or `found_at_import` where it has none (quangnam-2020).
- The agency is the first value of an attribute (`ou`, `departmentNumber`, `o`…), or the parent
  OU of the entry (`parent`), or found in a mapping file. Values equal once folded to ASCII are one
  agency, named by its most frequent spelling; its id is the folded words joined by hyphens and its
  abbreviation the folded name when short (≤ 10 letters), else the first word and the initials of
  the others ("và" left out): Sở Thông tin và Truyền thông → `so-thong-tin-va-truyen-thong`,
  `sotttt`.
- A login (`uid`) other than the address's local part (the whole address `hoatt@quangtri.gov.vn`,
  or another word) is kept as the record's `login`; an entry named `cn=…` keeps that cn and its DN.
- Entries that cannot be placed without guessing (no usable name, no mail, a duplicate mail or id,
  an address outside the domain or that the inventory cannot hold, no agency) are left out and
  reported with the reason; service accounts (no person class, or a role local part such as
  postmaster without a staff number) are reported as unmanaged. Neither is changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler import names, text
from reconciler.dn import is_descendant, normalize_dn, parent_dn, parse_dn, split_dn
from reconciler.errors import NamingError, ReconcilerError
from reconciler.inventory.loader import address_problem
from reconciler.model import Entry
from reconciler.rules import regulations
from reconciler.sheets import csv_text

#: What `import` reads of every entry (besides the agency attribute).
READ = (
    "objectClass",
    "employeeNumber",
    "uid",
    "mail",
    "cn",
    "displayName",
    "title",
    "ou",
    "o",
    "departmentNumber",
    "govMailAlias",
    "govMailQuota",
    "mailAlternateAddress",
    "pwdAccountLockedTime",
)
#: Local parts of role and system mailboxes: their entries are service accounts.
SERVICE = names.RESERVED | {"mailer-daemon", "no-reply", "nobody", "daemon", "info"}
PARENT = "parent"
LEFT_OUT = "left out"
UNMANAGED = "unmanaged"
NOTE = "note"
LEGACY_COMMENT = "legacy address kept as issued"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*\Z")
_AGENCY_ID = re.compile(r"[a-z0-9-]+\Z")
_ABBR = re.compile(r"[a-z0-9]+\Z")
_PERSON = frozenset({"person", "organizationalperson", "inetorgperson"})
_CONTAINERS = frozenset({"organizationalunit", "organization", "dcobject", "domain"})
_MAX_ID = 48
_SHORT_ABBR = 10


class ImportProblem(ReconcilerError):
    """The options or the mapping file do not allow an import."""


@dataclass(frozen=True, slots=True)
class Target:
    """An agency an entry is put in (from the mapping file, or derived from a value)."""

    id: str
    name: str
    abbreviation: str | None = None  # derived when None


@dataclass(frozen=True, slots=True)
class AgencyMap:
    """A mapping file: attribute values (folded) and DN suffixes (normalized) → agency."""

    values: Mapping[str, Target] = field(default_factory=dict)
    suffixes: Mapping[str, Target] = field(default_factory=dict)

    def find(self, dn: str, value: str | None) -> Target | None:
        best: tuple[int, Target] | None = None
        for suffix, target in self.suffixes.items():
            if is_descendant(dn, suffix):
                depth = suffix.count(",")
                if best is None or depth > best[0]:
                    best = (depth, target)
        if best is not None:
            return best[1]
        if value is not None:
            return self.values.get(names.folded_name(value))
        return None


@dataclass(frozen=True, slots=True)
class Options:
    regulation: str
    domain: str
    base_dn: str
    people_base: str
    today: dt.date
    agency_attribute: str = "ou"
    mapping: AgencyMap = AgencyMap()
    source: str = ""  # the directory's URL, for the files' header


@dataclass(frozen=True, slots=True, order=True)
class Reported:
    """One line of the import report."""

    status: str  # LEFT_OUT, UNMANAGED or NOTE
    dn: str
    mail: str
    reason: str


@dataclass(frozen=True, slots=True)
class Result:
    directory: dict[str, Any]
    agencies: dict[str, dict[str, Any]]  # id → {"agency": {...}, "staff": [...]}, sorted
    report: tuple[Reported, ...]

    @property
    def left_out(self) -> tuple[Reported, ...]:
        return tuple(r for r in self.report if r.status == LEFT_OUT)

    @property
    def staff(self) -> int:
        return sum(len(doc["staff"]) for doc in self.agencies.values())


# ---------------------------------------------------------------------------------------------
# Names of agencies and units


def agency_id(name: str) -> str:
    """`[a-z0-9-]+` from the folded name: words joined by hyphens, cut at a word (≤ 48)."""
    out = ""
    for word in names.folded_words(name):
        candidate = f"{out}-{word}" if out else word
        if len(candidate) > _MAX_ID:
            break
        out = candidate
    return out or "".join(names.folded_words(name))[:_MAX_ID]


def abbreviation(name: str) -> str:
    """`[a-z0-9]+`: the folded name when ≤ 10 letters, else the first word and the initials of
    the others, "và" (and) left out: Sở Y tế → soyte, Sở Thông tin và Truyền thông → sotttt."""
    words = names.folded_words(name)
    joined = "".join(words)
    if len(joined) <= _SHORT_ABBR or len(words) < 2:
        return joined[:32]
    return (words[0] + "".join(w[0] for w in words[1:] if w != "va"))[:32]


def _unique(base: str, used: set[str], *, sep: str = "") -> str:
    candidate, n = base, 2
    while candidate in used:
        candidate, n = f"{base}{sep}{n}", n + 1
    used.add(candidate)
    return candidate


# ---------------------------------------------------------------------------------------------
# The mapping file


def parse_map(data: Any) -> AgencyMap:
    """The mapping file's data (YAML already parsed):

        "Sở Y tế": {id: soyte, name: Sở Y tế, abbreviation: soyte}
        "SYT": soyte                                  # another key for an agency above
        "ou=yte,ou=users,dc=legacy,dc=vn": soyte      # a DN suffix: every entry below it

    Keys are attribute values (compared ignoring case, diacritics and spacing) or DN suffixes
    (containing `=`); values are an agency `{id, name, abbreviation?}` or the id of one given in
    the file."""
    if not isinstance(data, dict) or not data:
        raise ImportProblem(
            "the mapping file must be a YAML mapping of value or DN suffix → agency"
        )
    defined: dict[str, Target] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            target = _target(str(key), value)
            known = defined.get(target.id)
            if known is not None and known != target:
                raise ImportProblem(f"the mapping file defines agency {target.id!r} twice")
            defined[target.id] = target
    values: dict[str, Target] = {}
    suffixes: dict[str, Target] = {}
    for key, value in data.items():
        key = str(key)
        if isinstance(value, dict):
            target = defined[str(value["id"])]
        elif isinstance(value, str) and value in defined:
            target = defined[value]
        else:
            raise ImportProblem(
                f"mapping file: {key!r} maps to {value!r}, which is neither an agency "
                "{id, name, abbreviation} nor the id of one defined in the file"
            )
        if "=" in key:
            try:
                suffixes[normalize_dn(key)] = target
            except ValueError:
                raise ImportProblem(f"mapping file: {key!r} is not a DN") from None
        else:
            values[names.folded_name(key)] = target
    return AgencyMap(values, suffixes)


def _target(key: str, value: dict[str, Any]) -> Target:
    unknown = set(value) - {"id", "name", "abbreviation"}
    if unknown or "id" not in value or "name" not in value:
        extra = f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""
        raise ImportProblem(
            f"mapping file: the agency for {key!r} needs `id` and `name` (and optionally "
            f"`abbreviation`), nothing else{extra}"
        )
    aid, name, abbr = str(value["id"]), text.nfc(str(value["name"])), value.get("abbreviation")
    if not _AGENCY_ID.match(aid):
        raise ImportProblem(f"mapping file: agency id {aid!r} must be [a-z0-9-]+")
    if abbr is not None and not _ABBR.match(str(abbr)):
        raise ImportProblem(f"mapping file: abbreviation {abbr!r} must be [a-z0-9]+")
    return Target(aid, name, str(abbr) if abbr is not None else None)


# ---------------------------------------------------------------------------------------------
# Inferring what was not given


def infer_domain(entries: Iterable[Entry]) -> str | None:
    """The most frequent domain of the person entries' addresses."""
    hosts: Counter[str] = Counter()
    for entry in entries:
        classes = {c.lower() for c in entry.all("objectClass")}
        if classes & _PERSON:
            for mail in entry.all("mail"):
                hosts[mail.rpartition("@")[2].lower()] += 1
    return min(hosts, key=lambda h: (-hosts[h], h)) if hosts else None


def infer_regulation(domain: str) -> str | None:
    """The built-in regulation decided for this domain, if any."""
    found = regulations.for_domain(domain)
    return found.id if found else None


def imported_id(mail: str) -> str:
    """The id of a person without employeeNumber: ``IMP-`` + 10 hex digits of sha256(mail)."""
    return "IMP-" + hashlib.sha256(mail.lower().encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------
# The import


@dataclass(slots=True)
class _Person:
    entry: Entry
    id: str
    name: str
    mail: str
    others: list[str]
    agency_value: str | None
    unit_value: str | None
    target: Target | None
    title: str | None
    locked: bool
    quota: int | None
    login: str | None = None  # a uid other than the address's local part, kept


def _containers(people: Iterable[_Person], base_dn: str) -> list[str]:
    """The containers the imported mailboxes are in (`people` of directory.yaml: the only places
    the tool adopts from), the one holding most first, each relative to the base DN (the base
    itself when mailboxes sit directly under it)."""
    counts: dict[str, int] = defaultdict(int)
    shown: dict[str, str] = {}
    for p in people:
        parent = parent_dn(p.entry.dn)
        key = normalize_dn(parent)
        counts[key] += 1
        shown.setdefault(key, _relative(parent, base_dn))
    return [shown[k] for k in sorted(counts, key=lambda k: (-counts[k], k))]


def _relative(dn: str, base_dn: str) -> str:
    """`dn` without its base DN suffix (`ou=users`), or as it is when it is the base."""
    rdns: list[str] = []
    rest = dn
    while rest and normalize_dn(rest) != normalize_dn(base_dn):
        rdn, rest = split_dn(rest)
        rdns.append(rdn)
    return ",".join(rdns) if rdns and rest else dn


def _agency_value(entry: Entry, attribute: str, people_base: str) -> str | None:
    if attribute == PARENT:
        parent = parent_dn(entry.dn)
        if not parent or normalize_dn(parent) == normalize_dn(people_base):
            return None
        attr, rdn_value = parse_dn(parent)[0]
        return rdn_value.strip() or None if attr.lower() in ("ou", "o") else None
    found = entry.get(attribute)
    return found.strip() if found and found.strip() else None


def _name(entry: Entry) -> tuple[str | None, str]:
    """The entry's name (NFC, spaces collapsed), or None and why."""
    reasons = []
    for attr in ("displayName", "cn"):
        for raw in entry.all(attr):
            value = " ".join(text.nfc(raw).split())
            reason = text.check_name(value)
            if reason is None:
                return value, ""
            reasons.append(f"{attr} {value!r} {reason}")
    return None, "; ".join(reasons) or "no displayName or cn"


def _primary(entry: Entry) -> str | None:
    mails = [m.strip() for m in entry.all("mail") if m.strip()]
    if not mails:
        return None
    uid = (entry.get("uid") or "").lower()
    for mail in mails:
        if mail.lower() == uid or mail.lower().rpartition("@")[0] == uid:
            return mail  # the login is the whole address, or its local part
    return sorted(mails, key=str.lower)[0]


class _Importer:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.regulation = regulations.get(options.regulation)
        self.report: list[Reported] = []
        self.holders: Mapping[str, set[str]] = {}

    def out(self, entry: Entry, status: str, reason: str, mail: str | None = None) -> None:
        self.report.append(Reported(status, entry.dn, mail or entry.get("mail") or "", reason))

    def run(self, entries: Sequence[Entry]) -> Result:
        o = self.o
        holders: dict[str, set[str]] = defaultdict(set)  # every address → DNs holding it
        for entry in entries:
            for address in (
                *entry.all("mail"),
                *entry.all("govMailAlias"),
                *entry.all("mailAlternateAddress"),
            ):
                holders[address.strip().lower()].add(entry.dn)
        self.holders = holders
        people = [p for e in entries if (p := self.person(e)) is not None]
        people = self.unique(people, holders)
        docs = self.agencies(people, holders)
        directory: dict[str, Any] = {
            "regulation": o.regulation,
            "domain": o.domain,
            "base_dn": o.base_dn,
        }
        containers = _containers(people, o.base_dn)
        if containers:
            directory["people"] = containers[0] if len(containers) == 1 else containers
        return Result(directory, docs, tuple(sorted(self.report, key=_report_order)))

    # -- one entry -----------------------------------------------------------------------------

    def person(self, entry: Entry) -> _Person | None:
        o = self.o
        try:
            if not is_descendant(entry.dn, o.people_base) or (
                normalize_dn(entry.dn) == normalize_dn(o.people_base)
            ):
                return None
        except ValueError:
            self.out(entry, LEFT_OUT, "its DN cannot be parsed")
            return None
        classes = {c.lower() for c in entry.all("objectClass")}
        mails = entry.all("mail")
        uid = (entry.get("uid") or "").lower()
        if not classes & _PERSON:
            if mails:
                self.out(entry, UNMANAGED, "service account (no person objectClass): left as is")
            elif not classes & _CONTAINERS and "applicationprocess" not in classes:
                pass  # groups and other non-mail entries are not mailboxes
            return None
        primary = _primary(entry)
        local = (primary or "").lower().rpartition("@")[0]
        if (uid in SERVICE or local in SERVICE) and not entry.get("employeeNumber"):
            # a role address; one with a staff number is a person's legacy mailbox, imported
            # with its address pinned (an issued address is never taken back)
            self.out(entry, UNMANAGED, f"service account ({uid or local}): left as is")
            return None
        if "inetorgperson" not in classes:
            self.out(entry, LEFT_OUT, "not an inetOrgPerson entry: it cannot be adopted in place")
            return None
        if primary is None:
            self.out(entry, LEFT_OUT, "no mail: not a mailbox")
            return None
        mail = primary.lower()
        problem = address_problem(mail, o.domain)
        if problem:
            self.out(entry, LEFT_OUT, f"the address {mail} {problem}", primary)
            return None
        shared = sorted(self.holders.get(mail, set()) - {entry.dn})
        if shared:
            self.out(entry, LEFT_OUT, f"duplicate mail {mail}: also held by {'; '.join(shared)}")
            return None
        login = None
        if uid and uid != local:
            login = entry.get("uid") or ""
            if not _LOGIN.match(login):
                self.out(
                    entry,
                    LEFT_OUT,
                    f"the login uid={login} cannot be kept as a login (letters, digits, . _ @ -)",
                    primary,
                )
                return None
            self.out(
                entry,
                NOTE,
                f"the login uid={login} differs from the address's local part {local}: kept as "
                "the record's login",
                primary,
            )
        name, why = _name(entry)
        if name is None:
            self.out(entry, LEFT_OUT, f"no usable name: {why}", primary)
            return None
        rdn_attr, rdn_value = parse_dn(entry.dn)[0]
        if rdn_attr.lower() == "cn" and " ".join(text.nfc(rdn_value).split()) != name:
            self.out(
                entry,
                NOTE,
                f"its DN is named by cn={rdn_value}: the entry keeps that cn beside the name "
                f"{name}, and its DN",
                primary,
            )
        number = entry.get("employeeNumber")
        if number is not None and not _ID.match(number):
            self.out(
                entry,
                LEFT_OUT,
                f"employeeNumber {number!r} cannot be an inventory id (letters, digits, . _ -)",
                primary,
            )
            return None
        agency_value = _agency_value(entry, o.agency_attribute, o.people_base)
        target = o.mapping.find(entry.dn, agency_value)
        if target is None and agency_value is None:
            source = "parent OU" if o.agency_attribute == PARENT else o.agency_attribute
            self.out(entry, LEFT_OUT, f"no agency: no {source} value (map it with --map)", primary)
            return None
        unit_value = None
        if o.agency_attribute.lower() != "ou":
            unit_value = next((u.strip() for u in entry.all("ou") if u.strip()), None)
        title = entry.get("title")
        if title is not None:
            title = " ".join(text.nfc(title).split()) or None
            if title and text.check_text(title):
                self.out(entry, NOTE, f"title {title!r} {text.check_text(title)}: left out", mail)
                title = None
        quota = None
        raw_quota = entry.get("govMailQuota")
        if raw_quota and raw_quota.isdigit() and int(raw_quota) != self.regulation.default_quota:
            quota = int(raw_quota)
        others = [
            a.strip().lower()
            for a in (
                *entry.all("mail"),
                *entry.all("govMailAlias"),
                *entry.all("mailAlternateAddress"),
            )
        ]
        return _Person(
            entry=entry,
            id=number or imported_id(mail),
            name=name,
            mail=mail,
            others=sorted({a for a in others if a and a != mail}),
            agency_value=agency_value,
            unit_value=unit_value,
            target=target,
            title=title,
            locked=bool(entry.all("pwdAccountLockedTime")),
            quota=quota,
            login=login,
        )

    # -- across entries ------------------------------------------------------------------------

    def unique(self, people: list[_Person], holders: Mapping[str, set[str]]) -> list[_Person]:
        by_id: dict[str, list[_Person]] = defaultdict(list)
        for p in people:
            by_id[p.id].append(p)
        kept = []
        for p in people:
            ids = [q for q in by_id[p.id] if q is not p]
            if ids:
                self.out(
                    p.entry,
                    LEFT_OUT,
                    f"duplicate id {p.id}: also the employeeNumber of "
                    f"{'; '.join(sorted(q.entry.dn for q in ids))}",
                    p.mail,
                )
            else:
                kept.append(p)
        for p in kept:
            aliases = []
            for alias in p.others:
                problem = address_problem(alias, self.o.domain)
                shared = sorted(holders[alias] - {p.entry.dn})
                if problem:
                    self.out(p.entry, NOTE, f"alias {alias} {problem}: not kept", p.mail)
                elif shared:
                    self.out(
                        p.entry,
                        NOTE,
                        f"alias {alias} is also held by {'; '.join(shared)}: not kept",
                        p.mail,
                    )
                else:
                    aliases.append(alias)
            p.others = aliases
        return kept

    def agencies(
        self, people: list[_Person], holders: Mapping[str, set[str]]
    ) -> dict[str, dict[str, Any]]:
        # group by target id (mapping) or by the folded attribute value
        groups: dict[str, list[_Person]] = defaultdict(list)
        targets: dict[str, Target] = {}
        spellings: dict[str, Counter[str]] = defaultdict(Counter)
        for p in people:
            if p.target is not None:
                key = "map:" + p.target.id
                targets[key] = p.target
            else:
                assert p.agency_value is not None
                folded = names.folded_name(p.agency_value)
                if not folded or text.check_text(p.agency_value):
                    why = text.check_text(p.agency_value) or "has no letters or digits"
                    self.out(
                        p.entry,
                        LEFT_OUT,
                        f"the agency {p.agency_value!r} {why} (map it with --map)",
                        p.mail,
                    )
                    continue
                key = "value:" + folded
                spellings[key][" ".join(text.nfc(p.agency_value).split())] += 1
            groups[key].append(p)
        used_ids: set[str] = set()
        used_abbr: set[str] = set()
        taken_locals = {a.rpartition("@")[0] for a in holders}
        chosen: dict[str, tuple[str, str, str]] = {}
        # mapped agencies first: their ids and abbreviations are the user's
        for key in sorted(groups, key=lambda k: (not k.startswith("map:"), k)):
            if key in targets:
                t = targets[key]
                aid = t.id
                used_ids.add(aid)
                abbr = t.abbreviation or abbreviation(t.name)
                abbr = (
                    abbr if t.abbreviation else _unique(abbr, used_abbr | self.busy(taken_locals))
                )
                used_abbr.add(abbr)
                chosen[key] = (aid, t.name, abbr)
        for key in sorted(groups):
            if key in chosen:
                continue
            counts = spellings[key]
            name = min(counts, key=lambda s: (-counts[s], s.isascii(), s))
            aid = _unique(agency_id(name), used_ids, sep="-")
            busy = used_abbr | self.busy(taken_locals)
            abbr = _unique(abbreviation(name), busy)
            used_abbr.add(abbr)
            chosen[key] = (aid, name, abbr)
        docs: dict[str, dict[str, Any]] = {}
        for key, (aid, name, abbr) in sorted(chosen.items(), key=lambda kv: kv[1][0]):
            docs[aid] = self.document(aid, name, abbr, groups[key], taken_locals)
        return dict(sorted(docs.items()))

    def busy(self, taken_locals: set[str]) -> set[str]:
        # when every agency has an organisation mailbox named by its abbreviation (hagiang-2024),
        # avoid every local part already in use: it never takes an address someone holds
        return taken_locals if self.regulation.agency_mailboxes else set()

    def document(
        self,
        aid: str,
        name: str,
        abbr: str,
        people: list[_Person],
        taken_locals: set[str],
    ) -> dict[str, Any]:
        units: dict[str, dict[str, str]] = {}
        unit_spellings: dict[str, Counter[str]] = defaultdict(Counter)
        agency_folded = names.folded_name(name)
        for p in people:
            if p.unit_value and not text.check_text(p.unit_value):
                folded = names.folded_name(p.unit_value)
                if folded and folded != agency_folded:
                    unit_spellings[folded][" ".join(text.nfc(p.unit_value).split())] += 1
        unit_of: dict[str, str] = {}
        used_ids: set[str] = set()
        used_abbr: set[str] = set()
        for folded in sorted(unit_spellings):
            counts = unit_spellings[folded]
            uname = min(counts, key=lambda s: (-counts[s], s.isascii(), s))
            uid = _unique(agency_id(uname), used_ids, sep="-")
            ubase = abbreviation(uname)
            uabbr = ubase
            n = 2
            while uabbr in used_abbr or self.regulation.unit_local(uabbr, abbr) in taken_locals:
                uabbr, n = f"{ubase}{n}", n + 1
            used_abbr.add(uabbr)
            units[uid] = {"id": uid, "name": uname, "abbreviation": uabbr}
            unit_of[folded] = uid
        agency: dict[str, Any] = {"id": aid, "name": name, "abbreviation": abbr}
        if units:
            agency["units"] = [units[k] for k in sorted(units)]
        staff = [self.record(p, unit_of) for p in sorted(people, key=lambda p: p.id)]
        return {"agency": agency, "staff": staff}

    def record(self, p: _Person, unit_of: Mapping[str, str]) -> dict[str, Any]:
        r: dict[str, Any] = {"id": p.id, "name": p.name}
        if p.unit_value and names.folded_name(p.unit_value) in unit_of:
            r["unit"] = unit_of[names.folded_name(p.unit_value)]
        if p.title:
            r["title"] = p.title
        try:
            names.split(p.name)
        except NamingError:
            r["given"] = p.name  # one word: the regulation's rules need to be told
        if p.locked:
            # a neutral ground, never a breach: the regulation's suspension on request where it
            # has one (HG-2024 Đ8.1), else the day the lock was found (quangnam-2020)
            r["state"] = "suspended"
            clause = self.regulation.import_suspend_clause
            today = self.o.today.isoformat()
            r["suspension"] = (
                {"clause": clause, "note": f"found suspended at import on {today}"}
                if clause
                else {"found_at_import": today}
            )
        if p.quota is not None:
            r["quota"] = p.quota
            r["quota_decision"] = f"found at import on {self.o.today.isoformat()}"
        r["address"] = p.mail
        if p.mail.partition("@")[0] in names.RESERVED:
            # a person's legacy role address (`admin@`): the record says it was issued before,
            # which validate asks of a pin on a reserved local part
            r["legacy"] = True
        if p.login:
            r["login"] = p.login
        if p.others:
            r["aliases"] = list(p.others)
        return r


def _report_order(r: Reported) -> tuple[int, str, str]:
    return ({LEFT_OUT: 0, UNMANAGED: 1, NOTE: 2}[r.status], r.dn.lower(), r.reason)


def build(entries: Iterable[Entry], options: Options) -> Result:
    """The inventory documents for `entries` (everything read under the base) and the report."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", options.agency_attribute):
        raise ImportProblem(f"{options.agency_attribute!r} is not an attribute name")
    return _Importer(options).run(list(entries))


# ---------------------------------------------------------------------------------------------
# Rendering


def _scalar(value: Any) -> str:
    """A YAML value on one line: a scalar quoted only when YAML would read it as something else
    than text; a list or a mapping in flow style (`[a, b]`, `{k: v}`)."""
    if isinstance(value, bool | int):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_in_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return _flow(value)
    dumped = yaml.safe_dump(value, allow_unicode=True, width=1 << 20, default_style=None)
    return dumped.removesuffix("\n...\n").removesuffix("\n")


_AGENCY_ORDER = (
    "id",
    "name",
    "abbreviation",
    "mailbox",
    "manager",
    "manager_delegation",
    "regulation",
    "aliases",
    "units",
)
_STAFF_ORDER = (
    "id",
    "name",
    "unit",
    "title",
    "rank",
    "family",
    "middle",
    "given",
    "state",
    "suspension",
    "quota",
    "quota_decision",
    "address",
    "legacy",
    "aliases",
    "login",
    "restored",
    "restore_ref",
    "exempt",
    "new_request",
    "regulation",
    "origin",
)


def _ordered(d: Mapping[str, Any], order: Sequence[str]) -> list[tuple[str, Any]]:
    return [(k, d[k]) for k in order if k in d] + [(k, v) for k, v in d.items() if k not in order]


def _in_flow(value: Any) -> str:
    """A value inside `[…]` or `{…}`: text with a flow indicator (a comma, a bracket) is quoted,
    which a plain scalar in a block needs not be."""
    if isinstance(value, str) and any(c in value for c in ",[]{}"):
        return json.dumps(value, ensure_ascii=False)
    return _scalar(value)


def _flow(d: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_in_flow(v)}" for k, v in d.items()) + "}"


def render_agency(
    doc: Mapping[str, Any], header: str = "", pinned_comment: str = LEGACY_COMMENT
) -> str:
    """The text of `agencies/<id>.yaml`: field order of the contract, comments on pinned
    addresses (`pinned_comment`, none when empty), names in Vietnamese."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()]
    lines.append("agency:")
    for key, value in _ordered(doc["agency"], _AGENCY_ORDER):
        if key == "units":
            lines.append("  units:")
            for unit in value:
                pairs = _ordered(unit, ("id", "name", "abbreviation"))
                lines.append(f"    - {pairs[0][0]}: {_scalar(pairs[0][1])}")
                lines.extend(f"      {k}: {_scalar(v)}" for k, v in pairs[1:])
        else:
            lines.append(f"  {key}: {_scalar(value)}")
    staff = doc.get("staff") or []
    if not staff:
        lines.append("staff: []")
    else:
        lines.append("staff:")
    for record in staff:
        first = True
        for key, value in _ordered(record, _STAFF_ORDER):
            lead = "  - " if first else "    "
            first = False
            text_ = f"{key}: {_scalar(value)}"
            if key == "address" and pinned_comment:
                text_ += f"  # {pinned_comment}"
            lines.append(lead + text_)
    return "\n".join(lines) + "\n"


def render_directory(doc: Mapping[str, Any], header: str = "") -> str:
    """The text of `directory.yaml`, one key a line (lists and mappings in flow style)."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()]
    for key, value in doc.items():
        if isinstance(value, list):  # a DN holds commas: each item quoted
            items = ", ".join(json.dumps(v, ensure_ascii=False) for v in value)
            lines.append(f"{key}: [{items}]")
        else:
            lines.append(f"{key}: {_scalar(value)}")
    return "\n".join(lines) + "\n"


def render_report_csv(report: Iterable[Reported]) -> str:
    """The import report for a spreadsheet (its names are Vietnamese: UTF-8 with a byte order
    mark, through the one writer of CSVs for people)."""
    return csv_text(
        ("status", "dn", "mail", "reason"), ((r.status, r.dn, r.mail, r.reason) for r in report)
    )


def render_report_markdown(report: Iterable[Reported]) -> str:
    def cell(value: str) -> str:
        return text.markdown_text(value)

    rows = list(report)
    lines = [
        "# Import report",
        "",
        f"{sum(r.status == LEFT_OUT for r in rows)} entries left out, "
        f"{sum(r.status == UNMANAGED for r in rows)} unmanaged, "
        f"{sum(r.status == NOTE for r in rows)} notes.",
        "",
        "| status | DN | mail | reason |",
        "|---|---|---|---|",
    ]
    lines.extend(f"| {r.status} | {cell(r.dn)} | {cell(r.mail)} | {cell(r.reason)} |" for r in rows)
    return "\n".join(lines) + "\n"


def files(result: Result, options: Options, report_format: str = "csv") -> dict[str, str]:
    """Relative path → text of every file the import writes."""
    header = (
        f"Imported by `reconciler import` from {options.source or 'the directory'} on "
        f"{options.today.isoformat()}.\n"
        "Ids IMP-… are made from the address: replace them with the staff numbers before the "
        "first apply."
    )
    out = {"directory.yaml": render_directory(result.directory, header)}
    for aid, doc in result.agencies.items():
        out[f"agencies/{aid}.yaml"] = render_agency(doc, header)
    if report_format == "markdown":
        out["import-report.md"] = render_report_markdown(result.report)
    else:
        out["import-report.csv"] = render_report_csv(result.report)
    return out


__all__ = [
    "READ",
    "AgencyMap",
    "ImportProblem",
    "Options",
    "Reported",
    "Result",
    "Target",
    "abbreviation",
    "agency_id",
    "build",
    "files",
    "imported_id",
    "infer_domain",
    "infer_regulation",
    "parse_map",
]
