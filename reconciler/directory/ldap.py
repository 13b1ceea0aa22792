"""The LDAP backend on ldap3 (pure Python, for installs without a compiler): the only module of
the reconciler that imports ldap3. `python_ldap` is the faster one on OpenLDAP's libldap; what
both share is in `ldapcommon`.

One synchronous connection (ldap3 SYNC: SAFE_SYNC deep-copies every response and halves read
speed), paged subtree reads (RFC 2696) streamed page by page, one round trip per write. Every
ldap3 exception and every failed result becomes one DirectoryError that names the server, what
failed and what to check.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from reconciler.directory import ldapcommon as common
from reconciler.directory.base import PAGE_SIZE, Progress
from reconciler.errors import DirectoryError
from reconciler.model import Entry

with warnings.catch_warnings():
    # ldap3 2.9.1 uses pyasn1 names deprecated in pyasn1 0.6 while importing (harmless).
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3
    from ldap3.core import exceptions as lexc

T = TypeVar("T")

PAGED_RESULTS = "1.2.840.113556.1.4.319"
_KIND = {
    common.REPLACE: ldap3.MODIFY_REPLACE,
    common.DELETE: ldap3.MODIFY_DELETE,
    common.ADD: ldap3.MODIFY_ADD,
}


class LdapDirectory(common.LdapServer):
    """A directory on an LDAP server through ldap3 (see `reconciler.directory.open_directory`)."""

    backend = "ldap3"

    def _open(self, password: str | None, starttls: bool, ca_file: str | None) -> None:
        where, timeout = self._target, self.timeout
        tls = None
        if where.scheme in ("ldap", "ldaps"):
            try:
                tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
            except lexc.LDAPException as exc:
                raise DirectoryError(
                    f"cannot use the CA file {ca_file} for {self.url}: {exc} — check the path "
                    "and that it holds PEM certificates"
                ) from None
        if self.external:  # SASL EXTERNAL over ldapi (see LdapServer)
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
            if where.scheme == "ldapi":
                server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=timeout)
            else:
                server = ldap3.Server(
                    where.host,
                    port=where.port,
                    use_ssl=where.scheme == "ldaps",
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
        common.probe(where, timeout)  # ldap3 leaks the sockets of failed attempts
        self._connect(starttls)
        self._raw_entries_only()

    # connection ------------------------------------------------------------------------------

    def _connect(self, starttls: bool) -> None:
        conn = self._conn
        self._call("connecting", lambda: conn.open())
        if starttls and not self._call("starting TLS", lambda: conn.start_tls()):
            self._abort()
            raise common.starttls_refused(self._where, self._server_says())
        if not self._call("binding", lambda: conn.bind()):
            code = conn.result.get("result") if conn.result else None
            says = self._server_says()
            self._abort()
            raise common.bind_refused(self._where, self._who(), code, says)
        conn.password = None  # ldap3 would show it in its repr; no rebinds are done

    @property
    def connection(self) -> Any:
        """The bound ldap3 connection, for `directory.doctor` (writes and binds that the
        Directory interface has no words for). Search entries carry raw values only."""
        return self._conn

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.unbind()
        sock = getattr(self._conn, "socket", None)
        if sock is not None:  # ldap3 leaves it open when TLS or a read failed
            with contextlib.suppress(Exception):
                sock.close()

    def _code(self) -> int | None:
        result: dict[str, Any] = self._conn.result or {}
        return result.get("result")

    def _server_says(self) -> str:
        result: dict[str, Any] = self._conn.result or {}
        return common.server_says(
            result.get("description") or "error", result.get("result"), result.get("message") or ""
        )

    def _reason(self, exc: BaseException) -> str:
        return common.reason(exc, self.timeout, self.url)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            with warnings.catch_warnings():
                # ldap3 checks the certificate's host name with ssl.match_hostname, deprecated
                # (but still doing its job) since Python 3.7.
                warnings.filterwarnings("ignore", "ssl.match_hostname", DeprecationWarning)
                return fn()
        except lexc.LDAPSocketOpenError as exc:
            self._abort()  # a socket whose TLS handshake failed stays open otherwise
            raise DirectoryError(f"cannot reach {self._where}: {self._reason(exc)}") from None
        except lexc.LDAPStartTLSError as exc:
            code, says = self._code(), self._server_says()
            self._abort()
            if code:  # the server answered the request with an error
                raise common.starttls_refused(self._where, says) from None
            raise DirectoryError(
                f"StartTLS with {self._where} failed: {self._reason(exc)}"
            ) from None
        except (lexc.LDAPCommunicationError, lexc.LDAPResponseTimeoutError) as exc:
            self._abort()
            raise common.lost(self._where, what, self._reason(exc)) from None
        except lexc.LDAPException as exc:
            raise DirectoryError(f"{what} on {self._where} failed: {exc}") from None
        except (OSError, ssl.SSLError) as exc:
            raise DirectoryError(f"{what} on {self._where} failed: {self._reason(exc)}") from None

    def _refused(self, what: str, dn: str, new_dn: str | None = None) -> DirectoryError:
        return common.refused(self.url, what, dn, self._code(), self._server_says(), new_dn)

    # reads ------------------------------------------------------------------------------------

    @staticmethod
    def _entry(response: Mapping[str, Any]) -> Entry:
        return common.entry(response["dn"], response["raw_attributes"])

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
                base_dn, search_filter, search_scope=scope, attributes=wanted, **kwargs
            ),
        )
        result: dict[str, Any] = conn.result or {}
        code = result.get("result", 0)
        entries = [self._entry(r) for r in conn.response or () if r.get("type") == "searchResEntry"]
        controls = result.get("controls") or {}
        paging = controls.get(PAGED_RESULTS, {}).get("value") or {}
        return entries, paging.get("cookie") or None, code

    def _subtree(
        self, base_dn: str, asked: list[str], search_filter: str, progress: Progress | None
    ) -> Iterator[Entry]:
        cookie: bytes | None = None
        count = 0
        while True:
            entries, cookie, code = self._search_page(
                base_dn, ldap3.SUBTREE, asked, cookie, True, search_filter
            )
            if code != 0:
                raise common.read_refused(self.url, base_dn, self._who(), code, self._server_says())
            count += len(entries)
            yield from entries
            del entries
            if progress is not None:
                progress(count)
            if not cookie:
                return

    def search_raw(
        self, base: str, search_filter: str, scope: str, attributes: list[str]
    ) -> list[tuple[str, dict[str, tuple[str, ...]]]]:
        scopes = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}
        conn = self._conn
        if not self._call(
            f"reading {base or 'the root DSE'}",
            lambda: conn.search(base, search_filter, scopes[scope], attributes=attributes),
        ):
            return []
        return [
            (r["dn"], common.plain_attrs(r.get("raw_attributes") or {}))
            for r in conn.response or ()
            if r.get("type") == "searchResEntry"
        ]

    def get(self, dn: str, attributes: Sequence[str]) -> Entry | None:
        wanted = common.wanted(attributes)
        entries, _, code = self._search_page(dn, ldap3.BASE, wanted, None, False)
        if code == common.NO_SUCH_OBJECT:
            return None
        if code != 0:
            raise DirectoryError(f"reading {dn} from {self.url} failed: {self._server_says()}")
        return entries[0] if entries else None

    # writes -----------------------------------------------------------------------------------

    def add(self, dn: str, attrs: Mapping[str, Sequence[str]]) -> None:
        dn = common.nfc(dn)
        attributes = {name: common.values(name, vals) for name, vals in attrs.items() if vals}
        conn = self._conn
        if not self._call(f"adding {dn}", lambda: conn.add(dn, attributes=attributes)):
            raise self._refused("add", dn)

    def modify(
        self,
        dn: str,
        changes: Mapping[str, Sequence[str]],
        expect: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        dn = common.nfc(dn)
        mods: dict[str, list[tuple[str, list[str]]]] = {}
        for name, kind, vals in common.modifications(changes, expect):
            mods.setdefault(name, []).append((_KIND[kind], vals))
        if not mods:
            return
        conn = self._conn
        if not self._call(f"modifying {dn}", lambda: conn.modify(dn, mods)):
            if expect is not None and self._code() in common.STALE_CODES:
                raise common.stale(dn, self.url, self._server_says())
            raise self._refused("modify", dn)

    def rename(self, dn: str, new_rdn: str) -> str:
        dn, new_rdn = common.nfc(dn), common.nfc(new_rdn)
        new_dn = common.renamed_dn(dn, new_rdn)
        conn = self._conn
        ok = self._call(f"renaming {dn}", lambda: conn.modify_dn(dn, new_rdn, delete_old_dn=True))
        if not ok:
            raise self._refused("rename", dn, new_dn)
        return new_dn

    def delete(self, dn: str) -> None:
        dn = common.nfc(dn)
        conn = self._conn
        if not self._call(f"deleting {dn}", lambda: conn.delete(dn)):
            raise self._refused("delete", dn)

    def close(self) -> None:
        self._abort()
