"""What a regulation decides (`Regulation`), and the address forms both regulations share.

Pure: no I/O."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from reconciler.errors import NamingError
from reconciler.names import MAX_LOCAL, NameParts, fold

_ABBR = re.compile(r"[a-z0-9]+\Z")
_SPECIAL = re.compile(r"[^\w\s]|_")


#: The form of a clause of any regulation: its code, then the article and its points.
#: A document's number ("12/QĐ-UBND", "23/2024/QĐ-UBND") and a date (01/03/2026, 2026-03-01).
_DOCUMENT = re.compile(r"\b[0-9]+/(?:[0-9]{4}/)?[^\W\d_][\w-]*", re.UNICODE)
_DATE = re.compile(r"\b(?:[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}|[0-9]{4}-[0-9]{2}-[0-9]{2})\b")
_CLAUSE = re.compile(r"([A-Z]+-[0-9]{4}) Đ[0-9]+(?:\.[0-9]+)*(?:\.[a-z])?\Z")


@dataclass(frozen=True)
class TimeRule:
    """A rule that acts once `months` calendar months have passed, and the clause it cites."""

    months: int
    clause: str

    @property
    def span(self) -> str:
        """The time in words: "3 years", "6 months", "1 month"."""
        if self.months % 12 == 0:
            n, unit = self.months // 12, "year"
        else:
            n, unit = self.months, "month"
        return f"{n} {unit}{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class Regulation(ABC):
    """What a province's regulation decides, and the clause each decision is cited by.

    Clause strings have the form "<code> Đ<article>[.<point>…]". Fields that a regulation does not
    set are None. Callers ask these fields and methods; no clause is written outside this package.
    """

    id: str  # "quangnam-2020"
    code: str  # the prefix of every clause
    domain: str  # the province's domain when the decision was made
    decision: str  # the decision, as a notice names it (Vietnamese)
    # --- addresses
    person_clause: str  # the plain personal address
    collision_clause: str  # any other personal address form
    agency_clause: str  # organisation mailbox
    unit_clause: str  # unit mailbox
    agency_mailboxes: bool  # every agency has an organisation mailbox (`agency_local` of its abbr)
    transfer_renames: bool  # the agency is part of a personal address: a transfer is a rename
    lengthens_initials: bool  # collision: lengthen the initials before numbering (HG Đ5.2 a)
    rank_keeps_plain: bool  # collision: the higher leadership rank keeps the plain form (QN Đ4.2)
    # --- changes (a create cites the issuing clause, with the address rule beside it)
    create_clause: str  # a new mailbox on an agency's request
    default_quota: int  # bytes
    quota_ceiling: int | None  # bytes: more only by a decision that names its document
    quota_clause: str
    update_clause: str  # any other change of a mailbox's attributes
    transfer_clause: str  # a person moved to another agency (the agency attributes change)
    manager_clause: str | None  # who may manage an organisation mailbox
    handover_clause: str | None  # a new manager: the organisation mailbox is handed over
    delete_clause: str
    irreversible_delete_clause: str | None  # says a deleted mailbox cannot be restored
    # --- suspension and the time rules
    restore_clause: str
    #: the grounds an inventory may declare a suspension on, each with what it covers; the
    #: first is the example shown (an agency's request where the regulation has one)
    suspension_grounds: tuple[tuple[str, str], ...]
    #: a lock found at import: the regulation's neutral ground, or None where it has none (the
    #: inventory then records `found_at_import` instead of a clause)
    import_suspend_clause: str | None
    inactivity: TimeRule  # no activity that long → suspend
    #: what counts as activity for `inactivity` ("login", "sent", "received", and "mail" for a
    #: mail-log moment of unknown kind), and the same in words for a plan's reason
    activity_kinds: frozenset[str]
    activity_words: str
    password_change: TimeRule | None  # the issued password not changed that long → suspend
    expiry: TimeRule | None  # suspended that long → delete
    # --- passwords
    reset_clause: str  # password reset on request
    must_change_clause: str  # an issued password is changed at the first login
    #: what each clause the tool cites says, in the decision's own Vietnamese (for notices)
    words: tuple[tuple[str, str], ...] = ()

    @property
    def declared_suspend_clause(self) -> str:
        """The ground shown as the example of a declared suspension."""
        return self.suspension_grounds[0][0]

    @property
    def time_clauses(self) -> frozenset[str]:
        """The clauses of the time rules (inactivity, password change, expiry)."""
        rules = (self.inactivity, self.password_change, self.expiry)
        return frozenset(r.clause for r in rules if r is not None)

    # --- clauses --------------------------------------------------------------------------------

    def clause_problem(self, clause: str) -> str | None:
        """None when `clause` is written as one of this regulation's clauses (the code, then
        "Đ" and the article, with points: "Đ8.2.b"); else why not, in plain words."""
        m = _CLAUSE.match(clause)
        if m is None:
            return f'is not a clause: write it like "{self.declared_suspend_clause}"'
        if m.group(1) != self.code:
            return f"is a clause of another regulation than {self.id}"
        return None

    def in_vietnamese(self, clause: str) -> str:
        """A clause as a notice cites it: "Điều 8 khoản 2 điểm b (HG-2024 Đ8.2.b): …"."""
        m = re.match(
            rf"{re.escape(self.code)} Đ([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:\.([a-z]))?\Z",
            clause,
        )
        if m is None:
            return clause
        article, point, sub, letter = m.groups()
        text = f"Điều {article}"
        if point:
            text += f" khoản {point}"
        if sub:
            text += f".{sub}"
        if letter:
            text += f" điểm {letter}"
        said = dict(self.words).get(clause)
        return f"{text} ({clause})" + (f": {said}" if said else "")

    def suspension_problem(self, clause: str) -> str | None:
        """None when `clause` is one of the grounds an inventory may declare a suspension on;
        else why not, in plain words."""
        problem = self.clause_problem(clause)
        if problem is not None:
            return problem
        if clause in dict(self.suspension_grounds):
            return None
        grounds = "; ".join(f"{c} ({words})" for c, words in self.suspension_grounds)
        return f"is not a ground for suspension under {self.id}: use one of {grounds}"

    def decision_problem(self, decision: str) -> str | None:
        """None when `decision` names a document by its number and date ("12/QĐ-UBND ngày
        01/03/2026"), as a quota above the ceiling needs; else why not."""
        if _DOCUMENT.search(decision) and _DATE.search(decision):
            return None
        return (
            "must name the deciding document by its number and date, e.g. "
            '"12/QĐ-UBND ngày 01/03/2026"'
        )

    # --- address forms -----------------------------------------------------------------------

    @abstractmethod
    def render(self, stem: str, given: str, number: int | None, agency_abbr: str) -> str:
        """The personal local part for initials `stem`, folded `given` name and sequence number,
        shortened to 64 characters by cutting the given name first."""

    @abstractmethod
    def agency_local(self, abbr: str, mailbox: str | None) -> str | None:
        """The organisation mailbox's local part, or None when the agency has none."""

    @abstractmethod
    def unit_local(self, unit_abbr: str, agency_abbr: str) -> str | None:
        """A unit mailbox's local part, or None when the regulation gives units none."""

    @abstractmethod
    def password_ok(self, password: str, parts: NameParts) -> str | None:
        """None when `password` meets the regulation; else the reason, citing the clause.

        The reason never contains the password."""

    @abstractmethod
    def _is_form(self, body: str, parts: NameParts) -> bool:
        """`body` (a local part not shortened, without number and agency part) is one of this
        person's initials forms."""

    def stems(self, parts: NameParts) -> Iterator[str]:
        """The initials forms in order of preference, lazily: the one-letter initials of the
        family and middle names first (the plain form), then the collision forms, if any."""
        yield _initials(parts.initials_words)

    def plain(self, parts: NameParts, agency_abbr: str) -> str:
        """The plain personal local part (no collision taken into account)."""
        return self.render(_initials(parts.initials_words), parts.given, None, agency_abbr)

    def person_candidates(self, parts: NameParts, agency_abbr: str) -> Iterator[str]:
        """Every local part this person may get, in order of preference, without end: the plain
        form, then the other initials forms (hagiang-2024 Đ5.2 a), then the plain form numbered
        1, 2, 3…. (`naming.allocate` numbers an other form instead when it meets a namesake.)"""
        seen: set[str] = set()
        for stem in self.stems(parts):
            local = self.render(stem, parts.given, None, agency_abbr)
            if local not in seen:
                seen.add(local)
                yield local
        first = _initials(parts.initials_words)
        n = 1
        while True:
            local = self.render(first, parts.given, n, agency_abbr)
            if local not in seen:
                seen.add(local)
                yield local
            n += 1

    def accepts(self, local: str, parts: NameParts, agency_abbr: str) -> bool:
        """True when `local` is a form this person could legitimately hold: any initials form,
        bare or numbered (1, 2, …, no leading zero), with the person's given name and, for
        hagiang-2024, the person's agency. Keeps an issued address when only diacritics or case
        of the name changed, and rejects it after a real change of name (or of agency in HG)."""
        head = self._head(local, agency_abbr)
        if head is None:
            return False
        digits = len(head) - len(head.rstrip("0123456789"))
        options: list[tuple[str, int | None]] = [(head, None)]
        options += [
            (head[:i], int(head[i:]))
            for i in range(len(head) - digits, len(head))
            if head[i] != "0"
        ]
        if len(local) < MAX_LOCAL:  # nothing was shortened: parse
            return any(self._is_form(body, parts) for body, _ in options)
        return any(
            local == self.render(stem, parts.given, number, agency_abbr)
            for stem in self.stems(parts)
            for _, number in options
        )

    def _head(self, local: str, agency_abbr: str) -> str | None:
        """`local` without the agency part (None when it has another agency's)."""
        return local

    def _fit(self, head: str, tail: str) -> str:
        room = MAX_LOCAL - len(tail)
        if room < 1:
            raise NamingError(
                f"{tail!r} leaves no room for the name in a local part of at most {MAX_LOCAL} "
                "characters"
            )
        return head[:room] + tail


def _initials(words: tuple[str, ...]) -> str:
    return "".join(w[0] for w in words)


def _lengthenings(words: tuple[str, ...]) -> Iterator[str]:
    """One-letter initials, then one more letter at a time: the family name's following letters,
    then each middle name's (Ngô Văn → nv, ngv, ngov, ngova, ngovan)."""
    counts = [1] * len(words)
    yield _initials(words)
    for i, word in enumerate(words):
        while counts[i] < len(word):
            counts[i] += 1
            yield "".join(w[:c] for w, c in zip(words, counts, strict=True))


def _lengthening_of_size(words: tuple[str, ...], size: int) -> str | None:
    """The one form of `_lengthenings(words)` that is `size` letters long, if any."""
    extra = size - len(words)
    if extra < 0:
        return None
    out = []
    for word in words:
        add = min(extra, len(word) - 1)
        out.append(word[: 1 + add])
        extra -= add
    return None if extra else "".join(out)


#: Abbreviations found usable: every address rendered checks its agency's.
_GOOD_ABBRS: set[str] = set()


def check_abbr(abbr: str, what: str = "agency abbreviation") -> str:
    """`abbr` if usable as an address part (lower-case ASCII letters, digits), else NamingError."""
    if abbr in _GOOD_ABBRS:
        return abbr
    if not _ABBR.match(abbr):
        raise NamingError(f"the {what} {abbr!r} cannot be part of an address: use only a-z and 0-9")
    if len(_GOOD_ABBRS) < 1 << 16:
        _GOOD_ABBRS.add(abbr)
    return abbr


def _password_classes(password: str) -> dict[str, bool]:
    return {
        "upper": any(c.isupper() for c in password),
        "lower": any(c.islower() for c in password),
        "digit": any(c.isdigit() for c in password),
        "special": bool(_SPECIAL.search(password)),
    }


def _name_like(password: str, parts: NameParts) -> bool:
    """The password is a name of the person, ignoring case, diacritics, digits and symbols."""
    letters = re.sub("[0-9]", "", fold(password))
    names = {*parts.family, *parts.middle, parts.given}
    names |= {"".join(parts.family), "".join(parts.middle), parts.full.replace(" ", "")}
    return letters in names - {""}
