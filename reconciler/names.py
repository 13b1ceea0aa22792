"""Vietnamese names as the address rules see them: folding to ASCII, splitting, the limits.

Pure: no I/O, no regulation. `fold` turns a name's words into ``[a-z0-9]``, `split` cuts a name into
family / middle / given names, `RESERVED` lists the local parts never issued, `MAX_LOCAL` is the
longest local part. The regulations (`reconciler.rules.regulations`) build addresses from these;
`reconciler.rules.naming` hands them out.

Decisions where the regulations are silent (each is also documented at the function concerned):

- Folding keeps only ``[a-z0-9]``: apostrophes (H'Hen), hyphens (Y-Moan), zero-width characters,
  soft hyphens and BOMs are dropped, never turned into a separator.
- A name's words are its whitespace-separated words after NFC; a word that folds to nothing (a lone
  apostrophe) is dropped. Split overrides must be part of the name (see `split`).
- Local parts are at most 64 characters (RFC 5321); the given name is shortened first, because the
  initials, the number and the agency part are what tell people apart.
- Built-in reserved local parts (`RESERVED`) and the inventory's ``reserved`` are never issued to
  anyone new; an address a mailbox already holds is never taken back, even if it becomes reserved.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from unidecode import unidecode

from reconciler.errors import NamingError

#: Local parts no mailbox is ever given (RFC 2142 role addresses and the usual system ones).
RESERVED = frozenset(
    {"postmaster", "abuse", "admin", "root", "webmaster", "noreply", "hostmaster", "security"}
)


def why_reserved(local: str) -> str:
    """Why no mailbox is given `local`, a reserved local part: in `RESERVED`, or in the
    inventory's own `reserved` list (directory.yaml)."""
    where = "always reserved" if local in RESERVED else "reserved in directory.yaml"
    return f'"{local}" is {where}'


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


def folded_words(text: str) -> list[str]:
    """The words of a name, each folded (`fold`: NFC, invisible characters and lone surrogates
    dropped, none of which is a space); a word that folds to nothing is dropped."""
    return [f for f in (fold(w) for w in text.split()) if f]


def folded_name(text: str) -> str:
    """A name's folded words joined by one space: its `NameParts.full`, what two names are
    compared by (hagiang-2024 Đ5.2 b), and the key agency names are told apart by at import."""
    return " ".join(folded_words(text))


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


#: `split`'s answers by name (and overrides): validate splits every name once to check it and
#: plan once more to allocate against the directory, and a province's full names repeat.
_SPLITS: dict[object, NameParts] = {}
_SPLITS_MAX = 1 << 18


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

    Pure, and remembered (`_SPLITS`): a name split before is not split again.
    """
    key: object = (
        name
        if family is None and middle is None and given is None
        else (
            name,
            family,
            middle,
            given,
        )
    )
    found = _SPLITS.get(key)
    if found is None:
        found = _split(name, family, middle, given)  # a NamingError is not remembered
        if len(_SPLITS) >= _SPLITS_MAX:
            _SPLITS.clear()
        _SPLITS[key] = found
    return found


def _split(name: str, family: str | None, middle: str | None, given: str | None) -> NameParts:
    words = folded_words(name)
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
        target = "".join(folded_words(value))
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
