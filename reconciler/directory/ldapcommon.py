"""What the two LDAP backends (`ldap` on ldap3, `python_ldap` on OpenLDAP's libldap) share, so
that they keep `base.Directory`'s semantics in one place and differ only in how they talk.

- `target()` reads the URL and makes the refusals that depend on no library: no host, a path or
  a query, StartTLS over a local socket, a simple bind in clear text to a host other than
  loopback, a bind DN without a password. `probe()` reaches the server with a plain socket first
  (errno-level failures make the clearest messages).
- `reason()` says a failure in plain words, with what to check; `tls_failure()` finds why a TLS
  handshake fails with Python's ssl, for libldap that does not say.
- `entry()` turns raw values into an `Entry`: lower-case interned names, NFC strings, repeated
  values shared between entries, userPassword dropped.
- `modifications()` is `modify`'s list: replace, or the compare-and-swap's delete and add.
- `LdapServer` is what both backends do alike: the constructor's checks, the repr, and the reads
  (`read`, and `find` in a few OR searches) as paged subtree searches, a backend's `_subtree`
  (the garbage collector is the pipeline's to pause: `planning.collector`).
- `refused()`, `read_refused()`, `stale()`, `lost()` and the like are the messages every
  backend gives for the same failure.
"""

from __future__ import annotations

import abc
import ipaddress
import socket
import ssl
import sys
import unicodedata
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from reconciler.directory.base import FIND_CHUNK, Directory, LockPolicy, Progress
from reconciler.dn import escape_filter_value, parent_dn
from reconciler.errors import DirectoryError, EntryExists, NoSuchEntry, Refused, StaleEntry
from reconciler.model import Entry

# LDAP result codes (RFC 4511)
NO_SUCH_ATTRIBUTE = 16
CONSTRAINT_VIOLATION = 19  # e.g. a second value for a single-valued attribute
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS = 50
ENTRY_ALREADY_EXISTS = 68
#: What a compare-and-swap modify fails with when the entry no longer has the expected values.
STALE_CODES = frozenset({NO_SUCH_ATTRIBUTE, CONSTRAINT_VIOLATION, ATTRIBUTE_OR_VALUE_EXISTS})

DEFAULT_SOCKET = "/var/run/slapd/ldapi"
_NOT_NFC = frozenset({"userpassword"})


@dataclass(frozen=True, slots=True)
class Target:
    """A checked directory URL."""

    url: str  # without a trailing slash
    scheme: str  # ldap, ldaps or ldapi
    host: str
    port: int
    socket_path: str  # ldapi only

    @property
    def where(self) -> str:
        """The URL, and for ldapi the socket's path: what every message names."""
        if self.scheme == "ldapi":
            return f"{self.url} (socket {self.socket_path})"
        return self.url


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def target(
    url: str, *, bind_dn: str | None, password: str | None, starttls: bool, insecure: bool
) -> Target:
    """The URL read and checked (see the module docstring); raises DirectoryError."""
    url = url.rstrip("/")
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "ldapi":
        found = Target(url, scheme, "", 0, urllib.parse.unquote(rest) or DEFAULT_SOCKET)
    else:
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname or ""
            port = parts.port or (636 if scheme == "ldaps" else 389)
        except ValueError as exc:
            raise DirectoryError(f"malformed directory URL {url!r}: {exc}") from None
        if not host:
            raise DirectoryError(f"directory URL {url!r} has no host: use ldap://HOST:PORT")
        if parts.path not in ("", "/") or parts.query:
            raise DirectoryError(
                f"directory URL {url!r} has a path or query: give only "
                f"{scheme}://HOST:PORT (the base DN comes from directory.yaml)"
            )
        found = Target(url, scheme, host, port, "")
    if scheme == "ldapi" and starttls:
        raise DirectoryError(f"--starttls makes no sense over a local socket ({url})")
    if scheme == "ldap" and bind_dn and not starttls and not insecure and not is_loopback(host):
        raise DirectoryError(
            f"refusing to send the password of {bind_dn} in clear text to {url}: "
            "use ldaps://, add --starttls, or pass --insecure if the network is trusted"
        )
    if bind_dn and not password:
        raise DirectoryError(
            f"no bind password for {bind_dn} on {url}: set "
            "RECONCILER_BIND_PASSWORD or use --bind-password-file"
        )
    return found


def reason(failure: BaseException | str, timeout: float, url: str) -> str:
    """A connection-level failure in plain words, with what to check."""
    text = str(failure)
    low = text.lower()
    if isinstance(failure, socket.gaierror):
        return "unknown host name — check the host in the URL"
    if isinstance(failure, ConnectionRefusedError):
        return "connection refused — is slapd running and is the port right?"
    if isinstance(failure, FileNotFoundError):
        return "no socket at that path — is slapd running and listening on ldapi?"
    if (
        "certificate verify failed" in low
        or ("certificate" in low and ("fail" in low or "not trusted" in low))
        or "issuer is unknown" in low
    ):
        return (
            "the server's TLS certificate could not be verified — pass the CA that signed it "
            "with --ca-file, and check that the host name matches the certificate"
        )
    if "no certificate or crl found" in low:
        return "the CA file holds no certificate — give --ca-file a file of PEM certificates"
    if "refused" in low:
        return "connection refused — is slapd running and is the port right?"
    if "timed out" in low or "timeout" in low:
        return f"no answer within {timeout:g} s — check the host, the port and any firewall"
    if "name or service not known" in low or "errno -2" in low or "errno -3" in low:
        return "unknown host name — check the host in the URL"
    if "no such file or directory" in low and url.lower().startswith("ldapi"):
        return "no socket at that path — is slapd running and listening on ldapi?"
    if "permission denied" in low:
        return "permission denied — check the access rights on the socket"
    if "unreachable" in low:
        return "network unreachable — check the host in the URL and the network"
    if "ssl" in low or "tls" in low:
        return f"TLS failed ({text}) — check the server's TLS setup and --ca-file"
    return text


def probe(where: Target, timeout: float) -> None:
    """Reach the server with a plain socket: errno-level failures make clearer messages than
    either library gives (and ldap3 leaks the sockets of failed attempts)."""
    try:
        if where.scheme == "ldapi":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(where.socket_path)
        else:
            with socket.create_connection((where.host, where.port), timeout=timeout):
                pass
    except OSError as exc:
        raise DirectoryError(
            f"cannot reach {where.where}: {reason(exc, timeout, where.url)}"
        ) from None


#: An LDAPMessage with message id 1 and the StartTLS extended request (RFC 4511 section 4.14).
_STARTTLS = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16" + b"1.3.6.1.4.1.1466.20037"


def _starttls_accepted(answer: bytes) -> bool:
    """Whether the extended response to `_STARTTLS` says success (resultCode 0)."""
    at = answer.find(b"\x78")  # [APPLICATION 24] ExtendedResponse
    if at < 0 or at + 1 >= len(answer):
        return False
    length = answer[at + 1]
    start = at + 2 + (length & 0x7F if length & 0x80 else 0)
    return answer[start : start + 3] == b"\x0a\x01\x00"


def tls_failure(where: Target, ca_file: str | None, starttls: bool, timeout: float) -> str | None:
    """Why a TLS handshake with the server fails, found with Python's ssl and the same trust
    (the CA file, or the system's CAs; the host name checked), or None when it succeeds. libldap
    built on GnuTLS, as Debian's is, says only "unknown error code" when a certificate is not
    trusted."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        return (
            f"cannot use the CA file {ca_file}: {exc} — check the path and that it holds PEM "
            "certificates"
        )
    try:
        with socket.create_connection((where.host, where.port), timeout=timeout) as raw:
            if starttls:
                raw.sendall(_STARTTLS)
                if not _starttls_accepted(raw.recv(4096)):
                    return "the server refused StartTLS — is TLS configured on the server?"
            with context.wrap_socket(raw, server_hostname=where.host):
                pass
    except (OSError, ssl.SSLError) as exc:
        return reason(exc, timeout, where.url)
    return None


def lost(where: str, what: str, why: str) -> DirectoryError:
    return DirectoryError(
        f"lost the connection to {where} while {what}: {why} — is slapd still running?"
    )


def bind_refused(where: str, who: str, code: int | None, says: str) -> DirectoryError:
    if code == INVALID_CREDENTIALS:
        return DirectoryError(
            f"the directory at {where} refused {who}: invalid credentials — "
            "check RECONCILER_BIND_PASSWORD or --bind-password-file, and the bind DN"
        )
    return DirectoryError(f"the directory at {where} refused {who}: {says}")


def starttls_refused(where: str, says: str) -> DirectoryError:
    return DirectoryError(
        f"the directory at {where} refused StartTLS: {says} — is TLS configured on the server? "
        "Otherwise use ldaps://"
    )


def server_says(description: str, code: int | None, message: str) -> str:
    """A failed result as the server gave it: `description (code): message`."""
    text = f"{description} ({code})" if code is not None else description
    message = message.strip()
    return f"{text}: {message}" if message else text


# reads ----------------------------------------------------------------------------------------


def wanted(attributes: Sequence[str]) -> list[str]:
    """The attributes to ask for; `1.1` (none) rather than all. userPassword asked for is read
    only to be counted (`entry`)."""
    return list(attributes) or ["1.1"]


def nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def _decode(raw: Sequence[bytes]) -> tuple[str, ...]:
    """Values as read (bytes) as NFC strings; most are one ASCII value (a third faster so)."""
    if len(raw) == 1:
        v = raw[0]
        return (v.decode("ascii") if v.isascii() else nfc(v.decode("utf-8", "replace")),)
    return tuple(
        v.decode("ascii") if v.isascii() else nfc(v.decode("utf-8", "replace")) for v in raw
    )


#: Attributes whose values repeat across entries (classes, agency and unit names, titles,
#: quotas): their decoded tuples are shared between entries, and attribute names are interned.
#: Reading 100,000 entries into a list took 199 MB instead of 445 MB (/usr/bin/time, gc off;
#: each entry otherwise holds its own copies of some 20 names and 10 common values); 20,000
#: synthetic mailboxes, 54 MB instead of 82 through python-ldap, 48 instead of 75 through ldap3.
_SHARED_ATTRS = frozenset(
    {
        "objectclass",
        "o",
        "ou",
        "title",
        "govmailkind",
        "govmailagency",
        "govmailunit",
        "govmailquota",
        "govmailquotadecision",
        "govmailsuspendreason",
        "pwdreset",
    }
)
_CACHE_MAX = 100_000
_NAMES: dict[str, str] = {}
_SHARED: dict[tuple[str, tuple[bytes, ...]], tuple[str, ...]] = {}


def entry_name(spelled: str) -> str:
    """The name of an attribute in an `Entry` (lower case, one str for every entry), from the
    name the server gave it. "userpassword" is never an attribute of an entry: only how many
    values it has is kept (`Entry.passwords`)."""
    key = _NAMES.get(spelled)
    if key is None:
        key = sys.intern(spelled.lower())
        if len(_NAMES) < _CACHE_MAX:
            _NAMES[spelled] = key
    return key


def entry(dn: str, raw_attributes: Mapping[str, Sequence[bytes]]) -> Entry:
    """An entry from its DN and its raw values (bytes) by attribute name, as read; userPassword
    only as how many values it has (`Entry.passwords`): the hashes are not kept."""
    attrs: dict[str, tuple[str, ...]] = {}
    passwords = None
    for name, raw in raw_attributes.items():
        key = entry_name(name)
        if key == "userpassword":
            passwords = len(raw)  # how many, never what
            continue
        if not raw:
            continue
        if key in _SHARED_ATTRS:
            signature = (key, tuple(raw))
            values = _SHARED.get(signature)
            if values is None:
                values = _decode(raw)
                if len(_SHARED) < _CACHE_MAX:
                    _SHARED[signature] = values
            attrs[key] = values
        else:
            attrs[key] = _decode(raw)
    return Entry(dn=nfc(dn), attrs=attrs, passwords=passwords)


def plain_attrs(raw: Mapping[str, Sequence[bytes]]) -> dict[str, tuple[str, ...]]:
    """Raw values as strings by lower-case name, as read (no NFC, no sharing): for `search_raw`."""
    return {
        name.lower(): tuple(v.decode("utf-8", "replace") for v in values)
        for name, values in raw.items()
        if values
    }


def read_refused(url: str, base_dn: str, who: str, code: int | None, says: str) -> DirectoryError:
    """A subtree search that failed: a missing base, a bind DN that may not read, or else."""
    if code == NO_SUCH_OBJECT:
        return NoSuchEntry(
            f"base DN {base_dn} does not exist on {url} — check base_dn in directory.yaml "
            "(and that the bind DN may see it)"
        )
    if code == INSUFFICIENT_ACCESS:
        return DirectoryError(
            f"{who} may not read {base_dn} on {url} — check the bind DN and the server's ACLs"
        )
    return DirectoryError(f"reading {base_dn} from {url} failed: {says}")


# writes ---------------------------------------------------------------------------------------

REPLACE, DELETE, ADD = "replace", "delete", "add"


def values(name: str, given: Sequence[str]) -> list[str]:
    """Values to write, in NFC (userPassword as given)."""
    if isinstance(given, str):
        given = [given]
    if name.lower() in _NOT_NFC:
        return list(given)
    return [nfc(v) for v in given]


def modifications(
    changes: Mapping[str, Sequence[str]], expect: Mapping[str, Sequence[str]] | None
) -> list[tuple[str, str, list[str]]]:
    """`modify`'s list of (attribute, REPLACE | DELETE | ADD, values), in one request.

    An attribute named in `expect` is a compare-and-swap: delete the expected values it drops,
    add the values it gains. Deleting a value that is gone, or adding one that is there (a second
    value of a single-valued attribute), fails the whole modify atomically."""
    mods: list[tuple[str, str, list[str]]] = []
    for name, given in changes.items():
        new = values(name, given)
        if expect is None or name not in expect:
            mods.append((name, REPLACE, new))
            continue
        old = values(name, expect[name])
        if gone := [v for v in old if v not in new]:
            mods.append((name, DELETE, gone))
        if added := [v for v in new if v not in old]:
            mods.append((name, ADD, added))
    return mods


def stale(dn: str, url: str, says: str) -> StaleEntry:
    return StaleEntry(
        f"{dn} in {url} no longer has the values this change was made from ({says}): "
        "nothing was changed"
    )


def refused(
    url: str, what: str, dn: str, code: int | None, says: str, new_dn: str | None = None
) -> DirectoryError:
    """A write the server refused, with what to check."""
    if code == ENTRY_ALREADY_EXISTS:
        return EntryExists(f"{new_dn or dn} already exists in {url}")
    if code == NO_SUCH_OBJECT:
        if what == "add":
            return NoSuchEntry(
                f"cannot add {dn} to {url}: its parent {parent_dn(dn)} does not exist"
            )
        return NoSuchEntry(f"{dn} does not exist in {url}")
    hint = ""
    if code == INSUFFICIENT_ACCESS:
        hint = " — check that the bind DN may write there (the server's ACLs)"
    return Refused(f"the directory at {url} refused to {what} {dn}: {says}{hint}")


def renamed_dn(dn: str, new_rdn: str) -> str:
    parent = parent_dn(dn)
    return f"{new_rdn},{parent}" if parent else new_rdn


# the shared reads ------------------------------------------------------------------------------


def find_filters(attribute: str, values: Iterable[str]) -> list[str]:
    """The OR filters that find the entries whose `attribute` equals one of `values`: at most
    FIND_CHUNK escaped values each, each value once."""
    unique = list(dict.fromkeys(values))
    return [
        "(|"
        + "".join(f"({attribute}={escape_filter_value(v)})" for v in unique[s : s + FIND_CHUNK])
        + ")"
        for s in range(0, len(unique), FIND_CHUNK)
    ]


class LdapServer(Directory):
    """A directory on an LDAP server: what both backends do alike (see the module docstring).

    A backend connects and binds in `_open` and streams a paged subtree search in `_subtree`;
    the rest of the interface is its own."""

    def __init__(
        self,
        url: str,
        *,
        bind_dn: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        insecure: bool = False,
        ca_file: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.bind_dn = bind_dn or None
        self.timeout = timeout
        self._target = target(
            url, bind_dn=self.bind_dn, password=password, starttls=starttls, insecure=insecure
        )
        self.url, self._where = self._target.url, self._target.where
        self.starttls = starttls
        self.loopback = self._target.scheme == "ldapi" or is_loopback(self._target.host)
        # over a local socket with no bind DN: SASL EXTERNAL, the identity of the local user
        # (`ldapadd -Y EXTERNAL -H ldapi:///`), e.g. root with the rights Debian gives it
        self.external = self._target.scheme == "ldapi" and not self.bind_dn
        self._open(password, starttls, ca_file)

    def __repr__(self) -> str:  # never the password
        return f"{type(self).__name__}(url={self.url!r}, bind_dn={self.bind_dn!r})"

    def _who(self) -> str:
        if self.bind_dn:
            return f"the bind DN {self.bind_dn}"
        if self.external:
            return "SASL EXTERNAL (the local user over ldapi)"
        return "an anonymous bind"

    @abc.abstractmethod
    def _open(self, password: str | None, starttls: bool, ca_file: str | None) -> None:
        """Connect to `self._target`, start TLS if asked, bind; DirectoryError when that fails."""

    @abc.abstractmethod
    def search_raw(
        self, base: str, search_filter: str, scope: str, attributes: list[str]
    ) -> list[tuple[str, dict[str, tuple[str, ...]]]]:
        """One unpaged, read-only search (`scope`: base, one or sub) of what the interface has no
        words for (the root DSE, cn=config, the schema, the password policy, for
        `directory.policy`): (DN, values by lower-case attribute name) of each entry; an empty
        list when the server refuses it."""

    def lock_policy(self, base_dn: str) -> LockPolicy:
        from reconciler.directory.policy import lock_policy

        policy = lock_policy(self, base_dn)
        return LockPolicy(policy.locks, f"{policy.dn}, {policy.how}" if policy.dn else policy.how)

    @abc.abstractmethod
    def _subtree(
        self, base_dn: str, asked: list[str], search_filter: str, progress: Progress | None
    ) -> Iterator[Entry]:
        """The entries of a subtree search, paged (PAGE_SIZE entries a page), as they come;
        `progress` gets how many were read after each page; `read_refused()` when the server
        refuses the search."""

    def read(
        self,
        base_dn: str,
        attributes: Sequence[str],
        progress: Progress | None = None,
    ) -> Iterator[Entry]:
        return self._subtree(base_dn, wanted(attributes), "(objectClass=*)", progress)

    def find(
        self, base_dn: str, attribute: str, values: Iterable[str], attributes: Sequence[str]
    ) -> Iterator[Entry]:
        """OR filters of at most FIND_CHUNK escaped values, each value once (`find_filters`)."""
        asked = wanted(attributes)
        for search_filter in find_filters(attribute, values):
            yield from self._subtree(base_dn, asked, search_filter, None)

    def password_hashes(
        self, base_dn: str, attribute: str, values: Iterable[str]
    ) -> dict[str, tuple[str, ...]]:
        """OR filters of at most FIND_CHUNK values, each an unpaged search (below any server's
        size limit): only userPassword is asked for."""
        found: dict[str, tuple[str, ...]] = {}
        for search_filter in find_filters(attribute, values):
            for dn, attrs in self.search_raw(base_dn, search_filter, "sub", ["userPassword"]):
                if attrs.get("userpassword"):
                    found[nfc(dn).lower()] = attrs["userpassword"]
        return found
