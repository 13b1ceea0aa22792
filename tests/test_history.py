"""The audit history kept in the directory (ou=history): written by apply and reset-password,
read by the report and the plan, pruned to its retention; and the report's view of a local audit
log shared by several directories."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from reconciler.devtools.throwaway import PROJECT_SCHEMA, Slapd
from reconciler.directory import history
from reconciler.directory.history import OBJECT_CLASS, RECORD, TIME, Writer, history_dn

from . import scenario
from .helpers import admin_connection, run_cli

BASE = scenario.BASE_HG
SCHEMAS = PROJECT_SCHEMA.parent


def server_env(server: Slapd, tmp_path: Path) -> dict[str, str]:
    return {
        "RECONCILER_DIRECTORY": server.url,
        "RECONCILER_BIND_DN": server.root_dn,
        "RECONCILER_BIND_PASSWORD": server.root_pw,
        "RECONCILER_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
    }


def plan_and_apply(folder: Path, env: dict[str, str], tmp_path: Path, name: str) -> str:
    plan_file = tmp_path / f"{name}.json"
    made = run_cli("plan", str(folder), "--out", str(plan_file), env=env)
    assert made.returncode == 0, made.stderr
    done = run_cli(
        "apply", str(plan_file), "--credentials-out", str(tmp_path / f"{name}.csv"), env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slapd
def test_apply_keeps_its_records_in_the_directory_and_the_report_reads_them(
    slapd: Slapd, tmp_path: Path
) -> None:
    env = server_env(slapd, tmp_path)
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    plan_and_apply(folder, env, tmp_path, "first")
    spec = scenario.hg(BASE)
    spec["agencies"]["soyte"]["staff"].append({"id": "HG-0102", "name": "Lê Văn Ba"})
    scenario.write(spec, folder)
    plan_and_apply(folder, env, tmp_path, "second")
    with admin_connection(slapd) as conn:
        conn.search(history_dn(BASE), f"(objectClass={OBJECT_CLASS})", attributes=[TIME, RECORD])
        batches = conn.entries
    assert len(batches) >= 2  # one batch or more per run, not one entry per operation
    values = [json.loads(v) for e in batches for v in e[RECORD].values]
    created = [v for v in values if v["e"] == "create" and v["o"] == "changed"]
    assert {v["id"] for v in created} == {
        "HG-0001", "HG-0101", "HG-0102", "agency:sotttt", "agency:soyte", "unit:sotttt/vanphong",
    }  # fmt: skip
    assert all(v["a"] and v["h"] and "@hagiang.gov.vn" in v["m"] for v in created)
    assert not any("password" in json.dumps(v).lower() for v in values)

    # the local log is gone (another CI runner): the report counts from the directory itself
    (tmp_path / "audit.jsonl").unlink()
    report = run_cli("report", str(folder), "--format", "csv", env=env)
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    rows = {line.split(",")[1]: line.split(",") for line in lines if line.startswith("Cơ quan,")}
    assert rows["soyte"][6] == "3" and rows["sotttt"][6] == "3"  # created in the period
    # the plan sees no history entry as an unmanaged entry, and plans nothing
    again = run_cli("plan", str(folder), "--detailed-exitcode", env=env)
    assert again.returncode == 0 and "not managed" not in again.stdout


@pytest.mark.slapd
def test_apply_prunes_the_history_older_than_its_retention_and_nothing_else(
    slapd: Slapd, tmp_path: Path
) -> None:
    env = server_env(slapd, tmp_path)
    spec = scenario.hg(BASE) | {"audit_keep_months": 12}
    folder = scenario.write(spec, tmp_path / "inv")
    plan_and_apply(folder, env, tmp_path, "first")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=300)
    with admin_connection(slapd) as conn:
        for name, moment in (("old", old), ("recent", recent)):
            conn.add(
                f"cn={name},{history_dn(BASE)}",
                ["top", OBJECT_CLASS],
                {TIME: moment.strftime("%Y%m%d%H%M%SZ"), RECORD: ['{"e":"create"}']},
            )
        # another tool's entry in the same container (issue 16 keeps tombstones there)
        conn.add(f"cn=tombstone,{history_dn(BASE)}", ["top", "applicationProcess"])
    spec["agencies"]["soyte"]["staff"].append({"id": "HG-0102", "name": "Lê Văn Ba"})
    scenario.write(spec, folder)
    plan_and_apply(folder, env, tmp_path, "second")
    with admin_connection(slapd) as conn:
        conn.search(history_dn(BASE), "(cn=*)", attributes=["cn"])
        names = {str(e.cn) for e in conn.entries}
    assert "old" not in names and {"recent", "tombstone"} <= names
    records = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any(
        r["event"] == "history" and r["pruned"] == 1 and r["kept_months"] == 12 for r in records
    )


@pytest.mark.slapd
def test_reset_password_is_on_the_history_too(slapd: Slapd, tmp_path: Path) -> None:
    env = server_env(slapd, tmp_path)
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    plan_and_apply(folder, env, tmp_path, "first")
    reset = run_cli(
        "reset-password", "ttlan.soyte@hagiang.gov.vn", "--base-dn", BASE,
        "--credentials-out", str(tmp_path / "reset.csv"), env=env,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    with scenario.connect(slapd) as directory:
        kept = history.records(directory, BASE)
    assert [r["outcome"] for r in kept if r["event"] == "reset-password"] == ["started", "changed"]


def test_a_batch_per_run_of_records_not_an_entry_per_operation(tmp_path: Path) -> None:
    from reconciler.directory import open_directory

    with open_directory(f"ldif:{tmp_path / 'd.ldif'}") as directory:
        directory.add(BASE, {"objectClass": ["top", "organization"], "o": ["hg"]})
        writer = Writer(directory, BASE, "run1")
        writer.add({"time": "2026-12-01T00:00:00+00:00", "event": "apply", "outcome": "started"})
        for i in range(2500):
            writer.add({"time": "2026-12-01T00:00:01+00:00", "event": "create", "id": f"X-{i}",
                        "outcome": "changed", "before": {"cn": ["x"]}})  # fmt: skip
        writer.close()
        batches = [e for e in directory.read(history_dn(BASE), [RECORD]) if e.all(RECORD)]
        assert len(batches) == 4  # the start, then 1000 at a time
        kept = history.records(directory, BASE)
    assert len(kept) == 2501 and "before" not in kept[1]
    assert history.applied_digests([{"id": "X", "outcome": "changed", "digest": "d1"}]) == {
        "X": "d1"
    }


@pytest.mark.slapd
@pytest.mark.slow
def test_a_directory_without_the_history_schema_stops_apply_before_any_change(
    tmp_path: Path,
) -> None:
    """A server still on the schema of an earlier release: apply stops at its first record,
    with what to do, and the directory is unchanged."""
    text = PROJECT_SCHEMA.read_text(encoding="utf-8")
    old = tmp_path / "govmail-old.schema"
    old.write_text(text[: text.index("# The audit history")], encoding="utf-8")
    server = Slapd(tmp_path / "slapd", schema=old)
    server.start()
    try:
        env = server_env(server, tmp_path)
        folder = scenario.write(scenario.hg(server.suffix), tmp_path / "inv")
        made = run_cli("plan", str(folder), "--out", str(tmp_path / "p.json"), env=env)
        assert made.returncode == 0, made.stderr
        done = run_cli(
            "apply", str(tmp_path / "p.json"), "--credentials-out", str(tmp_path / "c.csv"),
            env=env,
        )  # fmt: skip
        assert done.returncode == 1
        assert "object class govMailAuditLog" in done.stderr
        assert not (tmp_path / "c.csv").exists()
        with admin_connection(server) as conn:
            conn.search(server.suffix, "(objectClass=govMailAccount)", attributes=["uid"])
            assert conn.entries == []
    finally:
        server.stop()


def test_the_two_schema_files_say_the_same() -> None:
    """govmail.ldif is govmail.schema as slaptest converts it (the lead's rule: keep both in
    step)."""
    conf = (
        "".join(
            f"include /etc/ldap/schema/{name}.schema\n"
            for name in ("core", "cosine", "inetorgperson", "nis")
        )
        + f"include {PROJECT_SCHEMA}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "slapd.conf").write_text(conf)
        (Path(tmp) / "out").mkdir()
        subprocess.run(
            ["slaptest", "-f", f"{tmp}/slapd.conf", "-F", f"{tmp}/out"],
            check=True,
            capture_output=True,
        )
        converted = next((Path(tmp) / "out").rglob("cn={4}govmail.ldif")).read_text()

    def definitions(text: str) -> list[str]:
        unfolded = re.sub(r"\n ", "", text)
        found = re.findall(
            r"^olc(?:AttributeTypes|ObjectClasses): (?:\{\d+\})?(.*)$", unfolded, re.M
        )
        return [" ".join(d.split()) for d in found]

    shipped = (SCHEMAS / "govmail.ldif").read_text(encoding="utf-8")
    assert definitions(shipped) == definitions(converted)


def test_the_report_counts_only_its_own_directory_of_a_shared_log(tmp_path: Path) -> None:
    """Two provinces applied with one audit log, as scripts/demo does: each report counts its own
    records, and says how many others it left out."""
    log = tmp_path / "shared.jsonl"
    env = {"RECONCILER_AUDIT_LOG": str(log)}
    reports = {}
    for name, spec in (
        ("hg", scenario.hg(scenario.BASE_HG)),
        ("qn", scenario.qn(scenario.BASE_QN)),
    ):
        folder = scenario.write(spec, tmp_path / name)
        (tmp_path / f"{name}.ldif").touch()
        url = f"ldif:{tmp_path / f'{name}.ldif'}"
        run_cli("plan", str(folder), "--directory", url, "--out", str(tmp_path / f"{name}.json"))
        done = run_cli(
            "apply", str(tmp_path / f"{name}.json"), "--directory", url, "--credentials-out",
            str(tmp_path / f"{name}.csv"), env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        reports[name] = (folder, url)
    folder, url = reports["hg"]
    result = run_cli(
        "report", str(folder), "--directory", url, "--audit-log", str(log), "--format", "csv"
    )
    assert result.returncode == 0, result.stderr
    assert "records of other directories" in result.stderr
    total = next(line for line in result.stdout.splitlines() if line.startswith("Tổng,"))
    assert total.split(",")[6] == "5"  # Hà Giang's five creations, none of Quảng Nam's
    assert "không có trong kho" not in result.stdout
