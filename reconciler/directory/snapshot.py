"""Reading the tool's part of a directory, where a brand-new directory reads as empty."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reconciler.directory.base import Directory
from reconciler.dn import parent_dn
from reconciler.errors import DirectoryError, NoSuchEntry
from reconciler.model import Entry


def read_tree(
    directory: Directory,
    base_dn: str,
    attributes: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> list[Entry]:
    """Every entry under `base_dn`. A base that does not exist yet under an existing parent (or in
    a new LDIF file) is an empty directory, which `apply` will create; a base whose parent does not
    exist either is most likely a typo, and is refused."""
    try:
        return list(directory.read(base_dn, attributes, progress))
    except NoSuchEntry:
        pass
    parent = parent_dn(base_dn)
    if directory.url.startswith("ldif:") or not parent:
        return []
    if directory.get(parent, ["objectClass"]) is not None:
        return []
    raise DirectoryError(
        f"the base DN {base_dn} does not exist on {directory.url}, and neither does its parent "
        f"{parent}: check base_dn in directory.yaml"
    )
