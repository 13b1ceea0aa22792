"""The guard on destructive change (`check_limits`): how many deletions and suspensions a plan
may carry. Its own module, apart from the plan computation: `plan` checks it when it computes a
plan, and `apply` (`planning.invariants`) checks it again before its first write, where importing
the whole plan computation cost 14 ms.
"""

from __future__ import annotations

from reconciler.errors import UnsafePlan
from reconciler.model import Action, Limits, Plan
from reconciler.rules import regulations
from reconciler.text import count


def check_limits(plan: Plan, limits: Limits) -> None:
    """Refuse a plan with more destructive change than the inventory and the flags allow."""
    max_deletes = limits.max_deletes
    deletes = plan.count(Action.DELETE)
    allowed = max(max_deletes, limits.allow_deletes or 0)
    problems = []
    if deletes > allowed:
        regulation = regulations.get(plan.regulation)
        rule = regulation.expiry
        expired = [
            op
            for op in plan.operations
            if op.action is Action.DELETE and rule is not None and op.clause == rule.clause
        ]
        due = f" ({len(expired)} of them due under {expired[0].clause})" if expired else ""
        cited = regulation.irreversible_delete_clause
        problems.append(
            f"this plan deletes {count(deletes, 'mailbox', 'mailboxes')}{due}, more than "
            f"max_deletes ({max_deletes}) in "
            "directory.yaml. Deleted mailboxes cannot be restored"
            + (f" ({cited})" if cited else "")
            + f". If every deletion is intended, run the plan again with --allow-deletes {deletes}."
        )
    suspends = plan.count(Action.SUSPEND)
    accounts = plan.accounts
    share_limit = int(accounts * limits.suspend_share)
    if suspends > max(share_limit, limits.allow_suspends or 0) and suspends > 0:
        problems.append(
            f"this plan suspends {suspends} of {count(accounts, 'mailbox', 'mailboxes')}, "
            f"more than {limits.suspend_share:.0%}. If every suspension is intended, run the "
            f"plan again with --allow-suspends {suspends}."
        )
    if problems:
        raise UnsafePlan("\n".join(problems), plan)
