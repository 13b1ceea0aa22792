"""The law as written (issue 16): one test per rule of either regulation that the tool enforces,
named after its clause (`test_<code>_<article>_…`), as `docs/regulations.md` lists them.

Scenarios run through the library on an `ldif:` file directory (it behaves as slapd with ppolicy:
a password write sets pwdReset and pwdChangedTime), or on the throwaway slapd where a bind must
be proven.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import attributes
from reconciler.applying.audit import AuditLog
from reconciler.applying.credentials import CredentialsFile
from reconciler.applying.reset import reset_password
from reconciler.attributes import format_time, parse_time
from reconciler.directory import Directory, open_directory
from reconciler.errors import ReconcilerError
from reconciler.model import Action, Entry, Operation, Plan
from reconciler.planning import render
from reconciler.rules import regulations

from . import scenario
from .scenario import BASE_HG, BASE_QN

HG = regulations.get("hagiang-2024")
QN = regulations.get("quangnam-2020")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def ldif(tmp_path: Path) -> Iterator[Directory]:
    directory = open_directory(f"ldif:{tmp_path / 'directory.ldif'}")
    try:
        yield directory
    finally:
        directory.close()


def converge(folder: Path, directory: Directory, out: Path, at: dt.datetime | None = None) -> Plan:
    first = scenario.plan(folder, directory, at or now())
    recap = scenario.apply(first, directory, out)
    assert recap.failed == 0, recap.messages
    again = scenario.plan(folder, directory, at or now())
    assert again.empty, [(op.action.value, op.id, op.reason) for op in again.operations]
    return first


def entry(directory: Directory, base: str, key: str) -> Entry:
    found = [e for e in directory.read(base, attributes.READ) if e.key == key]
    assert found, key
    return found[0]


def ops(plan: Plan, key: str) -> list[Operation]:
    return [op for op in plan.operations if op.id == key]


# ---------------------------------------------------------------------------------------------
# Restore: HG-2024 Đ8.3.c (a new temporary password; the old one stops), Đ8.2.d from it


def _old_way_restore(directory: Directory, base: str, key: str, at: dt.datetime) -> None:
    """What a reconciler from before this change did to restore: the lock lifted and pwdReset
    set, no new password (the password was last written before the suspension, by a reconciler
    that kept no stamp of its own)."""
    dn = entry(directory, base, key).dn
    directory.modify(
        dn,
        {
            attributes.ISSUED_AT: [],
            "pwdAccountLockedTime": [],
            "govMailSuspendReason": [],
            "govMailSuspendedAt": [],
            "pwdReset": ["TRUE"],
            "govMailRestoredAt": [format_time(at)],
        },
    )
    directory.flush()


def test_hg_2024_d8_3_c_a_mailbox_restored_without_a_password_gets_one(
    ldif: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    lan = spec["agencies"]["soyte"]["staff"][0]
    lan.update(state="suspended", suspension={"clause": "HG-2024 Đ8.2.b", "note": "lộ mật khẩu"})
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, ldif, tmp_path / "out")
    restored_at = now() - dt.timedelta(hours=1)
    _old_way_restore(ldif, BASE_HG, "HG-0101", restored_at)
    lan["state"] = "active"
    del lan["suspension"]
    scenario.write(spec, folder)

    # a month and more later: not suspended under Đ8.2.d for a password the tool never issued,
    # but given a new temporary password, shown as such
    later = restored_at + dt.timedelta(days=45)
    plan = scenario.plan(folder, ldif, later)
    (op,) = ops(plan, "HG-0101")
    assert (op.action, op.clause) == (Action.UPDATE, HG.restore_clause)
    assert "without a new password" in op.reason
    shown = render.text(plan)
    assert "password: issued (credentials file)" in shown.split("HG-0101", 1)[1]
    assert scenario.apply(plan, ldif, tmp_path / "again").failed == 0
    assert "ttlan.soyte@hagiang.gov.vn" in scenario.passwords(tmp_path / "again")
    # in the simulated world the apply ran at `later`: the password it issued is new then
    ldif.modify(entry(ldif, BASE_HG, "HG-0101").dn, {attributes.ISSUED_AT: [format_time(later)]})
    assert not ops(scenario.plan(folder, ldif, later), "HG-0101")

    # once the person changed that password, nothing more is issued
    _old_way_restore(ldif, BASE_HG, "HG-0001", restored_at)
    ldif.modify(entry(ldif, BASE_HG, "HG-0001").dn, {"pwdReset": []})
    assert not ops(scenario.plan(folder, ldif, later), "HG-0001")


def test_hg_2024_d8_2_d_counts_from_the_last_password_the_tool_issued(
    ldif: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, ldif, tmp_path / "out")
    # the person changed the issued password: ppolicy cleared pwdReset, the rule never fires
    ldif.modify(entry(ldif, BASE_HG, "HG-0101").dn, {"pwdReset": []})
    ldif.flush()
    years = now() + dt.timedelta(days=400)
    planned = scenario.plan(folder, ldif, years)
    assert all(op.clause != "HG-2024 Đ8.2.d" for op in ops(planned, "HG-0101"))
    # a reset issues the default password again: the month counts from it
    issued = parse_time(entry(ldif, BASE_HG, "HG-0001").get(attributes.ISSUED_AT))
    assert issued is not None
    month = [op for op in scenario.plan(folder, ldif, issued + dt.timedelta(days=32)).operations]
    assert {op.id for op in month if op.clause == "HG-2024 Đ8.2.d"} >= {"HG-0001"}


@pytest.mark.parametrize(
    ("time_rule", "says"),
    [(False, "set `state: active` on the record of QN-0101"), (True, "put `restored: DATE`")],
)
def test_qn_2020_d6_2_a_reset_on_a_suspended_mailbox_says_what_to_do(
    ldif: Directory, tmp_path: Path, time_rule: bool, says: str
) -> None:
    spec = scenario.qn()
    lan = spec["agencies"]["soyte"]["staff"][0]
    lan.update(state="suspended", suspension={"clause": "QN-2020 Đ7.2", "note": "thư rác"})
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, ldif, tmp_path / "out")
    if time_rule:
        reason = "QN-2020 Đ7.2 (time rule): no activity"
        ldif.modify(entry(ldif, BASE_QN, "QN-0101").dn, {"govMailSuspendReason": [reason]})
    audit = AuditLog(tmp_path / "audit.jsonl", run="r", actor="t", plan_digest="", commit="",
                     directory=ldif.url)
    with CredentialsFile(tmp_path / "reset.csv") as credentials, pytest.raises(
        ReconcilerError
    ) as refused:
        reset_password(ldif, BASE_QN, "lantt@quangnam.gov.vn", credentials, audit,
                       QN.reset_clause, QN.restore_clause)
    audit.close()
    message = str(refused.value)
    assert says in message and "agencies/soyte.yaml" in message
    assert "issues a new temporary password itself" in message and "Nothing was changed" in message
    assert not (tmp_path / "reset.csv").exists()


# ---------------------------------------------------------------------------------------------
# Suspension grounds: a changed clause or note is an update (QN-2020 Đ7.2, HG-2024 Đ8.1)


def test_hg_2024_d8_1_a_changed_ground_or_note_of_a_suspension_is_an_update(
    ldif: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    lan = spec["agencies"]["soyte"]["staff"][0]
    lan.update(state="suspended", suspension={"clause": "HG-2024 Đ8.2.b", "note": "CV 45"})
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, ldif, tmp_path / "out")
    lan["suspension"] = {"clause": "HG-2024 Đ8.1", "note": "đề nghị của Sở Y tế, CV 12/SYT"}
    scenario.write(spec, folder)
    plan = converge(folder, ldif, tmp_path / "out")
    (op,) = plan.operations
    assert (op.action, op.clause, op.id) == (Action.UPDATE, "HG-2024 Đ8.1", "HG-0101")
    assert [c.attr for c in op.changes] == ["govMailSuspendReason"]
    assert "was: HG-2024 Đ8.2.b: CV 45" in op.reason
    live = entry(ldif, BASE_HG, "HG-0101")
    assert live.get("govMailSuspendReason") == "HG-2024 Đ8.1: đề nghị của Sở Y tế, CV 12/SYT"
    assert live.all("pwdAccountLockedTime")  # still suspended, since the same moment
    # the note alone
    lan["suspension"]["note"] = "đề nghị của Sở Y tế, CV 13/SYT"
    scenario.write(spec, folder)
    (op,) = converge(folder, ldif, tmp_path / "out").operations
    assert op.action is Action.UPDATE


# ---------------------------------------------------------------------------------------------
# HG-2024 Đ11.3: a new head gets the organisation mailbox with a new password


def test_hg_2024_d11_3_a_new_manager_gets_a_new_password(ldif: Directory, tmp_path: Path) -> None:
    spec = scenario.hg()
    sotttt = spec["agencies"]["sotttt"]
    sotttt["manager"] = "HG-0001"
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, ldif, tmp_path / "out")
    sotttt["staff"][0]["rank"] = 2
    sotttt["staff"].append({"id": "HG-0009", "name": "Vương Thị Hoa", "rank": 1})
    sotttt["manager"] = "HG-0009"
    scenario.write(spec, folder)
    plan = converge(folder, ldif, tmp_path / "handover")
    (op,) = ops(plan, "agency:sotttt")
    assert (op.action, op.clause) == (Action.UPDATE, "HG-2024 Đ11.3")
    assert {c.attr for c in op.changes} >= {"govMailManager", "userPassword", "pwdReset"}
    assert "former manager's access ends" in op.reason
    assert "sotttt@hagiang.gov.vn" in scenario.passwords(tmp_path / "handover")


# ---------------------------------------------------------------------------------------------
# HG-2024 Đ8.4 and Đ7.2: a deleted mailbox is not recoverable; its addresses are quarantined


def _suspended_since(directory: Directory, base: str, key: str, since: str) -> None:
    directory.modify(entry(directory, base, key).dn, {"govMailSuspendedAt": [since]})
    directory.flush()


@pytest.mark.slapd
def test_hg_2024_d8_4_a_deleted_mailbox_is_not_created_again(slapd, tmp_path: Path) -> None:
    from reconciler.rules.lifecycle import ZONE

    directory = scenario.connect(slapd)
    spec = scenario.hg()
    lan = spec["agencies"]["soyte"]["staff"][0]
    lan.update(state="suspended", suspension={"clause": "HG-2024 Đ8.2.b", "note": "lộ mật khẩu"})
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, directory, tmp_path / "out")
    _suspended_since(directory, BASE_HG, "HG-0101", "20260115173000Z")
    fire = dt.datetime(2029, 1, 16, tzinfo=ZONE)
    deleted = scenario.plan(folder, directory, fire)
    (op,) = ops(deleted, "HG-0101")
    assert (op.action, op.clause) == (Action.DELETE, "HG-2024 Đ8.4")
    assert op.new_dn.startswith("cn=HG-0101 ") and ",ou=history," in op.new_dn
    assert f"ou=history,{BASE_HG}" in deleted.containers
    assert scenario.apply(deleted, directory, tmp_path / "out").failed == 0
    # in the simulated world the deletion ran at `fire`
    directory.modify(op.new_dn, {"govMailDeletedAt": [format_time(fire)]})

    # the record is still in the inventory: the next plan names it and creates nothing
    after = scenario.plan(folder, directory, fire)
    assert not ops(after, "HG-0101")
    (refusal,) = after.refused
    assert (refusal.id, refusal.clause) == ("HG-0101", "HG-2024 Đ7.2")
    assert "ttlan.soyte@hagiang.gov.vn" in refusal.reason and "not recoverable" in refusal.reason
    assert "✗ refused Trần Thị Lan (HG-0101)" in render.text(after)

    # a hire with the same name gets a numbered address, not the deleted one
    spec["agencies"]["soyte"]["staff"].append({"id": "HG-0150", "name": "Trần Thị Lan"})
    scenario.write(spec, folder)
    hire = scenario.plan(folder, directory, fire)
    (create,) = ops(hire, "HG-0150")
    assert create.address == "ttlan1.soyte@hagiang.gov.vn"
    assert "the deleted mailbox of HG-0101" in create.reason

    # a new request for the same person: a new mailbox, a new address
    lan["new_request"] = {"ref": "CV 31/SYT", "date": "2029-01-20"}
    del lan["suspension"]
    lan["state"] = "active"
    scenario.write(spec, folder)
    again = scenario.plan(folder, directory, fire)
    assert not again.refused
    (recreated,) = ops(again, "HG-0101")
    assert recreated.action is Action.CREATE
    assert recreated.address == "ttlan1.soyte@hagiang.gov.vn"  # the hire, planned too, gets 2
    assert [op.address for op in ops(again, "HG-0150")] == ["ttlan2.soyte@hagiang.gov.vn"]
    # the mail server's maps never see the tombstone: it has no mail and no alias
    stones = [e for e in directory.read(f"ou=history,{BASE_HG}", ["mail", "govMailAlias"])]
    assert len(stones) == 2 and not any(e.all("mail") or e.all("govMailAlias") for e in stones)
    directory.close()


def test_qn_2020_d7_1_a_deleted_address_is_quarantined_for_twelve_months(
    ldif: Directory, tmp_path: Path
) -> None:
    spec = scenario.qn()
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, ldif, tmp_path / "out")
    spec["agencies"]["soyte"]["staff"] = []  # Trần Thị Lan leaves: deleted on request
    scenario.write(spec, folder)
    gone = converge(folder, ldif, tmp_path / "out")
    assert [(op.action, op.id) for op in gone.operations] == [(Action.DELETE, "QN-0101")]
    spec["agencies"]["soyte"]["staff"] = [{"id": "QN-0102", "name": "Trần Thị Lan"}]
    scenario.write(spec, folder)
    def created(days: int) -> list[str]:
        plan = scenario.plan(folder, ldif, now() + dt.timedelta(days=days))
        return [op.address for op in plan.operations if op.action is Action.CREATE]

    assert created(300) == ["lantt1@quangnam.gov.vn"]
    assert created(370) == ["lantt@quangnam.gov.vn"]
    spec["quarantine"] = "2 years"  # configurable in directory.yaml
    scenario.write(spec, folder)
    assert created(370) == ["lantt1@quangnam.gov.vn"]


# ---------------------------------------------------------------------------------------------
# Notices: HG-2024 Đ7.3 (the requesting organisation is told the result), QN-2020 Đ7.2


def test_hg_2024_d7_3_each_agency_gets_a_notice_of_what_was_done_and_refused(
    tmp_path: Path,
) -> None:
    from email import message_from_bytes, policy

    from .helpers import run_cli

    url = f"ldif:{tmp_path / 'directory.ldif'}"
    spec = scenario.hg()
    soyte = spec["agencies"]["soyte"]["staff"]
    soyte.append({"id": "HG-0102", "name": "Bàn Văn Mình"})
    folder = scenario.write(spec, tmp_path / "inv")
    with open_directory(url) as directory:
        converge(folder, directory, tmp_path / "out")
        soyte.pop()  # deleted on request
        scenario.write(spec, folder)
        converge(folder, directory, tmp_path / "out")
    soyte.append({"id": "HG-0102", "name": "Bàn Văn Mình"})  # back by mistake: refused
    soyte.append({"id": "HG-0103", "name": "Lò Thị Mai", "title": "Y sĩ"})  # a create
    soyte[0].update(state="suspended", suspension={"clause": "HG-2024 Đ8.1", "note": "CV 9/SYT"})
    scenario.write(spec, folder)
    made = run_cli("plan", str(folder), "--directory", url, "--out", str(tmp_path / "p.json"),
                   "--allow-suspends", "1")
    assert made.returncode == 0, made.stderr
    assert "✗ refused Bàn Văn Mình (HG-0102)" in made.stdout
    applied = run_cli(
        "apply", str(tmp_path / "p.json"), "--directory", url,
        "--credentials-out", str(tmp_path / "creds.csv"),
        "--audit-log", str(tmp_path / "audit" / "audit.jsonl"),
    )
    assert applied.returncode == 0, applied.stderr
    assert "Notices for 1 agency written to" in applied.stderr  # one, not "1 agencies"
    (eml,) = (tmp_path / "audit" / "notices").glob("*-soyte.eml")
    assert eml.stat().st_mode & 0o777 == 0o600
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "soyte@hagiang.gov.vn"
    body = message.get_content()
    assert body.startswith("Kính gửi: Sở Y tế")
    assert "Cấp mới hộp thư ltmai.soyte@hagiang.gov.vn của Lò Thị Mai (HG-0103)" in body
    assert "Điều 7 khoản 1 (HG-2024 Đ7.1)" in body
    assert "Tạm khóa hộp thư ttlan.soyte@hagiang.gov.vn" in body
    assert "Điều 8 khoản 1 (HG-2024 Đ8.1)" in body
    assert "Bàn Văn Mình (HG-0102): không cấp lại" in body and "(HG-2024 Đ7.2)" in body
    for line in (tmp_path / "creds.csv").read_text().splitlines()[1:]:
        assert line.split(",", 1)[1] not in eml.read_text(encoding="utf-8", errors="replace")
    assert all(len(line) <= 80 for line in body.splitlines())  # printable
    assert not list((tmp_path / "audit" / "notices").glob("*-sotttt.eml"))  # nothing done there


def test_qn_2020_d7_2_the_owner_of_a_suspended_mailbox_is_told_at_their_own_address(
    slapd, tmp_path: Path
) -> None:
    """QN-2020 Đ7.2 notifies the owner of a suspension, and a suspended mailbox cannot receive:
    the owner is told through the agency, and at the external address their record holds
    (`external_email`), in a notice of their own (.eml, 0600) that names no one else."""
    import json
    from email import message_from_bytes, policy

    from .helpers import run_cli

    spec = scenario.qn()
    spec["agencies"]["soyte"]["mailbox"] = "vanphongsyt"  # the organisation mailbox (QN)
    soyte = spec["agencies"]["soyte"]["staff"]
    soyte[0]["external_email"] = "lan.tt@gmail.com"
    soyte.append({"id": "QN-0102", "name": "Nguyễn Văn Bình", "external_email": "binh@yahoo.com"})
    folder = scenario.write(spec, tmp_path / "inv")
    with scenario.connect(slapd) as directory:
        converge(folder, directory, tmp_path / "out")
    soyte[0].update(state="suspended", suspension={"clause": "QN-2020 Đ7.2", "note": "CV 45/SYT"})
    scenario.write(spec, folder)
    env = {"RECONCILER_BIND_DN": slapd.root_dn, "RECONCILER_BIND_PASSWORD": slapd.root_pw}
    plan_file = tmp_path / "p.json"
    made = run_cli("plan", str(folder), "--directory", slapd.url, "--out", str(plan_file),
                   "--allow-suspends", "1", env=env)
    assert made.returncode == 0, made.stderr
    assert "the owner is told at lan.tt@gmail.com too (external_email)" in made.stdout
    owners = json.loads(plan_file.read_text("utf-8"))["notices"]["owners"]
    # Bình has an external address too, but is not suspended
    assert owners == {"QN-0101": {"agency": "soyte", "to": "lan.tt@gmail.com"}}
    digest = json.loads(plan_file.read_text("utf-8"))["digest"]
    applied = run_cli(
        "apply", str(plan_file), "--directory", slapd.url, "--inventory", str(folder),
        "--expect-digest", digest, "--audit-log", str(tmp_path / "audit" / "audit.jsonl"),
        env=env,
    )
    assert applied.returncode == 0, applied.stderr
    assert "Notices for 1 agency and 1 person at their own address written to" in applied.stderr
    folder_out = tmp_path / "audit" / "notices"
    (own,) = folder_out.glob("*-soyte-owner-QN-0101.eml")
    (agency,) = folder_out.glob("*-soyte.eml")
    assert own.stat().st_mode & 0o777 == 0o600
    message = message_from_bytes(own.read_bytes(), policy=policy.default)
    assert message["To"] == "lan.tt@gmail.com"
    body = " ".join(message.get_content().split())
    assert body.startswith("Kính gửi: Ông/Bà Trần Thị Lan")
    assert "lantt@quangnam.gov.vn của Ông/Bà đã bị tạm khóa lúc" in body
    assert "Điều 7 khoản 2 (QN-2020 Đ7.2)" in body
    assert "liên hệ Sở Y tế qua hộp thư vanphongsyt@quangnam.gov.vn" in body
    assert "Bình" not in body and "CV 45" not in body
    to_agency = message_from_bytes(agency.read_bytes(), policy=policy.default)
    assert to_agency["To"] == "vanphongsyt@quangnam.gov.vn"  # the agency is told as before
    assert "lan.tt@gmail.com" not in to_agency.get_content()


# ---------------------------------------------------------------------------------------------
# What counts as activity: HG-2024 Đ8.2.a logins, sending and receiving; QN-2020 Đ7.2 logins


@pytest.mark.parametrize(
    ("make", "months", "kind", "counts"),
    [
        (scenario.hg, 6, "received", True),
        (scenario.hg, 6, "sent", True),
        (scenario.qn, 3, "received", False),
        (scenario.qn, 3, "sent", False),
        (scenario.qn, 3, "login", True),
    ],
)
def test_hg_2024_d8_2_a_and_qn_2020_d7_2_count_what_their_text_counts(
    ldif: Directory, tmp_path: Path, make: object, months: int, kind: str, counts: bool
) -> None:
    from reconciler.outputs import report
    from reconciler.planning import pipeline

    spec = make()  # type: ignore[operator]
    folder = scenario.write(spec, tmp_path / "inv")
    converge(folder, ldif, tmp_path / "out")
    key, address = next(
        (e.key, e.mail) for e in ldif.read(spec["base_dn"], attributes.READ) if e.key and
        e.key.endswith("0101")
    )
    seen = now() + dt.timedelta(days=60)
    activity = {address: {kind: seen}}
    entry_dn = entry(ldif, spec["base_dn"], key).dn
    ldif.modify(entry_dn, {"pwdReset": []})  # the password was changed: only inactivity is left
    at = now() + dt.timedelta(days=31 * months + 5)  # past the rule from the creation
    regulation = regulations.get(spec["regulation"])
    plan = scenario.plan(folder, ldif, at, activity=activity)
    rule = regulation.inactivity.clause
    suspended = [op for op in ops(plan, key) if op.clause == rule]
    assert bool(suspended) is not counts
    if suspended:  # what did not count is not evidence: it was never used, in the rule's words
        assert suspended[0].reason.startswith("never used since it was created")
    # the report's advance notice gives the same evidence, in the regulation's words
    loaded = pipeline.load(folder)
    entries = pipeline.read(ldif, loaded)
    early = seen + dt.timedelta(days=30 * months - 5)  # within 30 days of the rule from `seen`
    built = report.build(loaded.inventory, entries, loaded.regulation, None, early,
                         activity=activity)
    words = loaded.regulation.activity_words
    assert all(d.reason.startswith((words, "never used", "password")) for d in built.due)
    if counts and kind != "login":
        assert any(f"last mail {kind}" in d.reason for d in built.due if d.id == key)


# ---------------------------------------------------------------------------------------------
# HG-2024 Đ8.1, Đ8.2.b: suspension at once, written back into the inventory


@pytest.mark.slapd
def test_hg_2024_d8_2_b_suspend_at_once_and_the_next_plan_agrees(slapd, tmp_path: Path) -> None:
    import json

    from .helpers import ldapwhoami, run_cli

    directory = scenario.connect(slapd)
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    agency_file = folder / "agencies" / "soyte.yaml"
    agency_file.write_text(
        agency_file.read_text(encoding="utf-8").replace("staff:\n", "staff:\n# nhân sự\n"),
        encoding="utf-8",
    )
    converge(folder, directory, tmp_path / "out")
    password = scenario.passwords(tmp_path / "out")["ttlan.soyte@hagiang.gov.vn"]
    env = {"RECONCILER_BIND_DN": slapd.root_dn, "RECONCILER_BIND_PASSWORD": slapd.root_pw}
    common = ["--directory", slapd.url, "--inventory", str(folder),
              "--audit-log", str(tmp_path / "audit" / "audit.jsonl"), "--actor", "trực ban"]

    wrong = run_cli("suspend", "ttlan.soyte@hagiang.gov.vn", "--clause", "HG-2024 Đ8.2.a",
                    *common, env=env)
    assert wrong.returncode == 1 and "is not a ground for suspension" in wrong.stderr
    before = agency_file.read_text(encoding="utf-8")

    done = run_cli("suspend", "ttlan.soyte@hagiang.gov.vn", "--clause", "HG-2024 Đ8.2.b",
                   "--note", "cảnh báo của VNCERT, CV 7/2026", *common, env=env)
    assert done.returncode == 0, done.stderr
    # the directory: locked, citing the clause; the old password no longer binds
    live = entry(directory, BASE_HG, "HG-0101")
    assert live.get("govMailSuspendReason") == "HG-2024 Đ8.2.b: cảnh báo của VNCERT, CV 7/2026"
    assert ldapwhoami(slapd, live.dn, password).returncode != 0
    # the file: only the record's lines changed, its comment kept
    after = agency_file.read_text(encoding="utf-8")
    assert "# nhân sự" in after
    added = set(after.splitlines()) - set(before.splitlines())
    assert set(before.splitlines()) <= set(after.splitlines())
    assert {line.strip() for line in added} == {
        "state: suspended",
        'suspension: {clause: "HG-2024 Đ8.2.b", note: "cảnh báo của VNCERT, CV 7/2026"}',
    }
    # audited, with the clause, and the agency told
    records = [json.loads(line) for line in
               (tmp_path / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    (suspended,) = [r for r in records if r["event"] == "suspend"]
    assert suspended["clause"] == "HG-2024 Đ8.2.b" and suspended["actor"] == "trực ban"
    assert list((tmp_path / "audit" / "notices").glob("*-soyte.eml"))
    # the next plan neither restores nor differs
    assert scenario.plan(folder, directory).empty
    # a second time: already suspended, nothing changed
    again = run_cli("suspend", "ttlan.soyte@hagiang.gov.vn", "--clause", "HG-2024 Đ8.2.b",
                    *common, env=env)
    assert again.returncode == 1 and "already suspended" in again.stderr
    assert agency_file.read_text(encoding="utf-8") == after
    directory.close()
