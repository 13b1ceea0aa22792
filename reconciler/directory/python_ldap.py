"""The LDAP backend on python-ldap: OpenLDAP's own libldap (the library of `ldapsearch`), whose C
BER decoder reads a directory about three times as fast as ldap3's pure-Python one. The only
module of the reconciler that imports `ldap`; what it shares with the ldap3 backend (the URL's
rules, the messages, decoding entries, the compare-and-swap) is in `ldapcommon`.

One synchronous connection; paged subtree reads (RFC 2696, the paging control encoded by
libldap, not pyasn1) decoded page by page; one round trip per write. TLS certificates are
verified (`TLS_REQCERT demand`, set on the connection so that no ldap.conf, ~/.ldaprc or
LDAPTLS_* variable can lower it) against `--ca-file` or the system's CAs; libldap on GnuTLS gives
no reason when a handshake fails, so Python's ssl finds it (`ldapcommon.tls_failure`). Over
ldapi:// without a bind DN it binds with SASL EXTERNAL (the socket's peer credentials), as
`ldapadd -Y EXTERNAL -H ldapi:///` does. Every failure is one DirectoryError naming the server,
what failed and what to check.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import socket
import ssl
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import ldap
from ldap.controls.libldap import SimplePagedResultsControl

from reconciler.directory import ldapcommon as common
from reconciler.directory.base import FIND_CHUNK, PAGE_SIZE, Answer, Pipeline, Progress, Write
from reconciler.errors import DirectoryError
from reconciler.model import Entry
from reconciler.packed import Packed

T = TypeVar("T")

_KIND = {common.REPLACE: ldap.MOD_REPLACE, common.DELETE: ldap.MOD_DELETE, common.ADD: ldap.MOD_ADD}
#: Decode only the paging control, with libldap's decoder.
_CONTROLS = {SimplePagedResultsControl.controlType: SimplePagedResultsControl}
#: libldap's own failures (negative result codes) that mean the connection is gone or unusable.
_GONE = (ldap.SERVER_DOWN, ldap.CONNECT_ERROR)
_EVERY = "(objectClass=*)"
#: `find`'s searches in flight while the first one's answer is read.
FIND_AHEAD = 16
#: Entries one search of `find` takes before its chunk is read again page by page: each value it
#: looks for (a stable id, an address, a naming value) is held by one entry, a few at most.
FIND_LIMIT = 4 * FIND_CHUNK


def _details(error: ldap.LDAPError) -> tuple[int | None, str, str]:
    """The result code, its description and the server's (or libldap's) message."""
    info: dict[str, Any] = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    code = info.get("result")
    desc = str(info.get("desc") or type(error).__name__)
    message = str(info.get("info") or "")
    return (code if isinstance(code, int) else None), desc, message


def _says(error: ldap.LDAPError) -> str:
    code, desc, message = _details(error)
    return common.server_says(desc, code, message)


def _system_cas() -> tuple[str | None, str | None]:
    """The CA file and folder Python's ssl would use: the same trust as the ldap3 backend."""
    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile if paths.cafile and os.path.isfile(paths.cafile) else None
    capath = paths.capath if paths.capath and os.path.isdir(paths.capath) else None
    return cafile, capath


def _machine_name() -> str:
    """This machine's canonical name, as libldap finds it (ldap_pvt_get_fqdn)."""
    name = socket.gethostname()
    with contextlib.suppress(OSError, IndexError):
        return socket.getaddrinfo(name, None, flags=socket.AI_CANONNAME)[0][3] or name
    return name


class PythonLdapDirectory(common.LdapServer):
    """A directory on an LDAP server through python-ldap (see `open_directory`)."""

    backend = "python-ldap"

    def _open(self, password: str | None, starttls: bool, ca_file: str | None) -> None:
        where = self._target
        self._ca_file = ca_file
        self._connected = False  # until the bind: a lost connection is "cannot reach" before
        self._closed = False
        if where.scheme == "ldapi":
            uri = "ldapi://" + urllib.parse.quote(where.socket_path, safe="")
        else:
            host = f"[{where.host}]" if ":" in where.host else where.host
            uri = f"{where.scheme}://{host}:{where.port}"
        common.probe(where, self.timeout)
        try:
            self._conn = ldap.initialize(uri)
        except ldap.LDAPError as error:
            raise DirectoryError(
                f"cannot use the directory URL {self.url}: {_says(error)}"
            ) from None
        conn = self._conn
        conn.timeout = self.timeout  # python-ldap waits this long for every synchronous result
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.timeout)
        # the TLS context (the system's CAs read and parsed: 33 ms) only for a connection that
        # uses TLS, or that names a CA file (checked, as ever, even then)
        if where.scheme != "ldapi" and (where.scheme == "ldaps" or starttls or ca_file is not None):
            self._tls_options(ca_file)
        self._connect(where.scheme, starttls, password)

    # connection ------------------------------------------------------------------------------

    def _tls_options(self, ca_file: str | None) -> None:
        conn = self._conn
        try:
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
            if ca_file is not None:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, ca_file)
            else:
                cafile, capath = _system_cas()
                if cafile:
                    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, cafile)
                if capath:  # a folder the TLS library cannot use leaves the file
                    with contextlib.suppress(ldap.LDAPError, ValueError):
                        conn.set_option(ldap.OPT_X_TLS_CACERTDIR, capath)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # last: makes the context of the above
        except (ldap.LDAPError, ValueError) as error:
            self._abort()
            why = _says(error) if isinstance(error, ldap.LDAPError) else str(error)
            raise DirectoryError(
                f"cannot use the CA file {ca_file} for {self.url}: {why} — check the path and "
                "that it holds PEM certificates"
            ) from None

    def _connect(self, scheme: str, starttls: bool, password: str | None) -> None:
        conn = self._conn
        if starttls:
            try:
                self._call("starting TLS", conn.start_tls_s)
            except ldap.LDAPError as error:
                self._abort()
                raise common.starttls_refused(self._where, _says(error)) from None
        try:
            if self.bind_dn:
                self._call("binding", lambda: conn.simple_bind_s(self.bind_dn, password))
            elif scheme == "ldapi":
                self._call("binding", conn.sasl_external_bind_s)
            else:
                self._call("binding", lambda: conn.simple_bind_s("", ""))
        except ldap.LDAPError as error:
            self._abort()
            code, _, _ = _details(error)
            raise common.bind_refused(self._where, self._who(), code, _says(error)) from None
        self._connected = True

    def _abort(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._conn.unbind_ext()  # sends the unbind, waits for nothing

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()`, with the connection's own failures as DirectoryError; a result the server
        refused stays an ldap.LDAPError for the caller to say what it means."""
        if self._closed:
            raise DirectoryError(
                f"{what} on {self._where} failed: the connection was closed after an earlier "
                "failure"
            )
        try:
            return fn()
        except _GONE as error:
            self._abort()
            _, desc, message = _details(error)
            why = common.reason(f"{desc}: {message}" if message else desc, self.timeout, self.url)
            if not self._connected:
                if what == "starting TLS" or self._target.scheme == "ldaps":
                    # the server answered the probe: the TLS handshake is what failed
                    why = self._tls_failure(what == "starting TLS")
                if what == "starting TLS":
                    raise DirectoryError(f"StartTLS with {self._where} failed: {why}") from None
                raise DirectoryError(f"cannot reach {self._where}: {why}") from None
            raise common.lost(self._where, what, why) from None
        except ldap.TIMEOUT:
            self._abort()
            raise common.lost(self._where, what, f"no answer within {self.timeout:g} s") from None
        except ldap.LDAPError as error:
            code, _, _ = _details(error)
            if code is not None and code < 0:  # libldap's own: no server result to interpret
                self._abort()
                raise DirectoryError(f"{what} on {self._where} failed: {_says(error)}") from None
            raise

    def _tls_failure(self, starttls: bool) -> str:
        found = common.tls_failure(self._target, self._ca_file, starttls, self.timeout)
        if found is not None:
            return found
        if self._target.host.lower() == "localhost":
            # libldap checks the certificate of a "localhost" URL against this machine's name
            return (
                "libldap checks the certificate of a localhost URL against this machine's own "
                f"name ({_machine_name()}), not localhost — use the name or address the "
                "certificate gives (127.0.0.1?), or --backend ldap3"
            )
        return "the TLS handshake failed (libldap gives no reason) — check the server's TLS setup"

    # reads ------------------------------------------------------------------------------------

    def _search_base(self, dn: str, wanted: list[str]) -> list[Entry]:
        """The entry `dn` (a base-scope search); raises ldap.LDAPError for a result the server
        refused."""
        conn = self._conn
        _, data, _, _ = self._call(
            f"reading {dn}",
            lambda: conn.result3(conn.search_ext(dn, ldap.SCOPE_BASE, "(objectClass=*)", wanted)),
        )
        return [common.entry(found, attrs) for found, attrs in data if found is not None]

    def _read_refused(self, base_dn: str, error: ldap.LDAPError) -> DirectoryError:
        code, _, _ = _details(error)
        return common.read_refused(self.url, base_dn, self._who(), code, _says(error))

    def _subtree(
        self, base_dn: str, asked: list[str], search_filter: str, progress: Progress | None
    ) -> Iterator[Entry]:
        entry = common.entry
        for page in self._raw_pages(base_dn, asked, search_filter, progress):
            yield from [entry(dn, attrs) for dn, attrs in page]

    def read_into(
        self,
        base_dn: str,
        attributes: Sequence[str],
        store: Packed,
        progress: Progress | None = None,
    ) -> None:
        """The entries packed from the values as libldap returns them (`Packed.pack_raw`),
        without an `Entry` each; those it cannot pack so go in as entries."""
        pack, add, entry = store.pack_raw, store.append_packed, common.entry
        name = common.entry_name
        for page in self._raw_pages(base_dn, common.wanted(attributes), _EVERY, progress):
            for dn, attrs in page:
                packed = pack(dn, attrs, name)
                if packed is None:
                    store.append(entry(dn, attrs))
                else:
                    add(packed)

    def find(
        self, base_dn: str, attribute: str, values: Iterable[str], attributes: Sequence[str]
    ) -> Iterator[Entry]:
        """One OR filter a chunk of values (`common.find_filters`), each an unpaged search, up to
        FIND_AHEAD sent before the first answer is read: the server looks the next ones up while
        this process decodes the last (what 1,000 updates depend on: 39 ms instead of 58). A
        chunk that matches more than FIND_LIMIT entries (many entries holding one value) is read
        again page by page, like any read: unpaged, the server's size limit would cut it short.
        The entries come chunk after chunk, in the order of the values given."""
        asked, entry = common.wanted(attributes), common.entry
        filters = common.find_filters(attribute, values)
        conn, what = self._conn, f"reading {base_dn}"
        sent: deque[tuple[str, int]] = deque()

        def send(search_filter: str) -> None:
            msgid = self._call(
                what,
                functools.partial(
                    conn.search_ext,
                    base_dn,
                    ldap.SCOPE_SUBTREE,
                    search_filter,
                    asked,
                    sizelimit=FIND_LIMIT,
                ),
            )
            sent.append((search_filter, msgid))

        try:
            for search_filter in filters[:FIND_AHEAD]:
                send(search_filter)
            following = iter(filters[FIND_AHEAD:])
            while sent:
                first, msgid = sent.popleft()
                for search_filter in itertools.islice(following, 1):
                    send(search_filter)  # FIND_AHEAD in flight while this one is read
                try:
                    _, data, _, _ = self._call(what, functools.partial(conn.result3, msgid))
                except ldap.SIZELIMIT_EXCEEDED:
                    yield from self._subtree(base_dn, asked, first, None)
                    continue
                yield from [entry(dn, attrs) for dn, attrs in data if dn is not None]
        except ldap.LDAPError as error:
            raise self._read_refused(base_dn, error) from None
        finally:
            if not self._closed:  # the reader stopped early: the searches still sent go
                for _, msgid in sent:
                    with contextlib.suppress(ldap.LDAPError):
                        conn.abandon_ext(msgid)

    def _raw_pages(
        self, base_dn: str, asked: list[str], search_filter: str, progress: Progress | None
    ) -> Iterator[list[tuple[str, dict[str, list[bytes]]]]]:
        """The pages of a subtree search as libldap returns them, each asked for before the one
        before it is decoded: the server prepares a page while this process turns the last one
        into entries (at 100,000 entries, about a second of waiting saved)."""
        conn = self._conn
        what = f"reading {base_dn}"

        def ask(cookie: bytes) -> int:
            control = SimplePagedResultsControl(True, PAGE_SIZE, cookie)
            return self._call(  # type: ignore[no-any-return]
                what,
                lambda: conn.search_ext(
                    base_dn, ldap.SCOPE_SUBTREE, search_filter, asked, serverctrls=[control]
                ),
            )

        count = 0
        pending: int | None = None
        try:
            pending = ask(b"")
            while pending is not None:
                msgid, pending = pending, None
                _, data, _, answered = self._call(
                    what, functools.partial(conn.result3, msgid, resp_ctrl_classes=_CONTROLS)
                )
                cookie = next(
                    (
                        c.cookie
                        for c in answered or ()
                        if c.controlType == SimplePagedResultsControl.controlType
                    ),
                    None,
                )
                if cookie:
                    pending = ask(cookie)
                page = [(dn, attrs) for dn, attrs in data if dn is not None]
                del data
                count += len(page)
                yield page
                del page
                if progress is not None:
                    progress(count)
        except ldap.LDAPError as error:
            raise self._read_refused(base_dn, error) from None
        finally:
            if pending is not None and not self._closed:  # the reader stopped early
                with contextlib.suppress(ldap.LDAPError):
                    conn.abandon_ext(pending)

    def search_raw(
        self, base: str, search_filter: str, scope: str, attributes: list[str]
    ) -> list[tuple[str, dict[str, tuple[str, ...]]]]:
        scopes = {"base": ldap.SCOPE_BASE, "one": ldap.SCOPE_ONELEVEL, "sub": ldap.SCOPE_SUBTREE}
        conn = self._conn
        try:
            _, data, _, _ = self._call(
                f"reading {base or 'the root DSE'}",
                lambda: conn.result3(
                    conn.search_ext(base, scopes[scope], search_filter, attributes)
                ),
            )
        except ldap.LDAPError:
            return []
        return [(dn, common.plain_attrs(attrs)) for dn, attrs in data if dn is not None]

    def get(self, dn: str, attributes: Sequence[str]) -> Entry | None:
        try:
            entries = self._search_base(dn, common.wanted(attributes))
        except ldap.NO_SUCH_OBJECT:
            return None
        except ldap.LDAPError as error:
            raise DirectoryError(f"reading {dn} from {self.url} failed: {_says(error)}") from None
        return entries[0] if entries else None

    # writes -----------------------------------------------------------------------------------

    def _refusal(self, write: Write, error: ldap.LDAPError) -> DirectoryError:
        """What a write the server refused means (a compare-and-swap refused: StaleEntry)."""
        code, _, _ = _details(error)
        if write.kind == "modify" and write.expect is not None and code in common.STALE_CODES:
            return common.stale(write.dn, self.url, _says(error))
        new_dn = common.renamed_dn(write.dn, write.new_rdn) if write.kind == "rename" else None
        return common.refused(self.url, write.kind, write.dn, code, _says(error), new_dn)

    def _start(self, write: Write, modlist: list[_Mod] | None = None) -> int:
        """Send `write` without waiting for its answer; its message id. `modlist`: a modify's
        `_modlist`, when the caller has made it already."""
        conn, dn = self._conn, write.dn
        if write.kind == "add":
            addlist = [
                (name, [v.encode("utf-8") for v in common.values(name, vals)])
                for name, vals in write.attrs.items()
                if vals
            ]
            return conn.add_ext(dn, addlist)  # type: ignore[no-any-return]
        if write.kind == "modify":
            changes = _modlist(write) if modlist is None else modlist
            return conn.modify_ext(dn, changes)  # type: ignore[no-any-return]
        if write.kind == "rename":
            return conn.rename(dn, write.new_rdn, delold=1)  # type: ignore[no-any-return]
        return conn.delete_ext(dn)  # type: ignore[no-any-return]

    def _do(self, write: Write, modlist: list[_Mod] | None = None) -> None:
        """Send `write` and wait for its answer: one round trip."""
        conn = self._conn
        try:
            self._call(_doing(write), lambda: conn.result3(self._start(write, modlist)))
        except ldap.LDAPError as error:
            raise self._refusal(write, error) from None

    def add(self, dn: str, attrs: Mapping[str, Sequence[str]]) -> None:
        self._do(Write("add", common.nfc(dn), attrs))

    def modify(
        self,
        dn: str,
        changes: Mapping[str, Sequence[str]],
        expect: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        write = Write("modify", common.nfc(dn), changes, expect)
        modlist = _modlist(write)
        if modlist:
            self._do(write, modlist)

    def rename(self, dn: str, new_rdn: str) -> str:
        dn, new_rdn = common.nfc(dn), common.nfc(new_rdn)
        self._do(Write("rename", dn, new_rdn=new_rdn))
        return common.renamed_dn(dn, new_rdn)

    def delete(self, dn: str) -> None:
        self._do(Write("delete", common.nfc(dn)))

    def pipeline(self, window: int) -> Pipeline:
        return _Pipeline(self, window) if window > 1 else Pipeline(self)

    def close(self) -> None:
        self._abort()


#: One change of a modify request, as libldap takes it: (kind, attribute, values or None).
_Mod = tuple[int, str, list[bytes] | None]


def _modlist(write: Write) -> list[_Mod]:
    """A modify's changes as libldap takes them (`common.modifications`, encoded); empty when
    it changes nothing."""
    return [
        (_KIND[kind], name, [v.encode("utf-8") for v in vals] or None)
        for name, kind, vals in common.modifications(write.attrs, write.expect)
    ]


def _doing(write: Write) -> str:
    verb = {"add": "adding", "modify": "modifying", "rename": "renaming", "delete": "deleting"}
    return f"{verb[write.kind]} {write.dn}"


class _Pipeline(Pipeline):
    """libldap's asynchronous operations: each write sent at once (`add_ext`, `modify_ext`,
    `rename`, `delete_ext`), the answers read as they come (`result3` of any message id)."""

    def __init__(self, directory: PythonLdapDirectory, window: int) -> None:
        super().__init__(directory)
        self.window = window
        self._ldap = directory
        self._sent: dict[int, tuple[Write, object]] = {}
        self._gone: DirectoryError | None = None  # the connection's loss, for every later write

    @property
    def in_flight(self) -> int:
        return len(self._sent) + len(self._answers)

    def send(self, write: Write, tag: object) -> None:
        d = self._ldap
        dn, rdn = common.nfc(write.dn), common.nfc(write.new_rdn)
        write = Write(write.kind, dn, write.attrs, write.expect, rdn)
        modlist = _modlist(write) if write.kind == "modify" else None
        if modlist == []:
            self._answers.append((tag, None))  # nothing to change: nothing to send
            return
        if self._gone is not None:
            self._answers.append((tag, self._gone))
            return
        try:
            msgid = d._call(_doing(write), lambda: d._start(write, modlist))
        except DirectoryError as error:  # the connection is gone
            self._gone = error
            self._answers.append((tag, error))
        except ldap.LDAPError as error:  # libldap would not send it
            self._answers.append((tag, d._refusal(write, error)))
        else:
            self._sent[msgid] = (write, tag)

    def answers(self, wait: bool = True) -> list[Answer]:
        out, self._answers = self._answers, []
        d, conn = self._ldap, self._ldap._conn
        if self._gone is not None:  # lost while sending: no answer will come
            out += [(tag, self._gone) for _, tag in self._sent.values()]
            self._sent.clear()
        while self._sent:
            first = next(iter(self._sent.values()))[0]
            timeout = None if wait and not out else 0  # None: the connection's timeout
            try:
                _, _, msgid, _ = d._call(
                    _doing(first), functools.partial(conn.result3, ldap.RES_ANY, 1, timeout)
                )
            except DirectoryError as error:  # lost: every write in flight with it
                self._gone = error
                out += [(tag, error) for _, tag in self._sent.values()]
                self._sent.clear()
                break
            except ldap.LDAPError as error:  # the server refused one: its id is in the error
                info = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
                sent = self._sent.pop(info.get("msgid", -1), None)
                if sent is not None:
                    out.append((sent[1], d._refusal(sent[0], error)))
                continue
            if msgid is None:  # nothing more answered yet
                break
            sent = self._sent.pop(msgid, None)
            if sent is not None:
                out.append((sent[1], None))
        return out
