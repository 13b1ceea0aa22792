"""What every directory backend is: the `Directory` interface and its shared semantics.

    directory = open_directory("ldap://127.0.0.1:3389", bind_dn="cn=admin,dc=…", password=pw)
    for entry in directory.read("dc=example,dc=gov,dc=vn", ["uid", "mail", "pwdLastSuccess"]):
        ...
    directory.close()

Both backends share these semantics:

- `read` yields every entry under the base (the base included), with only the attributes asked
  for; operational attributes (pwdLastSuccess, pwdReset, pwdAccountLockedTime, pwdChangedTime,
  createTimestamp, modifyTimestamp, entryCSN) only when asked for by name. Attribute names are
  lower-case in `Entry.attrs`, values are NFC strings, userPassword is never returned: asked
  for (by name or "*"), its number of values is (`Entry.passwords`), never a value.
  A missing base raises NoSuchEntry.
- `add` raises EntryExists when the DN exists and NoSuchEntry when its parent does not;
  userPassword is given in clear and stored hashed (by slapd's ppolicy_hash_cleartext, or as
  {SSHA} in the LDIF file).
- `find` yields the entries under the base whose attribute equals one of the values given (by the
  attribute's matching rule: employeeNumber, uid and mail ignore case), in a few searches however
  many values there are: the directory should index that attribute for equality.
- `modify` replaces each attribute given; an empty sequence deletes it (no error when absent).
  With `expect` (the values the caller read), it is a compare-and-swap done in one round trip:
  each attribute named there swaps the expected values it drops for the values it adds, and the
  whole modify is refused with StaleEntry, nothing changed, when an expected value is gone or a
  value to add is already there (someone changed the entry meanwhile). Values someone else added
  to a multi-valued attribute are kept, never overwritten.
- `rename` changes the RDN of an entry (the old RDN value is removed) and returns the new DN.
- Every failure is a DirectoryError (or its subclasses EntryExists, NoSuchEntry) with a
  message saying which directory, what failed and what to check. Passwords never appear in
  messages or reprs.
- Values and DNs written are normalized to NFC (userPassword excepted).
- `pipeline` sends writes without waiting for each answer (`Pipeline`); a backend that cannot
  (ldap3's, the LDIF file) does each write as it is sent: one in flight.
- `identity` names the directory a base DN belongs to, whatever URL reached it: on a server the
  base entry's `entryUUID` (every replica of one directory shares it), for an LDIF file an
  identity of its own kept in the file (`ldif:…`, never equal to a server's); "" when there is
  no base entry. A plan records it, and apply refuses a plan made for another directory.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from reconciler.errors import DirectoryError
from reconciler.model import Entry
from reconciler.packed import Packed

#: Operational attributes returned only when asked for by name.
OPERATIONAL = (
    "pwdLastSuccess",
    "pwdReset",
    "pwdAccountLockedTime",
    "pwdChangedTime",
    "createTimestamp",
    "modifyTimestamp",
    "entryCSN",
)

PAGE_SIZE = 1000
#: Values per search of `find`: an OR filter of this many terms is some 4 KB on the wire. The
#: server checks each entry a search finds against every term of its filter, so a chunk that
#: finds its entries costs it more the larger it is, and one that finds none costs about the same
#: per search: reading what a plan depends on at 100,000 mailboxes (python-ldap, 16 searches in
#: flight) took 39 ms for 1,000 updates in chunks of 100 (43 in 50, 58 in 250), and 237 ms for
#: 20,000 creates (271 in 50, 234 in 250); through ldap3, one paged search at a time, 135 ms
#: for the updates (247 in 250), 4.6 s for the creates either way.
FIND_CHUNK = 100

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class LockPolicy:
    """Whether the server locks a suspended account: True, False, or None when it cannot be
    read; `detail` says where that was read, or why it could not be."""

    locks: bool | None
    detail: str


@dataclass(frozen=True, slots=True)
class Write:
    """One write request, as `Directory.add`, `modify`, `rename` and `delete` take it: `attrs`
    is the entry of an add and the changes of a modify."""

    kind: str  # "add", "modify", "rename" or "delete"
    dn: str
    attrs: Mapping[str, Sequence[str]] = field(default_factory=dict)
    expect: Mapping[str, Sequence[str]] | None = None
    new_rdn: str = ""


#: What became of a write sent through a `Pipeline`: the caller's tag, and None or its failure.
Answer = tuple[object, DirectoryError | None]


class Pipeline:
    """Writes sent without waiting for each answer: RFC 4511 lets a client have many requests in
    flight on one connection. The server may carry them out in any order, so a write that
    depends on another (the same entry, an address or DN the other frees) is sent only once
    that one is answered: the caller's part. `window`: how many may be unanswered at once.

    This one, every backend's unless it has better, does each write as it is sent and keeps its
    answer until asked: one request in flight, the one-at-a-time behaviour of `add` and co."""

    window = 1

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._answers: list[Answer] = []

    @property
    def in_flight(self) -> int:
        """Writes sent whose answers `answers` has not returned yet."""
        return len(self._answers)

    def send(self, write: Write, tag: object) -> None:
        """Send `write`; its answer comes back with `tag` from `answers`. Never raises a
        DirectoryError: a write that could not be sent is answered with its failure."""
        try:
            perform(self.directory, write)
        except DirectoryError as error:
            self._answers.append((tag, error))
        else:
            self._answers.append((tag, None))

    def answers(self, wait: bool = True) -> list[Answer]:
        """The answers come in since the last call; with `wait`, at least one when any write is
        in flight (waiting up to the connection's timeout, a lost connection answering every
        write in flight with its failure)."""
        out, self._answers = self._answers, []
        return out


def perform(directory: Directory, write: Write) -> None:
    """Carry out one write, waiting for its answer."""
    if write.kind == "add":
        directory.add(write.dn, write.attrs)
    elif write.kind == "modify":
        directory.modify(write.dn, write.attrs, write.expect)
    elif write.kind == "rename":
        directory.rename(write.dn, write.new_rdn)
    elif write.kind == "delete":
        directory.delete(write.dn)
    else:
        raise ValueError(f"unknown write {write.kind!r}")


class Directory(abc.ABC):
    """A directory of entries addressed by DN (see the module docstring for the semantics)."""

    url: str
    #: The library that speaks to it: "python-ldap", "ldap3", or "ldif" for the file.
    backend: str
    #: A list of providers (`URL,URL…`, see `directory.replicas`): all of them, in order, and
    #: why the ones before `url` were passed over; a single URL leaves both empty.
    providers: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @abc.abstractmethod
    def read(
        self,
        base_dn: str,
        attributes: Sequence[str],
        progress: Progress | None = None,
    ) -> Iterator[Entry]:
        """Every entry under `base_dn` (subtree, base included), streaming; `progress` gets the
        number of entries read so far, now and then."""

    def read_into(
        self,
        base_dn: str,
        attributes: Sequence[str],
        store: Packed,
        progress: Progress | None = None,
    ) -> None:
        """The entries of `read`, appended to `store`; a backend may pack them straight from
        what it reads (`Packed.pack_raw`), without an `Entry` each."""
        for entry in self.read(base_dn, attributes, progress):
            store.append(entry)

    @abc.abstractmethod
    def get(self, dn: str, attributes: Sequence[str]) -> Entry | None:
        """The entry at `dn`, or None when there is none."""

    @abc.abstractmethod
    def find(
        self, base_dn: str, attribute: str, values: Iterable[str], attributes: Sequence[str]
    ) -> Iterator[Entry]:
        """The entries under `base_dn` whose `attribute` equals one of `values`, streaming."""

    @abc.abstractmethod
    def add(self, dn: str, attrs: Mapping[str, Sequence[str]]) -> None:
        """Create an entry. EntryExists if the DN is taken, NoSuchEntry if the parent is missing."""

    @abc.abstractmethod
    def modify(
        self,
        dn: str,
        changes: Mapping[str, Sequence[str]],
        expect: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Replace each attribute given (empty = delete it). NoSuchEntry if there is no entry;
        with `expect`, a compare-and-swap that raises StaleEntry (see the module docstring)."""

    @abc.abstractmethod
    def rename(self, dn: str, new_rdn: str) -> str:
        """Give the entry the RDN `new_rdn` under the same parent; returns the new DN."""

    @abc.abstractmethod
    def delete(self, dn: str) -> None:
        """Delete a leaf entry. NoSuchEntry if there is none."""

    @abc.abstractmethod
    def password_hashes(
        self, base_dn: str, attribute: str, values: Iterable[str]
    ) -> dict[str, tuple[str, ...]]:
        """The userPassword values (hashes, as stored) of the entries under `base_dn` whose
        `attribute` equals one of `values`, by lower-case DN: the one read of a password, for a
        merger's apply to carry a mailbox's password from the directory being merged in. Entries
        whose password this bind may not read are left out."""

    def lock_policy(self, base_dn: str) -> LockPolicy:
        """Does a bind to an entry with pwdAccountLockedTime fail (a suspension takes effect)?
        Read only. A file directory has no binds: there is nothing a suspension could miss."""
        return LockPolicy(True, f"{self.url} is a file: nobody binds to it")

    def identity(self, base_dn: str) -> str:
        """The identity of the directory holding `base_dn` (see the module docstring)."""
        entry = self.get(base_dn, ["entryUUID"])
        return (entry.get("entryUUID") or "") if entry is not None else ""

    def pipeline(self, window: int) -> Pipeline:
        """A pipeline of at most `window` writes in flight (`Pipeline`); one at a time unless the
        backend can do better."""
        return Pipeline(self)

    def flush(self) -> None:  # noqa: B027 - a no-op unless the backend buffers writes
        """Make every write so far durable (the LDIF backend rewrites its file)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release the connection or file."""

    def __enter__(self) -> Directory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
