"""One apply at a time per directory: the lock entry `cn=reconciler-lock,<base>`.

The entry stays; its `description` says who holds it (JSON: run, actor, host, pid, when it was
taken and renewed, when the lease ends) or that it is free. Every change of it is a
compare-and-swap on that value (`Directory.modify` with `expect`, one LDAP modify that deletes
the value read and adds the new one, refused whole when someone changed it meanwhile):

- taking it: an add when there is no entry, else a swap from "free" (or, when breaking it, from
  the holder read) to this run;
- the lease: `LEASE` seconds, renewed by a swap every `RENEW_EVERY` seconds while the run works
  (`Lock.renew`); a run that finds its lock taken over stops before its next write;
- releasing it: a swap from this run to "free", so a run never frees a lock another run holds;
- `--break-lock` takes over a holder that is dead: on this host, its process is gone (pid, and
  the process's start time against pid reuse); on another host, its lease has run out. A live
  holder is taken over only when named: `--break-lock=RUN`.

Kept to one entry and one value so that a replicated directory (two providers) can extend it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.attributes import LOCK_RDN
from reconciler.directory import Directory
from reconciler.errors import EntryExists, LockHeld, NoSuchEntry, ReconcilerError, StaleEntry

#: Seconds a lock holds without renewal: a holder on another host that has not renewed it for
#: this long is taken for dead.
LEASE = 600
#: Seconds between renewals while a run works.
RENEW_EVERY = 60
_FREE = json.dumps({"free": True})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, Linux), or None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int, started: str | None) -> bool:
    """Does process `pid` on this host still run (and is it the one that took the lock)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    if state == "Z":
        return False  # exited, not yet reaped
    return started is None or _process_start(pid) in (None, started)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock, as its entry says."""

    raw: str
    info: dict[str, Any]

    @classmethod
    def read(cls, raw: str) -> Holder:
        try:
            info = json.loads(raw)
        except ValueError:
            info = None
        return cls(raw, info if isinstance(info, dict) else {})

    @property
    def free(self) -> bool:
        return bool(self.info.get("free"))

    @property
    def run(self) -> str:
        return str(self.info.get("run", ""))

    def text(self) -> str:
        info = self.info
        try:
            return (
                f"{info['actor']} on {info['host']} (pid {info['pid']}) since {info['started']}, "
                f"run {info['run']}, lease until {info['expires']}"
            )
        except KeyError:
            return self.raw or "an unknown run"

    def dead(self, now: dt.datetime) -> str | None:
        """Why the holder is surely gone, or None while it may still be working."""
        info = self.info
        try:
            host, pid, expires = info["host"], int(info["pid"]), info["expires"]
            lease_end = dt.datetime.fromisoformat(expires)
        except (KeyError, TypeError, ValueError):
            return "its lock entry does not say who holds it"
        if host == socket.gethostname():
            if pid == os.getpid() and info.get("pid_start") in (None, _process_start(pid)):
                # this very process, in another run than the one taking the lock: an apply
                # called again after one that could not give the lock back (a library caller)
                return f"it was an earlier run of this process ({pid}), which has ended"
            if _alive(pid, info.get("pid_start")):
                return None
            return f"its process {pid} no longer runs on this host"
        if lease_end < now:
            return f"its lease ran out at {expires} and it did not renew it"
        return None


class Lock:
    """The lock of the directory under `base_dn`, taken by `acquire`, kept by `renew`, given
    back by `release`."""

    def __init__(self, directory: Directory, base_dn: str, actor: str, plan: str) -> None:
        self.directory = directory
        self.dn = f"{LOCK_RDN},{base_dn}"
        self.base_dn = base_dn
        self.actor = actor
        self.plan = plan
        self.run = str(uuid.uuid4())
        self.value = ""  # the description this run last wrote ("" = not held)
        self.renewed = 0.0
        self.writes = 0  # in every value written: a renewal always changes the value it swaps

    def _mine(self) -> str:
        now = _now()
        pid = os.getpid()
        self.writes += 1
        return json.dumps(
            {
                "run": self.run,
                "write": self.writes,
                "actor": self.actor,
                "host": socket.gethostname(),
                "pid": pid,
                "pid_start": _process_start(pid),
                "started": now.isoformat(),
                "expires": (now + dt.timedelta(seconds=LEASE)).isoformat(),
                "plan": self.plan,
            },
            sort_keys=True,
        )

    def _swap(self, old: str, new: str) -> bool:
        try:
            self.directory.modify(self.dn, {"description": [new]}, {"description": [old]})
        except (StaleEntry, NoSuchEntry):
            return False
        return True

    def acquire(self, break_lock: str | None) -> Holder | None:
        """Take the lock; the holder it replaced when it broke one. `break_lock`: None to wait
        for nobody, "" to take over a dead holder, a run id to take over that run, alive or not.
        Raises LockHeld."""
        mine = self._mine()
        attrs = {
            "objectClass": ["top", "applicationProcess"],
            "cn": [LOCK_RDN.partition("=")[2]],
            "description": [mine],
        }
        try:
            self.directory.add(self.dn, attrs)
        except EntryExists:
            pass
        else:
            self._held(mine)
            return None
        entry = self.directory.get(self.dn, ["description"])
        holder = Holder.read(entry.get("description") or "" if entry else "")
        if holder.free or entry is None or not holder.raw:
            if entry is not None and self._swap(holder.raw, mine):
                self._held(mine)
                return None
            raise LockHeld(f"another apply took the lock on {self.base_dn} just now. Try again.")
        why = self._may_break(holder, break_lock)
        if not self._swap(holder.raw, mine):
            raise LockHeld(
                f"the lock on {self.base_dn} changed while this run was taking it over; "
                "nothing was applied. Look at who holds it now and try again."
            )
        self._held(mine)
        return Holder(holder.raw, {**holder.info, "why": why})

    def _may_break(self, holder: Holder, break_lock: str | None) -> str:
        held = f"another apply holds the lock on {self.base_dn}: {holder.text()}."
        if break_lock is None:
            raise LockHeld(
                f"{held} Wait for it to finish. If that run is dead (killed, its machine gone), "
                "take the lock over with --break-lock."
            )
        if break_lock:
            if break_lock != holder.run:
                raise LockHeld(f"{held} --break-lock={break_lock} names another run.")
            return "forced by naming it"
        dead = holder.dead(_now())
        if dead is None:
            raise LockHeld(
                f"{held} It is still working (its process runs, or its lease, renewed every "
                f"{RENEW_EVERY} s while it works, has not run out): the lock was left alone. If "
                f"you are sure it must stop, name it: --break-lock={holder.run or 'RUN'}."
            )
        return dead

    def _held(self, value: str) -> None:
        self.value = value
        self.renewed = time.monotonic()

    def renew(self, force: bool = False) -> None:
        """Renew the lease when it is due (every RENEW_EVERY seconds); raise LockHeld when
        another run took the lock over meanwhile."""
        if not force and time.monotonic() - self.renewed < RENEW_EVERY:
            return
        new = self._mine()
        if not self.value or not self._swap(self.value, new):
            self.value = ""
            raise LockHeld(
                f"another run took over the lock on {self.base_dn} while this one worked: it "
                "stopped here. Look at the audit log for what each run did."
            )
        self._held(new)

    def release(self) -> bool:
        """Give the lock back, only if this run still holds it (a swap on the owner)."""
        if not self.value:
            return False
        with suppress(ReconcilerError):
            if self._swap(self.value, _FREE):
                self.value = ""
                return True
        return False
