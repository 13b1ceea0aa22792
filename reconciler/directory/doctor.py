"""`reconciler doctor`: does the LDAP server give what the tool relies on?

Each check ends in a `Finding`: ok, missing (with what to do), or unknown (could not be told,
with how to check by hand). Settings are read where the bind may read them (cn=config: over
ldapi:// as root, or a bind DN allowed to read it); where they cannot be read, behaviour is
proved instead with a canary: a temporary entry with a random password, in the container the tool
writes (ou=people), bound, locked, bound again (must fail), reset (its first bind must be
restricted to changing the password, and a password of 7 characters refused), and deleted,
whatever happens. Nothing else is written: the rights to the lock entry are tried with the LDAP
No-Op control, which checks an add without making it.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from reconciler import csn
from reconciler.attributes import LOCKED, MANAGED, SUSPENSION, format_time, people_dn
from reconciler.directory import replicas
from reconciler.directory.ldap import LdapDirectory
from reconciler.directory.policy import (
    MIN_LENGTH,
    Policy,
    ServerConfig,
    default_policy,
    root_dse,
    schema_names,
    server_config,
)
from reconciler.dn import child_dn
from reconciler.errors import DirectoryError

OK, MISSING, UNKNOWN = "ok", "missing", "unknown"
NOOP_CONTROL = "1.3.6.1.4.1.4203.666.5.2"  # OpenLDAP's No-Op (ldapadd -e !noop)
NOOP_RESULT = 16654  # "no operation": the add would have been made
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS = 50
CANARY_PREFIX = "reconciler-doctor-canary-"
#: The equality indexes `apply` finds its entries by (README: the directory server).
INDEXED = ("objectClass", "uid", "mail", "employeeNumber", "govMailAlias")
SCHEMA_ATTRS = tuple(
    a for a in (*MANAGED, *SUSPENSION, "govMailRestoredAt") if a.lower().startswith("govmail")
)


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    state: str  # OK, MISSING or UNKNOWN
    message: str
    remedy: str = ""  # what to do (MISSING) or how to check by hand (UNKNOWN)


@dataclass(frozen=True, slots=True)
class Peer:
    """One server of those checked together, as `survey` found it: its contextCSN per serverID
    (None: it did not answer) and its base entry's entryUUID."""

    url: str
    state: dict[int, str] | None
    uuid: str = ""


#: A replica this far behind (seconds of a provider's changes) is still "in step": the servers
#: are read one after the other, and a busy provider writes meanwhile.
LAG_OK = 5.0


def base_of(directory: LdapDirectory, base_dn: str | None) -> str | None:
    """The base to check: `base_dn`, else the server's only naming context."""
    return base_dn or _only_context(directory)


def survey(directory: LdapDirectory, base_dn: str | None) -> Peer:
    """What the replication report compares of a server (`replication`)."""
    base = base_of(directory, base_dn)
    if base is None:
        return Peer(directory.url, {})
    return Peer(
        directory.url, replicas.state(directory, base), replicas.entry_uuid(directory, base)
    )


def diagnose(
    directory: LdapDirectory,
    base_dn: str | None,
    canary: bool | None,
    peers: Sequence[Peer] = (),
    *,
    replica: bool = False,
) -> list[Finding]:
    """Every check against one server. `canary`: None = only where cn=config cannot be read.
    `peers`: every server checked together (this one included), for the replication report. A
    `replica` (a consumer the reconciler only reads) is checked for what a read needs."""
    findings = [_transport(directory)]
    base = base_of(directory, base_dn)
    if base is None:
        findings.append(
            Finding(
                "base",
                MISSING,
                "the server names no single naming context to check",
                "give --base-dn (the base_dn of directory.yaml)",
            )
        )
        return findings
    try:
        readable = directory.get(base, ["objectClass"]) is not None
    except DirectoryError as error:
        readable, why = False, str(error)
    else:
        why = f"{base} does not exist or the bind may not see it"
    findings.append(
        Finding("read the base", OK, f"the bind may read {base}")
        if readable
        else Finding(
            "read the base",
            MISSING,
            why,
            "check base_dn in directory.yaml and that the bind DN may read it (ACLs)",
        )
    )
    findings.append(_schema(directory))
    if not replica:
        config = server_config(directory, base)
        policy = default_policy(directory, base, config)
        findings += _settings(config, policy)
        findings.append(_lock_entry_rights(directory, base))
        if canary or (canary is None and config is None):
            findings += Canary(directory, base).run()
    findings += replication(directory.url, peers)
    return _merge(findings)


def replication(url: str, peers: Sequence[Peer], now: dt.datetime | None = None) -> list[Finding]:
    """The replication state of `url` among `peers`: its contextCSN per serverID, and what it
    lacks of the newest any of them holds. Lacking only changes made in the last `LAG_OK`
    seconds is replicating as usual; lacking older ones is being behind."""
    now = now or dt.datetime.now(dt.UTC)
    me = next((p for p in peers if p.url == url), None)
    answered = [p for p in peers if p.state is not None]
    if me is None or not any(p.state for p in answered):
        if len(peers) > 1:
            return [
                Finding(
                    "replication",
                    MISSING,
                    "none of the servers keeps a contextCSN: they do not replicate",
                    "configure syncprov on the providers and syncrepl on every server "
                    "(README: the directory server)",
                )
            ]
        return []
    held = me.state or {}
    if not held:
        return [
            Finding(
                "replication",
                MISSING,
                "this server keeps no contextCSN while the others do: it does not replicate "
                "with them",
                "configure syncrepl on it (and syncprov on a provider), then let it refresh",
            )
        ]
    others = [p for p in answered if p.url != url and p.state]
    alien = [p.url for p in others if p.uuid and me.uuid and p.uuid != me.uuid]
    if alien:
        return [
            Finding(
                "replication",
                MISSING,
                f"diverged: its base entry is another entry than on {', '.join(alien)} "
                f"(entryUUID {me.uuid}): it was loaded apart, not replicated",
                "empty its database (slapadd -b SUFFIX -l /dev/null) and let syncrepl fill it "
                "from a provider",
            )
        ]
    newest = csn.newest(p.state or {} for p in answered)
    text = ", ".join(f"serverID {sid} at {csn.clock(value)}" for sid, value in sorted(held.items()))
    if not csn.lacking(held, newest):
        return [Finding("replication", OK, f"{text}: holds every change the others hold")]
    behind = csn.age(held, newest, now)
    window = f"{csn.window(held, newest)} (the newest made {behind:.1f} s ago)"
    if behind <= LAG_OK:
        return [Finding("replication", OK, f"{text}: replicating, lacks {window}")]
    theirs = csn.newest(p.state or {} for p in others)
    if csn.lacking(theirs, held):
        return [
            Finding(
                "replication",
                MISSING,
                f"diverged: lacks {window}, and holds {csn.describe(theirs, held)} of changes "
                f"other servers lack; it holds {text}",
                "replication is broken both ways: check each server's syncrepl (provider URL, "
                "bind DN and credentials), that every provider has its own serverID, and "
                "slapd's log (loglevel sync)",
            )
        ]
    return [
        Finding(
            "replication",
            MISSING,
            f"behind: lacks {window}; it holds {text}",
            "check its syncrepl (provider URL, bind DN and credentials), that it reaches the "
            "provider, and slapd's log (loglevel sync); it catches up by itself once it does. "
            "Plan from it only with --wait-replication",
        )
    ]


def _transport(directory: LdapDirectory) -> Finding:
    url = directory.url.lower()
    if url.startswith("ldapi://"):
        return Finding("TLS", OK, "a local socket (ldapi): nothing travels on the network")
    if url.startswith("ldaps://"):
        return Finding("TLS", OK, "ldaps: the server's certificate was verified")
    if directory.starttls:
        return Finding("TLS", OK, "StartTLS: the server's certificate was verified")
    if directory.loopback:
        return Finding("TLS", OK, "plain ldap:// to this machine (loopback): nothing leaves it")
    return Finding(
        "TLS",
        MISSING,
        f"plain ldap:// to {directory.url}: the bind password and every entry travel in clear",
        "use ldaps:// or --starttls (and --ca-file for a private CA)",
    )


def _only_context(directory: LdapDirectory) -> str | None:
    contexts = root_dse(directory).get("namingcontexts", ())
    return contexts[0] if len(contexts) == 1 else None


def _schema(directory: LdapDirectory) -> Finding:
    classes, attributes = schema_names(directory)
    if not classes:
        return Finding(
            "schema",
            UNKNOWN,
            "the server's schema (subschema entry) is not readable",
            "check that schemas/ldap/govmail.schema is loaded",
        )
    lacking = [n for n in ("govMailAccount",) if n.lower() not in classes]
    lacking += [a for a in SCHEMA_ATTRS if a.lower() not in attributes]
    if lacking:
        return Finding(
            "schema",
            MISSING,
            f"the project's schema is not loaded: the server lacks {', '.join(lacking)}",
            "load schemas/ldap/govmail.ldif (cn=config: ldapadd -Y EXTERNAL -H ldapi:/// -f "
            "schemas/ldap/govmail.ldif) or include schemas/ldap/govmail.schema in slapd.conf",
        )
    return Finding("schema", OK, "the project's schema (govMailAccount and its attributes)")


def _settings(config: ServerConfig | None, policy: Policy) -> list[Finding]:
    found: list[Finding] = []
    if config is None:
        found += [
            Finding(
                "cn=config",
                UNKNOWN,
                "the bind may not read cn=config: settings are proved by a canary instead",
                "run doctor over ldapi:// as root to read the settings themselves",
            ),
            Finding(
                "lastbind",
                UNKNOWN,
                "whether lastbind is on cannot be read",
                "check `lastbind on` (olcLastBind: TRUE), or let doctor use its canary",
            ),
            Finding(
                "ppolicy",
                UNKNOWN,
                "whether passwords are stored hashed cannot be read",
                "check ppolicy_hash_cleartext, or let doctor use its canary",
            ),
            Finding(
                "indexes",
                UNKNOWN,
                "the database's indexes cannot be read",
                f"check `index {','.join(INDEXED)} eq` in the database's configuration",
            ),
        ]
    else:
        found.append(Finding("cn=config", OK, f"read the settings of {config.database}"))
        found.append(_ppolicy_overlay(config))
        found.append(
            Finding("lastbind", OK, "lastbind is on: logins are kept as pwdLastSuccess")
            if config.lastbind
            else Finding(
                "lastbind",
                MISSING,
                "lastbind is off: slapd keeps no last login (pwdLastSuccess), and every "
                "mailbox looks inactive to the time rules",
                f"set olcLastBind: TRUE on {config.database} (slapd.conf: `lastbind on`)",
            )
        )
        missing = [a for a in INDEXED if "eq" not in config.indexes.get(a.lower(), ())]
        found.append(
            Finding("indexes", OK, f"equality indexes on {', '.join(INDEXED)}")
            if not missing
            else Finding(
                "indexes",
                MISSING,
                f"no equality index on {', '.join(missing)}: apply's searches become "
                "scans of the whole database",
                f"add olcDbIndex: {','.join(missing)} eq to {config.database} "
                f"(slapd.conf: `index {','.join(missing)} eq`)",
            )
        )
    if not policy.dn:
        state = MISSING if config is not None else UNKNOWN
        found.append(
            Finding(
                "password policy",
                state,
                policy.how,
                "add the ppolicy overlay with a default policy (README: the directory server)",
            )
        )
        return found
    found.append(Finding("password policy", OK, f"{policy.dn}: {policy.how}"))
    for name, needed, why in (
        (
            "pwdLockout",
            "TRUE",
            "slapd ignores pwdAccountLockedTime, so a suspended mailbox still logs in",
        ),
        (
            "pwdMustChange",
            "TRUE",
            "an issued password need not be changed at the first login",
        ),
    ):
        value = (policy.value(name) or "FALSE").upper()
        found.append(
            Finding(name, OK, f"{needed} in {policy.dn}")
            if value == needed
            else Finding(
                name,
                MISSING,
                f"{name} is not {needed} in {policy.dn}: {why}",
                f"set {name}: {needed} in {policy.dn}",
            )
        )
    length = policy.value("pwdMinLength") or "0"
    found.append(
        Finding("pwdMinLength", OK, f"{length} in {policy.dn}")
        if length.isdigit() and int(length) >= MIN_LENGTH
        else Finding(
            "pwdMinLength",
            MISSING,
            f"pwdMinLength is {length} in {policy.dn}: users may choose passwords "
            f"shorter than {MIN_LENGTH}",
            f"set pwdMinLength: {MIN_LENGTH} and pwdCheckQuality: 2 in {policy.dn}",
        )
    )
    return found


def _ppolicy_overlay(config: ServerConfig) -> Finding:
    if config.ppolicy is None:
        return Finding(
            "ppolicy",
            MISSING,
            f"no ppolicy overlay on {config.database}",
            "add the ppolicy overlay (slapd.conf: `overlay ppolicy`, "
            "`ppolicy_default`, `ppolicy_hash_cleartext`)",
        )
    hashed = (config.ppolicy.get("olcppolicyhashcleartext", ("FALSE",))[0]).upper() == "TRUE"
    if not hashed:
        return Finding(
            "ppolicy",
            MISSING,
            "ppolicy does not hash the passwords it is given "
            "(olcPPolicyHashCleartext): issued passwords would be stored in clear",
            "set olcPPolicyHashCleartext: TRUE (slapd.conf: ppolicy_hash_cleartext)",
        )
    return Finding("ppolicy", OK, "the ppolicy overlay is on and hashes passwords")


def _lock_entry_rights(directory: LdapDirectory, base: str) -> Finding:
    """May the bind add the lock entry? Tried with the No-Op control: nothing is written."""
    from ldap3.core.results import RESULT_CODES

    # ldap3 knows no name for the No-Op result and fails on it: give it one (once, harmless)
    RESULT_CODES.setdefault(NOOP_RESULT, "noOperation")
    conn = directory.connection
    dn = child_dn("cn", "reconciler-lock", base)
    attrs = {"objectClass": ["top", "applicationProcess"], "cn": ["reconciler-lock"]}
    conn.add(dn, attributes=attrs, controls=[(NOOP_CONTROL, True, None)])
    code = (conn.result or {}).get("result")
    if code == NOOP_RESULT:
        return Finding("write the lock entry", OK, f"the bind may add and delete {dn}")
    if code == 68:  # already there: it stays between applies (marked free), so try changing it
        return _lock_entry_modify(conn, dn, base)
    if code == INSUFFICIENT_ACCESS:
        return Finding(
            "write the lock entry",
            MISSING,
            f"the bind may not add {dn}: apply cannot take its lock",
            f"give the bind DN write access to the children of {base}",
        )
    return Finding(
        "write the lock entry",
        UNKNOWN,
        f"the server did not answer the No-Op control ({(conn.result or {}).get('description')})",
        f"check that the bind DN may add and delete {dn}",
    )


def _lock_entry_modify(conn: Any, dn: str, base: str) -> Finding:
    """The lock entry exists (every apply leaves it, marked free): may the bind change it, as
    taking, renewing and releasing the lock do? A No-Op modify of its value with itself."""
    from ldap3 import BASE, MODIFY_REPLACE

    conn.search(dn, "(objectClass=*)", BASE, attributes=["description"])
    found = [r for r in conn.response or () if r.get("type") == "searchResEntry"]
    if not found:
        return Finding(
            "write the lock entry",
            UNKNOWN,
            f"{dn} exists but the bind may not read it",
            f"give the bind DN read and write access to {dn}",
        )
    value = [str(v) for v in found[0]["attributes"].get("description") or ()] or ["doctor"]
    conn.modify(
        dn, {"description": [(MODIFY_REPLACE, value)]}, controls=[(NOOP_CONTROL, True, None)]
    )
    code = (conn.result or {}).get("result")
    if code == NOOP_RESULT:
        return Finding(
            "write the lock entry",
            OK,
            f"the bind may change {dn} (the lock entry, which stays between applies)",
        )
    if code == INSUFFICIENT_ACCESS:
        return Finding(
            "write the lock entry",
            MISSING,
            f"the bind may not change {dn}: apply cannot take its lock",
            f"give the bind DN write access to {dn}",
        )
    return Finding(
        "write the lock entry",
        UNKNOWN,
        f"the server did not answer the No-Op control ({(conn.result or {}).get('description')})",
        f"check that the bind DN may change {dn}",
    )


def _merge(findings: list[Finding]) -> list[Finding]:
    """One finding per check: a proof by the canary replaces an `unknown`."""
    merged: dict[str, Finding] = {}
    for finding in findings:
        before = merged.get(finding.check)
        if before is None or before.state == UNKNOWN or finding.state == MISSING:
            merged[finding.check] = finding
    return list(merged.values())


# ---------------------------------------------------------------------------------------------
# The canary


def _password(length: int = 20) -> str:
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(length))
    return f"Aa1-{core}"


class Canary:
    """A temporary entry that proves what the server does with a suspension and a reset."""

    def __init__(self, directory: LdapDirectory, base: str) -> None:
        self.directory = directory
        self.conn = directory.connection
        people = people_dn(base)
        parent = people if directory.get(people, ["ou"]) is not None else base
        self.dn = child_dn("uid", CANARY_PREFIX + secrets.token_hex(4), parent)
        self.container = parent

    def run(self) -> list[Finding]:
        password = _password()
        now = format_time(dt.datetime.now(dt.UTC))
        attrs = {
            "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],
            "uid": [self.dn.split(",", 1)[0].partition("=")[2]],
            "cn": ["reconciler doctor canary"],
            "sn": ["canary"],
            "description": [
                f"temporary entry of `reconciler doctor` ({now}); if it was left behind, delete it"
            ],
            "userPassword": [password],
        }
        if not self.conn.add(self.dn, attributes=attrs):
            return [
                Finding(
                    "write the people container",
                    MISSING,
                    f"the bind may not add entries to {self.container}: {self._says()}",
                    f"give the bind DN write access to {self.container}",
                )
            ]
        found = [
            Finding(
                "write the people container",
                OK,
                f"the bind added and deleted an entry in {self.container}",
            )
        ]
        try:
            found += self._prove(password)
        finally:
            if not self.conn.delete(self.dn):
                found.append(
                    Finding(
                        "write the people container",
                        MISSING,
                        f"the canary {self.dn} could not be deleted: {self._says()}",
                        f"delete {self.dn} by hand",
                    )
                )
        return found

    def _says(self) -> str:
        result = self.conn.result or {}
        return f"{result.get('description')} {result.get('message') or ''}".strip()

    def _modify(self, changes: dict[str, list[str]]) -> None:
        import ldap3

        mods = {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in changes.items()}
        if not self.conn.modify(self.dn, mods):
            raise DirectoryError(f"could not modify the canary {self.dn}: {self._says()}")

    def _prove(self, password: str) -> list[Finding]:
        found: list[Finding] = []
        with self._bind(password) as (ok, _):
            first = ok
        if not first:
            return [
                Finding(
                    "bind",
                    MISSING,
                    f"the canary could not bind with its password: {self._says()}",
                    "check the server's ACLs: `by anonymous auth` on userPassword",
                )
            ]
        found.append(self._lastbind())
        found.append(self._hashed())
        self._modify({"pwdAccountLockedTime": [LOCKED]})
        with self._bind(password) as (ok, _):
            locked_out = not ok
        found.append(
            Finding("pwdLockout", OK, "proved: a suspended (locked) entry cannot bind")
            if locked_out
            else Finding(
                "pwdLockout",
                MISSING,
                "proved: an entry with pwdAccountLockedTime still binds, so a suspended "
                "mailbox still logs in: the default policy lacks "
                "pwdLockout: TRUE",
                "set pwdLockout: TRUE in the default password policy",
            )
        )
        issued = _password()
        self._modify({"pwdAccountLockedTime": []})
        # apart: ppolicy drops the lock itself when the password changes, which would collide
        self._modify({"userPassword": [issued], "pwdReset": ["TRUE"]})
        found += self._must_change(issued)
        return found

    def _lastbind(self) -> Finding:
        entry = self.directory.get(self.dn, ["pwdLastSuccess"])
        if entry is not None and entry.get("pwdLastSuccess"):
            return Finding("lastbind", OK, "proved: a bind is kept as pwdLastSuccess")
        return Finding(
            "lastbind",
            MISSING,
            "proved: a bind leaves no pwdLastSuccess (lastbind is off), so every "
            "mailbox looks inactive to the time rules",
            "set `lastbind on` in the database (cn=config: olcLastBind: TRUE)",
        )

    def _hashed(self) -> Finding:
        self.conn.search(self.dn, "(objectClass=*)", "BASE", attributes=["userPassword"])
        raw = [r for r in self.conn.response or () if r.get("type") == "searchResEntry"]
        values = (raw[0].get("raw_attributes") or {}).get("userPassword", []) if raw else []
        if not values:
            return Finding(
                "ppolicy",
                UNKNOWN,
                "the bind may not read userPassword: whether "
                "passwords are stored hashed cannot be seen",
                "check ppolicy_hash_cleartext (olcPPolicyHashCleartext: TRUE)",
            )
        if values[0].startswith(b"{"):
            return Finding("ppolicy", OK, "proved: a password given in clear is stored hashed")
        return Finding(
            "ppolicy",
            MISSING,
            "proved: a password given in clear is stored in clear",
            "set ppolicy_hash_cleartext (olcPPolicyHashCleartext: TRUE)",
        )

    def _must_change(self, issued: str) -> list[Finding]:
        with self._bind(issued) as (ok, user):
            if not ok:
                return [
                    Finding(
                        "pwdMustChange",
                        MISSING,
                        f"the canary could not bind after a reset: {self._says()}",
                        "check the default password policy",
                    )
                ]
            user.search(self.dn, "(objectClass=*)", "BASE", attributes=["1.1"])
            restricted = (user.result or {}).get("result") == INSUFFICIENT_ACCESS
            short = user.extend.standard.modify_password(
                old_password=issued, new_password="Aa1-xyz"
            )
            changed = user.extend.standard.modify_password(
                old_password=issued, new_password=_password()
            )
        found = [
            Finding(
                "pwdMustChange",
                OK,
                "proved: after a reset the first bind may only change the password",
            )
            if restricted
            else Finding(
                "pwdMustChange",
                MISSING,
                "proved: after a reset (pwdReset: TRUE) the bind works as usual, so an "
                "issued password need not be changed",
                "set pwdMustChange: TRUE in the default password policy",
            ),
            Finding(
                "pwdMinLength", OK, f"proved: a password of {MIN_LENGTH - 1} characters is refused"
            )
            if not short
            else Finding(
                "pwdMinLength",
                MISSING,
                f"proved: a password of {MIN_LENGTH - 1} characters is accepted",
                f"set pwdMinLength: {MIN_LENGTH} and pwdCheckQuality: 2 in the "
                "default password policy",
            ),
            Finding(
                "password change",
                OK,
                "proved: a user changes their own password (LDAP password modify)",
            )
            if changed
            else Finding(
                "password change",
                MISSING,
                "a user cannot change their own password with the LDAP password modify operation",
                "allow `by self write` on userPassword and pwdAllowUserChange: TRUE",
            ),
        ]
        return found

    @contextmanager
    def _bind(self, password: str) -> Iterator[tuple[bool, Any]]:
        import ldap3

        user = ldap3.Connection(
            self.conn.server,
            user=self.dn,
            password=password,
            authentication=ldap3.SIMPLE,
            client_strategy=ldap3.SYNC,
            auto_bind=ldap3.AUTO_BIND_NONE,
            raise_exceptions=False,
            receive_timeout=30,
        )
        try:
            user.open()
            if self.directory.starttls:
                user.start_tls()
            ok = bool(user.bind())
            yield ok, user
        finally:
            with suppress(Exception):
                user.unbind()


def report(findings: list[Finding], url: str) -> Iterator[str]:
    """The findings in plain words, one per line, the remedy after each one that is not ok."""
    marks = {OK: "ok     ", MISSING: "MISSING", UNKNOWN: "unknown"}
    yield f"{url}"
    for f in findings:
        yield f"  {marks[f.state]} {f.check}: {f.message}"
        if f.state != OK and f.remedy:
            yield f"          → {f.remedy}"


def healthy(findings: list[Finding]) -> bool:
    return all(f.state != MISSING for f in findings)
