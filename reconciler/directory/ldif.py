"""The LDIF backend (`ldif:PATH`): a whole directory in one RFC 2849 file, no server, no ldap3.

The file is read once when opened (a missing file is an empty directory) and written back by
`flush()` and `close()` atomically: a temporary file in the same folder, fsync, os.replace.
Entries are written sorted parents first, values in base64 when they are not plain ASCII,
lines folded at 76 columns, so that reading and writing a file again gives the same bytes.

It behaves like the LDAP backend with slapd's ppolicy (see `reconciler.directory`):
userPassword is stored as a salted SHA-1 hash ({SSHA}) and never returned; an administrator's
password change sets pwdReset and pwdChangedTime; createTimestamp and modifyTimestamp are kept
by the backend; the operational attributes pwdReset, pwdAccountLockedTime, pwdLastSuccess …
are ordinary attributes in the file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import os
import re
import secrets
import tempfile
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reconciler.directory.base import OPERATIONAL, PAGE_SIZE, Directory, Progress
from reconciler.dn import normalized_rdns, parse_rdns, split_dn
from reconciler.errors import DirectoryError, EntryExists, NoSuchEntry, StaleEntry
from reconciler.model import Entry

FOLD = 76
#: The comment line that keeps an LDIF directory's identity, and how every such identity starts.
IDENTITY_LINE = "# reconciler directory identity: "
IDENTITY_PREFIX = "ldif:"

#: How a command uses the file: "read" (it must exist; never written, so a file in a read-only
#: place can be read), "write" (it must exist) or "create" (a missing file is a new, empty
#: directory, written on close: only `apply`).
Access = Literal["read", "write", "create"]
ACCESS: tuple[Access, ...] = ("read", "write", "create")

#: Attributes that "*" does not return (operational on slapd).
_OPERATIONAL_ALL = frozenset(
    name.lower()
    for name in (
        *OPERATIONAL,
        "creatorsName",
        "modifiersName",
        "entryUUID",
        "structuralObjectClass",
        "hasSubordinates",
        "subschemaSubentry",
        "entryDN",
        "pwdFailureTime",
        "pwdHistory",
        "pwdGraceUseTime",
        "pwdPolicySubentry",
        "pwdLastSuccess",
        "authTimestamp",
    )
)
#: Attributes the backend keeps itself (slapd: "no user modification allowed").
_NO_USER_MODIFICATION = frozenset(
    {
        "createtimestamp",
        "modifytimestamp",
        "entrycsn",
        "pwdlastsuccess",
        "authtimestamp",
        "pwdchangedtime",
    }
)
_HASHED = re.compile(r"^\{[A-Za-z0-9.\-]+\}")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%SZ")


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def _fold_value(value: str) -> str:
    return " ".join(_nfc(value).casefold().split())


def ssha(password: str) -> str:
    """`{SSHA}` of a clear-text password (salted SHA-1, 8 random bytes of salt)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _safe(value: str) -> bool:
    """RFC 2849 SAFE-STRING (and no trailing space, which some readers strip)."""
    if not value:
        return True
    if value[0] in " :<" or value[-1] == " ":
        return False
    return all(0 < ord(c) < 128 and c not in "\r\n" for c in value)


def _line(name: str, value: str) -> str:
    if _safe(value):
        text = f"{name}: {value}" if value else f"{name}:"
    else:
        encoded = base64.b64encode(value.encode("utf-8", "surrogateescape")).decode("ascii")
        text = f"{name}:: {encoded}"
    if len(text) <= FOLD:
        return text + "\n"
    parts = [text[:FOLD]]
    parts += [" " + text[i : i + FOLD - 1] for i in range(FOLD, len(text), FOLD - 1)]
    return "\n".join(parts) + "\n"


@dataclass(slots=True)
class _Record:
    dn: str
    rdns: tuple[str, ...]
    attrs: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # key: lower name

    def values(self, name: str) -> list[str]:
        found = self.attrs.get(name.lower())
        return found[1] if found else []

    def put(self, name: str, values: list[str]) -> None:
        key = name.lower()
        if not values:
            self.attrs.pop(key, None)
        elif key in self.attrs:
            self.attrs[key] = (self.attrs[key][0], values)
        else:
            self.attrs[key] = (name, values)

    def to_ldif(self) -> str:
        out = [_line("dn", self.dn)]
        for name, values in self.attrs.values():
            out += [_line(name, v) for v in values]
        return "".join(out)


def _identity(text: str) -> str | None:
    """The identity kept in the header of an LDIF file's text, if any."""
    for line in text.split("\n", 8)[:8]:
        if line.startswith(IDENTITY_LINE):
            value = line[len(IDENTITY_LINE) :].strip()
            if value.startswith(IDENTITY_PREFIX):
                return value
    return None


def _parse(text: str, where: str) -> Iterator[tuple[int, list[tuple[int, str, str]]]]:
    """Content records of an LDIF text: (line of the dn, [(line, name, value), ...])."""
    logical: list[tuple[int, str]] = []  # (line number, unfolded line); "" = separator
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line.startswith(" "):
            if not logical or logical[-1][1] == "":
                raise DirectoryError(
                    f"{where}:{number}: continuation line with nothing to continue"
                )
            start, previous = logical[-1]
            if previous != "#":  # a folded comment stays a comment
                logical[-1] = (start, previous + line[1:])
        elif line.startswith("#"):
            logical.append((number, "#"))  # its continuations fold into it and are dropped
        else:
            logical.append((number, line))
    record: list[tuple[int, str, str]] = []
    first = True
    for number, line in [*logical, (0, "")]:
        if line == "#":
            continue
        if line.strip() == "":
            if record:
                yield record[0][0], record
                record = []
            continue
        name, colon, rest = line.partition(":")
        if not colon or not name.strip():
            raise DirectoryError(f"{where}:{number}: expected `attribute: value`, got {line!r}")
        name = name.strip()
        if rest.startswith(":"):
            try:
                data = base64.b64decode(rest[1:].strip(), validate=True)
            except (binascii.Error, ValueError):
                raise DirectoryError(f"{where}:{number}: bad base64 value of {name}") from None
            value = data.decode("utf-8", "surrogateescape")
        elif rest.startswith("<"):
            raise DirectoryError(f"{where}:{number}: URL values (`{name}:<`) are not supported")
        else:
            value = rest.lstrip(" ")
        if first and not record and name.lower() == "version":
            if value.strip() != "1":
                raise DirectoryError(f"{where}:{number}: unsupported LDIF version {value!r}")
            first = False
            continue
        first = False
        if not record and name.lower() != "dn":
            raise DirectoryError(f"{where}:{number}: a record must start with `dn:`, not {name}")
        if record and name.lower() in ("changetype", "control"):
            raise DirectoryError(
                f"{where}:{number}: change records are not supported: the file must hold "
                "entries only (content records)"
            )
        if record and name.lower() == "dn":
            raise DirectoryError(f"{where}:{number}: two `dn:` lines in one record")
        record.append((number, name, value))


def format_entries(entries: Iterable[Entry], names: Mapping[str, str] | None = None) -> bytes:
    """LDIF of `entries` as this backend writes its file, in a fixed order whatever the order
    read: parents first, then by DN; attributes by name (objectClass first), values sorted.
    `names` gives attribute names their usual spelling (Entry keeps them lower-case)."""
    spelled = names or {}

    def key(entry: Entry) -> tuple[str, ...]:
        return normalized_rdns(entry.dn)[::-1]

    out = ["version: 1\n"]
    for entry in sorted(entries, key=key):
        record = [_line("dn", entry.dn)]
        attrs = sorted(entry.attrs, key=lambda a: (a != "objectclass", a))
        for attr in attrs:
            name = spelled.get(attr, attr)
            record += [_line(name, v) for v in sorted(entry.attrs[attr])]
        out.append("\n" + "".join(record))
    return "".join(out).encode("utf-8", "surrogateescape")


class LdifDirectory(Directory):
    """A directory kept in an LDIF file (see the module docstring)."""

    backend = "ldif"

    def __init__(self, url: str, access: Access = "create") -> None:
        path = url[len("ldif:") :] if url.lower().startswith("ldif:") else url
        if not path:
            raise DirectoryError("the directory URL ldif: needs a file path, e.g. ldif:dir.ldif")
        if access not in ACCESS:
            raise ValueError(f"access must be one of {ACCESS}, not {access!r}")
        self.url = url if url.lower().startswith("ldif:") else f"ldif:{url}"
        self.path = Path(path)
        self.access = access
        self._entries: dict[tuple[str, ...], _Record] = {}
        self._children: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        self._dirty = False
        self._closed = False
        try:
            text = self.path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            if access != "create":
                raise DirectoryError(
                    f"no such file: {self.path} (the LDIF directory {self.url} does not exist; "
                    "only `reconciler apply` creates a new one — to plan a pull request from a "
                    "fork, export the live directory with `reconciler snapshot`)"
                ) from None
            self._dirty = True  # created on close
            self._identity = f"{IDENTITY_PREFIX}{uuid.uuid4()}"
            return
        except UnicodeDecodeError as exc:
            raise DirectoryError(f"{self.path} is not UTF-8 text: {exc}") from None
        except OSError as exc:
            raise DirectoryError(f"cannot read {self.path}: {exc.strerror}") from None
        self._identity = _identity(text) or (
            f"{IDENTITY_PREFIX}{uuid.uuid5(uuid.NAMESPACE_URL, self.path.resolve().as_uri())}"
        )
        for line, record in _parse(text, str(self.path)):
            dn = record[0][2]
            try:
                rdns = normalized_rdns(dn)
            except ValueError as exc:
                raise DirectoryError(f"{self.path}:{line}: {exc}") from None
            if not rdns:
                raise DirectoryError(f"{self.path}:{line}: empty DN")
            if rdns in self._entries:
                raise DirectoryError(f"{self.path}:{line}: {dn} appears twice")
            entry = _Record(dn, rdns)
            for _, name, value in record[1:]:
                key = name.lower()
                if key in entry.attrs:
                    entry.attrs[key][1].append(value)
                else:
                    entry.attrs[key] = (name, [value])
            self._insert(entry)

    def __repr__(self) -> str:
        return f"LdifDirectory(url={self.url!r}, entries={len(self._entries)})"

    # bookkeeping ------------------------------------------------------------------------------

    def _insert(self, entry: _Record) -> None:
        self._entries[entry.rdns] = entry
        self._children.setdefault(entry.rdns[1:], set()).add(entry.rdns)

    def _remove(self, entry: _Record) -> None:
        del self._entries[entry.rdns]
        siblings = self._children.get(entry.rdns[1:])
        if siblings is not None:
            siblings.discard(entry.rdns)
            if not siblings:
                del self._children[entry.rdns[1:]]

    def _key(self, dn: str) -> tuple[str, ...]:
        try:
            return normalized_rdns(dn)
        except ValueError as exc:
            raise DirectoryError(f"invalid DN {dn!r} for {self.url}: {exc}") from None

    def _find(self, dn: str) -> _Record:
        entry = self._entries.get(self._key(dn))
        if entry is None:
            raise NoSuchEntry(f"{dn} does not exist in {self.url}")
        return entry

    def _check_open(self) -> None:
        if self._closed:
            raise DirectoryError(f"{self.url} is closed")

    def _check_writable(self, what: str, dn: str) -> None:
        self._check_open()
        if self.access == "read":
            raise DirectoryError(
                f"cannot {what} {dn}: {self.url} was opened read-only by this command"
            )

    # reads ------------------------------------------------------------------------------------

    @staticmethod
    def _entry(record: _Record, wanted: set[str]) -> Entry:
        every_user = "*" in wanted
        every_operational = "+" in wanted
        attrs: dict[str, tuple[str, ...]] = {}
        passwords = None
        for key, (_, values) in record.attrs.items():
            if key == "userpassword":
                if every_user or key in wanted:
                    passwords = len(values)  # how many, never what
                continue
            operational = key in _OPERATIONAL_ALL
            if (
                key in wanted
                or (every_user and not operational)
                or (every_operational and operational)
            ):
                attrs[key] = tuple(values)
        return Entry(dn=record.dn, attrs=attrs, passwords=passwords)

    def _subtree(self, base_dn: str) -> list[_Record]:
        """The records under `base_dn` (the base included), parents first."""
        self._check_open()
        base = self._key(base_dn)
        if base not in self._entries:
            raise NoSuchEntry(
                f"base DN {base_dn} does not exist in {self.url} — check base_dn in directory.yaml"
            )
        depth = len(base)
        keys = sorted(
            (k for k in self._entries if len(k) >= depth and k[len(k) - depth :] == base),
            key=lambda k: k[::-1],
        )
        return [self._entries[key] for key in keys]

    def read(
        self,
        base_dn: str,
        attributes: Sequence[str],
        progress: Progress | None = None,
    ) -> Iterator[Entry]:
        records = self._subtree(base_dn)
        wanted = {a.lower() for a in attributes}
        for count, record in enumerate(records, start=1):
            yield self._entry(record, wanted)
            if progress is not None and count % PAGE_SIZE == 0:
                progress(count)
        if progress is not None:
            progress(len(records))

    def get(self, dn: str, attributes: Sequence[str]) -> Entry | None:
        self._check_open()
        if not dn.strip():
            return self._root_dse(attributes)
        record = self._entries.get(self._key(dn))
        if record is None:
            return None
        return self._entry(record, {a.lower() for a in attributes})

    def _root_dse(self, attributes: Sequence[str]) -> Entry:
        """The root DSE, as a server gives it: `namingContexts` are the file's top entries."""
        tops = sorted(r.dn for k, r in self._entries.items() if not self._has_ancestor(k[1:]))
        wanted = {a.lower() for a in attributes}
        attrs = {"namingcontexts": tuple(tops)} if "namingcontexts" in wanted else {}
        return Entry(dn="", attrs=attrs)

    def find(
        self, base_dn: str, attribute: str, values: Iterable[str], attributes: Sequence[str]
    ) -> Iterator[Entry]:
        self._check_open()
        wanted_values = {_fold_value(v) for v in values}
        if not wanted_values:
            return
        wanted = {a.lower() for a in attributes}
        for record in self._subtree(base_dn):
            if any(_fold_value(v) in wanted_values for v in record.values(attribute)):
                yield self._entry(record, wanted)

    def password_hashes(
        self, base_dn: str, attribute: str, values: Iterable[str]
    ) -> dict[str, tuple[str, ...]]:
        self._check_open()
        wanted_values = {_fold_value(v) for v in values}
        found: dict[str, tuple[str, ...]] = {}
        for record in self._subtree(base_dn):
            hashes = record.values("userPassword")
            if hashes and any(_fold_value(v) in wanted_values for v in record.values(attribute)):
                found[record.dn.lower()] = tuple(hashes)
        return found

    # writes -----------------------------------------------------------------------------------

    def _prepare(self, dn: str, name: str, values: Sequence[str] | str) -> list[str]:
        if isinstance(values, str):
            values = [values]
        key = name.lower()
        if key in _NO_USER_MODIFICATION:
            raise DirectoryError(
                f"the directory at {self.url} refused to change {name} of {dn}: "
                "constraintViolation (19): no user modification allowed"
            )
        if key == "userpassword":
            return [v if _HASHED.match(v) else ssha(v) for v in values]
        out: list[str] = []
        seen: set[str] = set()
        for value in values:
            value = _nfc(value)
            folded = _fold_value(value)
            if folded in seen:
                raise DirectoryError(
                    f"the directory at {self.url} refused {name} of {dn}: "
                    f"attributeOrValueExists (20): {name} has the value {value!r} twice"
                )
            seen.add(folded)
            out.append(value)
        return out

    @staticmethod
    def _rdn_avas(rdn: str) -> list[tuple[str, str]]:
        return [ava for rdns in parse_rdns(rdn) for ava in rdns]

    def add(self, dn: str, attrs: Mapping[str, Sequence[str]]) -> None:
        self._check_writable("add", dn)
        dn = _nfc(dn)
        key = self._key(dn)
        if not key:
            raise DirectoryError(f"cannot add the empty DN to {self.url}")
        if key in self._entries:
            raise EntryExists(f"{dn} already exists in {self.url}")
        parent = key[1:]
        if parent and parent not in self._entries and self._has_ancestor(parent):
            raise NoSuchEntry(
                f"cannot add {dn} to {self.url}: its parent {split_dn(dn)[1]} does not exist"
            )
        record = _Record(dn, key)
        for name, values in attrs.items():
            if values:
                record.put(name, self._prepare(dn, name, values))
        for name, value in self._rdn_avas(split_dn(dn)[0]):
            present = {_fold_value(v) for v in record.values(name)}
            if _fold_value(value) not in present:
                record.put(name, [*record.values(name), value])
        if not record.values("objectClass"):
            raise DirectoryError(
                f"the directory at {self.url} refused to add {dn}: objectClassViolation (65): "
                "no objectClass"
            )
        now = _now()
        record.put("createTimestamp", [now])
        record.put("modifyTimestamp", [now])
        self._insert(record)
        self._dirty = True

    def _has_ancestor(self, key: tuple[str, ...]) -> bool:
        return any(key[i:] in self._entries for i in range(len(key)))

    def modify(
        self,
        dn: str,
        changes: Mapping[str, Sequence[str]],
        expect: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._check_writable("modify", dn)
        record = self._find(dn)
        if not changes:
            return
        if expect:
            changes = self._swap(record, changes, expect)
        prepared = {
            name: self._prepare(record.dn, name, values) for name, values in changes.items()
        }
        rdn_avas = self._rdn_avas(split_dn(record.dn)[0])
        for name, value in rdn_avas:
            for changed, values in prepared.items():
                if changed.lower() == name.lower() and _fold_value(value) not in {
                    _fold_value(v) for v in values
                }:
                    raise DirectoryError(
                        f"the directory at {self.url} refused to modify {record.dn}: "
                        f"namingViolation (64): the value {value!r} of the naming attribute "
                        f"{name} must stay (rename the entry instead)"
                    )
        for name, values in prepared.items():
            if name.lower() == "objectclass" and not values:
                raise DirectoryError(
                    f"the directory at {self.url} refused to modify {record.dn}: "
                    "objectClassViolation (65): objectClass cannot be removed"
                )
        now = _now()
        for name, values in prepared.items():
            record.put(name, values)
        lowered = {n.lower() for n, v in prepared.items() if v}
        if "userpassword" in lowered:
            record.put("pwdChangedTime", [now])
            if "pwdreset" not in {n.lower() for n in prepared}:
                record.put("pwdReset", ["TRUE"])  # ppolicy: an administrator's reset
        record.put("modifyTimestamp", [now])
        self._dirty = True

    def _swap(
        self,
        record: _Record,
        changes: Mapping[str, Sequence[str]],
        expect: Mapping[str, Sequence[str]],
    ) -> dict[str, Sequence[str]]:
        """The compare-and-swap of `modify`, as the LDAP backend does it with delete and add of
        values: each expected value dropped must be there, each value added must not."""
        out: dict[str, Sequence[str]] = dict(changes)
        for name, values in changes.items():
            if name not in expect:
                continue
            new = [values] if isinstance(values, str) else list(values)
            old = {_fold_value(v) for v in expect[name]}
            gone = old - {_fold_value(v) for v in new}
            current = record.values(name)
            present = {_fold_value(v) for v in current}
            added = [v for v in new if _fold_value(v) not in old]
            if not gone <= present or any(_fold_value(v) in present for v in added):
                raise StaleEntry(
                    f"{record.dn} in {self.url} no longer has the values this change was made "
                    f"from ({name}): nothing was changed"
                )
            out[name] = [v for v in current if _fold_value(v) not in gone] + added
        return out

    def rename(self, dn: str, new_rdn: str) -> str:
        self._check_writable("rename", dn)
        record = self._find(dn)
        new_rdn = _nfc(new_rdn)
        parent = split_dn(record.dn)[1]
        new_dn = f"{new_rdn},{parent}" if parent else new_rdn
        new_key = self._key(new_dn)
        if len(new_key) != len(record.rdns):
            raise DirectoryError(f"{new_rdn!r} is not a single RDN (renaming {record.dn})")
        if new_key == record.rdns:
            if new_dn != record.dn:  # same entry, other spelling
                record.dn = new_dn
                self._dirty = True
            return new_dn
        if new_key in self._entries:
            raise EntryExists(f"{new_dn} already exists in {self.url}")
        if self._children.get(record.rdns):
            raise DirectoryError(
                f"the directory at {self.url} refused to rename {record.dn}: "
                "notAllowedOnNonLeaf (66): it has entries below it"
            )
        for name, value in self._rdn_avas(split_dn(record.dn)[0]):
            folded = _fold_value(value)
            record.put(name, [v for v in record.values(name) if _fold_value(v) != folded])
        for name, value in self._rdn_avas(new_rdn):
            present = {_fold_value(v) for v in record.values(name)}
            if _fold_value(value) not in present:
                record.put(name, [*record.values(name), value])
        self._remove(record)
        record.dn, record.rdns = new_dn, new_key
        record.put("modifyTimestamp", [_now()])
        self._insert(record)
        self._dirty = True
        return new_dn

    def delete(self, dn: str) -> None:
        self._check_writable("delete", dn)
        record = self._find(dn)
        if self._children.get(record.rdns):
            raise DirectoryError(
                f"the directory at {self.url} refused to delete {record.dn}: "
                "notAllowedOnNonLeaf (66): delete the entries below it first"
            )
        self._remove(record)
        self._dirty = True

    # the file ---------------------------------------------------------------------------------

    def dump(self) -> bytes:
        """The whole directory as LDIF bytes (what flush writes)."""
        records: Iterable[_Record] = (
            self._entries[k] for k in sorted(self._entries, key=lambda k: k[::-1])
        )
        head = f"version: 1\n{IDENTITY_LINE}{self._identity}\n"
        text = head + "".join("\n" + r.to_ldif() for r in records)
        return text.encode("utf-8", "surrogateescape")

    def flush(self) -> None:
        """Write the file atomically (temporary file, fsync, rename) if anything changed."""
        self._check_open()
        if not self._dirty or self.access == "read":
            return
        data = self.dump()
        folder = self.path.parent
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o600  # password hashes live here
        except OSError as exc:
            raise DirectoryError(f"cannot write {self.path}: {exc.strerror}") from None
        try:
            fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise DirectoryError(f"cannot write {self.path}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise DirectoryError(f"cannot write {self.path}: {exc.strerror}") from None
        with contextlib.suppress(OSError):
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._dirty = False

    def identity(self, base_dn: str) -> str:
        """The file's own identity (`ldif:<uuid>`, in its header; see `Directory.identity`), when
        it holds `base_dn`. A file without one (a snapshot written elsewhere) is named by its
        path until the next write keeps that identity in it."""
        self._check_open()
        if self._entries.get(self._key(base_dn)) is None:
            return ""
        return self._identity

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
