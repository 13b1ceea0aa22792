"""A replicated directory: a list of providers tried in order, and the replication state of each
server (OpenLDAP's contextCSN, see `reconciler.csn`).

Above the backends: a URL list is opened by opening its URLs one by one with whichever backend
opens one URL, so every backend gets failover the same way.

    directory = open_first(("ldap://p1:389", "ldap://p2:389"), open_one)
    directory.url        # the first that answered
    directory.skipped    # why the ones before it were passed over
    state(directory, "dc=example,dc=gov,dc=vn")   # {1: "2026…#001#000000", 2: "…#002#…"}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from reconciler import csn
from reconciler.directory.base import Directory
from reconciler.dn import parent_dn
from reconciler.errors import DirectoryError

Opener = Callable[[str], Directory]


def split_urls(value: str) -> tuple[str, ...]:
    """`URL[,URL…]` as a tuple of URLs (blanks dropped)."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def open_first(urls: Sequence[str], open_one: Opener) -> Directory:
    """The first of `urls` that answers (connects and binds), with `providers` set to the whole
    list and `skipped` to why each one before it was passed over. DirectoryError naming every
    URL when none answers."""
    skipped: list[str] = []
    for url in urls:
        try:
            directory = open_one(url)
        except DirectoryError as error:
            skipped.append(f"{url}: {error}")
            continue
        directory.providers = tuple(urls)
        directory.skipped = tuple(skipped)
        return directory
    if len(skipped) == 1:
        raise DirectoryError(skipped[0].split(": ", 1)[1])
    raise DirectoryError(
        f"none of the {len(urls)} directory servers listed answered:\n"
        + "\n".join(f"  - {reason}" for reason in skipped)
    )


def open_each(urls: Sequence[str], open_one: Opener) -> Iterator[tuple[str, Directory | str]]:
    """Each of `urls` opened, or why it could not be: (url, directory or reason). The caller
    closes the directories."""
    for url in urls:
        try:
            yield url, open_one(url)
        except DirectoryError as error:
            yield url, str(error)


def state(directory: Directory, base_dn: str) -> dict[int, str]:
    """The server's contextCSN per serverID for the database holding `base_dn` (kept on the
    database's suffix: `base_dn` or an entry above it): {} for a directory that is not
    replicated (no syncprov, or an LDIF file)."""
    dn = base_dn
    while dn:
        entry = directory.get(dn, ["contextCSN"])
        if entry is not None and entry.all("contextCSN"):
            return csn.state(entry.all("contextCSN"))
        dn = parent_dn(dn)
    return {}


def entry_uuid(directory: Directory, base_dn: str) -> str:
    """The base entry's entryUUID, shared by every replica of one directory ("" when none)."""
    entry = directory.get(base_dn, ["entryUUID"])
    return (entry.get("entryUUID") or "") if entry is not None else ""


def wait_until_holds(
    directory: Directory,
    base_dn: str,
    want: csn.State,
    timeout: float,
    *,
    poll: float = 0.1,
) -> float:
    """Wait until `directory` holds every change `want` holds (per serverID); the seconds it
    took. DirectoryError naming what it still lacks after `timeout` seconds."""
    start = time.monotonic()
    while True:
        have = state(directory, base_dn)
        if csn.holds(have, want):
            return time.monotonic() - start
        waited = time.monotonic() - start
        if waited >= timeout:
            raise DirectoryError(
                f"{directory.url} still lacks changes after waiting {timeout:g} s "
                f"({csn.describe(have, want)} behind): is its replication running? "
                "Check it with `reconciler doctor --directory …` listing every server"
            )
        time.sleep(min(poll, max(timeout - waited, 0.01)))
