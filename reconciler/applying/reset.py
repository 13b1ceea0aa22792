"""Password reset on request (QN-2020 Đ6, HG-2024 Đ11–12): a temporary password that must be
changed at the next login (ppolicy `pwdReset`), handed over only through the credentials file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from reconciler.applying.audit import AuditLog
from reconciler.applying.credentials import CredentialsFile, generate
from reconciler.attributes import (
    ADDRESS_ATTRS,
    ISSUED_AT,
    LOCK,
    MUST_CHANGE,
    PASSWORD,
    SUSPEND_REASON,
    format_time,
)
from reconciler.directory import Directory
from reconciler.errors import ReconcilerError
from reconciler.model import Entry
from reconciler.names import fold
from reconciler.rules import lifecycle

ATTRIBUTES = (
    "objectClass",
    "mail",
    "govMailAlias",
    "employeeNumber",
    "cn",
    "govMailAgency",
    LOCK,
    SUSPEND_REASON,
)


def find(
    directory: Directory,
    base_dn: str,
    address: str,
    attributes: Sequence[str] = ATTRIBUTES,
    verb: str = "reset",
) -> Entry:
    """The managed mailbox whose address (or one of its aliases) is `address`, read with
    `attributes`: two searches on indexed attributes, not a read of the whole directory. An
    entry the tool does not manage is refused: `verb` it with the tool that owns it."""
    wanted = address.strip().lower()
    found = [
        entry
        for attribute in ADDRESS_ATTRS
        for entry in directory.find(base_dn, attribute, [wanted], attributes)
    ]
    for entry in found:
        addresses = {a.lower() for attr in ADDRESS_ATTRS for a in entry.all(attr)}
        if wanted in addresses:
            if not entry.managed:
                raise ReconcilerError(
                    f"{address} belongs to {entry.dn}, which the reconciler does not manage "
                    f"(no govMailAccount): {verb} it with the tool that owns it"
                )
            return entry
    raise ReconcilerError(f"no mailbox with the address {address} under {base_dn}")


def reset_password(
    directory: Directory,
    base_dn: str,
    address: str,
    credentials: CredentialsFile,
    audit: AuditLog,
    clause: str,
    restore_clause: str = "",
) -> Entry:
    entry = find(directory, base_dn, address)
    if entry.all(LOCK):
        raise ReconcilerError(suspended_advice(entry, address, restore_clause))
    password = generate([fold(w) for w in (entry.get("cn") or "").split()])
    mail = entry.mail or address
    credentials.add(mail, password)  # synced before the directory changes
    about = {"id": entry.key, "dn": entry.dn, "address": mail, "clause": clause}
    about["agency"] = entry.get("govMailAgency") or ""
    try:
        directory.modify(
            entry.dn,
            {
                PASSWORD: [password],
                MUST_CHANGE: ["TRUE"],
                ISSUED_AT: [format_time(dt.datetime.now(dt.UTC))],
            },
        )
    except ReconcilerError as error:
        audit.record("reset-password", **about, outcome="failed", message=str(error))
        raise
    audit.record("reset-password", **about, outcome="changed")
    return entry


def suspended_advice(entry: Entry, address: str, restore_clause: str) -> str:
    """What to do instead of resetting the password of a suspended mailbox, truthfully: a
    password would not let its owner in, and the restore issues one itself."""
    record = f"the record of {entry.key} in agencies/{entry.get('govMailAgency') or '…'}.yaml"
    clause = lifecycle.suspension_clause(entry)
    restore = (
        f"; the restore ({restore_clause}) issues a new temporary password itself, to be "
        "changed at the first login, handed over in the apply's credentials file"
    )
    if clause is None:
        return (
            f"{address} is locked, but not by the reconciler (no {SUSPEND_REASON}: a password "
            "policy lockout or an administrator's lock). Unlock it where it was locked, then "
            "reset its password. Nothing was changed."
        )
    if lifecycle.by_time_rule(entry):
        how = (
            f"it was suspended by a time rule ({clause}), which lasts until a restore request: "
            f"put `restored: DATE` (and `restore_ref`) on {record}, then plan and apply"
        )
    else:
        how = (
            f"it was suspended as declared in the inventory ({clause}): set `state: active` "
            f"on {record}, then plan and apply"
        )
    return (
        f"{address} is suspended, and a new password would not let its owner in: {how}{restore}. "
        "Nothing was changed."
    )
