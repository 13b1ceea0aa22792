"""Before a plan suspends anyone: does the server lock a suspended account at all?

slapd sets nothing and refuses nothing on its own: it honours `pwdAccountLockedTime` (the
suspension) only under a password policy with `pwdLockout: TRUE`. Under any other policy an apply
would report a suspension "changed" while the mailbox goes on logging in. This check reads the
policy (read only: the canary that proves it is `doctor`'s alone) and refuses the plan before
anything is written when the policy does not lock, or, when it cannot be read, unless the caller
accepts that risk by name.
"""

from __future__ import annotations

from reconciler.attributes import LOCK
from reconciler.directory import Directory
from reconciler.errors import ReconcilerError
from reconciler.model import Action, Operation, Plan

#: The apply option that accepts suspending on a server whose policy could not be read.
ACCEPT_OPTION = "--suspend-without-lock-check"


def suspends(op: Operation) -> bool:
    """Does the operation lock an account (a suspension, or a mailbox created suspended)?"""
    if op.action is Action.SUSPEND:
        return True
    return op.action is Action.CREATE and any(c.attr == LOCK for c in op.attributes)


def ensure_locking(plan: Plan, directory: Directory, accept_unverified: bool) -> None:
    """Raise, before anything is written, unless the server locks the accounts the plan
    suspends (or the policy cannot be read and `accept_unverified`)."""
    count = sum(1 for op in plan.operations if suspends(op))
    if not count:
        return
    policy = directory.lock_policy(plan.base_dn)
    mailboxes = f"{count} mailbox{'es' if count != 1 else ''}"
    if policy.locks is False:
        raise ReconcilerError(
            f"the directory at {directory.url} would not lock the {mailboxes} this plan "
            f"suspends: its password policy ({policy.detail}) does not have pwdLockout: TRUE, "
            "so slapd ignores pwdAccountLockedTime and a suspended mailbox still logs in. Set "
            "pwdLockout: TRUE in that policy (`reconciler doctor` checks the server), then "
            "apply again. Nothing was applied."
        )
    if policy.locks is None and not accept_unverified:
        raise ReconcilerError(
            f"cannot tell whether the directory at {directory.url} locks the {mailboxes} this "
            f"plan suspends: {policy.detail}. Run `reconciler doctor --directory "
            f"{directory.url}`, which proves it with a temporary entry; if the server does lock "
            f"them, apply again with {ACCEPT_OPTION}, which accepts the risk that a suspended "
            "mailbox still logs in. Nothing was applied."
        )
