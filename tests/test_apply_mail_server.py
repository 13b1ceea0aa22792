"""What apply owes the mail server: it refuses to suspend on a server that would not lock the
accounts (before writing anything), and it erases a deleted mailbox's mail with the command of
directory.yaml, on record in the audit log. (The same against live Postfix and Dovecot:
tests/test_mail.py.)"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.devtools.throwaway import Slapd
from reconciler.directory import open_directory
from reconciler.model import Action
from reconciler.planning import planfile

from . import scenario
from .helpers import admin_connection, run_cli
from .scenario import BASE_HG


def snapshot(server: Slapd) -> set[tuple[str, str]]:
    """Every entry but the audit history's: a refused run is on the history (apply records its
    start there before it writes anything else), and writes nothing more."""
    with admin_connection(server) as conn:
        conn.search(server.suffix, "(!(objectClass=govMailAuditLog))", attributes=["*", "+"])
        found = [r for r in conn.response if r["type"] == "searchResEntry"]
        return {(r["dn"], json.dumps(r["attributes"], default=str, sort_keys=True))
                for r in found if not r["dn"].startswith("ou=history,")}  # fmt: skip


def suspend_plan(server: Slapd, tmp: Path) -> tuple[Path, dict[str, Any]]:
    """The example province applied, then a plan that suspends one mailbox, saved."""
    spec = scenario.hg()
    folder = scenario.write(spec, tmp / "inv")
    with scenario.connect(server) as directory:
        recap = scenario.apply(scenario.plan(folder, directory), directory, tmp / "out")
        assert recap.failed == 0, recap.messages
        person = spec["agencies"]["soyte"]["staff"][0]
        person["state"] = "suspended"
        person["suspension"] = {"clause": "HG-2024 Đ8.1", "note": "theo đề nghị"}
        scenario.write(spec, folder)
        plan = scenario.plan(folder, directory)
    assert [op.action for op in plan.operations] == [Action.SUSPEND]
    path = tmp / "plan.json"
    planfile.save(plan, path)
    return path, spec


def cli_apply(server: Slapd, plan: Path, tmp: Path, *extra: str) -> tuple[int, str]:
    result = run_cli(
        "apply", str(plan), "--directory", server.url, "--bind-dn", server.root_dn,
        "--audit-log", str(tmp / "audit.jsonl"), *extra,
        env={"RECONCILER_BIND_PASSWORD": server.root_pw},
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def unlocking(tmp_path: Path) -> Iterator[Slapd]:
    with Slapd(tmp_path / "nolockout", lockout=False) as server:
        yield server


@pytest.mark.slapd
def test_a_suspension_on_a_server_that_would_not_lock_is_refused_before_any_write(
    unlocking: Slapd, tmp_path: Path
) -> None:
    plan, _ = suspend_plan(unlocking, tmp_path)
    before = snapshot(unlocking)
    code, out = cli_apply(unlocking, plan, tmp_path)
    assert code == 1, out
    assert "would not lock the 1 mailbox this plan suspends" in out
    assert "pwdLockout: TRUE" in out and "reconciler doctor" in out and "Nothing was applied" in out
    assert snapshot(unlocking) == before  # not even the lock entry


@pytest.mark.slapd
def test_a_policy_that_cannot_be_read_needs_the_option_that_names_the_risk(
    slapd: Slapd, tmp_path: Path
) -> None:
    plan, _ = suspend_plan(slapd, tmp_path)
    with admin_connection(slapd) as conn:  # two policies, no cn=config: which is the default?
        conn.add(f"cn=other,ou=policies,{slapd.suffix}",
                 attributes={"objectClass": ["person", "pwdPolicy"], "cn": "other", "sn": "other",
                             "pwdAttribute": "userPassword"})  # fmt: skip
    before = snapshot(slapd)
    code, out = cli_apply(slapd, plan, tmp_path)
    assert code == 1, out
    assert "cannot tell whether the directory" in out and "--suspend-without-lock-check" in out
    assert snapshot(slapd) == before
    code, out = cli_apply(slapd, plan, tmp_path, "--suspend-without-lock-check")
    assert code == 0, out
    with admin_connection(slapd) as conn:
        conn.search(BASE_HG, "(employeeNumber=HG-0101)", attributes=["pwdAccountLockedTime"])
        assert conn.entries[0].pwdAccountLockedTime.value is not None


ERASER = """#!/bin/sh
printf '%s %s %s\\n' "$1" "$2" "${RECONCILER_BIND_PASSWORD:-no-password}" >> "$(dirname "$0")/calls"
if [ -e "$(dirname "$0")/fail" ]; then echo "the disk is busy" >&2; exit 3; fi
echo "erased $1"
"""


def test_a_deleted_mailbox_is_erased_by_the_configured_command_and_retried_after_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    eraser = tools / "erase"
    eraser.write_text(ERASER, encoding="utf-8")
    eraser.chmod(0o755)
    (tools / "fail").touch()
    monkeypatch.setenv("RECONCILER_BIND_PASSWORD", "Bind-secret-42")
    spec = scenario.hg()
    spec["mail_store"] = {"erase": [str(eraser), "{id}", "{address}"]}
    folder = scenario.write(spec, tmp_path / "inv")
    directory = open_directory(f"ldif:{tmp_path / 'directory.ldif'}")
    out = tmp_path / "out"
    first = scenario.plan(folder, directory)
    assert first.erase == () and scenario.apply(first, directory, out).failed == 0  # no delete
    spec["agencies"]["soyte"]["staff"].clear()
    scenario.write(spec, folder)
    plan = scenario.plan(folder, directory)
    assert [op.action for op in plan.operations] == [Action.DELETE]
    assert plan.erase == (str(eraser), "{id}", "{address}")
    assert any(str(eraser) in note for note in plan.notes)  # the reviewer sees it
    again = planfile.from_json(planfile.to_json(plan))
    assert again.erase == plan.erase and planfile.digest(again) == planfile.digest(plan)

    failed = scenario.apply(plan, directory, out)
    assert failed.failed == 1
    message = failed.messages[0]
    assert "erasing its mail failed" in message and "the disk is busy" in message
    os.unlink(tools / "fail")
    retried = scenario.apply(plan, directory, out)  # the delete is done: the erase runs again
    assert retried.failed == 0 and retried.ok == 1
    calls = (tools / "calls").read_text(encoding="utf-8").splitlines()
    assert calls == ["HG-0101 ttlan.soyte@hagiang.gov.vn no-password"] * 2  # no secret passed on
    records = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    erases = [(r["outcome"], r.get("status")) for r in records if r["event"] == "erase"]
    assert erases == [("failed", 3), ("changed", 0)]
    assert all(r["command"] == [str(eraser), "HG-0101", "ttlan.soyte@hagiang.gov.vn"]
               for r in records if r["event"] == "erase")  # fmt: skip
