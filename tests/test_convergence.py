"""Plan → apply → plan converges, on a real throwaway slapd and on the LDIF file directory.

Each scenario step changes the inventory, plans, checks the operations, applies, and plans again
expecting nothing to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory, open_directory
from reconciler.errors import DirectoryError, StalePlan
from reconciler.model import Action, Entry, Plan

from . import scenario
from .helpers import PassThrough, ldapwhoami
from .scenario import BASE_HG, BASE_QN


def ops(plan: Plan) -> list[tuple[str, str, str]]:
    return [(op.action.value, op.id, op.address) for op in plan.operations]


def converge(folder: Path, directory: Directory, tmp: Path) -> Plan:
    """Plan, apply, plan again: the second plan must be empty."""
    first = scenario.plan(folder, directory)
    recap = scenario.apply(first, directory, tmp)
    assert recap.failed == 0, recap.messages
    again = scenario.plan(folder, directory)
    assert again.empty, ops(again)
    return first


@pytest.mark.parametrize(("example", "base"), [("quangnam", BASE_QN), ("hagiang", BASE_HG)])
def test_bundled_examples_converge(
    example: str, base: str, directory: Directory, tmp_path: Path
) -> None:
    folder = scenario.copy_example(example, tmp_path / "inv", base)
    first = converge(folder, directory, tmp_path / "out")
    assert {op.action for op in first.operations} == {Action.CREATE}
    created = {op.id: op for op in first.operations}
    if example == "quangnam":
        assert created["QN-0001"].address == "namnv@quangnam.gov.vn"
        # issued on request (QN-2020 Đ5.1), the address rule beside it (issue 16 item 9)
        assert created["QN-0001"].clause == "QN-2020 Đ5.1"
        assert created["QN-0001"].address_clause == "QN-2020 Đ4.1"
        # two Nguyễn Thị Tú Vân: the better rank (QN-0014, rank 3) keeps the plain form
        assert created["QN-0014"].address == "vanntt@quangnam.gov.vn"
        assert created["QN-0005"].address.startswith("vanntt")
        assert created["QN-0005"].address_clause == "QN-2020 Đ4.2"
    else:
        assert created["HG-0001"].address == "nvson.sotttt@hagiang.gov.vn"
        assert created["HG-0002"].address == "ngvson.sotttt@hagiang.gov.vn"
        assert created["HG-0003"].address == "nvson1.sotttt@hagiang.gov.vn"
        assert created["agency:sotttt"].address == "sotttt@hagiang.gov.vn"
        assert created["agency:sotttt"].clause == "HG-2024 Đ7.1"
        assert created["agency:sotttt"].address_clause == "HG-2024 Đ5.1"


def test_hagiang_transfer_is_a_rename_keeping_the_old_address(
    directory: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out")
    moved = spec["agencies"]["soyte"]["staff"].pop()
    spec["agencies"]["sotttt"]["staff"].append(moved)
    scenario.write(spec, folder)
    step = converge(folder, directory, tmp_path / "out")
    assert ops(step) == [("rename", "HG-0101", "ttlan.sotttt@hagiang.gov.vn")]
    rename = step.operations[0]
    assert rename.previous == "ttlan.soyte@hagiang.gov.vn"
    assert (rename.clause, rename.address_clause) == ("HG-2024 Đ7.1", "HG-2024 Đ5.2")
    assert "transferred from soyte to sotttt" in rename.reason
    entry = next(e for e in directory.read(BASE_HG, ["uid", "mail", "govMailAlias",
                                                     "employeeNumber"]) if e.key == "HG-0101")
    assert entry.dn.lower().startswith("uid=ttlan.sotttt,")
    assert entry.get("uid") == "ttlan.sotttt"
    assert entry.all("govMailAlias") == ("ttlan.soyte@hagiang.gov.vn",)


def test_quangnam_transfer_is_only_an_update(directory: Directory, tmp_path: Path) -> None:
    spec = scenario.qn()
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out")
    moved = spec["agencies"]["soyte"]["staff"].pop()
    spec["agencies"]["sotttt"]["staff"].append(moved)
    scenario.write(spec, folder)
    step = converge(folder, directory, tmp_path / "out")
    assert ops(step) == [("update", "QN-0101", "lantt@quangnam.gov.vn")]
    assert step.operations[0].clause == "QN-2020 Đ10.3"


def test_name_change_renames_and_a_newcomer_never_takes_an_issued_address(
    directory: Directory, tmp_path: Path
) -> None:
    spec = scenario.qn()
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out")
    # a newcomer with the same name and a better rank gets a numbered form: issued is kept
    spec["agencies"]["soyte"]["staff"].append(
        {"id": "QN-0102", "name": "Nguyễn Văn Nam", "rank": 1}
    )
    # a correction that changes only diacritics keeps the address
    spec["agencies"]["soyte"]["staff"][0]["name"] = "Trần Thị Lân"
    scenario.write(spec, folder)
    step = converge(folder, directory, tmp_path / "out")
    assert ("create", "QN-0102", "namnv1@quangnam.gov.vn") in ops(step)
    assert ("update", "QN-0101", "lantt@quangnam.gov.vn") in ops(step)
    # a real change of name renames
    spec["agencies"]["soyte"]["staff"][0]["name"] = "Trần Thị Hoa"
    scenario.write(spec, folder)
    step = converge(folder, directory, tmp_path / "out")
    assert ops(step) == [("rename", "QN-0101", "hoatt@quangnam.gov.vn")]


def test_suspend_restore_and_delete(directory: Directory, tmp_path: Path) -> None:
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out")
    person = spec["agencies"]["soyte"]["staff"][0]
    person["state"] = "suspended"
    person["suspension"] = {"clause": "HG-2024 Đ8.2.b", "note": "lộ mật khẩu"}
    scenario.write(spec, folder)
    step = converge(folder, directory, tmp_path / "out")
    assert ops(step) == [("suspend", "HG-0101", "ttlan.soyte@hagiang.gov.vn")]
    assert step.operations[0].clause == "HG-2024 Đ8.2.b"
    person["state"] = "active"
    del person["suspension"]
    scenario.write(spec, folder)
    step = converge(folder, directory, tmp_path / "out")
    assert ops(step) == [("restore", "HG-0101", "ttlan.soyte@hagiang.gov.vn")]
    spec["agencies"]["soyte"]["staff"].clear()
    scenario.write(spec, folder)
    step = converge(folder, directory, tmp_path / "out")
    assert ops(step) == [("delete", "HG-0101", "ttlan.soyte@hagiang.gov.vn")]
    # what was deleted is on record, written before the delete, without any password hash
    records = [json.loads(line) for line in
               (tmp_path / "out" / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    started = [r for r in records if r["event"] == "delete" and r["outcome"] == "started"]
    assert len(started) == 1 and started[0]["before"]["cn"] == ["Trần Thị Lan"]
    assert not any(k.lower() == "userpassword" for k in started[0]["before"])


def test_same_plan_twice_changes_nothing_the_second_time(
    directory: Directory, tmp_path: Path
) -> None:
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    first = scenario.plan(folder, directory)
    assert scenario.apply(first, directory, tmp_path / "a").changed == len(first.operations)
    second = scenario.apply(first, directory, tmp_path / "b")
    assert (second.changed, second.ok, second.failed) == (0, len(first.operations), 0)
    assert scenario.passwords(tmp_path / "b") == {}


def plan_two_new_titles(directory: Directory, tmp_path: Path) -> Plan:
    """A converged directory, and the plan of two new titles (HG-0001 and HG-0101)."""
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out")
    spec["agencies"]["soyte"]["staff"][0]["title"] = "Phó Giám đốc"
    spec["agencies"]["sotttt"]["staff"][0]["title"] = "Giám đốc Sở"
    scenario.write(spec, folder)
    return scenario.plan(folder, directory)


def test_stale_plan_is_refused_before_anything_is_written(
    directory: Directory, tmp_path: Path
) -> None:
    planned = plan_two_new_titles(directory, tmp_path)
    # an admin changes one of the entries by hand after the plan was made
    entry = next(e for e in directory.read(BASE_HG, ["employeeNumber"]) if e.key == "HG-0101")
    directory.modify(entry.dn, {"title": ["Trưởng phòng"]})
    directory.flush()
    with pytest.raises(StalePlan, match="HG-0101"):
        scenario.apply(planned, directory, tmp_path / "stale")
    other = next(e for e in directory.read(BASE_HG, ["employeeNumber", "title"])
                 if e.key == "HG-0001")
    assert other.get("title") == "Giám đốc"  # the fresh operation was not applied either


class NoWholeRead(PassThrough):
    """Fails the test if anyone reads the whole directory."""

    def read(self, base_dn: str, attributes: Any, progress: Any = None) -> Iterator[Entry]:
        raise AssertionError("apply read the whole directory")


def test_apply_reads_only_what_its_plan_depends_on(directory: Directory, tmp_path: Path) -> None:
    planned = plan_two_new_titles(directory, tmp_path)
    # by hand, after the plan: one entry of the plan is renamed, another deleted
    entries = {e.key: e for e in directory.read(BASE_HG, ["employeeNumber"]) if e.key}
    changed = [op.id for op in planned.operations]
    assert len(changed) == 2
    directory.rename(entries[changed[0]].dn, "uid=doitay")
    directory.delete(entries[changed[1]].dn)
    directory.flush()
    with pytest.raises(StalePlan) as refused:
        scenario.apply(planned, NoWholeRead(directory), tmp_path / "stale")
    assert f"{changed[0]} (uid=doitay," in str(refused.value)
    assert f"{changed[1]} (" in str(refused.value) and "no longer in the directory" in str(
        refused.value
    )


def test_too_many_deletions_fail_the_plan(directory: Directory, tmp_path: Path) -> None:
    from reconciler.errors import UnsafePlan
    from reconciler.planning import pipeline
    from reconciler.planning.plan import Context

    spec = scenario.hg()
    spec["agencies"]["soyte"]["staff"] = [
        {"id": f"HG-{200 + i}", "name": f"Lê Văn {chr(65 + i)}"} for i in range(11)
    ]
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out")
    spec["agencies"]["soyte"]["staff"] = []
    scenario.write(spec, folder)
    loaded = pipeline.load(folder)  # max_deletes: 10, the default of directory.yaml
    entries = pipeline.read(directory, loaded)
    context = Context(now=scenario.NOW)
    with pytest.raises(UnsafePlan, match="--allow-deletes 11") as refused:
        pipeline.make_plan(loaded, entries, context, limits=loaded.limits())
    assert refused.value.plan.count(Action.DELETE) == 11  # kept, to be shown before the refusal
    allowed = pipeline.make_plan(loaded, entries, context, limits=loaded.limits(allow_deletes=11))
    assert allowed == replace(refused.value.plan, limits=allowed.limits)


@pytest.mark.slapd
def test_hg_2024_d8_3_c_a_restore_issues_a_new_password_and_the_old_one_fails(
    slapd: Slapd, tmp_path: Path
) -> None:
    """An issued password must be changed, then works; a suspension stops every bind; a restore
    issues a new temporary password to be changed at the first bind, and the password held
    before the suspension (after HG-2024 Đ8.2.b, perhaps the attacker's) no longer binds."""
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    directory = scenario.connect(slapd)
    converge(folder, directory, tmp_path / "out")
    address = "ttlan.soyte@hagiang.gov.vn"
    password = scenario.passwords(tmp_path / "out")[address]
    dn = f"uid=ttlan.soyte,ou=people,{BASE_HG}"
    first = ldapwhoami(slapd, dn, password)
    assert "Password must be changed" in first.stdout + first.stderr
    import subprocess

    new = "Đổi-mật-khẩu-2026!A1"
    subprocess.run(["ldappasswd", "-x", "-H", slapd.url, "-D", dn, "-w", password, "-a",
                    password, "-s", new], check=True, capture_output=True)
    after = ldapwhoami(slapd, dn, new)
    assert after.returncode == 0 and "must be changed" not in after.stdout + after.stderr
    # suspended: no bind at all
    spec["agencies"]["soyte"]["staff"][0].update(
        state="suspended", suspension={"clause": "HG-2024 Đ8.2.c"})
    scenario.write(spec, folder)
    converge(folder, directory, tmp_path / "out")
    assert ldapwhoami(slapd, dn, new).returncode != 0
    # restored: a new temporary password, to be changed at the first bind (HG-2024 Đ8.3.c)
    spec["agencies"]["soyte"]["staff"][0]["state"] = "active"
    del spec["agencies"]["soyte"]["staff"][0]["suspension"]
    scenario.write(spec, folder)
    converge(folder, directory, tmp_path / "restored")
    old = ldapwhoami(slapd, dn, new)
    assert old.returncode != 0 and "Invalid credentials" in old.stdout + old.stderr
    issued = scenario.passwords(tmp_path / "restored")[address]
    assert issued != new
    restored = ldapwhoami(slapd, dn, issued)
    assert "Password must be changed" in restored.stdout + restored.stderr
    directory.close()


@pytest.mark.slapd
def test_connection_errors_are_one_readable_message(slapd: Slapd) -> None:
    with pytest.raises(DirectoryError, match=r"127\.0\.0\.1:1"):
        open_directory("ldap://127.0.0.1:1", bind_dn=slapd.root_dn, password="x")
    with pytest.raises(DirectoryError) as wrong:
        open_directory(slapd.url, bind_dn=slapd.root_dn, password="not-the-password-42")
    assert "not-the-password-42" not in str(wrong.value)
