"""OpenLDAP's change sequence numbers (CSN) and the replication state they describe.

Every write on a provider stamps the entry with an `entryCSN`
(`20261129173547.332868Z#000000#001#000000`: the time in microseconds, a counter, the serverID of
the provider that made the change, a modifier); syncrepl copies entries with their CSN, and each
server keeps on its suffix entry one `contextCSN` per serverID: the newest change of that provider
it holds. A replica holds every change of a provider up to that CSN, so comparing two servers'
contextCSNs per serverID says what one lacks of the other, and for how long it has lacked it.

Ground floor: no I/O. A `State` is the contextCSN values of one server, by serverID.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping

_CSN = re.compile(r"^(\d{14})(?:\.(\d{1,6}))?Z#([0-9a-fA-F]{6})#([0-9a-fA-F]{3})#([0-9a-fA-F]{6})$")

#: serverID -> the CSN of the newest change of that provider a server holds.
State = Mapping[int, str]


def valid(value: str) -> bool:
    return _CSN.match(value.strip()) is not None


def server_id(csn: str) -> int:
    """The serverID of the provider that made the change (0: slapadd, or a standalone server)."""
    match = _CSN.match(csn.strip())
    if match is None:
        raise ValueError(f"not a CSN: {csn!r}")
    return int(match.group(4), 16)


def moment(csn: str) -> dt.datetime:
    """When the change was made, by the clock of the provider that made it."""
    match = _CSN.match(csn.strip())
    if match is None:
        raise ValueError(f"not a CSN: {csn!r}")
    main, fraction = match.group(1), (match.group(2) or "").ljust(6, "0")
    return dt.datetime.strptime(main, "%Y%m%d%H%M%S").replace(
        microsecond=int(fraction), tzinfo=dt.UTC
    )


def key(csn: str) -> tuple[str, int, int, int]:
    """A sort key in the order slapd orders CSNs: time, then counter, serverID and modifier."""
    match = _CSN.match(csn.strip())
    if match is None:
        raise ValueError(f"not a CSN: {csn!r}")
    main, fraction, count, sid, mod = match.groups()
    return (main + "." + (fraction or "").ljust(6, "0"), int(count, 16), int(sid, 16), int(mod, 16))


def state(values: Iterable[str]) -> dict[int, str]:
    """The contextCSN values of a server, by serverID (values that are not CSNs are ignored; of
    two for one serverID the newer counts)."""
    found: dict[int, str] = {}
    for value in values:
        if not valid(value):
            continue
        sid = server_id(value)
        if sid not in found or key(value) > key(found[sid]):
            found[sid] = value.strip()
    return found


def newest(states: Iterable[State]) -> dict[int, str]:
    """Per serverID, the newest CSN any of `states` holds: what all of them together have seen."""
    merged: dict[int, str] = {}
    for one in states:
        for sid, csn in one.items():
            if sid not in merged or key(csn) > key(merged[sid]):
                merged[sid] = csn
    return merged


def lacking(have: State, want: State) -> dict[int, float]:
    """Per serverID, the seconds of that provider's changes that `have` lacks of `want` (only
    where it lacks some): `want`'s CSN time minus `have`'s, or minus nothing (all of them)."""
    out: dict[int, float] = {}
    for sid, csn in want.items():
        mine = have.get(sid)
        if mine is not None and key(mine) >= key(csn):
            continue
        seconds = (moment(csn) - moment(mine)).total_seconds() if mine else float("inf")
        out[sid] = max(seconds, 0.0)
    return out


def holds(have: State, want: State) -> bool:
    """Does `have` hold every change `want` holds?"""
    return not lacking(have, want)


def after(csn: str, seen: State) -> bool:
    """Was the change `csn` made after the state `seen` (which lacks it)?"""
    mine = seen.get(server_id(csn))
    return mine is None or key(csn) > key(mine)


def age(have: State, want: State, at: dt.datetime) -> float:
    """How far behind `want` a server holding `have` was at `at`, at least: the age then of
    the newest change it lacked (0.0 when it lacked none). At most it is the age of the first
    change it lacked, which no contextCSN tells."""
    ages = [(at - moment(want[sid])).total_seconds() for sid in lacking(have, want)]
    return max([0.0, *ages])


def window(have: State, want: State) -> str:
    """The changes `have` lacks of `want`, in words: "serverID 1's changes made after
    2026-11-29 17:46:00.121 up to 17:46:00.297 UTC"."""
    parts = []
    for sid in sorted(lacking(have, want)):
        newest = clock(want[sid])
        if sid in have:
            parts.append(f"serverID {sid}'s changes made after {clock(have[sid])} up to {newest}")
        else:
            parts.append(f"every change of serverID {sid} up to {newest}")
    return "; ".join(parts)


def clock(value: str) -> str:
    """A CSN's time to the millisecond, in UTC."""
    return moment(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def seconds_text(seconds: float) -> str:
    if seconds == float("inf"):
        return "all of its changes"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def describe(have: State, want: State) -> str:
    """What `have` lacks of `want`, in words: "serverID 1: 12.5 s, serverID 2: 300 ms"."""
    return ", ".join(
        f"serverID {sid}: {seconds_text(seconds)}"
        for sid, seconds in sorted(lacking(have, want).items())
    )
