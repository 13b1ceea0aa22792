"""Apply writes exactly what its plan lists: on a real slapd, every entry is read whole before and
after an apply, and the difference must be the attribute changes of its operation, nothing more
(the values apply fills in resolved: an issued password is the one on file, a time is the run's).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.attributes import CASELESS_ATTRS, PASSWORD, parse_time
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory, open_directory
from reconciler.errors import ReconcilerError
from reconciler.model import Action, Change, Deferred, Operation, Plan
from reconciler.planning import planfile, render

from . import scenario
from .helpers import admin_connection, ldapwhoami
from .scenario import BASE_HG

Snapshot = dict[str, dict[str, set[str]]]  # lower-case DN -> lower-case attribute -> values
#: What apply may write beyond the user attributes (ppolicy's operational ones, asked by name).
WRITABLE_OPERATIONAL = ["pwdReset", "pwdAccountLockedTime"]
CASELESS = {a.lower() for a in CASELESS_ATTRS} | {"objectclass"}
ADOPTED_DN = f"uid=hoang.lv,ou=people,{BASE_HG}"


def snapshot(server: Slapd) -> Snapshot:
    """Every entry under the base, whole: user attributes (userPassword's hash included) and the
    operational attributes apply may write; slapd's own stamps (createTimestamp,
    pwdChangedTime, …) are not apply's writes and are not asked for."""
    with admin_connection(server) as conn:
        conn.search(BASE_HG, "(objectClass=*)", attributes=["*", *WRITABLE_OPERATIONAL])
        return {
            e["dn"].lower(): {
                k.lower(): {v.decode("utf-8") for v in vs}
                for k, vs in e["raw_attributes"].items()
                if vs  # an attribute asked for by name and absent comes back empty
            }
            for e in conn.response
            if e.get("type") == "searchResEntry"
        }


def norm(attr: str, values: set[str] | list[str]) -> set[str]:
    return {v.lower() for v in values} if attr.lower() in CASELESS else set(values)


def ssha_matches(stored: str, password: str) -> bool:
    assert stored.startswith("{SSHA}"), stored
    raw = base64.b64decode(stored[len("{SSHA}") :])
    digest, salt = raw[:20], raw[20:]
    return hashlib.sha1(password.encode() + salt).digest() == digest


def listed(op: Operation) -> tuple[Change, ...]:
    return op.attributes if op.action in (Action.CREATE, Action.DELETE) else op.changes


def check_resolved(
    change: Change, got: set[str], op: Operation, passwords: dict[str, str], run: tuple
) -> None:
    """A deferred value, as apply filled it in."""
    assert len(got) == 1, (op.id, change.attr, got)
    value = next(iter(got))
    if change.after == (Deferred.PASSWORD,):
        assert ssha_matches(value, passwords[op.address]), (op.id, "not the password on file")
    else:
        assert change.after == (Deferred.APPLY_TIME,)
        moment = parse_time(value)
        assert moment is not None and run[0] <= moment <= run[1], (op.id, change.attr, value)


def assert_exact(
    op: Operation,
    before: dict[str, set[str]] | None,
    after: dict[str, set[str]] | None,
    passwords: dict[str, str],
    run: tuple[dt.datetime, dt.datetime],
) -> None:
    """`after` is `before` with exactly the changes `op` lists."""
    if op.action is Action.DELETE:
        # the entry is gone (the caller checks); its tombstone is new, with what the op lists
        assert before is not None and after is not None, op.id
        before = None
    assert after is not None, op.id
    expected = {} if before is None else dict(before)
    if op.action is Action.DELETE:
        expected["cn"] = {op.new_dn.split(",", 1)[0].split("=", 1)[1]}  # the RDN's value
    deferred = {}
    for change in listed(op):
        attr = change.attr.lower()
        if before is not None and attr != PASSWORD.lower():
            # the plan's "before" is what the entry held
            assert norm(attr, set(change.before)) == norm(attr, before.get(attr, set())), (
                op.id, change.attr)
        if change.deferred:
            deferred[attr] = change
            expected.pop(attr, None)
        elif change.after:
            expected[attr] = {v for v in change.after if isinstance(v, str)}
        else:
            expected.pop(attr, None)
    plain = {k: norm(k, v) for k, v in after.items() if k not in deferred}
    assert plain == {k: norm(k, v) for k, v in expected.items()}, op.id
    for attr, change in deferred.items():
        check_resolved(change, after.get(attr, set()), op, passwords, run)


def add_legacy(directory: Directory) -> None:
    """An entry from before the tool, with its own password: the next plan adopts it."""
    directory.add(ADOPTED_DN, {
        "objectClass": ["inetOrgPerson"], "cn": ["Lê Văn Hoàng"], "sn": ["Lê"],
        "uid": ["hoang.lv"], "mail": ["hoang.lv@hagiang.gov.vn"], "userPassword": ["Cũ-mk-1!"],
    })


def hg_before() -> dict:
    spec = scenario.hg()
    sotttt, soyte = spec["agencies"]["sotttt"], spec["agencies"]["soyte"]
    sotttt["staff"] += [
        {"id": "HG-0002", "name": "Đỗ Mạnh Hùng", "title": "Chuyên viên"},
        {"id": "HG-0003", "name": "Giàng Seo Lử", "unit": "vanphong", "state": "suspended",
         "suspension": {"clause": "HG-2024 Đ8.2.b", "note": "lộ mật khẩu"}},
    ]
    soyte["staff"] += [{"id": "HG-0102", "name": "Bàn Văn Mình", "title": "Kế toán"}]
    return spec


def hg_after(spec: dict) -> dict:
    spec = scenario.clone(spec)
    sotttt, soyte = spec["agencies"]["sotttt"], spec["agencies"]["soyte"]
    sotttt["staff"][0]["title"] = "Giám đốc Sở"  # update
    sotttt["staff"].append(soyte["staff"].pop(0))  # transfer: a rename under hagiang-2024
    sotttt["staff"][1].update(  # suspend
        state="suspended", suspension={"clause": "HG-2024 Đ8.2.b", "note": "CV 45/STTTT"})
    sotttt["staff"][2]["state"] = "active"  # restore
    del sotttt["staff"][2]["suspension"]
    soyte["staff"].clear()  # delete HG-0102
    soyte["staff"] += [
        {"id": "HG-0103", "name": "Lò Thị Mai", "title": "Y sĩ"},  # create
        {"id": "HG-0104", "name": "Sùng A Páo", "state": "suspended",  # create suspended
         "suspension": {"clause": "HG-2024 Đ8.2.b", "note": "chưa nhận việc"}},
        {"id": "HG-0105", "name": "Lê Văn Hoàng", "address": "hoang.lv@hagiang.gov.vn"},  # adopt
    ]
    return spec


@pytest.mark.slapd
def test_every_action_writes_exactly_what_its_operation_lists(
    slapd: Slapd, tmp_path: Path
) -> None:
    spec = hg_before()
    folder = scenario.write(spec, tmp_path / "inv")
    directory = scenario.connect(slapd)
    try:
        first = scenario.plan(folder, directory)
        assert scenario.apply(first, directory, tmp_path / "first").failed == 0
        add_legacy(directory)
        scenario.write(hg_after(spec), folder)
        plan = scenario.plan(folder, directory)
        assert sorted((op.action.value, op.id) for op in plan.operations) == [
            ("create", "HG-0103"),
            ("create", "HG-0104"),
            ("delete", "HG-0102"),
            ("rename", "HG-0101"),
            ("restore", "HG-0003"),
            ("suspend", "HG-0002"),
            ("update", "HG-0001"),
            ("update", "HG-0105"),  # adoption
        ]
        # the plan that is applied is the plan file, read back
        plan = planfile.from_json(planfile.to_json(plan))

        before = snapshot(slapd)
        start = dt.datetime.now(dt.UTC).replace(microsecond=0)
        out = tmp_path / "second"
        recap = scenario.apply(plan, directory, out)
        end = dt.datetime.now(dt.UTC)
        after = snapshot(slapd)
    finally:
        directory.close()
    assert recap.failed == 0 and recap.changed == len(plan.operations), recap.messages
    passwords = scenario.passwords(out)
    # a create and a restore (HG-2024 Đ8.3.c) issue one each
    assert set(passwords) == {
        op.address for op in plan.operations if op.action in (Action.CREATE, Action.RESTORE)
    }

    touched = {dn.lower() for dn in plan.containers}  # the history's, for the tombstone
    for op in plan.operations:
        old_dn, new_dn = op.dn.lower(), (op.new_dn or op.dn).lower()
        touched |= {old_dn, new_dn} - {""}
        was = before.get(old_dn) if old_dn else None
        if op.action in (Action.RENAME, Action.DELETE):
            assert old_dn not in after
        assert_exact(op, was, after.get(new_dn), passwords, (start, end))
    # and nothing else changed
    assert {dn: v for dn, v in after.items() if dn not in touched} == {
        dn: v for dn, v in before.items() if dn not in touched
    }
    # the new mailbox binds with the password on file, and must change it
    created = next(op for op in plan.operations if op.id == "HG-0103")
    bound = ldapwhoami(slapd, created.new_dn, passwords[created.address])
    assert "Password must be changed" in bound.stdout + bound.stderr


def test_the_plan_of_a_create_a_suspend_and_a_restore_lists_what_apply_writes(
    tmp_path: Path,
) -> None:
    """Without a server: the ldif file directory is enough to plan against."""
    spec = hg_before()
    folder = scenario.write(spec, tmp_path / "inv")
    with open_directory(f"ldif:{tmp_path / 'directory.ldif'}") as directory:
        first = scenario.plan(folder, directory)
        assert scenario.apply(first, directory, tmp_path / "first").failed == 0
        add_legacy(directory)
        scenario.write(hg_after(spec), folder)
        plan = scenario.plan(folder, directory)
    ops = json_ops(plan)
    created = ops["HG-0103"]["attributes"]
    assert created["userPassword"] == [{"deferred": "issued password"}]
    assert created["pwdReset"] == ["TRUE"]
    assert "govMailSuspendedAt" not in created
    suspended_new = ops["HG-0104"]["attributes"]
    assert suspended_new["govMailSuspendedAt"] == [{"deferred": "time of apply"}]
    assert suspended_new["pwdAccountLockedTime"] == ["000001010000Z"]
    suspend = ops["HG-0002"]["changes"]
    assert set(suspend) == {"pwdAccountLockedTime", "govMailSuspendReason", "govMailSuspendedAt"}
    assert suspend["govMailSuspendedAt"] == {"before": [], "after": [{"deferred": "time of apply"}]}
    restore = ops["HG-0003"]["changes"]
    assert set(restore) == {
        "pwdAccountLockedTime", "govMailSuspendReason", "govMailSuspendedAt", "pwdReset",
        "govMailRestoredAt", "userPassword", "govMailPasswordIssuedAt",
    }
    assert restore["pwdReset"]["after"] == ["TRUE"]
    assert restore["userPassword"]["after"] == [{"deferred": "issued password"}]
    assert restore["govMailRestoredAt"]["after"] == [{"deferred": "time of apply"}]
    assert all(c["after"] == [] for a, c in restore.items() if a.startswith(("pwdAcc", "govMailS")))
    # the adoption keeps the password the entry had: the plan lists none
    assert "userPassword" not in ops["HG-0105"]["changes"]


def json_ops(plan: Plan) -> dict[str, dict]:
    return {op["id"]: op for op in json.loads(planfile.to_json(plan))["operations"]}


CASE = Path(__file__).resolve().parent / "cases" / "quangnam-changes" / "plan.json"


def edited(tmp_path: Path, action: str, edit: Callable[[dict], None]) -> Path:
    """The golden plan with the first operation of `action` edited by hand (digest left alone:
    the loader refuses the content before it compares digests)."""
    data = json.loads(CASE.read_text(encoding="utf-8"))
    edit(next(op for op in data["operations"] if op["action"] == action))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


TIME = {"deferred": "time of apply"}
ISSUED = {"deferred": "issued password"}


@pytest.mark.parametrize(
    ("action", "edit", "says"),
    [
        ("create", lambda op: op["attributes"].update(userPassword=["Secret-1"]),
         "userPassword can only be issued by apply"),
        ("create", lambda op: op["attributes"].update(userpassword=[ISSUED]),
         "userPassword can only be issued by apply (spelled userPassword"),
        ("create", lambda op: op["attributes"].pop("userPassword"),
         "does not list userPassword, which every create writes"),
        ("restore", lambda op: op["changes"].pop("govMailRestoredAt"),
         "does not list govMailRestoredAt, which every restore writes"),
        ("update", lambda op: op["changes"]["o"].update(after=[TIME]),
         "the time of apply can only be stamped on govMailDeletedAt and govMailPasswordIssuedAt "
         "and govMailRestoredAt and govMailSuspendedAt, not on o"),
        ("restore", lambda op: op["changes"]["govMailRestoredAt"].update(after=[ISSUED]),
         "an issued password can only go to userPassword, not to govMailRestoredAt"),
        ("create", lambda op: op["attributes"].update(title=[ISSUED]),
         "an issued password can only go to userPassword, not to title"),
        ("restore", lambda op: op["changes"]["govMailRestoredAt"].update(after=[TIME, TIME]),
         "must be the attribute's only value"),
    ],
)
def test_the_plan_file_refuses_a_marker_where_it_makes_no_sense(
    tmp_path: Path, action: str, edit: Callable[[dict], None], says: str
) -> None:
    planfile.load(CASE)  # the plan as made loads
    with pytest.raises(ReconcilerError) as refused:
        planfile.load(edited(tmp_path, action, edit))
    assert says in str(refused.value) and str(tmp_path / "plan.json") in str(refused.value)
    assert f"({action} " in str(refused.value) and "make a new plan" in str(refused.value)


def test_the_plan_file_refuses_an_unknown_deferred_value(tmp_path: Path) -> None:
    path = edited(tmp_path, "create", lambda op: op["attributes"].update(
        userPassword=[{"deferred": "admin password"}]))
    with pytest.raises(ReconcilerError, match="unknown deferred value 'admin password'"):
        planfile.load(path)


def test_text_and_markdown_say_what_apply_decides() -> None:
    plan = planfile.load(CASE)
    text = render.text(plan)
    create = text.split("+ create", 1)[1].split("~ update", 1)[0]
    assert "password: issued (credentials file)" in create
    assert "pwdReset: TRUE (must change at first login)" in create
    restore = text.split("▶ restore", 1)[1]
    assert "restored at: time of apply" in restore and "pwdReset: TRUE" in restore
    assert "password: issued (credentials file)" in restore
    assert "restored at: time of apply" in render.markdown(plan, planfile.digest(plan))
