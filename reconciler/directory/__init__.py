"""The directory the reconciler reads and writes: an LDAP server or an LDIF file.

The only package that speaks LDAP. `base` holds the interface every backend implements and its
semantics; `python_ldap` (python-ldap, on OpenLDAP's libldap: the fast one) and `ldap` (ldap3,
pure Python: the fallback where python-ldap could not be built) speak to a server, sharing
`ldapcommon`; `ldif` is an LDIF file; `snapshot` reads a whole tree.

    directory = open_directory("ldap://127.0.0.1:3389", bind_dn="cn=admin,dc=…", password=pw)
    for entry in directory.read("dc=example,dc=gov,dc=vn", ["uid", "mail", "pwdLastSuccess"]):
        ...
    directory.close()
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.directory.base import (
    FIND_CHUNK,
    OPERATIONAL,
    PAGE_SIZE,
    Directory,
    LockPolicy,
    Progress,
)
from reconciler.directory.replicas import open_first, split_urls
from reconciler.errors import DirectoryError

#: The LDAP backends, the preferred first.
BACKENDS = ("python-ldap", "ldap3")


def default_backend() -> str:
    """python-ldap when it is installed, else ldap3."""
    return "python-ldap" if importlib.util.find_spec("ldap") is not None else "ldap3"


if TYPE_CHECKING:
    from reconciler.directory.ldif import Access


def open_directory(
    url: str,
    *,
    bind_dn: str | None = None,
    password: str | None = None,
    starttls: bool = False,
    insecure: bool = False,
    ca_file: str | Path | None = None,
    timeout: float = 30.0,
    backend: str | None = None,
    access: Access = "create",
) -> Directory:
    """Open one URL, or the first of a comma-separated list of providers that answers
    (`directory.replicas.open_first`: `providers` and `skipped` say which were tried).

    One URL: `ldap://`, `ldaps://`, `ldapi://` (socket path URL-encoded) or `ldif:PATH`.
    LDAP: through `backend` ("python-ldap" or "ldap3"; by default python-ldap when installed),
    simple bind with `bind_dn` and `password`, SASL EXTERNAL over ldapi:// without a bind DN
    (anonymous elsewhere), StartTLS with `starttls`, certificates verified against `ca_file` (or
    the system CAs). A simple bind over plain ldap:// to a host other than loopback is refused
    unless `starttls` or `insecure`. `access` is how an `ldif:` file is used: "read" (it must
    exist and is never written), "write" (it must exist) or "create" (a missing file is a new,
    empty directory: `apply` only). Raises DirectoryError.
    """
    options: dict[str, Any] = {
        "bind_dn": bind_dn,
        "password": password,
        "starttls": starttls,
        "insecure": insecure,
        "ca_file": None if ca_file is None else str(ca_file),
        "timeout": timeout,
        "backend": backend,
    }

    def one(single: str) -> Directory:
        return _open_one(single, options, access)

    urls = (url,) if url.strip().lower().startswith("ldif:") else split_urls(url)
    if len(urls) > 1:
        if any(u.lower().startswith("ldif:") for u in urls):
            raise DirectoryError(
                f"an LDIF file is one directory, not a provider among others: {url!r}"
            )
        return open_first(urls, one)
    return one(urls[0] if urls else url)


def _open_one(url: str, options: dict[str, Any], access: Access) -> Directory:
    options = dict(options)
    scheme = url.partition(":")[0].lower()
    if scheme == "ldif":
        from reconciler.directory.ldif import LdifDirectory

        return LdifDirectory(url, access)
    if scheme in ("ldap", "ldaps", "ldapi") and url[len(scheme) :].startswith("://"):
        chosen = options.pop("backend", None) or default_backend()
        kind: Callable[..., Directory]
        if chosen == "python-ldap":
            try:
                from reconciler.directory.python_ldap import PythonLdapDirectory as kind
            except ImportError as error:
                raise DirectoryError(
                    f"the python-ldap backend is not available ({error}): install "
                    "python-ldap (`pip install 'reconciler[fast]'`, which builds it against "
                    "Debian's libldap2-dev and libsasl2-dev) or use --backend ldap3"
                ) from None
        elif chosen == "ldap3":
            from reconciler.directory.ldap import LdapDirectory as kind
        else:
            raise DirectoryError(
                f"unknown directory backend {chosen!r}: use {' or '.join(BACKENDS)}"
            )
        return kind(url, **options)
    raise DirectoryError(
        f"unsupported directory URL {url!r}: use ldap://HOST:PORT, ldaps://HOST:PORT, "
        "ldapi://SOCKET (path URL-encoded) or ldif:PATH"
    )


__all__ = [
    "BACKENDS",
    "FIND_CHUNK",
    "OPERATIONAL",
    "PAGE_SIZE",
    "Directory",
    "LockPolicy",
    "Progress",
    "default_backend",
    "open_directory",
]
