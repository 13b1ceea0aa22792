"""The LDAP backend: the only module of the reconciler that imports ldap3.

One synchronous connection (ldap3 SYNC: SAFE_SYNC deep-copies every response and halves read
speed), paged subtree reads (RFC 2696) streamed page by page with the garbage collector paused
while a page is decoded, one round trip per write. Every ldap3 exception and every failed result
becomes one DirectoryError that names the server, what failed and what to check.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import socket
import ssl
import sys
import unicodedata
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from reconciler.directory.base import FIND_CHUNK, PAGE_SIZE, Directory, LockPolicy, Progress
from reconciler.dn import escape_filter_value, parent_dn
from reconciler.errors import DirectoryError, EntryExists, NoSuchEntry, StaleEntry
from reconciler.model import Entry

with warnings.catch_warnings():
    # ldap3 2.9.1 uses pyasn1 names deprecated in pyasn1 0.6 while importing (harmless).
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3
    from ldap3.core import exceptions as lexc

T = TypeVar("T")

PAGED_RESULTS = "1.2.840.113556.1.4.319"
NO_SUCH_ATTRIBUTE = 16
CONSTRAINT_VIOLATION = 19  # e.g. a second value for a single-valued attribute
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
ENTRY_ALREADY_EXISTS = 68
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS = 50
_NOT_NFC = frozenset({"userpassword"})


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def _decode(raw: Sequence[Any]) -> tuple[str, ...]:
    return tuple(
        (v.decode("ascii") if v.isascii() else _nfc(v.decode("utf-8", "replace")))
        if isinstance(v, bytes)
        else _nfc(str(v))
        for v in raw
    )


#: Attributes whose values repeat across entries (classes, agency and unit names, titles,
#: quotas): their decoded tuples are shared between entries, and attribute names are interned.
#: Reading 100,000 entries into a list took 199 MB instead of 445 MB (/usr/bin/time, gc off;
#: each entry otherwise holds its own copies of some 20 names and 10 common values).
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
_SHARED: dict[tuple[str, tuple[Any, ...]], tuple[str, ...]] = {}


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LdapDirectory(Directory):
    """A directory on an LDAP server (see `reconciler.directory.open_directory`)."""

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
        self.url = url.rstrip("/")
        self.bind_dn = bind_dn or None
        self.starttls = starttls
        self.loopback = False
        self.timeout = timeout
        scheme, _, rest = self.url.partition("://")
        scheme = scheme.lower()
        self._where = self.url
        if scheme == "ldapi":
            socket_path = urllib.parse.unquote(rest) or "/var/run/slapd/ldapi"
            self._where = f"{self.url} (socket {socket_path})"
            host, port = "", 0
        else:
            try:
                parts = urllib.parse.urlsplit(self.url)
                host = parts.hostname or ""
                port = parts.port or (636 if scheme == "ldaps" else 389)
            except ValueError as exc:
                raise DirectoryError(f"malformed directory URL {self.url!r}: {exc}") from None
            if not host:
                raise DirectoryError(
                    f"directory URL {self.url!r} has no host: use ldap://HOST:PORT"
                )
            if parts.path not in ("", "/") or parts.query:
                raise DirectoryError(
                    f"directory URL {self.url!r} has a path or query: give only "
                    f"{scheme}://HOST:PORT (the base DN comes from directory.yaml)"
                )
        self.loopback = scheme == "ldapi" or _is_loopback(host)
        if scheme == "ldapi" and starttls:
            raise DirectoryError(f"--starttls makes no sense over a local socket ({self.url})")
        if (
            scheme == "ldap"
            and self.bind_dn
            and not starttls
            and not insecure
            and not _is_loopback(host)
        ):
            raise DirectoryError(
                f"refusing to send the password of {self.bind_dn} in clear text to {self.url}: "
                "use ldaps://, add --starttls, or pass --insecure if the network is trusted"
            )
        if self.bind_dn and not password:
            raise DirectoryError(
                f"no bind password for {self.bind_dn} on {self.url}: set "
                "RECONCILER_BIND_PASSWORD or use --bind-password-file"
            )
        tls = None
        if scheme in ("ldap", "ldaps"):
            try:
                tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
            except lexc.LDAPException as exc:
                raise DirectoryError(
                    f"cannot use the CA file {ca_file} for {self.url}: {exc} — check the path "
                    "and that it holds PEM certificates"
                ) from None
        # over a local socket with no bind DN: SASL EXTERNAL, the identity of the local user
        # (`ldapadd -Y EXTERNAL -H ldapi:///`), e.g. root with the rights Debian gives it
        self.external = scheme == "ldapi" and not self.bind_dn
        if self.external:
            authentication: dict[str, Any] = {
                "authentication": ldap3.SASL,
                "sasl_mechanism": ldap3.EXTERNAL,
                "sasl_credentials": "",  # None would leave the bind "in progress"
            }
        elif self.bind_dn:
            authentication = {"authentication": ldap3.SIMPLE, "user": self.bind_dn}
        else:
            authentication = {"authentication": ldap3.ANONYMOUS}
        try:
            if scheme == "ldapi":
                server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=timeout)
            else:
                server = ldap3.Server(
                    host,
                    port=port,
                    use_ssl=scheme == "ldaps",
                    tls=tls,
                    get_info=ldap3.NONE,
                    connect_timeout=timeout,
                )
            self._conn = ldap3.Connection(
                server,
                password=password if self.bind_dn else None,
                **authentication,
                client_strategy=ldap3.SYNC,
                auto_bind=ldap3.AUTO_BIND_NONE,
                auto_referrals=False,
                check_names=False,
                raise_exceptions=False,
                receive_timeout=max(1, math.ceil(timeout)),  # ldap3 packs it as an integer
                return_empty_attributes=False,
            )
        except lexc.LDAPException as exc:
            raise DirectoryError(f"cannot use the directory URL {self.url}: {exc}") from None
        self._probe(scheme, host, port, rest)
        self._connect(starttls, ca_file)
        self._raw_entries_only()

    def __repr__(self) -> str:  # never the password
        return f"LdapDirectory(url={self.url!r}, bind_dn={self.bind_dn!r})"

    @property
    def connection(self) -> Any:
        """The bound ldap3 connection, for `directory.policy` and `directory.doctor` (reads
        that the Directory interface has no words for). Search entries carry raw values only."""
        return self._conn

    def lock_policy(self, base_dn: str) -> LockPolicy:
        from reconciler.directory.policy import lock_policy

        policy = lock_policy(self._conn, base_dn)
        return LockPolicy(policy.locks, f"{policy.dn}, {policy.how}" if policy.dn else policy.how)

    # connection ------------------------------------------------------------------------------

    def _probe(self, scheme: str, host: str, port: int, rest: str) -> None:
        """Reach the server with a plain socket first: ldap3 leaks the sockets of failed
        attempts, and errno-level failures make clearer messages."""
        try:
            if scheme == "ldapi":
                path = urllib.parse.unquote(rest) or "/var/run/slapd/ldapi"
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(self.timeout)
                    sock.connect(path)
            else:
                with socket.create_connection((host, port), timeout=self.timeout):
                    pass
        except OSError as exc:
            raise DirectoryError(f"cannot reach {self._where}: {self._reason(exc)}") from None

    def _connect(self, starttls: bool, ca_file: str | None) -> None:
        conn = self._conn
        self._call("connecting", lambda: conn.open())
        if starttls and not self._call("starting TLS", lambda: conn.start_tls()):
            self._abort()
            raise DirectoryError(
                f"the directory at {self._where} refused StartTLS: {self._server_says()} — is "
                "TLS configured on the server? Otherwise use ldaps://"
            )
        if not self._call("binding", lambda: conn.bind()):
            code = conn.result.get("result") if conn.result else None
            who = self._who()
            self._abort()
            if code == INVALID_CREDENTIALS:
                raise DirectoryError(
                    f"the directory at {self._where} refused {who}: invalid credentials — "
                    "check RECONCILER_BIND_PASSWORD or --bind-password-file, and the bind DN"
                )
            raise DirectoryError(
                f"the directory at {self._where} refused {who}: {self._server_says()}"
            )
        conn.password = None  # ldap3 would show it in its repr; no rebinds are done

    def _who(self) -> str:
        if self.bind_dn:
            return f"the bind DN {self.bind_dn}"
        if self.external:
            return "SASL EXTERNAL (the local user over ldapi)"
        return "an anonymous bind"

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.unbind()
        sock = getattr(self._conn, "socket", None)
        if sock is not None:  # ldap3 leaves it open when TLS or a read failed
            with contextlib.suppress(Exception):
                sock.close()

    def _server_says(self) -> str:
        result: dict[str, Any] = self._conn.result or {}
        desc = result.get("description") or "error"
        code = result.get("result")
        message = (result.get("message") or "").strip()
        text = f"{desc} ({code})" if code is not None else str(desc)
        return f"{text}: {message}" if message else text

    def _reason(self, exc: BaseException) -> str:
        text = str(exc)
        low = text.lower()
        if isinstance(exc, socket.gaierror):
            return "unknown host name — check the host in the URL"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused — is slapd running and is the port right?"
        if isinstance(exc, FileNotFoundError):
            return "no socket at that path — is slapd running and listening on ldapi?"
        if "certificate verify failed" in low or ("certificate" in low and "fail" in low):
            return (
                "the server's TLS certificate could not be verified — pass the CA that signed it "
                "with --ca-file, and check that the host name matches the certificate"
            )
        if "refused" in low:
            return "connection refused — is slapd running and is the port right?"
        if "timed out" in low or "timeout" in low:
            return (
                f"no answer within {self.timeout:g} s — check the host, the port and any firewall"
            )
        if "name or service not known" in low or "errno -2" in low or "errno -3" in low:
            return "unknown host name — check the host in the URL"
        if "no such file or directory" in low and self.url.lower().startswith("ldapi"):
            return "no socket at that path — is slapd running and listening on ldapi?"
        if "permission denied" in low:
            return "permission denied — check the access rights on the socket"
        if "unreachable" in low:
            return "network unreachable — check the host in the URL and the network"
        if "ssl" in low or "tls" in low:
            return f"TLS failed ({text}) — check the server's TLS setup and --ca-file"
        return text

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            with warnings.catch_warnings():
                # ldap3 checks the certificate's host name with ssl.match_hostname, deprecated
                # (but still doing its job) since Python 3.7.
                warnings.filterwarnings("ignore", "ssl.match_hostname", DeprecationWarning)
                return fn()
        except lexc.LDAPSocketOpenError as exc:
            raise DirectoryError(f"cannot reach {self._where}: {self._reason(exc)}") from None
        except lexc.LDAPStartTLSError as exc:
            self._abort()
            raise DirectoryError(
                f"StartTLS with {self._where} failed: {self._reason(exc)}"
            ) from None
        except (lexc.LDAPCommunicationError, lexc.LDAPResponseTimeoutError) as exc:
            self._abort()
            raise DirectoryError(
                f"lost the connection to {self._where} while {what}: {self._reason(exc)} — is "
                "slapd still running?"
            ) from None
        except lexc.LDAPException as exc:
            raise DirectoryError(f"{what} on {self._where} failed: {exc}") from None
        except (OSError, ssl.SSLError) as exc:
            raise DirectoryError(f"{what} on {self._where} failed: {self._reason(exc)}") from None

    def _refused(self, what: str, dn: str, target: str | None = None) -> DirectoryError:
        result: dict[str, Any] = self._conn.result or {}
        code = result.get("result")
        if code == ENTRY_ALREADY_EXISTS:
            return EntryExists(f"{target or dn} already exists in {self.url}")
        if code == NO_SUCH_OBJECT:
            if what == "add":
                return NoSuchEntry(
                    f"cannot add {dn} to {self.url}: its parent {parent_dn(dn)} does not exist"
                )
            return NoSuchEntry(f"{dn} does not exist in {self.url}")
        hint = ""
        if code == INSUFFICIENT_ACCESS:
            hint = " — check that the bind DN may write there (the server's ACLs)"
        return DirectoryError(
            f"the directory at {self.url} refused to {what} {dn}: {self._server_says()}{hint}"
        )

    # reads ------------------------------------------------------------------------------------

    @staticmethod
    def _wanted(attributes: Sequence[str]) -> list[str]:
        wanted = [a for a in attributes if a.lower() not in _NOT_NFC]
        return wanted or ["1.1"]

    @staticmethod
    def _entry(response: Mapping[str, Any]) -> Entry:
        attrs: dict[str, tuple[str, ...]] = {}
        for name, raw in response["raw_attributes"].items():
            key = _NAMES.get(name)
            if key is None:
                key = sys.intern(name.lower())
                if len(_NAMES) < _CACHE_MAX:
                    _NAMES[name] = key
            if key == "userpassword" or not raw:
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
        return Entry(dn=_nfc(response["dn"]), attrs=attrs)

    def _raw_entries_only(self) -> None:
        """Make ldap3 decode a search result entry into its raw values only.

        ldap3 decodes every value twice, to bytes and to str (through its configuration lookup,
        per value): at 100,000 entries the str copy, which `_entry` never reads, took more than
        a third of the read (cProfile: `attributes_to_dict_fast` 7.7 s of 20 s). The entries
        keep the keys ldap3 itself reads (`raw_attributes`, `dn`, `raw_dn`) and an empty
        `attributes`."""
        strategy = self._conn.strategy
        original = strategy.decode_response_fast

        def decode(message: Mapping[str, Any]) -> dict[str, Any]:
            if message["protocolOp"] != 4:  # not a searchResEntry
                result: dict[str, Any] = original(message)
                return result
            payload = message["payload"]
            raw_dn = payload[0][3]
            raw: dict[str, list[bytes]] = {}
            for attribute in payload[1][3]:
                name = attribute[3][0][3].decode("utf-8", "replace")
                raw[name] = [value[3] for value in attribute[3][1][3]]
            return {
                "type": "searchResEntry",
                "raw_dn": raw_dn,
                "dn": raw_dn.decode("utf-8", "replace"),
                "raw_attributes": raw,
                "attributes": {},
            }

        strategy.decode_response_fast = decode

    def _search_page(
        self,
        base_dn: str,
        scope: str,
        wanted: list[str],
        cookie: bytes | None,
        paged: bool,
        search_filter: str = "(objectClass=*)",
    ) -> tuple[list[Entry], bytes | None, int]:
        conn = self._conn
        kwargs: dict[str, Any] = {}
        if paged:
            kwargs = {"paged_size": PAGE_SIZE, "paged_cookie": cookie}
        self._call(
            f"reading {base_dn}",
            lambda: conn.search(
                base_dn,
                search_filter,
                search_scope=scope,
                attributes=wanted,
                **kwargs,
            ),
        )
        result: dict[str, Any] = conn.result or {}
        code = result.get("result", 0)
        entries = [self._entry(r) for r in conn.response or () if r.get("type") == "searchResEntry"]
        controls = result.get("controls") or {}
        paging = controls.get(PAGED_RESULTS, {}).get("value") or {}
        next_cookie = paging.get("cookie") or None
        return entries, next_cookie, code

    def read(
        self,
        base_dn: str,
        attributes: Sequence[str],
        progress: Progress | None = None,
    ) -> Iterator[Entry]:
        return self._subtree(base_dn, self._wanted(attributes), "(objectClass=*)", progress)

    def find(
        self, base_dn: str, attribute: str, values: Iterable[str], attributes: Sequence[str]
    ) -> Iterator[Entry]:
        wanted = self._wanted(attributes)
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), FIND_CHUNK):
            terms = "".join(
                f"({attribute}={escape_filter_value(v)})"
                for v in unique[start : start + FIND_CHUNK]
            )
            yield from self._subtree(base_dn, wanted, f"(|{terms})", None)

    def _subtree(
        self, base_dn: str, wanted: list[str], search_filter: str, progress: Progress | None
    ) -> Iterator[Entry]:
        cookie: bytes | None = None
        count = 0
        while True:
            entries, cookie, code = self._search_page(
                base_dn, ldap3.SUBTREE, wanted, cookie, True, search_filter
            )
            if code == NO_SUCH_OBJECT:
                raise NoSuchEntry(
                    f"base DN {base_dn} does not exist on {self.url} — check base_dn in "
                    "directory.yaml (and that the bind DN may see it)"
                )
            if code == INSUFFICIENT_ACCESS:
                who = self._who()
                raise DirectoryError(
                    f"{who} may not read {base_dn} on {self.url} — check the bind DN and the "
                    "server's ACLs"
                )
            if code != 0:
                raise DirectoryError(
                    f"reading {base_dn} from {self.url} failed: {self._server_says()}"
                )
            count += len(entries)
            yield from entries
            del entries
            if progress is not None:
                progress(count)
            if not cookie:
                return

    def get(self, dn: str, attributes: Sequence[str]) -> Entry | None:
        entries, _, code = self._search_page(dn, ldap3.BASE, self._wanted(attributes), None, False)
        if code == NO_SUCH_OBJECT:
            return None
        if code != 0:
            raise DirectoryError(f"reading {dn} from {self.url} failed: {self._server_says()}")
        return entries[0] if entries else None

    # writes -----------------------------------------------------------------------------------

    @staticmethod
    def _values(name: str, values: Sequence[str]) -> list[str]:
        if isinstance(values, str):
            values = [values]
        if name.lower() in _NOT_NFC:
            return list(values)
        return [_nfc(v) for v in values]

    def add(self, dn: str, attrs: Mapping[str, Sequence[str]]) -> None:
        dn = _nfc(dn)
        attributes = {name: self._values(name, vals) for name, vals in attrs.items() if vals}
        conn = self._conn
        if not self._call(f"adding {dn}", lambda: conn.add(dn, attributes=attributes)):
            raise self._refused("add", dn)

    def modify(
        self,
        dn: str,
        changes: Mapping[str, Sequence[str]],
        expect: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        dn = _nfc(dn)
        mods: dict[str, list[tuple[str, list[str]]]] = {}
        for name, vals in changes.items():
            new = self._values(name, vals)
            if expect is None or name not in expect:
                mods[name] = [(ldap3.MODIFY_REPLACE, new)]
                continue
            # compare-and-swap: deleting a value that is gone, or adding one that is there (a
            # second value of a single-valued attribute), fails the whole modify atomically
            old = self._values(name, expect[name])
            swap = (
                (ldap3.MODIFY_DELETE, [v for v in old if v not in new]),
                (ldap3.MODIFY_ADD, [v for v in new if v not in old]),
            )
            if kept := [(kind, values) for kind, values in swap if values]:
                mods[name] = kept
        if not mods:
            return
        conn = self._conn
        if not self._call(f"modifying {dn}", lambda: conn.modify(dn, mods)):
            code = (self._conn.result or {}).get("result")
            if expect is not None and code in (
                NO_SUCH_ATTRIBUTE,
                CONSTRAINT_VIOLATION,
                ATTRIBUTE_OR_VALUE_EXISTS,
            ):
                raise StaleEntry(
                    f"{dn} in {self.url} no longer has the values this change was made from "
                    f"({self._server_says()}): nothing was changed"
                )
            raise self._refused("modify", dn)

    def rename(self, dn: str, new_rdn: str) -> str:
        dn, new_rdn = _nfc(dn), _nfc(new_rdn)
        parent = parent_dn(dn)
        new_dn = f"{new_rdn},{parent}" if parent else new_rdn
        conn = self._conn
        ok = self._call(f"renaming {dn}", lambda: conn.modify_dn(dn, new_rdn, delete_old_dn=True))
        if not ok:
            raise self._refused("rename", dn, new_dn)
        return new_dn

    def delete(self, dn: str) -> None:
        dn = _nfc(dn)
        conn = self._conn
        if not self._call(f"deleting {dn}", lambda: conn.delete(dn)):
            raise self._refused("delete", dn)

    def close(self) -> None:
        self._abort()
