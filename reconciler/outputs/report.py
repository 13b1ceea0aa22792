"""The periodic report (QN-2020 Đ13.6, HG-2024 Đ7.3): accounts per agency and what is coming.

Pure: `build()` takes the inventory, the entries read from the directory, the audit log's records
(already parsed from its JSON lines) and the clock, and returns a frozen `Report`. No I/O.

- active / suspended: the entries as they are now, per agency (`govMailAgency`): the managed ones
  and those the next plan adopts (`desired.resolve`; counted in their record's agency);
  suspended ones are counted by the clause in `govMailSuspendReason` ("locked outside the tool"
  for a lock without one, e.g. a ppolicy lockout).
- created / renamed / deleted / suspended / restored in the period: the audit records with
  `outcome: changed` whose `time` is in [since, now]: the directory's own history
  (`directory.history`), or a local audit log of which only the records of this directory (its
  domain and base DN) count (`own_records`).
- overdue: the mailboxes a time rule has caught already and that are not suspended (or deleted)
  yet: the next plan does it; with the day the rule fired.
- due: the mailboxes a time rule will catch within `HORIZON_DAYS` days and does not catch now —
  the agency's advance notice before anyone is locked out — with the day it fires.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.directory.history import moment
from reconciler.dn import normalize_dn
from reconciler.model import Entry, Inventory, Mailbox, Operation, Seen
from reconciler.planning import desired
from reconciler.rules import lifecycle, regulations
from reconciler.rules.regulations import Regulation

HORIZON_DAYS = 30
#: Audit events counted in the period, in the order they are shown.
PERIOD_EVENTS = ("create", "rename", "delete", "suspend", "restore")
OUTSIDE = "locked outside the tool"


@dataclass(frozen=True, slots=True)
class Due:
    """A mailbox a time rule will catch soon, or has caught already (`overdue`)."""

    agency: str
    id: str
    address: str
    name: str
    action: str  # "suspend" or "delete"
    clause: str
    day: dt.date  # the local day the rule fires (or fired)
    reason: str  # the evidence, in plain words, as the plan will say it
    overdue: bool = False  # the rule fired already; the mailbox is not suspended yet
    basis: str = ""  # what the rule counts from: one of `lifecycle.BASES`
    since: dt.date | None = None  # the local day of that evidence


@dataclass(frozen=True, slots=True)
class AgencyReport:
    id: str
    name: str
    active: int
    suspended: tuple[tuple[str, int], ...]  # (clause, accounts), by clause
    period: tuple[tuple[str, int], ...]  # (audit event, count) for each of PERIOD_EVENTS
    due: tuple[Due, ...]
    in_inventory: bool = True
    overdue: tuple[Due, ...] = ()

    @property
    def suspended_total(self) -> int:
        return sum(n for _, n in self.suspended)

    @property
    def total(self) -> int:
        return self.active + self.suspended_total

    def count(self, event: str) -> int:
        return dict(self.period).get(event, 0)


@dataclass(frozen=True, slots=True)
class Report:
    regulation: str
    domain: str
    now: dt.datetime
    since: dt.datetime
    audited: bool  # False when there is no audit history: the period counts are unknown
    agencies: tuple[AgencyReport, ...]
    horizon_days: int = HORIZON_DAYS
    #: when the audit history read begins, if after `since` (the counts of the period are then
    #: those of the part of it the history covers)
    history_from: dt.datetime | None = None

    @property
    def active(self) -> int:
        return sum(a.active for a in self.agencies)

    @property
    def suspended(self) -> int:
        return sum(a.suspended_total for a in self.agencies)

    def count(self, event: str) -> int:
        return sum(a.count(event) for a in self.agencies)

    @property
    def due(self) -> tuple[Due, ...]:
        return tuple(d for a in self.agencies for d in a.due)

    @property
    def overdue(self) -> tuple[Due, ...]:
        return tuple(d for a in self.agencies for d in a.overdue)

    @property
    def clauses(self) -> tuple[str, ...]:
        return tuple(sorted({c for a in self.agencies for c, _ in a.suspended}))


def default_since(now: dt.datetime) -> dt.datetime:
    """Six calendar months before `now` (the report is due every 6 months, QN-2020 Đ13.6)."""
    day = lifecycle.add_months(lifecycle.local_day(now), -6)
    return dt.datetime.combine(day, dt.time(0), lifecycle.ZONE).astimezone(dt.UTC)


def _attr(attrs: Any, name: str) -> str | None:
    if not isinstance(attrs, Mapping):
        return None
    for key, values in attrs.items():
        if str(key).lower() == name.lower():
            if isinstance(values, list | tuple) and values:
                return str(values[0])
            if isinstance(values, str) and values:
                return values
    return None


def own_records(
    records: Iterable[Mapping[str, Any]], domain: str, base_dn: str
) -> tuple[list[Mapping[str, Any]], int]:
    """The records of a local audit log that are about this directory (the same domain and base
    DN), and how many others were left out: a log shared by several directories (or written by
    an older version, whose records name no directory) counts for none but its own."""
    wanted = _dn_key(base_dn)
    kept: list[Mapping[str, Any]] = []
    left = 0
    for record in records:
        same = (
            str(record.get("domain", "")).lower() == domain.lower()
            and _dn_key(str(record.get("base_dn", ""))) == wanted
        )
        if same:
            kept.append(record)
        else:
            left += 1
    return kept, left


def _dn_key(dn: str) -> str:
    try:
        return normalize_dn(dn) if dn else ""
    except ValueError:
        return dn.lower()


def _agency_of(record: Mapping[str, Any], known: Mapping[str, str]) -> str:
    """The agency an audit record is about: as recorded, from its attributes, else by its
    stable id."""
    if isinstance(record.get("agency"), str) and record["agency"]:
        return str(record["agency"])
    for side in ("after", "before"):
        agency = _attr(record.get(side), "govMailAgency")
        if agency:
            return agency
    key = str(record.get("id") or "")
    if key in known:
        return known[key]
    if key.startswith("agency:"):
        return key[len("agency:") :]
    if key.startswith("unit:"):
        return key[len("unit:") :].split("/", 1)[0]
    return ""


def _period(
    records: Iterable[Mapping[str, Any]],
    since: dt.datetime,
    now: dt.datetime,
    known: Mapping[str, str],
) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {}
    for record in records:
        event = record.get("event")
        if event not in PERIOD_EVENTS or record.get("outcome") != "changed":
            continue
        when = moment(record.get("time"))
        if when is None or not since <= when <= now:
            continue
        counts.setdefault(_agency_of(record, known), Counter())[str(event)] += 1
    return counts


def _time_ops(
    box: Mailbox,
    entry: Entry,
    regulation: Regulation,
    at: dt.datetime,
    activity: Mapping[str, Seen],
) -> list[Operation]:
    """The operations the time rules cause on the mailbox at `at`."""
    found = [
        op
        for op in lifecycle.state_operations(box, entry, regulation, at, activity)
        if lifecycle.caused_by_time(op, regulation)
    ]
    expired = lifecycle.expiry(box, entry, regulation, at)
    return [*found, expired] if expired else found


def _fired(op: Operation, regulation: Regulation, since: dt.datetime | None) -> dt.date | None:
    """The local day the rule of `op` fired, counted from its evidence."""
    if since is None:
        return None
    rules = (regulation.inactivity, regulation.password_change, regulation.expiry)
    rule = next((r for r in rules if r is not None and r.clause == op.clause), None)
    return lifecycle.add_months(lifecycle.local_day(since), rule.months) if rule else None


def _due(
    box: Mailbox,
    entry: Entry,
    regulation: Regulation,
    now: dt.datetime,
    activity: Mapping[str, Seen],
) -> Due | None:
    """The first time rule that catches the mailbox: now (overdue: the rule fired and the
    mailbox is not suspended yet), or within the horizon."""

    def ops(days: int) -> list[Operation]:
        return _time_ops(box, entry, regulation, now + dt.timedelta(days=days), activity)

    current = ops(0)
    if current:
        op, overdue = current[0], True
        basis, since = lifecycle.evidence(op, box, entry, regulation, activity)
        day = _fired(op, regulation, since) or lifecycle.local_day(now)
    else:
        if not ops(HORIZON_DAYS):
            return None
        low, high = 0, HORIZON_DAYS  # the rules only ever fire later, never stop: bisect the day
        while high - low > 1:
            middle = (low + high) // 2
            if ops(middle):
                high = middle
            else:
                low = middle
        op, overdue = ops(high)[0], False
        basis, since = lifecycle.evidence(op, box, entry, regulation, activity)
        day = lifecycle.local_day(now + dt.timedelta(days=high))
    return Due(
        agency=box.agency,
        id=box.key,
        address=box.mail,
        name=box.name,
        action=op.action.value,
        clause=op.clause,
        day=day,
        reason=op.reason,
        overdue=overdue,
        basis=basis,
        since=lifecycle.local_day(since) if since else None,
    )


def build(
    inventory: Inventory,
    entries: Iterable[Entry],
    regulation: Regulation,
    records: Sequence[Mapping[str, Any]] | None,
    now: dt.datetime,
    since: dt.datetime | None = None,
    activity: Mapping[str, Seen] | None = None,
    history_from: dt.datetime | None = None,
) -> Report:
    """The report at `now` over the period [since, now] (default: the last 6 months).
    `records`: the audit records of this directory (None: no history, the period's counts are
    unknown); `history_from`: when that history begins."""
    since = since if since is not None else default_since(now)
    wanted = desired.resolve(inventory, entries, regulation)  # as the plan sees it
    live, boxes = wanted.live, wanted.boxes

    known = {p.id: p.agency for p in inventory.people}
    known.update({k: e.get("govMailAgency") or "" for k, e in live.items() if e.managed})
    period = _period(records or (), since, now, known)

    active: Counter[str] = Counter()
    suspended: dict[str, Counter[str]] = {}
    due: dict[str, list[Due]] = {}
    overdue: dict[str, list[Due]] = {}
    for key, entry in live.items():
        agency = entry.get("govMailAgency") or known.get(key, "")
        if entry.all("pwdAccountLockedTime"):
            clause = lifecycle.suspension_clause(entry) or OUTSIDE
            suspended.setdefault(agency, Counter())[clause] += 1
        else:
            active[agency] += 1
        box = boxes.get(key)
        if box is not None:
            rule = regulations.get(box.regulation) if box.regulation else regulation
            soon = _due(box, entry, rule, now, activity or {})
            if soon is not None:
                (overdue if soon.overdue else due).setdefault(box.agency, []).append(soon)

    names = {a.id: a.name for a in inventory.agencies}
    order = [a.id for a in inventory.agencies]
    extra = sorted({*active, *suspended, *period, *due, *overdue} - set(order))
    agencies = []
    for agency_id in [*order, *extra]:
        counts = period.get(agency_id, Counter())
        agencies.append(
            AgencyReport(
                id=agency_id,
                name=names.get(agency_id, agency_id or "?"),
                active=active[agency_id],
                suspended=tuple(sorted(suspended.get(agency_id, Counter()).items())),
                period=tuple((event, counts[event]) for event in PERIOD_EVENTS),
                due=tuple(sorted(due.get(agency_id, []), key=lambda d: (d.day, d.address))),
                in_inventory=agency_id in names,
                overdue=tuple(sorted(overdue.get(agency_id, []), key=lambda d: (d.day, d.address))),
            )
        )
    return Report(
        regulation=regulation.id,
        domain=inventory.settings.domain,
        now=now,
        since=since,
        audited=records is not None,
        agencies=tuple(agencies),
        history_from=history_from if history_from is not None and history_from > since else None,
    )
