"""The directory's vocabulary: the attributes the tool reads, writes and compares, how entries are
laid out and fingerprinted, and LDAP's GeneralizedTime. Ground floor: no I/O, no LDAP library.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence

from reconciler.dn import child_dn, escape_rdn_value
from reconciler.model import Action, Change, Deferred, Entry, Settings, Value

PEOPLE_OU = "people"
#: The entry `apply` holds under the base DN while it runs, so that one apply runs at a time.
LOCK_RDN = "cn=reconciler-lock"
PERSON_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson", "govMailAccount")

#: Attributes the tool sets from the inventory and compares on every plan.
MANAGED = (
    "uid",
    "mail",
    "cn",
    "displayName",
    "sn",
    "givenName",
    "title",
    "o",
    "ou",
    "govMailKind",
    "govMailAgency",
    "govMailUnit",
    "govMailManager",
    "govMailQuota",
    "govMailQuotaDecision",
    "govMailAlias",
    "govMailOrigin",
)
#: The attributes that hold a mailbox's addresses: the address and its aliases.
ADDRESS_ATTRS = ("mail", "govMailAlias")
#: Attributes compared without regard to case (addresses and logins).
CASELESS_ATTRS = frozenset({"uid", "mail", "govMailAlias"})
#: ppolicy: a suspended mailbox's lock (LOCKED), so that every bind fails.
LOCK = "pwdAccountLockedTime"
SUSPEND_REASON = "govMailSuspendReason"
#: Stamped with the time of apply by a suspension and a restore.
SUSPENDED_AT = "govMailSuspendedAt"
RESTORED_AT = "govMailRestoredAt"
PASSWORD = "userPassword"
#: Stamped with the time of apply whenever the tool issues a password (create, restore, reset,
#: handover): the moment HG-2024 Đ8.2.d counts from, on the tool's own clock.
ISSUED_AT = "govMailPasswordIssuedAt"
#: ppolicy: TRUE makes the first bind change the password.
MUST_CHANGE = "pwdReset"
#: slapd's last login (lastbind; read-only to clients).
LAST_SUCCESS = "pwdLastSuccess"
#: A last login carried over from the directory of a former province in a merger (slapd refuses
#: writes to pwdLastSuccess): the time rules read the later of the two.
LAST_LOGIN = "govMailLastLogin"
#: Where a merged mailbox came from: "<former domain> <former id>" (`Person.origin`).
ORIGIN = "govMailOrigin"
#: When a merged mailbox was created in its former province's directory: the time rules count
#: from it (`created`), not from the move, which is the entry's own createTimestamp.
CREATED_AT = "govMailCreatedAt"
# The history (ou=history): a govMailTombstone entry per deleted mailbox, read by every plan in
# one search. No mail and no govMailAlias on it: the mail server's maps never see it.
HISTORY_OU = "history"
TOMBSTONE = "govMailTombstone"
FORMER_ID = "govMailFormerId"
FORMER_ADDRESS = "govMailFormerAddress"
DELETED_AT = "govMailDeletedAt"
DELETE_REASON = "govMailDeleteReason"
#: What a plan reads of a tombstone.
HISTORY_READ = (
    "objectClass",
    FORMER_ID,
    FORMER_ADDRESS,
    DELETED_AT,
    DELETE_REASON,
    "displayName",
    "govMailAgency",
)
#: Attributes that hold the suspension state: a suspension writes them, a restore removes them.
SUSPENSION = (LOCK, SUSPEND_REASON, SUSPENDED_AT)
#: Attributes whose value a plan can only give as `Deferred.APPLY_TIME`.
STAMPED = frozenset({SUSPENDED_AT, RESTORED_AT, ISSUED_AT, DELETED_AT})
_STAMPED_LOWER = frozenset(a.lower() for a in STAMPED)
#: A login on a read-only replica, forwarded to the providers by slapd's lastbind overlay
#: (`lastbind_forward_updates`: slapd's own lastbind writes pwdLastSuccess on the replica only,
#: and refuses it from a client); the later of the two is the last login.
LOGIN_FORWARDED = "authTimestamp"
#: What a plan reads of every entry (operational attributes asked for by name).
READ = (
    PASSWORD,  # how many values only (`Entry.passwords`): a second one is a backdoor
    "objectClass",
    "employeeNumber",
    *MANAGED,
    *SUSPENSION,
    RESTORED_AT,
    ISSUED_AT,
    LAST_SUCCESS,
    LOGIN_FORWARDED,
    LAST_LOGIN,
    CREATED_AT,
    MUST_CHANGE,
    "pwdChangedTime",
    "createTimestamp",
)
#: Every attribute apply may write: the CONTRACT's attributes, with the ppolicy state the tool owns
#: (`pwdReset`, `pwdAccountLockedTime`) and userPassword only as a password apply issues. A plan
#: that lists any other (an operational attribute, an option like `userPassword;x`, an OID) is
#: refused whole (`planning.invariants`).
WRITABLE = (
    "objectClass",
    "employeeNumber",
    *MANAGED,
    *SUSPENSION,
    RESTORED_AT,
    ISSUED_AT,
    MUST_CHANGE,
    PASSWORD,
    # a merger's (`carry`): the last login and the creation carried over from the former
    # directory, so that the time rules continue
    LAST_LOGIN,
    CREATED_AT,
)
#: Every attribute of a tombstone, the one record apply writes in ou=history (with a delete).
TOMBSTONE_WRITABLE = HISTORY_READ
#: What a merger's plan reads of the source directory's entries (`carry`): never the password,
#: which apply reads there itself, by DN, when it writes the new entry.
SOURCE_READ = (
    "objectClass",
    "employeeNumber",
    "uid",
    "mail",
    "cn",
    "govMailAlias",
    LOCK,
    SUSPEND_REASON,
    SUSPENDED_AT,
    ISSUED_AT,
    RESTORED_AT,
    MUST_CHANGE,
    LAST_SUCCESS,
    LOGIN_FORWARDED,
    LAST_LOGIN,
    CREATED_AT,
    "createTimestamp",
)
LOCKED = "000001010000Z"

#: Attributes that hold a secret or a password hash, lower case: never in an export, an audit
#: record or any output, whatever else is shown of an entry (a legacy directory that also serves
#: Samba keeps NT and LM hashes beside userPassword).
SECRET = frozenset(
    {"userpassword", "pwdhistory", "authpassword", "sambantpassword", "sambalmpassword"}
)


#: Attributes that change on every login or write, left out of an entry's fingerprint so that a
#: user logging in between plan and apply does not make the plan stale.
VOLATILE = frozenset(
    {"pwdlastsuccess", "authtimestamp", "modifytimestamp", "entrycsn", "createtimestamp"}
)


def created(entry: Entry) -> dt.datetime | None:
    """When the mailbox was created: in its former province's directory for a merged one
    (govMailCreatedAt), else the entry's createTimestamp."""
    return parse_time(entry.get(CREATED_AT)) or parse_time(entry.get("createTimestamp"))


#: The stamps of an entry's logins (`last_login`).
LOGINS = (LAST_SUCCESS, LOGIN_FORWARDED, LAST_LOGIN)


def last_login(entry: Entry) -> dt.datetime | None:
    """The entry's last login: the latest of slapd's own (pwdLastSuccess on a provider,
    authTimestamp forwarded from a replica) and one carried over from a former province's
    directory (govMailLastLogin)."""
    times = [t for a in LOGINS if (t := parse_time(entry.get(a)))]
    return max(times) if times else None


#: The attribute names of an entry, in its order -> those a fingerprint covers, sorted (a
#: directory's entries have a few sets of names).
_FINGERPRINTED: dict[tuple[str, ...], tuple[str, ...]] = {}
_LEAD: dict[str, str] = {}  # attribute name -> what precedes its one value in a fingerprint


def fingerprint(entry: Entry) -> str:
    """A digest of what the tool read of an entry (DN and attributes), for the stale-plan check:
    the SHA-256 of the lower-case DN, then for each attribute by name (not `VOLATILE`) NUL and
    its name, and for each of its values, sorted, SOH and the value (UTF-8); then, when it has
    passwords, STX and how many (never what: a second password added is a change).

    One digest of one string: every entry read is fingerprinted (the directory's own fingerprint
    covers them all), and a digest fed piece by piece took twice as long."""
    attrs = entry.attrs
    names = tuple(attrs)
    order = _FINGERPRINTED.get(names)
    if order is None:
        order = tuple(sorted(n for n in names if n not in VOLATILE))
        if len(_FINGERPRINTED) < 1024:
            _FINGERPRINTED[names] = order
    parts = [entry.dn.lower()]
    add = parts.append
    for name in order:
        values = attrs[name]
        if len(values) == 1:
            lead = _LEAD.get(name)
            if lead is None:
                lead = "\0" + name + "\1"
                if len(_LEAD) < 1024:
                    _LEAD[name] = lead
            add(lead)
            add(values[0])
        else:
            add("\0" + name)
            for value in sorted(values):
                add("\1")
                add(value)
    if entry.passwords:
        add(f"\2{entry.passwords}")
    return "sha256:" + hashlib.sha256("".join(parts).encode()).hexdigest()[:32]


def managed_digest(attrs: Mapping[str, Sequence[str]]) -> str:
    """A short digest of the managed attributes of an entry (lower-case attribute names, as in
    `Entry.attrs`): apply records it after each write, so that the next plan can tell a value
    changed in the directory by hand since (`plan`: "changed in the directory by hand")."""
    h = hashlib.sha256()
    for attr in MANAGED:
        values = attrs.get(attr.lower(), ())
        folded = (v.lower() for v in values) if attr in CASELESS_ATTRS else iter(values)
        h.update(b"\0" + attr.encode())
        for value in sorted(folded):
            h.update(b"\1" + value.encode())
    return h.hexdigest()[:16]


def people_dn(base_dn: str) -> str:
    """The default mailbox container, `ou=people,<base_dn>`."""
    return child_dn("ou", PEOPLE_OU, base_dn)


def history_dn(base_dn: str) -> str:
    return child_dn("ou", HISTORY_OU, base_dn)


def tombstone(
    entry: Entry, clause: str, reason: str, base_dn: str
) -> tuple[str, tuple[Change, ...]]:
    """The history entry a delete leaves: its DN (named by the stable id and the fingerprint of
    the entry deleted, so that a repeated apply finds the one it wrote) and its attributes."""
    key = entry.key or entry.dn
    dn = child_dn("cn", f"{key} {fingerprint(entry)[7:19]}", history_dn(base_dn))
    addresses = sorted({a.lower() for a in (*entry.all("mail"), *entry.all("govMailAlias"))})
    attrs: dict[str, tuple[Value, ...]] = {
        "objectClass": ("top", TOMBSTONE),
        FORMER_ID: (key,),
        FORMER_ADDRESS: tuple(addresses),
        DELETED_AT: (Deferred.APPLY_TIME,),
        DELETE_REASON: (f"{clause}: {reason}",),
        "displayName": entry.all("cn")[:1],
        "govMailAgency": entry.all("govMailAgency")[:1],
    }
    return dn, tuple(Change(a, (), v) for a, v in attrs.items() if v)


def people_containers(settings: Settings) -> tuple[str, ...]:
    """The mailbox containers the inventory declares (`people` in directory.yaml, full DNs): the
    only places where the tool creates, adopts, renames or deletes a mailbox; new mailboxes go
    to the first."""
    return settings.people or (people_dn(settings.base_dn),)


def mailbox_dn(local: str, container: str) -> str:
    """The DN of a new mailbox in `container` (a full DN)."""
    return f"uid={escape_rdn_value(local)},{container}"


#: Years a time read from the directory may have: a value outside (a hand-edited 9999…) is read
#: as no value, so that adding a regulation's months to it never leaves the calendar.
_YEARS = range(1970, 2200)


#: Times read, by value: a plan reads three to five per mailbox, most of them more than once
#: (the time rules and the password rules read the same stamps), and slapd gives many entries
#: the same createTimestamp. Cleared when full.
_PARSED: dict[str, dt.datetime | None] = {}
_UNREAD = object()


def parse_time(value: str | None) -> dt.datetime | None:
    """An LDAP GeneralizedTime (`20261123090000Z`, fractions allowed) as an aware datetime; None
    for no value, `LOCKED`, a value that is not a time or one outside the years 1970–2199."""
    if not value:
        return None
    parsed = _PARSED.get(value, _UNREAD)
    if parsed is not _UNREAD:
        return parsed  # type: ignore[return-value]
    if len(_PARSED) >= 4096:
        _PARSED.clear()
    parsed = _PARSED[value] = _parse_time(value)
    return parsed


def _parse_time(value: str) -> dt.datetime | None:
    if (
        len(value) == 15
        and value[14] == "Z"
        and value.isascii()
        and value[:14].isdigit()
        and "1970" <= value[:4] < "2200"  # _YEARS
    ):
        # the form slapd writes, read by the C parser of ISO 8601's basic format: a plan reads
        # three to five times per mailbox (a tenth of its time rules when sliced by hand)
        try:
            return dt.datetime.fromisoformat(f"{value[:8]}T{value[8:]}")
        except ValueError:
            pass  # not a real date: as below
    text = value.strip()
    if text == LOCKED:
        return None
    if text.endswith("Z"):
        text = text[:-1]
    main, _, _fraction = text.partition(".")
    digits = main[:14]
    if not (digits[:4].isascii() and digits[:4].isdigit() and int(digits[:4]) in _YEARS):
        return None
    if len(digits) == 14 and digits.isascii() and digits.isdigit():
        # the usual form, read by slicing: strptime took 2.5 s of a 100,000-mailbox plan
        # (cProfile; three timestamps per entry); anything it cannot build goes to strptime
        try:
            return dt.datetime(
                int(digits[:4]),
                int(digits[4:6]),
                int(digits[6:8]),
                int(digits[8:10]),
                int(digits[10:12]),
                int(digits[12:14]),
                tzinfo=dt.UTC,
            )
        except ValueError:
            pass
    try:
        return dt.datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ")


def seen(entry: Entry) -> dict[str, str]:
    """The DN and fingerprint an operation records of the entry it was computed from."""
    return {"dn": entry.dn, "fingerprint": fingerprint(entry)}


# ---------------------------------------------------------------------------------------------
# What a password issue, a suspension and a restore write: the one definition that plan, the
# lifecycle rules and apply share (apply writes exactly these changes, resolving the deferred
# values).


def _before(entry: Entry | None, attr: str) -> tuple[str, ...]:
    return entry.all(attr) if entry is not None else ()


def issue_password(entry: Entry | None = None) -> tuple[Change, ...]:
    """A new password, handed over in the credentials file, to be changed at the first bind."""
    return (
        Change(PASSWORD, (), (Deferred.PASSWORD,)),  # never read: its "before" is unknown
        Change(MUST_CHANGE, _before(entry, MUST_CHANGE), ("TRUE",)),
        Change(ISSUED_AT, _before(entry, ISSUED_AT), (Deferred.APPLY_TIME,)),
    )


def suspend(entry: Entry | None, reason: str) -> tuple[Change, ...]:
    """Locks the mailbox, with the clause and reason (`lifecycle.suspend_text`) and the time."""
    after: dict[str, tuple[Value, ...]] = {
        LOCK: (LOCKED,),
        SUSPEND_REASON: (reason,),
        SUSPENDED_AT: (Deferred.APPLY_TIME,),
    }
    return tuple(Change(a, _before(entry, a), after[a]) for a in SUSPENSION)


def restore(entry: Entry) -> tuple[Change, ...]:
    """Lifts a suspension: removes the suspension attributes it has, issues a new temporary
    password to be changed at the next bind (the one held before the suspension may be the
    leaked one, and stops working), and keeps the time of the restore (a sign of life)."""
    return (
        *(Change(a, entry.all(a), ()) for a in SUSPENSION if entry.all(a)),
        *issue_password(entry),
        Change(RESTORED_AT, entry.all(RESTORED_AT), (Deferred.APPLY_TIME,)),
    )


def restored_without_password(entry: Entry) -> dt.datetime | None:
    """When the mailbox was restored without a new password (by a reconciler from before
    restores issued one) and its password has not changed since: the time of that restore;
    else None. Such a mailbox still holds the password it had before its suspension.

    A restore now stamps govMailRestoredAt and govMailPasswordIssuedAt with the same moment; an
    old one left no password stamp after it, and its pwdChangedTime (the server's, at the last
    password write) is the person's last change, before the suspension."""
    restored = parse_time(entry.get(RESTORED_AT))
    if restored is None or entry.all(LOCK):
        return None
    if (entry.get(MUST_CHANGE) or "").upper() != "TRUE":
        return None  # the person changed the password since: ppolicy cleared pwdReset
    for attr in (ISSUED_AT, "pwdChangedTime"):
        written = parse_time(entry.get(attr))
        if written is not None and written >= restored:
            return None
    return restored


def carry(source: Entry, declared: str | None) -> tuple[Change, ...]:
    """What a create carries over from the `source` entry of a former province's directory in
    a merger: its password hash (read by apply from the source, never in the plan), its
    must-change state with the time its password was issued, its suspension with the time it
    began (the reason the record `declared`, else the source's), its last restore, its last
    login and its creation, so that the time rules continue, not restart. The values are the
    source's, shown in the plan; only the hash is deferred."""
    changes = [Change(PASSWORD, (), (Deferred.CARRIED,))]
    if (source.get(MUST_CHANGE) or "").upper() == "TRUE":
        changes.append(Change(MUST_CHANGE, (), ("TRUE",)))
        if source.get(ISSUED_AT):
            changes.append(Change(ISSUED_AT, (), (source.get(ISSUED_AT) or "",)))
    if source.all(LOCK):
        changes.append(Change(LOCK, (), (LOCKED,)))
        reason = declared or source.get(SUSPEND_REASON)
        if reason:
            changes.append(Change(SUSPEND_REASON, (), (reason,)))
        if source.get(SUSPENDED_AT):
            changes.append(Change(SUSPENDED_AT, (), (source.get(SUSPENDED_AT) or "",)))
    if source.get(RESTORED_AT):
        changes.append(Change(RESTORED_AT, (), (source.get(RESTORED_AT) or "",)))
    login = last_login(source)
    if login is not None:
        changes.append(Change(LAST_LOGIN, (), (format_time(login),)))
    born = created(source)
    if born is not None:
        changes.append(Change(CREATED_AT, (), (format_time(born),)))
    return tuple(changes)


def carries(op_attributes: tuple[Change, ...]) -> bool:
    """Does a create carry its password over from a source entry (`carry`)?"""
    return any(c.attr == PASSWORD and c.after == (Deferred.CARRIED,) for c in op_attributes)


#: What every operation of an action writes besides its own changes (a plan that leaves one out
#: was made by a reconciler from before plans listed every write, and is refused).
ALWAYS_WRITTEN = {
    Action.CREATE: (PASSWORD, MUST_CHANGE, ISSUED_AT),
    Action.SUSPEND: SUSPENSION,
    Action.RESTORE: (PASSWORD, MUST_CHANGE, ISSUED_AT, RESTORED_AT),
    Action.DELETE: (FORMER_ID, DELETED_AT),
}


def misplaced(attr: str, after: tuple[Value, ...]) -> str | None:
    """Why `after` cannot be what an operation writes to `attr`, or None: a password is only
    ever issued (never a value in a plan), and only the stamped attributes take the time of
    apply."""
    if attr.lower() == PASSWORD.lower():
        if attr != PASSWORD or after not in ((Deferred.PASSWORD,), (Deferred.CARRIED,)):
            return (
                f"{PASSWORD} can only be issued by apply (spelled {PASSWORD}, its one value the "
                "issued marker, or in a merger the marker of a password carried from its source)"
            )
        return None
    for value in after:
        if value in (Deferred.PASSWORD, Deferred.CARRIED):
            what = "an issued" if value is Deferred.PASSWORD else "a carried"
            return f"{what} password can only go to {PASSWORD}, not to {attr}"
        if value is Deferred.APPLY_TIME and attr.lower() not in _STAMPED_LOWER:
            stamped = " and ".join(sorted(STAMPED))
            return f"the time of apply can only be stamped on {stamped}, not on {attr}"
        if isinstance(value, Deferred) and len(after) != 1:
            return f"{attr}: a value filled in by apply must be the attribute's only value"
    return None
