"""A month in an admin's shoes (issue 18): what a provincial admin tripped over, each point proven.

The CLI runs as a user runs it (`run_cli`); directories are LDIF files unless the point is about a
server, then the throwaway slapd. The history kept in the directory, the report that reads it and
the CI flows have their own tests (test_history.py, test_report_publish.py, test_workflow.py).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.cli import progress as progress_module
from reconciler.cli.progress import Progress, duration
from reconciler.directory import open_directory
from reconciler.errors import DirectoryError
from reconciler.model import Agency, Entry, Inventory, Person, Settings, Unit
from reconciler.outputs import publish
from reconciler.planning import planfile
from reconciler.planning.plan import BY_HAND

from . import scenario
from .helpers import run_cli

BASE = scenario.BASE_HG
ROOT = scenario.ROOT


def applied(tmp_path: Path, spec: dict | None = None) -> tuple[Path, str, dict[str, str]]:
    """An inventory applied to a new LDIF directory through the CLI: (inventory, URL, env)."""
    folder = scenario.write(spec or scenario.hg(BASE), tmp_path / "inv")
    ldif = tmp_path / "directory.ldif"
    ldif.touch()
    env = {
        "RECONCILER_DIRECTORY": f"ldif:{ldif}",
        "RECONCILER_AUDIT_LOG": str(tmp_path / "log" / "a.jsonl"),
    }
    made = run_cli("plan", str(folder), "--out", str(tmp_path / "p.json"), env=env)
    assert made.returncode == 0, made.stderr
    done = run_cli(
        "apply", str(tmp_path / "p.json"), "--credentials-out", str(tmp_path / "c.csv"), env=env
    )
    assert done.returncode == 0, done.stderr
    return folder, env["RECONCILER_DIRECTORY"], env


# --- 1. the audit log's place: one setting, never the current folder ------------------------


def test_audit_log_place_is_asked_for_never_the_current_folder(tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    ldif = tmp_path / "d.ldif"
    ldif.touch()
    env = {"RECONCILER_DIRECTORY": f"ldif:{ldif}"}
    run_cli("plan", str(folder), "--out", str(tmp_path / "p.json"), env=env)
    work = tmp_path / "inventory-repository"
    work.mkdir()
    refused = run_cli(
        "apply", str(tmp_path / "p.json"), "--credentials-out", str(tmp_path / "c.csv"),
        env=env, cwd=work,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "--audit-log FILE, set RECONCILER_AUDIT_LOG, or set audit_log" in refused.stderr
    assert not any(work.iterdir())  # no plans/ folder made where the command ran
    assert ldif.read_text(encoding="utf-8") == ""  # nothing applied

    # directory.yaml's audit_log reaches apply from the inventory, or through a plan bound by
    # its digest (a plan file alone cannot name a file for apply to append to)
    log = tmp_path / "kept" / "audit.jsonl"
    spec = scenario.hg(BASE) | {"audit_log": str(log), "audit_keep_months": 18}
    scenario.write(spec, folder)
    run_cli("plan", str(folder), "--out", str(tmp_path / "p.json"), env=env)
    assert json.loads((tmp_path / "p.json").read_text())["audit"] == {
        "log": str(log),
        "keep_months": 18,
    }
    unbound = run_cli(
        "apply", str(tmp_path / "p.json"), "--credentials-out", str(tmp_path / "c.csv"),
        env=env, cwd=work,
    )  # fmt: skip
    assert unbound.returncode == 1 and f"the plan names the audit log {log}" in unbound.stderr
    assert not log.exists()
    done = run_cli(
        "apply", str(tmp_path / "p.json"), "--credentials-out", str(tmp_path / "c.csv"),
        "--inventory", str(folder), env=env, cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert log.is_file() and not any(work.iterdir())
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert {(r["domain"], r["base_dn"]) for r in records} == {("hagiang.gov.vn", BASE)}
    # the environment wins over directory.yaml, the option over both
    other = tmp_path / "env.jsonl"
    again = run_cli(
        "apply", str(tmp_path / "p.json"), "--credentials-out", str(tmp_path / "c2.csv"),
        env={**env, "RECONCILER_AUDIT_LOG": str(other)},
    )  # fmt: skip
    assert again.returncode == 0 and other.is_file()


def test_relative_audit_log_in_directory_yaml_is_refused(tmp_path: Path) -> None:
    spec = scenario.hg(BASE) | {"audit_log": "plans/audit.jsonl"}
    folder = scenario.write(spec, tmp_path / "inv")
    result = run_cli("validate", str(folder))
    assert result.returncode == 1
    assert "directory.yaml:4: audit_log:" in result.stderr and "absolute path" in result.stderr


# --- 2. an LDIF file is read-only to every command but apply; the snapshot --------------------


def test_a_missing_ldif_file_is_no_such_file_and_is_never_created(tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    missing = tmp_path / "nonexist.ldif"
    for args in (
        ["plan", str(folder)],
        ["report", str(folder)],
        ["publish", str(folder), "--out", str(tmp_path / "pub")],
        ["import", "--out", str(tmp_path / "imported")],
        ["snapshot", "--out", str(tmp_path / "snap.ldif")],
    ):
        result = run_cli(*args, "--directory", f"ldif:{missing}")
        assert result.returncode == 1, args
        assert f"no such file: {missing}" in result.stderr, args
        assert not missing.exists(), args


def test_read_only_commands_never_write_the_ldif_file(tmp_path: Path) -> None:
    folder, url, env = applied(tmp_path)
    path = Path(url.removeprefix("ldif:"))
    before = (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    for args in (
        ["plan", str(folder), "--now", "2030-01-01"],
        ["report", str(folder)],
        ["publish", str(folder), "--out", str(tmp_path / "pub")],
    ):
        assert run_cli(*args, env=env).returncode in (0, 1)
    shutil.rmtree(tmp_path / "pub", ignore_errors=True)
    assert (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before
    with (
        open_directory(url, access="read") as directory,
        pytest.raises(DirectoryError, match="opened read-only"),
    ):
        directory.add(f"cn=x,{BASE}", {"objectClass": ["top"]})


def test_snapshot_is_password_free_deterministic_and_plans_like_the_directory(
    tmp_path: Path,
) -> None:
    folder, _url, env = applied(tmp_path)
    snap = tmp_path / "snapshot" / "directory.ldif"
    made = run_cli("snapshot", "--out", str(snap), env=env)
    assert made.returncode == 0, made.stderr
    text = snap.read_text(encoding="utf-8")
    assert "userPassword" not in text and "{SSHA}" not in text
    assert "govMailAuditRecord" not in text and "reconciler-lock" not in text
    assert "employeeNumber: HG-0001" in text and "pwdReset: TRUE" in text
    assert oct(snap.stat().st_mode & 0o777) == "0o600"
    # the same bytes again, and from a copy of itself: a diff shows only real changes
    again = tmp_path / "again.ldif"
    run_cli("snapshot", "--out", str(again), env=env)
    round_trip = tmp_path / "round.ldif"
    run_cli("snapshot", "--directory", f"ldif:{snap}", "--out", str(round_trip))
    assert snap.read_bytes() == again.read_bytes() == round_trip.read_bytes()
    # a fork's plan against the snapshot is the plan against the directory
    spec = scenario.hg(BASE)
    spec["agencies"]["soyte"]["staff"].append({"id": "HG-0102", "name": "Lê Văn Ba"})
    scenario.write(spec, folder)
    live = run_cli("plan", str(folder), "--format", "json", "--now", "2026-12-01", env=env)
    fork = run_cli(
        "plan", str(folder), "--format", "json", "--now", "2026-12-01", "--directory",
        f"ldif:{snap}",
    )  # fmt: skip
    assert json.loads(live.stdout)["operations"] == json.loads(fork.stdout)["operations"]


def test_import_and_reset_password_as_the_contract_writes_them(tmp_path: Path) -> None:
    """No --base-dn for an import from an LDIF file; no --inventory for a reset: the base DN
    comes from the directory (its naming context), the clause from the address's domain."""
    _folder, url, env = applied(tmp_path)
    imported = run_cli(
        "import", "--directory", url, "--out", str(tmp_path / "imported"),
        "--agency-attribute", "govMailAgency",  # an import that imports nothing exits 1
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert f"base_dn {BASE}" in imported.stdout
    reset = run_cli(
        "reset-password", "ttlan.soyte@hagiang.gov.vn", "--directory", url,
        "--credentials-out", str(tmp_path / "reset.csv"), env=env,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    assert "(HG-2024 Đ6.1)" in reset.stdout
    # and with no place for the audit log, it refuses before changing anything
    work = tmp_path / "repo"
    work.mkdir()
    refused = run_cli(
        "reset-password", "ttlan.soyte@hagiang.gov.vn", "--directory", url,
        "--credentials-out", str(tmp_path / "reset2.csv"), cwd=work,
    )  # fmt: skip
    assert refused.returncode == 1 and "RECONCILER_AUDIT_LOG" in refused.stderr
    assert not any(work.iterdir()) and not (tmp_path / "reset2.csv").exists()


# --- 5. show a saved plan; apply says what it does as it goes ---------------------------------


def test_show_renders_a_saved_plan_and_apply_prints_a_line_per_operation(tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    (tmp_path / "d.ldif").touch()
    env = {"RECONCILER_DIRECTORY": f"ldif:{tmp_path / 'd.ldif'}"}
    plan_file = tmp_path / "p.json"
    run_cli("plan", str(folder), "--out", str(plan_file), env=env)
    digest = planfile.digest(planfile.load(plan_file))
    text = run_cli("show", str(plan_file))
    assert text.returncode == 0 and "Plan: 5 to create" in text.stdout and digest in text.stdout
    markdown = run_cli("show", str(plan_file), "--format", "markdown")
    assert (
        "### Directory plan for `hagiang.gov.vn`" in markdown.stdout and digest in markdown.stdout
    )
    as_json = run_cli("show", str(plan_file), "--format", "json")
    assert json.loads(as_json.stdout)["digest"] == digest
    edited = tmp_path / "edited.json"
    edited.write_text(plan_file.read_text().replace("Nguyễn Văn Sơn", "Nguyễn Văn Sớn"))
    for bad in (edited, tmp_path / "missing.json"):
        refused = run_cli("show", str(bad))
        assert refused.returncode == 1 and refused.stderr.startswith("Error: ")

    result = run_cli(
        "apply", str(plan_file), "--credentials-out", str(tmp_path / "c.csv"), "--audit-log",
        str(tmp_path / "a.jsonl"), env=env,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert "changed create  nvson.sotttt@hagiang.gov.vn (HG-0001)" in lines
    assert len([x for x in lines if x.startswith("changed ")]) == 5
    assert lines[-1] == "Recap: ok=0 changed=5 failed=0 skipped=0"
    assert "5 initial passwords written" in result.stderr


# --- 6. exit codes: a usage error is an error (1), never "changes" (2) ------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "inv", "--detailed-exitcode", "--now", "yesterday"],
        ["plan", "inv", "--detailed-exitcode", "--no-such-option"],
        ["bogus-command"],
        [],
        ["show"],
    ],
)
def test_usage_errors_exit_1(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(*args, env={"RECONCILER_DIRECTORY": f"ldif:{tmp_path / 'd.ldif'}"})
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr


# --- 7. progress --------------------------------------------------------------------------------


def test_progress_estimates_only_after_a_real_rate_in_minutes_and_hours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    shown = Progress("applying", 100_000, stream=out, every=1.0, minimum=0)
    clock[0] += 1.0
    shown(1)  # the first item, one second in: no rate, no guess
    clock[0] += 4.0
    shown(500)  # 100/s for five seconds: about 17 minutes left
    clock[0] += 5.0
    shown(1000)
    lines = out.getvalue().splitlines()
    assert lines[0] == "applying: 1 of 100,000"
    assert lines[1] == "applying: 500 of 100,000, about 17 min left (100/s)"
    assert "left" in lines[2] and "/s)" in lines[2]
    assert [duration(s) for s in (0.2, 40, 89, 90, 3599, 5400, 157621)] == [
        "1 s",
        "40 s",
        "89 s",
        "2 min",
        "60 min",
        "1 h 30 min",
        "43 h 47 min",
    ]


def test_plan_reports_its_progress_while_it_computes(tmp_path: Path) -> None:
    from reconciler.planning import pipeline
    from reconciler.planning.plan import Context

    spec = scenario.hg(BASE)
    spec["agencies"]["soyte"]["staff"] = [
        {"id": f"HG-{5000 + i}", "name": "Lê Văn Ba"} for i in range(2500)
    ]
    folder = scenario.write(spec, tmp_path / "inv")
    loaded = pipeline.load(folder)
    calls: list[tuple[int, int]] = []
    pipeline.make_plan(
        loaded,
        [],
        Context(now=scenario.NOW),
        limits=None,
        progress=lambda d, t: calls.append((d, t)),
    )
    total = calls[0][1]
    assert total > 2500 and [d for d, _ in calls] == list(range(0, total, 1000))


# --- 10. files with personal data ---------------------------------------------------------------


def test_audit_log_and_applied_plans_are_private(tmp_path: Path) -> None:
    old = tmp_path / "log" / "a.jsonl"
    old.parent.mkdir()
    old.write_text("")
    old.chmod(0o644)  # a log made by an older version
    applied(tmp_path)
    assert oct(old.stat().st_mode & 0o777) == "0o600"
    [kept] = (tmp_path / "log" / "applied").iterdir()
    assert oct(kept.stat().st_mode & 0o777) == "0o600"


def test_a_bind_password_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    secret = tmp_path / "bind.pw"
    secret.write_text("s3cret-Canary\n")
    for mode in (0o644, 0o640, 0o604):
        secret.chmod(mode)
        result = run_cli(
            "plan", str(folder), "--directory", "ldap://127.0.0.1:1", "--bind-dn", "cn=x",
            "--bind-password-file", str(secret),
        )  # fmt: skip
        assert result.returncode == 1
        assert f"readable by others (mode {mode:04o})" in result.stderr
        assert f"chmod 600 {secret}" in result.stderr and "s3cret" not in result.stderr
    secret.chmod(0o600)
    result = run_cli(
        "plan", str(folder), "--directory", "ldap://127.0.0.1:1", "--bind-dn", "cn=x",
        "--bind-password-file", str(secret),
    )  # fmt: skip
    assert "readable by others" not in result.stderr and "127.0.0.1:1" in result.stderr


# --- 12. small things ---------------------------------------------------------------------------


def test_one_is_singular(tmp_path: Path) -> None:
    folder, url, env = applied(tmp_path)
    spec = scenario.hg(BASE)
    spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    scenario.write(spec, folder)
    run_cli("plan", str(folder), "--out", str(tmp_path / "p2.json"), env=env)
    with open_directory(url) as directory:  # someone changes that entry meanwhile
        found = next(directory.find(BASE, "employeeNumber", ["HG-0101"], ["cn"]))
        directory.modify(found.dn, {"title": ["Chuyên viên chính"]})
    stale = run_cli(
        "apply", str(tmp_path / "p2.json"), "--credentials-out", str(tmp_path / "c2.csv"), env=env
    )
    assert stale.returncode == 1 and "the plan is stale: 1 entry changed" in stale.stderr
    valid = run_cli("validate", str(scenario.write(_one_agency(), tmp_path / "one")))
    assert "1 agency, 1 staff" in valid.stdout


def _one_agency() -> dict:
    spec = scenario.hg(BASE)
    del spec["agencies"]["soyte"]
    return spec


def test_publish_lists_a_unit_by_rank_then_by_name() -> None:
    unit = Unit("lanhdao", "Ban Giám đốc", "lanhdao")
    agency = Agency("soyte", "Sở Y tế", "soyte", units=(unit,))
    people = (
        Person("HG-3", "Âu Văn Phó", "soyte", unit="lanhdao", title="Phó Giám đốc", rank=2),
        Person("HG-1", "Vũ Văn Trưởng", "soyte", unit="lanhdao", title="Giám đốc", rank=1),
        Person("HG-2", "Bùi Thị Viên", "soyte", unit="lanhdao", title="Chuyên viên"),
        Person("HG-4", "An Văn Viên", "soyte", unit="lanhdao", title="Chuyên viên"),
    )
    inventory = Inventory(Settings("hagiang-2024", "hagiang.gov.vn", BASE), (agency,), people)
    entries = [
        Entry(
            f"uid=u{p.id},ou=people,{BASE}",
            {
                "objectclass": ("govMailAccount",),
                "employeenumber": (p.id,),
                "mail": (f"u{p.id.lower()}@hagiang.gov.vn",),
            },
        )
        for p in people
    ]
    [listed] = publish.build(inventory, entries).agencies
    assert [s.title for s in listed.staff] == [
        "Giám đốc",
        "Phó Giám đốc",
        "Chuyên viên",
        "Chuyên viên",
    ]
    assert [s.name for s in listed.staff][2:] == ["An Văn Viên", "Bùi Thị Viên"]


def test_a_change_made_by_hand_and_taken_back_says_so(tmp_path: Path) -> None:
    folder, url, env = applied(tmp_path)
    with open_directory(url) as directory:
        found = next(directory.find(BASE, "employeeNumber", ["HG-0001"], ["cn"]))
        directory.modify(found.dn, {"title": ["Phó Giám đốc"]})
    by_hand = run_cli("plan", str(folder), env=env)
    assert by_hand.returncode == 0, by_hand.stderr
    assert f"title changed; {BY_HAND}" in by_hand.stdout
    # an inventory change is no change made by hand
    spec = scenario.hg(BASE)
    spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    scenario.write(spec, folder)
    planned = run_cli("plan", str(folder), env=env)
    assert "HG-0101" in planned.stdout and planned.stdout.count(BY_HAND) == 1


def test_suspending_the_manager_of_an_organisation_mailbox_warns(tmp_path: Path) -> None:
    spec = scenario.hg(BASE)
    spec["agencies"]["sotttt"]["manager"] = "HG-0001"
    folder, _url, env = applied(tmp_path, spec)
    boss = spec["agencies"]["sotttt"]["staff"][0]
    boss |= {"state": "suspended", "suspension": {"clause": "HG-2024 Đ8.2.b", "note": "lộ"}}
    scenario.write(spec, folder)
    result = run_cli("plan", str(folder), "--allow-suspends", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "note: Nguyễn Văn Sơn (HG-0001) manages the mailbox sotttt@hagiang.gov.vn and is "
        "suspended by this plan: name another manager of it in agencies/sotttt.yaml"
    ) in result.stdout


def test_plan_only_time_rules_keeps_what_the_clock_causes(tmp_path: Path) -> None:
    folder, _url, env = applied(tmp_path)
    spec = scenario.hg(BASE)
    spec["agencies"]["soyte"]["staff"].append({"id": "HG-0102", "name": "Lê Văn Ba"})
    scenario.write(spec, folder)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=40)).date().isoformat()
    full = run_cli("plan", str(folder), "--now", later, "--format", "json",
                   "--allow-suspends", "9", env=env)  # fmt: skip
    only = run_cli("plan", str(folder), "--now", later, "--format", "json", "--only-time-rules",
                   "--allow-suspends", "9", env=env)  # fmt: skip
    actions = [op["action"] for op in json.loads(full.stdout)["operations"]]
    assert sorted(actions) == ["create", *["suspend"] * 5]  # HG-2024 Đ8.2.d, everyone
    kept = json.loads(only.stdout)
    assert [op["action"] for op in kept["operations"]] == ["suspend"] * 5
    assert {op["clause"] for op in kept["operations"]} == {"HG-2024 Đ8.2.d"}
    assert kept["notes"][-1].startswith("1 other operation (changes of the inventory")
    # the guard counts what is kept
    guarded = run_cli("plan", str(folder), "--now", later, "--only-time-rules", env=env)
    assert guarded.returncode == 1 and "--allow-suspends 5" in guarded.stderr


def test_the_project_carries_what_its_users_read() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in readme
    clauses = (ROOT / "docs" / "regulations.md").read_text(encoding="utf-8")
    for clause in ("Đ7.2", "Đ13.6", "Đ8.2.d", "Đ8.4"):
        assert clause in clauses
    walkthrough = (ROOT / "docs" / "walkthrough.md").read_text(encoding="utf-8")
    assert "(issue " not in walkthrough.lower()
    blocks = walkthrough.split("```")[1::2]
    assert len(blocks) == len(set(blocks)), "a block is printed twice"
    for doc in (readme, walkthrough):
        for name in ("docs/regulations.md", "docs/walkthrough.md"):
            if name in doc:
                assert (ROOT / name).is_file()


def test_usage_error_in_a_subprocess_is_1_too() -> None:
    """The console script itself, not only the group in this process."""
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "reconciler"), "plan", "--now", "x", "inv"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1


# --- 9. validate in pull requests -----------------------------------------------------------


def _broken(tmp_path: Path) -> Path:
    """An inventory with a schema error (a rank in words), a date that does not exist in the
    same record, and an address the regulation cannot give (the organisation mailbox's
    address is pinned on a person)."""
    spec = scenario.hg(BASE)
    lan = spec["agencies"]["soyte"]["staff"][0]
    lan |= {"rank": "one", "restored": "2026-02-30"}
    spec["agencies"]["sotttt"]["staff"][0]["address"] = "soyte@hagiang.gov.vn"
    return scenario.write(spec, tmp_path / "inv")


def test_validate_reports_schema_and_regulation_problems_in_one_run(tmp_path: Path) -> None:
    folder = _broken(tmp_path)
    result = run_cli("validate", str(folder))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any("staff[0].rank: expected a whole number" in x for x in lines)
    assert any('staff[0].restored: "2026-02-30" is not a real date' in x for x in lines)
    assert any("soyte@hagiang.gov.vn, already held" in x for x in lines)
    assert lines[-1].endswith("3 problems found")


def test_validate_annotates_github_and_reports_code_quality_to_gitlab(tmp_path: Path) -> None:
    folder = _broken(tmp_path)
    shown = run_cli("validate", "inv", cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    annotations = [x for x in shown.stdout.splitlines() if x.startswith("::error ")]
    assert len(annotations) == 3 and shown.returncode == 1
    assert any(
        x.startswith("::error file=inv/agencies/soyte.yaml,line=")
        and ",title=reconciler validate::staff[0].rank: expected a whole number" in x
        for x in annotations
    )
    assert "inv/agencies/soyte.yaml:" in shown.stderr  # and the plain lines for the log
    quality = run_cli("validate", str(folder), "--format", "gitlab", cwd=tmp_path)
    issues = json.loads(quality.stdout)
    assert len(issues) == 3
    assert {i["location"]["path"] for i in issues} == {"inv/agencies/soyte.yaml"}
    assert all(i["location"]["lines"]["begin"] >= 1 and i["fingerprint"] for i in issues)
    clean = run_cli("validate", str(ROOT / "inventory" / "hagiang"), "--format", "gitlab")
    assert clean.returncode == 0 and json.loads(clean.stdout) == []


def test_github_annotation_data_is_escaped() -> None:
    from reconciler.cli.inventory_cmds import github
    from reconciler.errors import Problem

    text = github((Problem("a,b:c.yaml", 3, "50% off\nnext"),))
    assert (
        text == "::error file=a%2Cb%3Ac.yaml,line=3,title=reconciler validate::50%25 off%0Anext\n"
    )
