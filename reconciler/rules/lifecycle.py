"""Suspension, restore and the time rules of both regulations. Pure: the clock is an argument.

Months and years are calendar months and years counted in the province's time zone
(Asia/Ho_Chi_Minh, UTC+7): a rule of N months fires on the local calendar day N months after the
last activity (the same day of the month, or the month's last day when it has no such day: 31
January + 1 month = 28 or 29 February), at 00:00 local time. A day before, it does not fire.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from reconciler import attributes
from reconciler.attributes import (
    ISSUED_AT,
    LOCK,
    MUST_CHANGE,
    RESTORED_AT,
    SUSPEND_REASON,
    SUSPENDED_AT,
    parse_time,
    seen,
)
from reconciler.model import Action, Change, Entry, Mailbox, Operation, Seen, State, Suspension
from reconciler.rules.regulations import Regulation

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` calendar months later, clamped to the month's last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def local_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(ZONE).date()


def elapsed(since: dt.datetime, now: dt.datetime, months: int) -> bool:
    """True when `months` calendar months have passed since `since`, in the province's days:
    `local_day(now) >= add_months(local_day(since), months)`, decided by comparing `since` with
    the moment that day begins (`deadline`), found once per `now` and `months`: a plan asks for
    every mailbox, and the time zone's arithmetic was a tenth of its time rules."""
    if since.tzinfo is None:
        return local_day(now) >= add_months(local_day(since), months)
    return since < deadline(now, months)


@functools.lru_cache(maxsize=64)
def deadline(now: dt.datetime, months: int) -> dt.datetime:
    """The first moment from which `months` have not passed by `now` (`elapsed`): the start, in
    the province's time zone, of the day after the last day D with add_months(D, months) on or
    before now's day. add_months never goes backwards as its day moves on, so every day up to D
    has passed and none after it. In UTC, as the times read from the directory are."""
    today = local_day(now)
    day = add_months(today, -months)
    one = dt.timedelta(days=1)
    while add_months(day, months) > today:
        day -= one
    while add_months(day + one, months) <= today:
        day += one
    return dt.datetime.combine(day + one, dt.time(), ZONE).astimezone(dt.UTC)


def months_between(since: dt.datetime, now: dt.datetime) -> int:
    a, b = local_day(since), local_day(now)
    n = (b.year - a.year) * 12 + b.month - a.month
    return n - 1 if add_months(a, n) > b else n


#: Marks a suspension made by a time rule in govMailSuspendReason: it persists until a restore
#: request, while a declared one is lifted by `state: active` (QN-2020 Đ7.2 covers both).
TIME_RULE = " (time rule)"


def suspension_clause(entry: Entry) -> str | None:
    reason = entry.get(SUSPEND_REASON)
    if not reason:
        return None
    return reason.split(":", 1)[0].replace(TIME_RULE, "").strip()


def by_time_rule(entry: Entry) -> bool:
    return TIME_RULE in (entry.get(SUSPEND_REASON) or "").split(":", 1)[0]


def caused_by_time(op: Operation, regulation: Regulation) -> bool:
    """Is `op` one that only the clock caused: a suspension by a time rule (its recorded reason
    carries the TIME_RULE mark) or a deletion by the expiry rule (HG-2024 Đ8.4)? The daily
    scheduled run applies these alone (`plan --only-time-rules`)."""
    if op.action is Action.SUSPEND:
        return any(
            c.attr == SUSPEND_REASON
            and any(isinstance(v, str) and TIME_RULE in v.split(":", 1)[0] for v in c.after)
            for c in op.changes
        )
    if op.action is Action.DELETE:
        return regulation.expiry is not None and op.clause == regulation.expiry.clause
    return False


#: Each kind of activity the mail server's log shows, as a plan's evidence names it.
EVIDENCE = {
    "login": "last login to the mail server",
    "sent": "last mail sent",
    "received": "last mail received",
    "mail": "last mail activity",
}

#: What a time rule counted from, in the words of a plan's reason (the report words them in
#: Vietnamese from these): a sign of life (`last_activity`), or what the rule itself watches.
LAST_LOGIN = "last login"
CREATED = "created"
RESTORED = "restored"
RESTORE_REQUESTED = "restore requested"
PASSWORD_ISSUED = "password issued"
SUSPENDED = "suspended"
BASES = (
    LAST_LOGIN,
    *EVIDENCE.values(),
    CREATED,
    RESTORED,
    RESTORE_REQUESTED,
    PASSWORD_ISSUED,
    SUSPENDED,
)


def last_activity(
    entry: Entry, activity: Mapping[str, Seen], kinds: frozenset[str] | None = None
) -> tuple[dt.datetime | None, str]:
    """The latest sign of life that counts (`kinds`: the regulation's `activity_kinds`; a login
    to the directory always counts), and what it was, in plain words."""
    candidates: list[tuple[dt.datetime, str]] = []
    login = attributes.last_login(entry)  # slapd's, or one carried over in a merger
    if login:
        candidates.append((login, LAST_LOGIN))
    for address in (entry.mail or "", *(a.lower() for a in entry.all("govMailAlias"))):
        seen = activity.get(address)
        moments = {"mail": seen} if isinstance(seen, dt.datetime) else (seen or {})
        for kind, moment in moments.items():
            if kinds is None or kind in kinds:
                candidates.append((moment, EVIDENCE.get(kind, kind)))
    created = attributes.created(entry)  # in the former province's directory, if merged
    if created:
        candidates.append((created, CREATED))
    restored = parse_time(entry.get(RESTORED_AT))
    if restored:
        candidates.append((restored, RESTORED))
    if not candidates:
        return None, ""
    return max(candidates)


def inactive_since(
    box: Mailbox, entry: Entry, regulation: Regulation, activity: Mapping[str, Seen]
) -> tuple[dt.datetime | None, str]:
    """The sign of life the inactivity rule counts from, and what it was (one of BASES)."""
    last, what = last_activity(entry, activity, regulation.activity_kinds)
    requested = box.person.restored if box.person else None
    if requested is not None:
        # a restore request is a sign of life of its own, even when the restore was done by
        # hand before the record said so
        asked = dt.datetime.combine(requested, dt.time(), ZONE)
        if last is None or asked > last:
            last, what = asked, RESTORE_REQUESTED
    return last, what


def evidence(
    op: Operation,
    box: Mailbox,
    entry: Entry,
    regulation: Regulation,
    activity: Mapping[str, Seen],
) -> tuple[str, dt.datetime | None]:
    """What a time rule's operation counted from: (one of BASES, when)."""
    if op.action is Action.DELETE:
        return SUSPENDED, parse_time(entry.get(SUSPENDED_AT))
    change = regulation.password_change
    if change is not None and op.clause == change.clause:
        return PASSWORD_ISSUED, password_issued(entry)
    last, what = inactive_since(box, entry, regulation, activity)
    return what, last


def _exempt(box: Mailbox, rule: str) -> bool:
    return box.person is not None and any(e.rule == rule for e in box.person.exempt)


def suspend_text(clause: str, reason: str, *, time_rule: bool = False) -> str:
    """govMailSuspendReason: the clause (marked when a time rule made it) and the reason."""
    mark = TIME_RULE if time_rule else ""
    return f"{clause}{mark}: {reason}" if reason else f"{clause}{mark}"


def ground(suspension: Suspension) -> str:
    """What a declared suspension stands on: its clause, or the day a lock was found at import
    (a regulation without a neutral ground)."""
    if suspension.clause:
        return suspension.clause
    found = suspension.found_at_import
    return "found suspended at import" + (f" on {found.isoformat()}" if found else "")


def declared_text(suspension: Suspension) -> str:
    """govMailSuspendReason of a declared suspension: its ground and its note."""
    return suspend_text(ground(suspension), suspension.note)


def _suspend(
    box: Mailbox, entry: Entry, clause: str, reason: str, *, note: str, time_rule: bool
) -> Operation:
    """The suspension of `entry` by a time rule: locked, with the clause and `note` as its
    recorded reason."""
    text = suspend_text(clause, note, time_rule=time_rule)
    changes = attributes.suspend(entry, text)
    return box.operation(Action.SUSPEND, clause, reason, **seen(entry), changes=changes)


def _when(moment: dt.datetime) -> str:
    return local_day(moment).isoformat()


def state_operations(
    box: Mailbox,
    entry: Entry,
    regulation: Regulation,
    now: dt.datetime,
    activity: Mapping[str, Seen],
) -> list[Operation]:
    """Suspend or restore a mailbox that exists, by its declared state and the time rules."""
    locked = bool(entry.all(LOCK))
    ours = suspension_clause(entry)
    if box.state is State.SUSPENDED:
        assert box.suspension is not None
        clause = box.suspension.clause or regulation.update_clause
        note = box.suspension.note
        if locked:
            # an entry being adopted gets its recorded reason from the adoption itself
            return _reworded(box, entry, clause) if entry.managed else []
        reason = f"declared suspended in {box.loc.file}" + (f": {note}" if note else "")
        text = declared_text(box.suspension)
        changes = attributes.suspend(entry, text)
        return [box.operation(Action.SUSPEND, clause, reason, **seen(entry), changes=changes)]
    if locked:
        if ours is None:
            return []  # locked by someone else (ppolicy lockout, an admin): not ours to lift
        suspended_at = parse_time(entry.get(SUSPENDED_AT))
        if by_time_rule(entry):
            restored = box.person.restored if box.person else None
            if restored is None or (suspended_at and local_day(suspended_at) > restored):
                return []  # a time-rule suspension persists until a restore request
            ref = box.person.restore_ref if box.person else None
            reason = f"restore requested on {restored.isoformat()}" + (f" ({ref})" if ref else "")
            reason += f"; suspended under {ours}"
        else:
            reason = f"state: active in {box.loc.file} (was suspended under {ours})"
        reason += "; a new temporary password replaces the one held before the suspension"
        return [
            box.operation(
                Action.RESTORE,
                regulation.restore_clause,
                reason,
                **seen(entry),
                changes=attributes.restore(entry),
            )
        ]
    if not entry.managed:
        # being adopted: the plan that adopts an existing directory changes nothing else
        return []
    return _time_rules(box, entry, regulation, now, activity)


def _reworded(box: Mailbox, entry: Entry, clause: str) -> list[Operation]:
    """A suspended mailbox whose declared ground or note changed (or whose lock the inventory
    now declares): an update of the recorded reason, the suspension itself untouched."""
    assert box.suspension is not None
    text = declared_text(box.suspension)
    before = entry.all(SUSPEND_REASON)
    if before == (text,):
        return []
    was = f" (was: {before[0]})" if before else " (locked without a recorded reason)"
    reason = f"the suspension declared in {box.loc.file} changed{was}"
    changes = (Change(SUSPEND_REASON, before, (text,)),)
    return [box.operation(Action.UPDATE, clause, reason, **seen(entry), changes=changes)]


def unrestored_password(box: Mailbox, entry: Entry, regulation: Regulation) -> Operation | None:
    """A mailbox restored without a new password (`attributes.restored_without_password`): an
    update that issues one, as a restore now does."""
    restored = attributes.restored_without_password(entry)
    if restored is None or box.state is not State.ACTIVE:
        return None
    reason = (
        f"restored on {_when(restored)} without a new password, and the password has not changed "
        "since: the one held before the suspension (perhaps the leaked one) still works, so a new "
        "temporary password is issued"
    )
    changes = attributes.issue_password(entry)
    return box.operation(
        Action.UPDATE, regulation.restore_clause, reason, **seen(entry), changes=changes
    )


def _time_rules(
    box: Mailbox,
    entry: Entry,
    regulation: Regulation,
    now: dt.datetime,
    activity: Mapping[str, Seen],
) -> list[Operation]:
    if not_due(entry, regulation, now):
        return []
    return _rules_in_full(box, entry, regulation, now, activity)


def _rules_in_full(
    box: Mailbox,
    entry: Entry,
    regulation: Regulation,
    now: dt.datetime,
    activity: Mapping[str, Seen],
) -> list[Operation]:
    if not _exempt(box, "inactivity"):
        last, what = inactive_since(box, entry, regulation, activity)
        rule = regulation.inactivity
        if last is not None and elapsed(last, now, rule.months):
            months = months_between(last, now)
            if what == CREATED:
                reason = f"never used since it was created on {_when(last)} ({months} months)"
            else:
                reason = (
                    f"{regulation.activity_words} since {_when(last)} ({what}, {months} months)"
                )
            return [_suspend(box, entry, rule.clause, reason, note=reason, time_rule=True)]
    issued = password_issued(entry)
    change = regulation.password_change
    if (
        change is not None
        and issued is not None
        and not _exempt(box, "password-change")
        and elapsed(issued, now, change.months)
    ):
        reason = f"password issued {_when(issued)} never changed"
        return [_suspend(box, entry, change.clause, reason, note=reason, time_rule=True)]
    return []


#: Stamps of an entry that are signs of life whenever they are there (`last_activity`), and
#: those a password issued by the tool is timed by (`password_issued`), besides its creation.
_ALIVE = (*attributes.LOGINS, RESTORED_AT)
_ISSUED = (ISSUED_AT, "pwdChangedTime")


def not_due(entry: Entry, regulation: Regulation, now: dt.datetime) -> bool:
    """True when no time rule can fire on `entry` at `now`, seen from a stamp or two: one sign of
    life on or after the inactivity rule's deadline (the latest is then too, whatever the
    activity file and a restore request add), and a password changed by its holder or a stamp
    of its issue on or after the password rule's deadline. False says nothing: `_time_rules`
    then decides in full. Most mailboxes of a plan are active: their times were all parsed and
    weighed for every plan (a quarter of comparing 100,000 mailboxes, profiled).
    `tests/test_plan_pure.py` checks that the rules in full fire on none of the entries this
    says are not due."""
    alive = deadline(now, regulation.inactivity.months)
    if not _stamped_since(entry, _ALIVE, alive):
        return False
    change = regulation.password_change
    if change is None or (entry.get(MUST_CHANGE) or "").upper() != "TRUE":
        return True
    return _stamped_since(entry, _ISSUED, deadline(now, change.months))


def _stamped_since(entry: Entry, stamps: tuple[str, ...], moment: dt.datetime) -> bool:
    """Whether one of the times `stamps` or the entry's creation is on or after `moment`."""
    for attr in stamps:
        value = entry.get(attr)
        if value:
            stamp = parse_time(value)
            if stamp is not None and stamp >= moment:
                return True
    created = attributes.created(entry)
    return created is not None and created >= moment


def password_issued(entry: Entry) -> dt.datetime | None:
    """When the tool last issued the password the mailbox still holds unchanged, or None.

    A reset or a restore issues the default password again, so the time is the last password
    write (pwdChangedTime; the creation for an entry without one) while pwdReset is still set:
    a password the person changed (ppolicy then clears pwdReset) never counts, and neither does
    a restore that set pwdReset without a new password (`attributes.restored_without_password`:
    the next plan issues one). The tool's own stamp (govMailPasswordIssuedAt) counts with the
    server's, the later of them."""
    if (entry.get(MUST_CHANGE) or "").upper() != "TRUE":
        return None
    if attributes.restored_without_password(entry) is not None:
        return None
    moments = [
        parse_time(entry.get(ISSUED_AT)),
        parse_time(entry.get("pwdChangedTime")),
        attributes.created(entry),
    ]
    known = [t for t in moments if t is not None]
    return max(known) if known else None


def expiry(
    box: Mailbox, entry: Entry, regulation: Regulation, now: dt.datetime
) -> Operation | None:
    """The regulation's expiry rule (HG-2024 Đ8.4): a mailbox suspended continuously for N years
    is deleted."""
    rule = regulation.expiry
    if rule is None or not entry.all(LOCK):
        return None
    since = parse_time(entry.get(SUSPENDED_AT))
    if since is None or not elapsed(since, now, rule.months):
        return None
    reason = f"suspended since {_when(since)}, {rule.span} or more; not recoverable"
    return box.operation(Action.DELETE, rule.clause, reason, **seen(entry))
