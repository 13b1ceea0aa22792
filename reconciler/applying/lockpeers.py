"""The apply lock on a replicated directory: a lock taken on one provider holds only once every
other provider holds it too.

On one server the lock is a compare-and-swap on one entry's value (`applying.lock`): two runs
cannot both win it. Two providers in multi-provider mode each accept their own compare-and-swap
(or add) of the same entry, both runs are told they won, and replication later keeps, on every
server, the write with the newer CSN and silently drops the other (tried on slapd 2.5.13: of
concurrent adds on two providers, 7 in 10 were both accepted). So after taking the lock on the
provider it writes to (its "home"), a run waits until every other provider listed holds its
value (`confirm`):

- every provider holds it: no other run can hold it anywhere, now or after replication (a run
  whose write would win on one server wins on all of them, by the same CSN order, and its
  value would then be what they hold);
- another run's value is on this run's home, where its own was: a newer write replaced it, and
  it will replace it everywhere: this run lost, and stops before writing anything, without
  giving the lock back (a release is a write too: made on its home, where its own value may
  still be, it would be newer than the winner's and replace it everywhere);
- another run's value with a newer entryCSN than this run's on a provider: it will win there
  and everywhere: lost likewise. An older one is waited out: this run's value replaces it;
- not confirmed within `timeout` (a provider that does not replicate): refused, the lock given
  back on the home provider.

Which write wins is decided by CSN order, the same on every server whatever their clocks; no
run can be told "yours" by every provider while another is too. A provider that does not
answer cannot confirm anything: the lock is refused unless the run was told that provider is
dead (`--break-lock`), which leaves the others to confirm it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler import csn
from reconciler.directory import Directory
from reconciler.errors import DirectoryError, LockHeld

#: Seconds a lock taken on one provider may take to reach every other one before the run gives
#: it back and stops (replication takes milliseconds when it works).
CONFIRM = 30.0


def check_answered(unanswered: Sequence[str], break_lock: str | None) -> None:
    """Refuse (LockHeld) to take the lock while a provider listed does not answer, unless the
    run was told it is dead (`--break-lock`): it may be serving another run that cannot reach
    this one's provider, and only an operator can tell a dead provider from an unreachable one."""
    if unanswered and break_lock is None:
        missing = ", ".join(unanswered)
        raise LockHeld(
            f"{missing} did not answer: the lock cannot be confirmed there, and another "
            "apply may be working there, out of this run's sight. Nothing was applied. If that "
            "provider is down (not merely out of reach from here), run again with --break-lock: "
            "the providers that answer confirm the lock, and a dead run's lock is taken over "
            "under the usual rules."
        )


class Lost(LockHeld):
    """Another run's write of the lock wins on every provider. The loser must not give its lock
    back: its own provider may still show its value, and a release written there now would be
    newer than the winner's write, and replace it everywhere."""


@dataclass(frozen=True, slots=True)
class Seen:
    """The lock entry's value on one server, and the CSN of its last change."""

    url: str
    value: str | None  # None: no lock entry there (yet)
    stamp: str = ""

    def newer_than(self, other: str) -> bool:
        return bool(self.stamp and other and csn.key(self.stamp) > csn.key(other))


def seen(directory: Directory, dn: str) -> Seen:
    entry = directory.get(dn, ["description", "entryCSN"])
    if entry is None:
        return Seen(directory.url, None)
    return Seen(directory.url, entry.get("description") or "", entry.get("entryCSN") or "")


def confirm(
    home: Directory,
    peers: Sequence[Directory],
    dn: str,
    mine: str,
    *,
    holder: Callable[[str], str],
    timeout: float,
    poll: float = 0.05,
) -> float:
    """Wait until every one of `peers` holds `mine` as the value of the lock entry `dn`, which
    this run has just written on `home`; the seconds it took. Lost, naming the holder (in
    `holder`'s words), when another run's write wins (the caller must not give the lock back);
    LockHeld after `timeout` seconds (the caller gives its lock back then)."""
    start = time.monotonic()
    own = seen(home, dn)
    if own.value != mine:
        raise _lost(own, holder)
    waiting = list(peers)
    while waiting:
        for peer in list(waiting):
            try:
                there = seen(peer, dn)
            except DirectoryError as error:
                raise LockHeld(
                    f"the lock could not be confirmed on {peer.url}: {error}. Nothing was applied."
                ) from None
            if there.value == mine:
                waiting.remove(peer)
            elif there.value is not None and there.newer_than(own.stamp):
                raise _lost(there, holder)
        if not waiting:
            break
        again = seen(home, dn)
        if again.value != mine:
            raise _lost(again, holder)
        if time.monotonic() - start > timeout:
            urls = ", ".join(p.url for p in waiting)
            raise LockHeld(
                f"the lock taken on {home.url} did not reach {urls} within {timeout:g} s: "
                "replication between the providers is not working (check it with `reconciler "
                "doctor` listing every provider), and a lock that has not reached every "
                "provider protects nothing. Nothing was applied."
            )
        time.sleep(poll)
    return time.monotonic() - start


def _lost(there: Seen, holder: Callable[[str], str]) -> Lost:
    who = holder(there.value) if there.value else "a run that has since given it back"
    return Lost(
        f"another apply took the lock at the same moment on another provider, and replication "
        f"gives it that run (its write is the newer, as {there.url} shows): {who}. Nothing was "
        "applied. Wait for it to finish."
    )
