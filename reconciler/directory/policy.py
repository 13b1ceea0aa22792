"""What the LDAP server says about itself, read only: its configuration (cn=config, where the bind
may read it), its schema, and the password policy that applies to the mailboxes.

Used by `doctor` (every check) and by `apply` (before a suspension: does the server lock a
suspended account at all? slapd ignores pwdAccountLockedTime under a policy without
`pwdLockout: TRUE`). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.dn import is_descendant, normalized_rdns


class Searcher(Protocol):
    """What is read here through: an LDAP backend (`ldapcommon.LdapServer.search_raw`)."""

    def search_raw(
        self, base: str, search_filter: str, scope: str, attributes: list[str]
    ) -> list[tuple[str, dict[str, tuple[str, ...]]]]: ...


#: What the tool relies on in a password policy, and the value it needs.
POLICY_NEEDS = {
    "pwdLockout": "TRUE",  # slapd honours pwdAccountLockedTime (a suspension) only then
    "pwdMustChange": "TRUE",  # pwdReset: TRUE makes the first bind change the password
}
MIN_LENGTH = 8  # QN-2020 Đ8.1, HG-2024 Đ6.2


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What cn=config says of the database that holds the base (None when it cannot be read)."""

    database: str  # the database's DN in cn=config
    suffix: str
    lastbind: bool
    indexes: Mapping[str, frozenset[str]]  # attribute (lower case) -> index types
    ppolicy: Mapping[str, tuple[str, ...]] | None  # the ppolicy overlay's settings, if any


@dataclass(frozen=True, slots=True)
class Policy:
    """The default password policy entry, or why it could not be found."""

    dn: str  # "" when unknown
    attrs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # lower-case names
    how: str = ""  # how it was found, or why it was not

    def value(self, name: str) -> str | None:
        values = self.attrs.get(name.lower())
        return values[0] if values else None

    @property
    def locks(self) -> bool | None:
        """Does slapd lock an account with pwdAccountLockedTime under this policy? None: unknown."""
        if not self.dn:
            return None
        return (self.value("pwdLockout") or "").upper() == "TRUE"


def _search(
    server: Searcher, base: str, search_filter: str, scope: str, attributes: list[str]
) -> list[tuple[str, dict[str, tuple[str, ...]]]]:
    """(DN, attributes) of each entry found; an empty list when the search is refused."""
    return server.search_raw(base, search_filter, scope, attributes)


def root_dse(server: Searcher) -> dict[str, tuple[str, ...]]:
    found = _search(
        server,
        "",
        "(objectClass=*)",
        "base",
        ["namingContexts", "subschemaSubentry", "supportedControl", "+"],
    )
    return found[0][1] if found else {}


def naming_context(server: Searcher, base_dn: str) -> str:
    """The server's naming context that holds `base_dn` ("" when the root DSE does not say)."""
    contexts = root_dse(server).get("namingcontexts", ())
    holding = [c for c in contexts if is_descendant(base_dn, c)]
    return max(holding, key=lambda c: len(normalized_rdns(c)), default="")


def server_config(server: Searcher, base_dn: str) -> ServerConfig | None:
    """cn=config's view of the database holding `base_dn`, or None when the bind may not read it
    (the usual case but for ldapi:// as root, or a bind DN given read access to cn=config)."""
    databases = _search(
        server, "cn=config", "(olcSuffix=*)", "one", ["olcSuffix", "olcLastBind", "olcDbIndex"]
    )
    holding = [
        (dn, attrs, suffix)
        for dn, attrs in databases
        for suffix in attrs.get("olcsuffix", ())
        if is_descendant(base_dn, suffix)
    ]
    if not holding:
        return None
    dn, attrs, suffix = max(holding, key=lambda d: len(normalized_rdns(d[2])))
    indexes: dict[str, set[str]] = {}
    for line in attrs.get("olcdbindex", ()):
        names, _, kinds = line.partition(" ")
        for name in names.split(","):
            indexes.setdefault(name.strip().lower(), set()).update(
                k.strip().lower() for k in kinds.split(",") if k.strip()
            )
    overlays = _search(server, dn, "(objectClass=olcPPolicyConfig)", "one", ["*"])
    return ServerConfig(
        database=dn,
        suffix=suffix,
        lastbind=(attrs.get("olclastbind", ("FALSE",))[0].upper() == "TRUE"),
        indexes={k: frozenset(v) for k, v in indexes.items()},
        ppolicy=overlays[0][1] if overlays else None,
    )


_POLICY_ATTRS = [
    "objectClass",
    *POLICY_NEEDS,
    "pwdMinLength",
    "pwdCheckQuality",
    "pwdAllowUserChange",
    "pwdMaxFailure",
]


def default_policy(server: Searcher, base_dn: str, config: ServerConfig | None) -> Policy:
    """The default password policy of the database holding `base_dn`: named by cn=config where
    it can be read, else the only pwdPolicy entry of the naming context."""
    if config is not None:
        if config.ppolicy is None:
            return Policy("", how=f"cn=config shows no ppolicy overlay on {config.database}")
        named = config.ppolicy.get("olcppolicydefault", ())
        if not named:
            return Policy("", how="the ppolicy overlay has no default policy (olcPPolicyDefault)")
        found = _search(server, named[0], "(objectClass=pwdPolicy)", "base", _POLICY_ATTRS)
        if not found:
            return Policy("", how=f"the default policy {named[0]} named in cn=config is missing")
        return Policy(found[0][0], found[0][1], "named by cn=config (olcPPolicyDefault)")
    context = naming_context(server, base_dn) or base_dn
    found = _search(server, context, "(objectClass=pwdPolicy)", "sub", _POLICY_ATTRS)
    if len(found) == 1:
        return Policy(
            found[0][0],
            found[0][1],
            f"the only password policy in {context} (cn=config is not readable, so which "
            "policy is the default could not be read: this one is taken for it)",
        )
    if not found:
        return Policy(
            "",
            how=f"no password policy entry (objectClass pwdPolicy) can be read in {context}, "
            "and cn=config is not readable",
        )
    names = ", ".join(dn for dn, _ in found[:5])
    return Policy(
        "",
        how=f"{len(found)} password policies in {context} ({names}) and cn=config is not "
        "readable: which one is the default cannot be told",
    )


def schema_names(server: Searcher) -> tuple[frozenset[str], frozenset[str]]:
    """(object class names, attribute type names), lower case, from the server's subschema."""
    dse = root_dse(server)
    subschema = (dse.get("subschemasubentry") or ("cn=Subschema",))[0]
    found = _search(
        server, subschema, "(objectClass=subschema)", "base", ["objectClasses", "attributeTypes"]
    )
    if not found:
        return frozenset(), frozenset()
    attrs = found[0][1]
    return _names(attrs.get("objectclasses", ())), _names(attrs.get("attributetypes", ()))


def _names(definitions: Sequence[str]) -> frozenset[str]:
    """The NAMEs of RFC 4512 definitions: `( 1.2.3 NAME ( 'a' 'b' ) …` → {"a", "b"}."""
    names: set[str] = set()
    for definition in definitions:
        _, found, rest = definition.partition(" NAME ")
        if not found:
            continue
        rest = rest.strip()
        rest = rest[1 : rest.index(")")] if rest.startswith("(") else rest.split(" ", 1)[0]
        names.update(part.strip("'").lower() for part in rest.split() if part.strip("'"))
    return frozenset(names)


def lock_policy(server: Searcher, base_dn: str) -> Policy:
    """The default policy, as `apply` reads it before suspending (read only)."""
    return default_policy(server, base_dn, server_config(server, base_dn))


__all__ = [
    "MIN_LENGTH",
    "POLICY_NEEDS",
    "Policy",
    "ServerConfig",
    "default_policy",
    "lock_policy",
    "naming_context",
    "root_dse",
    "schema_names",
    "server_config",
]
