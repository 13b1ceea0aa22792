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

The attribute names are numbered as they are first met (`Packed.names`): an entry is its DN, how
many passwords it has (`Entry.passwords`, empty when not read), then the values of each numbered
attribute in that order, multiple values separated by NUL, fields by SOH, an attribute the entry
lacks an empty field. What that cannot say exactly (a value holding
NUL or SOH, an attribute without values, a value that is the empty string, text that is not valid
Unicode) is kept as the `Entry` itself.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import overload

from reconciler.model import Entry

_VALUES = "\x00"  # between the values of an attribute
_FIELDS = "\x01"  # between the DN and the attributes, and between attributes
_PASSWORD = "userpassword"  # never kept: how many values it has only (`Entry.passwords`)


class Packed(Sequence[Entry]):
    """Entries in the order appended, each packed (see the module docstring)."""

    __slots__ = ("_raw", "_slots", "_unpacked", "items", "names")

    def __init__(self, entries: Sequence[Entry] = ()) -> None:
        self.names: list[str] = []  # attribute names in their packing order
        self._slots: dict[str, int] = {}
        self._raw: dict[str, int] = {}  # attribute name as a server spells it -> slot, -1: not kept
        self.items: list[bytes | Entry] = []
        self._unpacked = 0  # entries kept as they are
        for entry in entries:
            self.append(entry)

    def append(self, entry: Entry) -> None:
        self.items.append(self.pack(entry))

    def pack(self, entry: Entry) -> bytes | Entry:
        """`entry` packed, or itself when packing cannot keep it exactly."""
        slots = self._slots
        fields = [""] * len(slots)
        separators = 0  # NULs the values bring
        for name, values in entry.attrs.items():
            at = slots.get(name)
            if at is None:
                at = slots[name] = len(self.names)
                self.names.append(name)
                fields.append("")
            if len(values) == 1:
                value = values[0]
                if not value:
                    return self._keep(entry)
                fields[at] = value
            else:
                if not values or "" in values:
                    return self._keep(entry)
                fields[at] = _VALUES.join(values)
                separators += len(values) - 1
        count = "" if entry.passwords is None else str(entry.passwords)
        text = _FIELDS.join((entry.dn, count, *fields))
        if text.count(_VALUES) != separators or text.count(_FIELDS) != len(fields) + 1:
            return self._keep(entry)  # a NUL or SOH of its own
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
        slots = self._raw
        fields: list[bytes] = [b""] * len(self.names)
        separators: dict[int, int] = {}  # NULs the values of a slot bring (a name spelled twice)
        count = b""
        for spelled, values in raw.items():
            at = slots.get(spelled)
            if at is None:
                name = name_of(spelled)
                if name == _PASSWORD:
                    at = slots[spelled] = -1
                else:
                    at = self._slots.get(name)
                    if at is None:
                        at = self._slots[name] = len(self.names)
                        self.names.append(name)
                    slots[spelled] = at
            if at < 0:
                count = b"%d" % len(values)  # how many, never what
                continue
            if not values:
                continue
            if at >= len(fields):
                fields.extend([b""] * (at + 1 - len(fields)))
            if len(values) == 1:
                fields[at] = values[0]
                separators.pop(at, None)
            else:
                fields[at] = b"\x00".join(values)
                separators[at] = len(values) - 1
            if not all(values):
                return None
        try:
            blob = b"\x01".join([dn.encode("utf-8"), count, *fields])
        except UnicodeEncodeError:
            return None
        if (
            blob.count(b"\x00") != sum(separators.values())
            or blob.count(b"\x01") != len(fields) + 1
        ):
            return None
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not text.isascii() and not unicodedata.is_normalized("NFC", text):
            # NFC of the whole is NFC of each value: NUL and SOH never compose
            blob = unicodedata.normalize("NFC", text).encode("utf-8")
        return blob

    def append_packed(self, item: bytes) -> None:
        """Append what `pack_raw` made."""
        self.items.append(item)

    def _keep(self, entry: Entry) -> Entry:
        self._unpacked += 1
        return entry

    def unpack(self, item: bytes | Entry) -> Entry:
        if type(item) is not bytes:
            return item  # type: ignore[return-value]
        dn, count, *fields = item.decode("utf-8").split(_FIELDS)
        return Entry(
            dn,
            {
                name: (field,) if _VALUES not in field else tuple(field.split(_VALUES))
                for name, field in zip(self.names, fields, strict=False)
                if field
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
