"""Apply on a replicated directory: is the provider written to at least as new as the state the
plan was read at, and was that state itself up to date with what the plan depends on?

A plan made on a replicated directory records the contextCSNs it read (`model.ReadState`): those
of the server it read (`held`: a provider, or a consumer with `plan --read-from`), and the newest
the providers held just before. Apply refuses, before anything is written:

- a provider that lacks changes the plan saw (`provider_lacks`): after a failover, the provider
  may not yet have every change of the one that died; `--wait-replication` waits for them;
- a plan read from a replica that was behind (`missed`): an entry the plan depends on had
  changed on a provider before the plan was read, and the replica had not received it yet, so the
  plan was computed from the entry's older state. Such a change need not show in the entry's
  fingerprint (a login is left out of it): the entry's `entryCSN` tells.

Changes made after the plan was read are the stale-plan check's business, as without replication.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler import csn
from reconciler.directory import Directory, replicas
from reconciler.errors import DirectoryError, StalePlan
from reconciler.model import Entry, Plan, ReadState


def provider_lacks(plan: Plan, directory: Directory, wait: float | None) -> float:
    """Refuse (StalePlan) a provider that lacks changes the plan was read with, after waiting up
    to `wait` seconds for them; the seconds waited."""
    read = plan.replication
    if read is None:
        return 0.0
    want = csn.state(read.held)
    have = replicas.state(directory, plan.base_dn)
    if csn.holds(have, want):
        return 0.0
    if wait:
        try:
            return replicas.wait_until_holds(directory, plan.base_dn, want, wait)
        except DirectoryError:  # still lacking: refused below, with what it lacks now
            have = replicas.state(directory, plan.base_dn)
    raise StalePlan(
        f"{directory.url} does not hold every change the plan was read with (from "
        f"{read.read_from}, {_when(read)}): it lacks {csn.window(have, want)}. Nothing was "
        "applied. Wait for replication to bring them (`--wait-replication SECONDS`), or apply "
        "on a provider that has them. (A provider restarted after a crash may name an older "
        "state of its own than it had already sent, until its next write: then plan again on "
        "it.)"
    )


def missed(plan: Plan, entries: Iterable[Entry]) -> list[str]:
    """The entries the plan depends on that had changed on a provider before the plan was read
    but were not yet on the replica it read, in plain words (empty: none)."""
    read = plan.replication
    if read is None:
        return []
    held = csn.state(read.held)
    providers = csn.state(read.providers)
    found = []
    for entry in entries:
        stamp = entry.get("entryCSN")
        if not stamp or not csn.valid(stamp) or not csn.after(stamp, held):
            continue
        sid = csn.server_id(stamp)
        if providers:
            top = providers.get(sid)
            if top is None or csn.key(stamp) > csn.key(top):
                continue  # made after the plan was read: the stale check's business
        elif sid not in held or csn.moment(stamp) > read.read_at:
            continue
        found.append(
            f"{entry.key or entry.dn} ({entry.dn}): changed on serverID {sid} at {csn.clock(stamp)}"
        )
    return sorted(found)


def refuse_missed(plan: Plan, reasons: list[str]) -> StalePlan:
    read = plan.replication
    assert read is not None
    held, providers = csn.state(read.held), csn.state(read.providers)
    shown = "\n".join(f"  - {r}" for r in reasons[:20])
    more = f"\n  … and {len(reasons) - 20} more" if len(reasons) > 20 else ""
    behind = (
        f", at least {csn.age(held, providers, read.read_at):.1f} s behind the providers (it "
        f"lacked {csn.window(held, providers)}),"
        if csn.lacking(held, providers)
        else ""
    )
    return StalePlan(
        f"the plan was read from {read.read_from}{behind} at {_when(read)}: {len(reasons)} "
        f"entries it depends on had changed on a provider before then, and it did not see "
        f"those changes:\n{shown}{more}\nNothing was applied. Plan again once the replica has "
        f"caught up (`reconciler plan --read-from {read.read_from} --wait-replication SECONDS`)."
    )


def _when(read: ReadState) -> str:
    return f"{read.read_at:%Y-%m-%d %H:%M:%S} UTC"
