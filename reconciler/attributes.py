"""The directory's vocabulary: the attributes the tool reads, writes and compares, how entries are
laid out and fingerprinted, and LDAP's GeneralizedTime. Ground floor: no I/O, no LDAP library.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from reconciler.dn import child_dn, escape_rdn_value
from reconciler.model import Entry

PEOPLE_OU = "people"
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
)
#: Attributes compared without regard to case (addresses and logins).
CASELESS_ATTRS = frozenset({"uid", "mail", "govMailAlias"})
#: Attributes that hold the suspension state.
SUSPENSION = ("pwdAccountLockedTime", "govMailSuspendedAt", "govMailSuspendReason")
#: What a plan reads of every entry (operational attributes asked for by name).
READ = (
    "objectClass",
    "employeeNumber",
    *MANAGED,
    *SUSPENSION,
    "govMailRestoredAt",
    "pwdLastSuccess",
    "pwdReset",
    "pwdChangedTime",
    "createTimestamp",
)
LOCKED = "000001010000Z"
#: Attributes that change on every login or write, left out of an entry's fingerprint so that a
#: user logging in between plan and apply does not make the plan stale.
VOLATILE = frozenset({"pwdlastsuccess", "modifytimestamp", "entrycsn", "createtimestamp"})


def fingerprint(entry: Entry) -> str:
    """A digest of what the tool read of an entry (DN and attributes), for the stale-plan check."""
    h = hashlib.sha256(entry.dn.lower().encode())
    for name in sorted(entry.attrs):
        if name in VOLATILE:
            continue
        h.update(b"\0" + name.encode())
        for value in sorted(entry.attrs[name]):
            h.update(b"\1" + value.encode())
    return "sha256:" + h.hexdigest()[:32]


def people_dn(base_dn: str) -> str:
    return child_dn("ou", PEOPLE_OU, base_dn)


def mailbox_dn(local: str, base_dn: str) -> str:
    return f"uid={escape_rdn_value(local)},{people_dn(base_dn)}"


def parse_time(value: str | None) -> dt.datetime | None:
    """An LDAP GeneralizedTime (`20261123090000Z`, fractions allowed) as an aware datetime."""
    if not value:
        return None
    text = value.strip()
    if text == LOCKED:
        return None
    if text.endswith("Z"):
        text = text[:-1]
    main, _, _fraction = text.partition(".")
    digits = main[:14]
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
