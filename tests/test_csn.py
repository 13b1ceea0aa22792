"""Replication state without a server: CSNs, the state a plan records, what apply makes of it,
and doctor's replication report."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler import csn
from reconciler.applying import freshness
from reconciler.directory.doctor import MISSING, OK, Peer, replication
from reconciler.errors import ReconcilerError
from reconciler.model import Entry, Plan, ReadState
from reconciler.planning import planfile

A1 = "20261129173537.875493Z#000000#001#000000"
A2 = "20261129173547.332868Z#000000#001#000000"
A2_NEXT = "20261129173547.332868Z#000001#001#000000"  # same microsecond, next counter
B1 = "20261129173932.747000Z#000000#002#000000"
SLAPADD = "20261129170000.000000Z#000000#000#000000"


def test_a_csn_names_its_provider_and_its_time() -> None:
    assert csn.server_id(A1) == 1 and csn.server_id(B1) == 2 and csn.server_id(SLAPADD) == 0
    assert csn.moment(A1) == dt.datetime(2026, 11, 29, 17, 35, 37, 875493, tzinfo=dt.UTC)
    assert csn.key(A1) < csn.key(A2) < csn.key(A2_NEXT)
    assert not csn.valid("20261129173537Z") and not csn.valid("x")
    with pytest.raises(ValueError):
        csn.server_id("not a csn")


def test_a_state_keeps_the_newest_per_provider() -> None:
    assert csn.state([A1, B1, A2, "junk"]) == {1: A2, 2: B1}
    assert csn.newest([{1: A1}, {1: A2, 2: B1}]) == {1: A2, 2: B1}


def test_what_one_state_lacks_of_another_in_seconds() -> None:
    assert csn.lacking({1: A2, 2: B1}, {1: A1, 2: B1}) == {}
    lag = csn.lacking({1: A1}, {1: A2, 2: B1})
    assert lag[1] == pytest.approx(9.457375) and lag[2] == float("inf")
    assert csn.describe({1: A1}, {1: A2}) == "serverID 1: 9.5 s"
    assert csn.describe({1: A2}, {1: A2_NEXT}) == "serverID 1: 0 ms"
    assert csn.holds({1: A2}, {1: A1}) and not csn.holds({1: A1}, {1: A2})
    assert csn.age({1: A1}, {1: A2}, csn.moment(A2) + dt.timedelta(seconds=3)) == 3.0
    assert csn.age({1: A2}, {1: A2}, csn.moment(A2)) == 0.0
    assert csn.window({1: A1}, {1: A2, 2: B1}) == (
        "serverID 1's changes made after 2026-11-29 17:35:37.875 UTC up to 2026-11-29 "
        "17:35:47.332 UTC; every change of serverID 2 up to 2026-11-29 17:39:32.747 UTC"
    )
    assert csn.after(A2, {1: A1}) and not csn.after(A1, {1: A2}) and csn.after(B1, {1: A2})


def plan_with(read: ReadState | None) -> Plan:
    return Plan(
        regulation="hagiang-2024",
        domain="hagiang.gov.vn",
        base_dn="dc=hagiang,dc=gov,dc=vn",
        now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        inventory_digest="sha256:0",
        inventory_commit="",
        directory_url="ldap://127.0.0.1:1",
        directory_fingerprint="sha256:0",
        operations=(),
        replication=read,
    )


READ_AT = dt.datetime(2026, 11, 29, 17, 40, tzinfo=dt.UTC)
BEHIND = ReadState("ldap://replica:389", READ_AT, held=(A1,), providers=(A2, B1))


def test_the_plan_file_keeps_the_state_it_was_read_at() -> None:
    plain = plan_with(None)
    assert "replication" not in planfile.to_json(plain)  # digests of other plans unchanged
    read = plan_with(BEHIND)
    again = planfile.from_json(planfile.to_json(read))
    assert again.replication == BEHIND
    assert planfile.digest(again) == planfile.digest(read) != planfile.digest(plain)
    forged = planfile.to_json(read).replace(A1, "20261129173537Z")
    with pytest.raises(ReconcilerError, match="lists of CSNs"):
        planfile.from_json(forged)


def entry(dn: str, stamp: str) -> Entry:
    return Entry(dn, {"employeenumber": (dn[4:8],), "entrycsn": (stamp,)})


def test_apply_names_the_entries_a_lagging_replica_had_not_received() -> None:
    plan = plan_with(BEHIND)
    entries = [
        entry("uid=seen,ou=people", A1),  # the replica held it
        entry("uid=late,ou=people", A2),  # on the providers before the read, not on the replica
        entry("uid=p2ch,ou=people", B1),  # likewise, from provider 2
        entry("uid=load,ou=people", SLAPADD),  # loaded before any replication
        entry("uid=aftr,ou=people", "20261129180000.000000Z#000000#001#000000"),  # after
    ]
    missed = freshness.missed(plan, entries)
    assert [m.split(" ", 1)[0] for m in missed] == ["late", "p2ch"]
    assert "changed on serverID 1 at 2026-11-29 17:35:47.332 UTC" in missed[0]
    refusal = str(freshness.refuse_missed(plan, missed))
    assert (
        "read from ldap://replica:389, at least 252.7 s behind the providers (it lacked "
        "serverID 1's changes made after 2026-11-29 17:35:37.875 UTC up to 2026-11-29 "
        "17:35:47.332 UTC; every change of serverID 2 up to 2026-11-29 17:39:32.747 UTC)"
    ) in refusal
    assert "--read-from ldap://replica:389 --wait-replication" in refusal
    # without the providers' state, the time the plan was read is the line
    alone = plan_with(ReadState("ldap://replica:389", READ_AT, held=(A1,)))
    assert [m.split(" ", 1)[0] for m in freshness.missed(alone, entries)] == ["late"]
    assert freshness.missed(plan_with(None), entries) == []


NOW = dt.datetime(2026, 11, 29, 17, 40, tzinfo=dt.UTC)


def test_doctor_reports_each_servers_replication_state() -> None:
    p1 = Peer("ldap://p1", {1: A2, 2: B1}, "u")
    p2 = Peer("ldap://p2", {1: A2, 2: B1}, "u")
    consumer = Peer("ldap://c", {1: A1, 2: B1}, "u")
    peers = [p1, p2, consumer]
    [ok] = replication("ldap://p1", peers, NOW)
    assert ok.state == OK and "holds every change the others hold" in ok.message
    [behind] = replication("ldap://c", peers, NOW)
    assert behind.state == MISSING and behind.message.startswith(
        "behind: lacks serverID 1's changes made after 2026-11-29 17:35:37.875 UTC up to "
        "2026-11-29 17:35:47.332 UTC (the newest made 252.7 s ago); it holds serverID 1 at"
    )
    assert "(the newest made 252.7 s ago)" in behind.message and "syncrepl" in behind.remedy
    # lacking only what was just written is replicating as usual
    [fresh] = replication("ldap://c", peers, csn.moment(A2) + dt.timedelta(seconds=1))
    assert fresh.state == OK and "replicating" in fresh.message
    [diverged] = replication(
        "ldap://c", [p1, Peer("ldap://c", {1: A1, 3: A2[:-10] + "003#000000"}, "u")], NOW
    )
    assert diverged.state == MISSING and diverged.message.startswith("diverged:")
    [alien] = replication("ldap://c", [p1, Peer("ldap://c", {1: A2}, "other")], NOW)
    assert alien.state == MISSING and "loaded apart" in alien.message
    [dead] = replication("ldap://p1", [p1, Peer("ldap://p2", None)], NOW)
    assert dead.state == OK
    assert replication("ldap://s", [Peer("ldap://s", {})], NOW) == []  # not replicated: silent
    [none] = replication("ldap://s", [Peer("ldap://s", {}), Peer("ldap://t", {})], NOW)
    assert none.state == MISSING and "do not replicate" in none.message
