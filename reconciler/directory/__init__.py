"""The directory the reconciler reads and writes: an LDAP server or an LDIF file.

The only package that speaks LDAP. `base` holds the interface every backend implements and its
semantics; `ldap` (ldap3) and `ldif` (an LDIF file) implement it; `snapshot` reads a whole tree.

    directory = open_directory("ldap://127.0.0.1:3389", bind_dn="cn=admin,dc=…", password=pw)
    for entry in directory.read("dc=example,dc=gov,dc=vn", ["uid", "mail", "pwdLastSuccess"]):
        ...
    directory.close()
"""

from __future__ import annotations

from pathlib import Path

from reconciler.directory.base import (
    FIND_CHUNK,
    OPERATIONAL,
    PAGE_SIZE,
    Directory,
    LockPolicy,
    Progress,
)
from reconciler.errors import DirectoryError


def open_directory(
    url: str,
    *,
    bind_dn: str | None = None,
    password: str | None = None,
    starttls: bool = False,
    insecure: bool = False,
    ca_file: str | Path | None = None,
    timeout: float = 30.0,
) -> Directory:
    """Open `ldap://`, `ldaps://`, `ldapi://` (socket path URL-encoded) or `ldif:PATH`.

    LDAP: simple bind with `bind_dn` and `password` (anonymous without a bind DN), StartTLS
    with `starttls`, certificates verified against `ca_file` (or the system CAs). A simple bind
    over plain ldap:// to a host other than loopback is refused unless `starttls` or `insecure`.
    Raises DirectoryError.
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "ldif":
        from reconciler.directory.ldif import LdifDirectory

        return LdifDirectory(url)
    if scheme in ("ldap", "ldaps", "ldapi") and url[len(scheme) :].startswith("://"):
        from reconciler.directory.ldap import LdapDirectory

        return LdapDirectory(
            url,
            bind_dn=bind_dn,
            password=password,
            starttls=starttls,
            insecure=insecure,
            ca_file=None if ca_file is None else str(ca_file),
            timeout=timeout,
        )
    raise DirectoryError(
        f"unsupported directory URL {url!r}: use ldap://HOST:PORT, ldaps://HOST:PORT, "
        "ldapi://SOCKET (path URL-encoded) or ldif:PATH"
    )


__all__ = [
    "FIND_CHUNK",
    "OPERATIONAL",
    "PAGE_SIZE",
    "Directory",
    "LockPolicy",
    "Progress",
    "open_directory",
]
