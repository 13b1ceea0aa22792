"""The regulations' time rules end to end: plan at a simulated `now`, apply, plan again.

slapd stamps createTimestamp (and apply stamps govMailSuspendedAt / govMailRestoredAt) with the
real clock, so these tests move `now` into the future rather than the entries into the past: a rule
of N months on an entry created today fires at 00:00 (Asia/Ho_Chi_Minh) on the day N calendar
months from today, and not one second before. Where a scenario needs a moment in the simulated
past (a suspension 3 years old, a restore applied at the simulated `now`), the test writes that
timestamp on the entry itself with the Directory API.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler import attributes
from reconciler.attributes import format_time, parse_time
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory
from reconciler.errors import InventoryError, UnsafePlan
from reconciler.inventory import activity as activity_module
from reconciler.model import Action, Entry, Limits, Operation, Plan
from reconciler.planning.limits import check_limits
from reconciler.rules.lifecycle import ZONE, add_months, local_day

from . import scenario
from .helpers import ldapwhoami
from .scenario import BASE_HG, BASE_QN

SECOND = dt.timedelta(seconds=1)
DAY = dt.timedelta(days=1)


def real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def converge(folder: Path, directory: Directory, tmp: Path, now: dt.datetime, **kw: Any) -> Plan:
    """Plan at `now`, apply, plan again at `now`: the second plan must be empty."""
    first = scenario.plan(folder, directory, now, **kw)
    recap = scenario.apply(first, directory, tmp)
    assert recap.failed == 0, recap.messages
    again = scenario.plan(folder, directory, now, **kw)
    assert again.empty, [(op.action.value, op.id) for op in again.operations]
    return first


def restore_and_converge(
    folder: Path, directory: Directory, tmp: Path, now: dt.datetime, base: str
) -> Plan:
    """`converge` for a plan with restores at a simulated `now`: apply stamps govMailRestoredAt
    with the real clock (checked here); in the simulated world it ran at `now`, so the test moves
    the stamp there before planning again (the activity clock restarts at the restore)."""
    first = scenario.plan(folder, directory, now)
    recap = scenario.apply(first, directory, tmp)
    assert recap.failed == 0, recap.messages
    for op in first.operations:
        if op.action is Action.RESTORE:
            stamp = parse_time(entry(directory, base, op.id).get("govMailRestoredAt"))
            assert stamp is not None and abs(stamp - real_now()) < dt.timedelta(minutes=5)
            set_attr(directory, base, op.id, "govMailRestoredAt", format_time(now))
            # the password the restore issued, at the same simulated moment
            set_attr(directory, base, op.id, attributes.ISSUED_AT, format_time(now))
    again = scenario.plan(folder, directory, now)
    assert again.empty, [(op.action.value, op.id) for op in again.operations]
    return first


def entry(directory: Directory, base: str, key: str) -> Entry:
    found = [e for e in directory.read(base, attributes.READ) if e.key == key]
    assert found, key
    return found[0]


def fires(moment: dt.datetime, months: int) -> dt.datetime:
    """00:00 in the province on the day `months` calendar months after `moment`'s local day."""
    day = add_months(local_day(moment), months)
    return dt.datetime.combine(day, dt.time(0), ZONE).astimezone(dt.UTC)


def created(directory: Directory, base: str, key: str) -> dt.datetime:
    moment = parse_time(entry(directory, base, key).get("createTimestamp"))
    assert moment is not None
    return moment


def on(plan: Plan, key: str) -> list[Operation]:
    return [op for op in plan.operations if op.id == key]


def suspends(plan: Plan) -> dict[str, Operation]:
    return {op.id: op for op in plan.operations if op.action is Action.SUSPEND}


def set_attr(directory: Directory, base: str, key: str, attr: str, value: str) -> None:
    directory.modify(entry(directory, base, key).dn, {attr: [value]})
    directory.flush()


# ---------------------------------------------------------------------------------------------
# Inactivity: QN-2020 Đ7.2 (3 months), HG-2024 Đ8.2.a (6 months)


def test_qn_2020_d7_2_no_login_for_three_months_suspends_not_a_day_before(
    directory: Directory, tmp_path: Path
) -> None:
    folder = scenario.write(scenario.qn(), tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    fire = fires(created(directory, BASE_QN, "QN-0101"), 3)

    assert not suspends(scenario.plan(folder, directory, fire - DAY))
    assert not suspends(scenario.plan(folder, directory, fire - SECOND))
    step = converge(folder, directory, tmp_path / "out", fire)
    assert set(suspends(step)) == {"QN-0001", "QN-0101"}
    op = suspends(step)["QN-0101"]
    assert op.clause == "QN-2020 Đ7.2"
    assert op.reason == (
        f"never used since it was created on {local_day(created(directory, BASE_QN, 'QN-0101'))}"
        " (3 months)"
    )
    live = entry(directory, BASE_QN, "QN-0101")
    assert live.get("pwdAccountLockedTime") == "000001010000Z"
    assert (live.get("govMailSuspendReason") or "").startswith("QN-2020 Đ7.2 (time rule): never")
    # a suspended mailbox is not suspended again, and the suspension persists although the
    # inventory still says active
    for later in (fire + DAY, fire + 400 * DAY):
        assert scenario.plan(folder, directory, later).empty


def test_hg_2024_d8_2_a_six_months_without_activity_suspends(
    directory: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    lan = spec["agencies"]["soyte"]["staff"][0]
    lan["exempt"] = {"rule": "password-change", "ref": "QĐ 7/QĐ-STTTT"}
    son = spec["agencies"]["sotttt"]["staff"][0]
    son["exempt"] = [
        {"rule": "inactivity", "ref": "QĐ 99/QĐ-UBND"},
        {"rule": "password-change", "ref": "QĐ 99/QĐ-UBND"},
    ]
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    fire = fires(created(directory, BASE_HG, "HG-0101"), 6)

    # HG-0101 is exempt from the password rule: nothing for it until the 6 months are over
    assert not on(scenario.plan(folder, directory, fire - SECOND), "HG-0101")
    step = converge(folder, directory, tmp_path / "out", fire)
    op = suspends(step)["HG-0101"]
    assert op.clause == "HG-2024 Đ8.2.a"
    assert op.reason.startswith("never used since it was created on ")
    assert op.reason.endswith("(6 months)")
    # the organisation and unit mailboxes follow the same rules
    assert {"agency:sotttt", "unit:sotttt/vanphong", "agency:soyte"} <= set(suspends(step))
    # HG-0001 is exempt from both rules by a decision: never suspended
    assert "HG-0001" not in suspends(step)
    assert not on(scenario.plan(folder, directory, fire + 1000 * DAY), "HG-0001")


def test_exempt_mailbox_is_not_suspended(directory: Directory, tmp_path: Path) -> None:
    spec = scenario.qn()
    spec["agencies"]["soyte"]["staff"][0]["exempt"] = {"rule": "inactivity", "ref": "QĐ 5/QĐ"}
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    fire = fires(created(directory, BASE_QN, "QN-0101"), 3)
    step = converge(folder, directory, tmp_path / "out", fire + 30 * DAY)
    assert set(suspends(step)) == {"QN-0001"}


def test_activity_file_postpones_the_rule_and_unknown_rows_are_noted(
    directory: Directory, tmp_path: Path
) -> None:
    folder = scenario.write(scenario.qn(), tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    born = created(directory, BASE_QN, "QN-0101")
    seen = born + 40 * DAY
    csv = tmp_path / "activity.csv"
    # quangnam-2020 counts logins only (QN-2020 Đ7.2): the mail server's login column
    csv.write_text(
        "address,last_activity,last_login\n"
        f"LANTT@quangnam.gov.vn,{seen.isoformat()},{seen.isoformat()}\n"
        f"lantt@quangnam.gov.vn,{(born + DAY).date().isoformat()},\n"  # an earlier row: ignored
        "ghost@quangnam.gov.vn,2026-01-01,\n"
        "other@example.org,2026-01-02T10:00:00+07:00,\n",
        encoding="utf-8",
    )
    activity = activity_module.load(csv)
    assert activity["lantt@quangnam.gov.vn"]["login"] == seen

    at_creation_rule = scenario.plan(folder, directory, fires(born, 3), activity=activity)
    assert set(suspends(at_creation_rule)) == {"QN-0001"}  # lantt was active in the mail logs
    assert at_creation_rule.notes == (
        "the activity file has 2 rows for addresses that are not in the directory (ignored): "
        "ghost@quangnam.gov.vn, other@example.org",
    )
    fire = fires(seen, 3)
    assert "QN-0101" not in suspends(
        scenario.plan(folder, directory, fire - SECOND, activity=activity)
    )
    step = converge(folder, directory, tmp_path / "out", fire, activity=activity)
    op = suspends(step)["QN-0101"]
    assert op.clause == "QN-2020 Đ7.2"
    assert op.reason == (
        f"no login since {local_day(seen)} (last login to the mail server, 3 months)"
    )


def test_an_activity_file_the_regulation_cannot_count_is_said_so(
    directory: Directory, tmp_path: Path
) -> None:
    """A bare `address,last_activity` (CONTRACT.md's form) under quangnam-2020, which counts
    logins only: the plan says the file was not used, instead of suspending active people
    without a word."""
    folder = scenario.write(scenario.qn(), tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    born = created(directory, BASE_QN, "QN-0101")
    csv = tmp_path / "activity.csv"
    csv.write_text(
        f"address,last_activity\nlantt@quangnam.gov.vn,{(born + 40 * DAY).isoformat()}\n",
        encoding="utf-8",
    )
    activity = activity_module.load(csv)
    plan = scenario.plan(folder, directory, fires(born, 3), activity=activity)
    assert "QN-0101" in suspends(plan)  # logins only: the rule's text
    assert plan.notes == (
        "the activity file was not used: quangnam-2020 counts only last_login as activity, and "
        "the file has only last_activity; give the CSV `reconciler activity` writes from the "
        "mail logs",
    )


def test_activity_file_errors_name_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "activity.csv"
    csv.write_text(
        "address,last_activity\n"
        "a@quangnam.gov.vn,2026-01-01\n"
        "b@quangnam.gov.vn,yesterday\n"
        "\n"
        "not-an-address,2026-01-01\n"
        "c@quangnam.gov.vn\n"
        "d@quangnam.gov.vn,2026-01-01,more columns are allowed\n",
        encoding="utf-8",
    )
    with pytest.raises(InventoryError) as error:
        activity_module.load(csv)
    found = [(p.line, p.message) for p in error.value.problems]
    assert [line for line, _ in found] == [3, 5, 6]
    assert "'yesterday' is not an ISO 8601 date" in found[0][1]
    assert "expected `address,last_activity`" in found[1][1]
    bad_header = tmp_path / "header.csv"
    bad_header.write_text("mail,when\na@b,2026-01-01\n", encoding="utf-8")
    with pytest.raises(InventoryError, match="header"):
        activity_module.load(bad_header)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("address,last_activity\nnguyên@x,2026-01-01\n".encode("latin-1"))
    with pytest.raises(InventoryError, match="not UTF-8"):
        activity_module.load(latin)


def test_activity_file_date_without_zone_is_utc(tmp_path: Path) -> None:
    csv = tmp_path / "activity.csv"
    csv.write_text("address,last_activity\na@x.vn,2026-03-02T20:00:00\n", encoding="utf-8")
    moment = activity_module.load(csv)["a@x.vn"]["mail"]
    assert moment == dt.datetime(2026, 3, 2, 20, tzinfo=dt.UTC)
    # 20:00 UTC is already 3 March in the province: the 3-month rule fires on 3 June
    assert fires(moment, 3) == dt.datetime(2026, 6, 3, tzinfo=ZONE)


@pytest.mark.slapd
def test_qn_2020_d7_2_a_login_counts_as_activity(slapd: Slapd, tmp_path: Path) -> None:
    directory = scenario.connect(slapd)
    folder = scenario.write(scenario.qn(), tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    time.sleep(1.05)  # so that the login's second is later than the creation's
    password = scenario.passwords(tmp_path / "out")["lantt@quangnam.gov.vn"]
    ldapwhoami(slapd, f"uid=lantt,ou=people,{BASE_QN}", password)
    login = parse_time(entry(directory, BASE_QN, "QN-0101").get("pwdLastSuccess"))
    assert login is not None
    fire = fires(login, 3)
    if local_day(login) == local_day(created(directory, BASE_QN, "QN-0101")):
        fire_created = fire
    else:  # the test ran across midnight in the province
        fire_created = fires(created(directory, BASE_QN, "QN-0101"), 3)
    assert "QN-0101" not in suspends(scenario.plan(folder, directory, fire - SECOND))
    op = suspends(scenario.plan(folder, directory, max(fire, fire_created)))["QN-0101"]
    assert op.reason == f"no login since {local_day(login)} (last login, 3 months)"
    directory.close()


# ---------------------------------------------------------------------------------------------
# HG-2024 Đ8.2.d: the issued password not changed after 1 month


def test_hg_2024_d8_2_d_an_unchanged_password_suspends_after_one_month(
    directory: Directory, tmp_path: Path
) -> None:
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    born = created(directory, BASE_HG, "HG-0101")
    fire = fires(born, 1)
    assert not suspends(scenario.plan(folder, directory, fire - SECOND))
    step = converge(folder, directory, tmp_path / "out", fire)
    op = suspends(step)["HG-0101"]
    assert op.clause == "HG-2024 Đ8.2.d"
    assert op.reason == f"password issued {local_day(born)} never changed"
    assert len(suspends(step)) == 5  # 2 people, 2 organisation mailboxes, 1 unit mailbox
    assert scenario.plan(folder, directory, fire + DAY).empty


@pytest.mark.slapd
def test_hg_password_changed_in_time_is_not_suspended(slapd: Slapd, tmp_path: Path) -> None:
    directory = scenario.connect(slapd)
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    dn = f"uid=ttlan.soyte,ou=people,{BASE_HG}"
    old = scenario.passwords(tmp_path / "out")["ttlan.soyte@hagiang.gov.vn"]
    subprocess.run(
        [
            "ldappasswd",
            "-x",
            "-H",
            slapd.url,
            "-D",
            dn,
            "-w",
            old,
            "-a",
            old,
            "-s",
            "Mật-khẩu-mới-2026!",
        ],
        check=True,
        capture_output=True,
        timeout=10,
    )
    assert entry(directory, BASE_HG, "HG-0101").get("pwdReset") is None
    fire = fires(created(directory, BASE_HG, "HG-0101"), 1)
    planned = scenario.plan(folder, directory, fire)
    assert "HG-0001" in suspends(planned)  # never changed
    assert "HG-0101" not in suspends(planned)
    directory.close()


# ---------------------------------------------------------------------------------------------
# Restore on request (HG-2024 Đ8.3, QN-2020 Đ7.2) and the activity clock after it


def test_hg_2024_d8_3_a_restore_request_lifts_a_time_rule_suspension(
    directory: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    now = fires(created(directory, BASE_HG, "HG-0101"), 6) + DAY
    converge(folder, directory, tmp_path / "out", now)
    assert entry(directory, BASE_HG, "HG-0101").all("pwdAccountLockedTime")

    # a restore request dated before the suspension changes nothing
    lan = spec["agencies"]["soyte"]["staff"][0]
    lan["restored"] = (local_day(real_now()) - DAY).isoformat()
    scenario.write(spec, folder)
    assert scenario.plan(folder, directory, now).empty

    lan["restored"] = local_day(now).isoformat()
    lan["restore_ref"] = "Đơn 12/2026 của Sở Y tế"
    scenario.write(spec, folder)
    step = restore_and_converge(folder, directory, tmp_path / "out", now, BASE_HG)
    assert [(op.action, op.id) for op in step.operations] == [(Action.RESTORE, "HG-0101")]
    op = step.operations[0]
    assert op.clause == "HG-2024 Đ8.3"
    assert op.reason == (
        f"restore requested on {local_day(now)} (Đơn 12/2026 của Sở Y tế); "
        "suspended under HG-2024 Đ8.2.a; a new temporary password replaces the one held before "
        "the suspension"
    )
    live = entry(directory, BASE_HG, "HG-0101")
    assert not live.all("pwdAccountLockedTime") and not live.all("govMailSuspendReason")
    assert live.get("pwdReset") == "TRUE"  # HG-2024 Đ8.3: change the password at the next login
    assert live.get("govMailRestoredAt") == format_time(now)

    # the next day: not suspended again, the others stay suspended
    assert scenario.plan(folder, directory, now + DAY).empty
    # the restored password must be changed within a month (HG-2024 Đ8.2.d)
    fire = fires(now, 1)
    assert not on(scenario.plan(folder, directory, fire - SECOND), "HG-0101")
    again = suspends(scenario.plan(folder, directory, fire))["HG-0101"]
    assert again.clause == "HG-2024 Đ8.2.d"
    assert again.reason == f"password issued {local_day(now)} never changed"


def test_qn_2020_d7_2_a_restore_request_lifts_the_suspension(
    directory: Directory, tmp_path: Path
) -> None:
    spec = scenario.qn()
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    now = fires(created(directory, BASE_QN, "QN-0101"), 3)
    converge(folder, directory, tmp_path / "out", now)
    spec["agencies"]["soyte"]["staff"][0]["restored"] = local_day(now).isoformat()
    scenario.write(spec, folder)
    step = restore_and_converge(folder, directory, tmp_path / "out", now, BASE_QN)
    assert [(op.action.value, op.id, op.clause) for op in step.operations] == [
        ("restore", "QN-0101", "QN-2020 Đ7.2")
    ]
    assert step.operations[0].reason == (
        f"restore requested on {local_day(now)}; suspended under QN-2020 Đ7.2; a new temporary "
        "password replaces the one held before the suspension"
    )


# ---------------------------------------------------------------------------------------------
# HG-2024 Đ8.4: suspended for 3 years → deleted


def test_hg_2024_d8_4_suspended_three_years_is_deleted_under_the_delete_limit(
    directory: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    spec["max_deletes"] = 1
    staff = spec["agencies"]["soyte"]["staff"]
    staff.append({"id": "HG-0102", "name": "Lò Văn Páo"})
    for person in staff:
        person["state"] = "suspended"
        person["suspension"] = {"clause": "HG-2024 Đ8.2.b", "note": "phát tán thư rác"}
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    since = dt.datetime(2026, 1, 15, 17, 30, tzinfo=dt.UTC)  # 16 January in the province
    for key in ("HG-0101", "HG-0102"):
        set_attr(directory, BASE_HG, key, "govMailSuspendedAt", format_time(since))
    fire = dt.datetime(2029, 1, 16, tzinfo=ZONE)
    assert fires(since, 36) == fire

    assert not any(
        op.action is Action.DELETE
        for op in scenario.plan(folder, directory, fire - SECOND).operations
    )
    planned = scenario.plan(folder, directory, fire)
    deletes = [op for op in planned.operations if op.action is Action.DELETE]
    assert [op.id for op in deletes] == ["HG-0101", "HG-0102"]
    assert {op.clause for op in deletes} == {"HG-2024 Đ8.4"}
    assert deletes[0].reason == "suspended since 2026-01-16, 3 years or more; not recoverable"
    # counted against max_deletes like any other delete, and the refusal says how many are due
    with pytest.raises(UnsafePlan, match=re.escape("2 of them due under HG-2024 Đ8.4")):
        check_limits(planned, Limits(max_deletes=1, allow_suspends=10))
    with pytest.raises(UnsafePlan, match="--allow-deletes 2"):
        check_limits(planned, Limits(max_deletes=1, allow_suspends=10))
    check_limits(planned, Limits(max_deletes=1, allow_deletes=2, allow_suspends=10))

    recap = scenario.apply(planned, directory, tmp_path / "out")
    assert recap.failed == 0, recap.messages
    keys = {e.key for e in directory.read(BASE_HG, ["employeeNumber"])}
    assert not {"HG-0101", "HG-0102"} & keys
    # the agency records the deletion (HG-2024 Đ7.2: it cannot be restored): nothing left to do
    for person in staff:
        person["state"] = "absent"
        del person["suspension"]
    scenario.write(spec, folder)
    assert not on(scenario.plan(folder, directory, fire), "HG-0101")
    assert not on(scenario.plan(folder, directory, fire), "HG-0102")


def test_a_restore_in_the_same_plan_wins_over_expiry(directory: Directory, tmp_path: Path) -> None:
    spec = scenario.hg()
    lan = spec["agencies"]["soyte"]["staff"][0]
    lan.update(state="suspended", suspension={"clause": "HG-2024 Đ8.2.b"})
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out", real_now())
    set_attr(directory, BASE_HG, "HG-0101", "govMailSuspendedAt", "20200101000000Z")
    lan["state"] = "active"
    del lan["suspension"]
    scenario.write(spec, folder)
    planned = scenario.plan(folder, directory, real_now())
    assert [(op.action, op.id) for op in on(planned, "HG-0101")] == [(Action.RESTORE, "HG-0101")]
