"""The entries read from a directory, kept packed: one `bytes` per entry, unpacked to an `Entry`
when asked for. Ground floor: no I/O.

A plan reads every entry under the base DN and compares each once. Held as `Entry` objects (a
dict of tuples of strings each), 100,000 entries took some 140 MB; packed, the UTF-8 text of the
DN and the values, separated by control characters, about 45 MB.

    entries = Packed()
    for entry in directory.read(base_dn, READ):
        entries.append(entry)
    entries[0]             # an Entry equal to the first one appended
    for entry in entries:  # each unpacked in turn, none kept
        ...

An entry's attribute names, in its order, are its shape (`Packed.shapes`; a directory's entries
have a few): an entry is its shape's number (with `:` and how many passwords it has,
`Entry.passwords`, when they were read), its DN, then the values of each of its attributes,
multiple values separated by NUL, fields by SOH. Packing is then one join in C, not a step per
attribute. What that cannot say exactly (a value holding NUL or SOH, an attribute without
values, a value that is the empty string, text that is not valid Unicode) is kept as the
`Entry` itself.

The values of the attributes most entries share a few of (`COMMON`: object classes, agency,
unit, title, …) are numbered as they are first met and packed as STX and their number
(`Packed.common`): at 100,000 mailboxes they were 19 of the 41 MB packed, and an entry unpacked
holds the one tuple of them.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import AnyStr, overload

from reconciler.model import Entry

_VALUES = "\x00"  # between the values of an attribute
_FIELDS = "\x01"  # between the DN and the attributes, and between attributes
_PASSWORD = "userpassword"  # never kept: how many values it has only (`Entry.passwords`)
_COMMON = "\x02"  # before the number of a common value
#: Attributes whose values many entries share (`ldapcommon` shares them between entries too).
COMMON = frozenset(
    {
        "objectclass",
        "o",
        "ou",
        "sn",
        "givenname",
        "title",
        "govmailkind",
        "govmailagency",
        "govmailunit",
        "govmailmanager",
        "govmailquota",
        "govmailquotadecision",
        "govmailsuspendreason",
        "pwdreset",
    }
)
_MAX_COMMON = 1 << 14  # common values numbered, at most (past that, packed as they are)


class Packed(Sequence[Entry]):
    """Entries in the order appended, each packed (see the module docstring)."""

    __slots__ = (
        "_common_at",
        "_common_raw",
        "_common_text",
        "_raw",
        "_shape_of",
        "_unpacked",
        "_where",
        "common",
        "items",
        "shapes",
    )

    def __init__(self, entries: Sequence[Entry] = ()) -> None:
        self.shapes: list[tuple[str, ...]] = []  # attribute names of entries, by number
        self._shape_of: dict[tuple[str, ...], bytes] = {}  # names -> number (ASCII digits)
        self._common_at: list[tuple[int, ...]] = []  # by shape: where its `COMMON` names are
        #: names as a server spells them -> (number, where userPassword is or -1, where the
        #: `COMMON` names are once it is left out), or None when packing them cannot be exact
        #: (two spellings of one name)
        self._raw: dict[tuple[str, ...], tuple[bytes, int, tuple[int, ...]] | None] = {}
        #: the common values by what stands for them (STX and a number), and back
        self.common: dict[str, tuple[str, ...]] = {}
        self._common_text: dict[str, str] = {}  # values joined by NUL -> STX and number
        self._common_raw: dict[bytes, bytes] = {}  # the same, as UTF-8 bytes read
        self.items: list[bytes | Entry] = []
        self._unpacked = 0  # entries kept as they are
        #: (shape, names) -> the names of that shape among them, and where they are (`unpack`)
        self._where: dict[tuple[str, frozenset[str]], tuple[tuple[str, int], ...]] = {}
        for entry in entries:
            self.append(entry)

    def append(self, entry: Entry) -> None:
        self.items.append(self.pack(entry))

    def _shape(self, names: tuple[str, ...]) -> bytes:
        shape = self._shape_of.get(names)
        if shape is None:
            shape = self._shape_of[names] = str(len(self.shapes)).encode()
            self.shapes.append(names)
            self._common_at.append(tuple(i for i, n in enumerate(names) if n in COMMON))
        return shape

    def _number(self, values: tuple[str, ...]) -> str | None:
        """What stands for `values` of a `COMMON` attribute from now on; None when they
        cannot be numbered (full, or values that packing cannot keep as they are)."""
        if len(self.common) >= _MAX_COMMON or not all(values):
            return None
        joined = _VALUES.join(values)
        if any(c in joined for c in (_FIELDS, _COMMON)) or joined.count(_VALUES) != len(values) - 1:
            return None
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return None
        code = f"{_COMMON}{len(self.common)}"
        self.common[code] = values
        self._common_text[joined] = code
        return code

    def _number_raw(self, joined: bytes, values: Sequence[bytes]) -> bytes | None:
        """`_number` of the values as read (UTF-8, perhaps not NFC); UnicodeDecodeError when
        they are not UTF-8."""
        text = tuple(unicodedata.normalize("NFC", v.decode("utf-8")) for v in values)
        code = self._common_text.get(_VALUES.join(text)) or self._number(text)
        if code is None:
            return None
        self._common_raw[joined] = code.encode()
        return self._common_raw[joined]

    def pack(self, entry: Entry) -> bytes | Entry:
        """`entry` packed, or itself when packing cannot keep it exactly."""
        attrs = entry.attrs
        shape = self._shape(tuple(attrs))
        head = shape.decode()
        if entry.passwords is not None:
            head = f"{head}:{entry.passwords}"
        values = list(attrs.values())
        fields = list(map(_VALUES.join, values))
        common = self._common_text
        numbered = separators = 0  # common values numbered, and the NULs they take away
        for at in self._common_at[int(shape)]:
            code = common.get(fields[at]) or self._number(tuple(values[at]))
            if code is not None:
                fields[at] = code
                numbered += 1
                separators += len(values[at]) - 1
        text = _FIELDS.join([head, entry.dn, *fields])
        if (
            not _exact(text, values, _VALUES, _FIELDS, separators)
            or text.count(_COMMON) != numbered
        ):
            return self._keep(entry)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return self._keep(entry)

    def pack_raw(
        self, dn: str, raw: Mapping[str, Sequence[bytes]], name_of: Callable[[str], str]
    ) -> bytes | None:
        """An entry packed straight from the values as an LDAP library returns them (UTF-8
        bytes by attribute name as the server spells it; `name_of` gives the name in entries),
        as `pack` would pack the `Entry` made of them: NFC, names in entries' spelling,
        userPassword only as how many values it has. None when it cannot be (a value that is
        not UTF-8, an empty value, a NUL or SOH of its own): the caller makes the `Entry` then.
        No `Entry`, no str per value: reading 100,000 entries did both only to pack them."""
        spelled = tuple(raw)
        try:
            known = self._raw[spelled]
        except KeyError:
            known = self._raw[spelled] = self._raw_shape(spelled, name_of)
        if known is None:
            return None
        shape, password, common_at = known
        values = list(raw.values())
        if password >= 0:
            shape += b":%d" % len(values.pop(password))  # how many, never what
        fields = list(map(b"\x00".join, values))
        common = self._common_raw
        numbered = separators = 0  # common values numbered, and the NULs they take away
        try:
            for at in common_at:
                code = common.get(fields[at]) or self._number_raw(fields[at], values[at])
                if code is not None:
                    fields[at] = code
                    numbered += 1
                    separators += len(values[at]) - 1
        except UnicodeDecodeError:
            # not numbered after it here: the entry made of them numbers them all in their
            # order, as ldap3 and a file would (one packing, one directory fingerprint)
            return None
        try:
            blob = b"\x01".join([shape, dn.encode("utf-8"), *fields])
        except UnicodeEncodeError:
            return None
        if not _exact(blob, values, b"\x00", b"\x01", separators):
            return None
        if blob.count(b"\x02") != numbered:
            return None
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not text.isascii() and not unicodedata.is_normalized("NFC", text):
            # NFC of the whole is NFC of each value: NUL and SOH never compose
            blob = unicodedata.normalize("NFC", text).encode("utf-8")
        return blob

    def _raw_shape(
        self, spelled: tuple[str, ...], name_of: Callable[[str], str]
    ) -> tuple[bytes, int, tuple[int, ...]] | None:
        names = [name_of(name) for name in spelled]
        if len(set(names)) != len(names):
            return None  # one name spelled twice: `ldapcommon.entry` knows which one wins
        password = names.index(_PASSWORD) if _PASSWORD in names else -1
        if password >= 0:
            del names[password]
        shape = self._shape(tuple(names))
        return shape, password, self._common_at[int(shape)]

    def append_packed(self, item: bytes) -> None:
        """Append what `pack_raw` made."""
        self.items.append(item)

    def take(
        self,
        shapes: Sequence[tuple[str, ...]],
        common: Iterable[tuple[str, tuple[str, ...]]],
        items: Iterable[bytes | Entry],
    ) -> None:
        """Append `items` packed by a `Relay`, with the `shapes` and `common` values it numbered
        since its last part (this store holds all the ones before: it took every part)."""
        self.shapes.extend(shapes)
        self.common.update(common)
        for item in items:
            if type(item) is bytes:
                self.append_packed(item)
            else:
                self.append_kept(item)  # type: ignore[arg-type]

    def append_kept(self, entry: Entry) -> None:
        """Append an entry that packing kept as it is (`pack` gave it back)."""
        self._unpacked += 1
        self.items.append(entry)

    def adopt(self, relay: Packed) -> None:
        """Take over the packing's tables of the `relay` whose every part this store took
        (`take`): entries appended after are packed as the relay would have packed them."""
        if relay.shapes != self.shapes or relay.common != self.common:
            raise RuntimeError("a store adopts the tables of the relay it took every part of")
        self._shape_of, self._common_at, self._raw = relay._shape_of, relay._common_at, relay._raw
        self._common_text, self._common_raw = relay._common_text, relay._common_raw

    def _keep(self, entry: Entry) -> Entry:
        self._unpacked += 1
        return entry

    def unpack(self, item: bytes | Entry, names: frozenset[str] | None = None) -> Entry:
        """The entry `item` is; with `names` (lower case), with only those of its attributes,
        for an entry read for a few of its values (a plan surveys every entry read for 6 of its
        20 attributes: the others are not made into tuples). An entry kept as it is comes
        whole."""
        if type(item) is not bytes:
            return item  # type: ignore[return-value]
        head, dn, *fields = item.decode("utf-8").split(_FIELDS)
        shape, _, count = head.partition(":")
        named: Iterable[tuple[str, str]]
        if names is None:
            named = zip(self.shapes[int(shape)], fields, strict=True)
        else:
            where = self._where.get((shape, names))
            if where is None:
                where = self._where[shape, names] = tuple(
                    (name, at) for at, name in enumerate(self.shapes[int(shape)]) if name in names
                )
            named = [(name, fields[at]) for name, at in where]
        common = self.common
        return Entry(
            dn,
            {
                name: common[field]
                if field[0] == _COMMON
                else (field,)
                if _VALUES not in field
                else tuple(field.split(_VALUES))
                for name, field in named
            },
            int(count) if count else None,
        )

    @overload
    def __getitem__(self, index: int) -> Entry: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...

    def __getitem__(self, index: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(index, slice):
            return [self.unpack(item) for item in self.items[index]]
        return self.unpack(self.items[index])

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Entry]:
        unpack = self.unpack
        for item in self.items:
            yield unpack(item)

    def __repr__(self) -> str:
        return f"<{len(self.items):,} packed entries, {self._unpacked:,} kept as they are>"


class Relay(Packed):
    """A store that hands the entries packed on to `send` a part at a time instead of keeping
    them, for a store in another process to unpack (`Packed.take`): each part is the shapes
    and common values numbered since the last part, then the entries (`take`'s arguments).
    `plan` reads the directory in a child process so (`reconciler.ahead`). Its length is how many
    entries it was given; `close` sends the rest and leaves the packing's tables alone, for the
    other store to take over (`adopt`)."""

    __slots__ = ("_common_sent", "_send", "_sent", "_shapes_sent")

    PART = 128  # entries a part: small enough that the other side is never long without work

    def __init__(self, send: Callable[[tuple[object, ...]], None]) -> None:
        super().__init__()
        self._send: Callable[[tuple[object, ...]], None] | None = send
        self._sent = self._shapes_sent = self._common_sent = 0

    def append(self, entry: Entry) -> None:
        super().append(entry)
        if len(self.items) >= self.PART:
            self.flush()

    def append_packed(self, item: bytes) -> None:
        self.items.append(item)
        if len(self.items) >= self.PART:
            self.flush()

    def flush(self) -> None:
        if self._send is None:
            raise RuntimeError("the relay is closed")
        shapes = self.shapes[self._shapes_sent :]
        common: list[tuple[str, tuple[str, ...]]] = []
        if len(self.common) > self._common_sent:
            common = list(itertools.islice(self.common.items(), self._common_sent, None))
        items, self.items = self.items, []
        self._shapes_sent, self._common_sent = len(self.shapes), len(self.common)
        self._sent += len(items)
        self._send((shapes, common, items))

    def close(self) -> None:
        """Send what is left; nothing can be appended after."""
        self.flush()
        self._send = None

    def __len__(self) -> int:
        return self._sent + len(self.items)


def _exact(
    packed: AnyStr, values: Sequence[Sequence[AnyStr]], nul: AnyStr, soh: AnyStr, numbered: int
) -> bool:
    """Whether `packed` (shape, DN, then `values` joined, `numbered` of their NULs in common
    values packed as their number) unpacks to exactly those values: no NUL or SOH of their own,
    no empty value, no attribute without values."""
    if packed.count(nul) != sum(map(len, values)) - len(values) - numbered:
        return False
    if packed.count(soh) != len(values) + 1:
        return False
    if packed.endswith((nul, soh)) and values:
        return False
    # no two separators in a row (SOH read as NUL: one search instead of four, each slow
    # where separators are frequent: 0.1 s of 100,000 entries)
    return nul + nul not in packed.replace(soh, nul)
