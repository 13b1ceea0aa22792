"""Reading the tool's part of a directory, where a brand-new directory reads as empty; and the
password-free export of it that pull requests from forks plan against (`export`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from reconciler.attributes import LOCK_RDN, MANAGED, READ, SUSPENSION
from reconciler.directory.base import Directory
from reconciler.directory.history import is_audit
from reconciler.directory.ldif import format_entries
from reconciler.dn import normalize_dn, parent_dn
from reconciler.errors import DirectoryError, NoSuchEntry
from reconciler.model import Entry
from reconciler.packed import Packed

#: Attributes never exported, whatever their case: secrets and password hashes.
SECRET = frozenset(
    {"userpassword", "pwdhistory", "authpassword", "sambantpassword", "sambalmpassword"}
)
#: Attributes the export writes in their usual spelling.
_NAMES = {
    n.lower(): n
    for n in (
        *READ,
        *MANAGED,
        *SUSPENSION,
        "objectClass",
        "dc",
        "description",
        "postalAddress",
        "telephoneNumber",
        "departmentNumber",
    )
}


def read_tree(
    directory: Directory,
    base_dn: str,
    attributes: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> list[Entry]:
    """Every entry under `base_dn`. A base that does not exist yet under an existing parent (or in
    a new LDIF file) is an empty directory, which `apply` will create; a base whose parent does not
    exist either is most likely a typo, and is refused."""
    return list(stream_tree(directory, base_dn, attributes, progress))


def stream_tree(
    directory: Directory,
    base_dn: str,
    attributes: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> Iterator[Entry]:
    """`read_tree`, one entry at a time as the directory sends them."""
    started = False
    try:
        for entry in directory.read(base_dn, attributes, progress):
            started = True
            yield entry
        return
    except NoSuchEntry:
        if started:  # the base went away in the middle of the read
            raise
    _missing_base(directory, base_dn)


def read_tree_into(
    directory: Directory,
    base_dn: str,
    attributes: Sequence[str],
    store: Packed,
    progress: Callable[[int], None] | None = None,
) -> None:
    """`read_tree`, appended to `store` as the directory sends them (`Directory.read_into`)."""
    try:
        directory.read_into(base_dn, attributes, store, progress)
    except NoSuchEntry:
        if store:  # the base went away in the middle of the read
            raise
        _missing_base(directory, base_dn)


def _missing_base(directory: Directory, base_dn: str) -> None:
    """A base that does not exist: nothing to read, unless its parent is missing too."""
    parent = parent_dn(base_dn)
    if directory.url.startswith("ldif:") or not parent:
        return
    if directory.get(parent, ["objectClass"]) is not None:
        return
    raise DirectoryError(
        f"the base DN {base_dn} does not exist on {directory.url}, and neither does its parent "
        f"{parent}: check base_dn in directory.yaml"
    )


def naming_context(directory: Directory) -> str:
    """The one suffix the directory holds (its root DSE's namingContexts), for commands that were
    given no base DN; refused, with the suffixes named, when there are several or none."""
    root = directory.get("", ["namingContexts"])
    contexts = [c for c in (root.all("namingContexts") if root else ()) if c.strip()]
    if len(contexts) == 1:
        return contexts[0]
    if not contexts:
        raise DirectoryError(
            f"{directory.url} names no suffix (namingContexts): give the base DN (--base-dn, or "
            "the inventory's base_dn)"
        )
    raise DirectoryError(
        f"{directory.url} holds several suffixes ({', '.join(contexts)}): say which with --base-dn"
    )


def export(directory: Directory, base_dn: str) -> bytes:
    """The tool's part of the directory as LDIF, for planning without credentials (`reconciler
    snapshot`): every entry under `base_dn` with every user attribute and the operational ones a
    plan reads (last login, lock, must-change, password and creation times), but no password
    hash or other secret, nor the tool's audit history and lock (the tombstones of deleted
    mailboxes stay: a plan reads them); entries, attributes and values in
    a fixed order, so that two snapshots differ only where the directory did."""
    wanted = ["*", *(a for a in READ if a.lower() not in SECRET)]
    lock = normalize_dn(f"{LOCK_RDN},{base_dn}")
    kept = []
    for entry in read_tree(directory, base_dn, wanted):
        if is_audit(entry) or normalize_dn(entry.dn) == lock:
            continue
        attrs = {k: v for k, v in entry.attrs.items() if k not in SECRET}
        kept.append(Entry(entry.dn, attrs))
    return format_entries(kept, _NAMES)
