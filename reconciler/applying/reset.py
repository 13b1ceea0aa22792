"""Password reset on request (QN-2020 Đ6, HG-2024 Đ11–12): a temporary password that must be
changed at the next login (ppolicy `pwdReset`), handed over only through the credentials file."""

from __future__ import annotations

from reconciler.applying.audit import AuditLog
from reconciler.applying.credentials import CredentialsFile, generate
from reconciler.directory import Directory
from reconciler.directory.snapshot import read_tree
from reconciler.errors import ReconcilerError
from reconciler.model import Entry
from reconciler.names import fold

ATTRIBUTES = ("objectClass", "mail", "govMailAlias", "employeeNumber", "cn", "pwdAccountLockedTime")


def find(directory: Directory, base_dn: str, address: str) -> Entry:
    """The managed mailbox whose address (or one of its aliases) is `address`."""
    wanted = address.strip().lower()
    for entry in read_tree(directory, base_dn, ATTRIBUTES):
        addresses = {a.lower() for a in (*entry.all("mail"), *entry.all("govMailAlias"))}
        if wanted in addresses:
            if not entry.managed:
                raise ReconcilerError(
                    f"{address} belongs to {entry.dn}, which the reconciler does not manage "
                    "(no govMailAccount): reset it with the tool that owns it"
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
) -> Entry:
    entry = find(directory, base_dn, address)
    if entry.all("pwdAccountLockedTime"):
        raise ReconcilerError(
            f"{address} is suspended; a new password would not let its owner in. Restore it "
            "first (state: active, or restored: DATE in the inventory), which also issues a "
            "must-change password."
        )
    password = generate([fold(w) for w in (entry.get("cn") or "").split()])
    mail = entry.mail or address
    credentials.add(mail, password)  # synced before the directory changes
    try:
        directory.modify(entry.dn, {"userPassword": [password], "pwdReset": ["TRUE"]})
    except ReconcilerError as error:
        audit.record(
            "reset-password",
            id=entry.key,
            dn=entry.dn,
            address=mail,
            clause=clause,
            outcome="failed",
            message=str(error),
        )
        raise
    audit.record(
        "reset-password", id=entry.key, dn=entry.dn, address=mail, clause=clause, outcome="changed"
    )
    return entry
