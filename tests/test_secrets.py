"""Secrets: the bind password and the issued passwords appear in no output, log, plan, audit
record, exception message or file left behind; the bind password never comes from the command
line; credentials files are 0600, new, and outside any git work tree."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from reconciler.devtools.throwaway import Slapd

from . import scenario
from .helpers import CliResult, run_cli

BASE = "dc=hagiang,dc=example,dc=gov,dc=vn"


def cli(*args: str, env: dict[str, str], cwd: Path | None = None) -> CliResult:
    result = run_cli(*args, env=env, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def commands() -> list[str]:
    out = cli("--help", env={}).stdout
    return re.findall(r"^  ([a-z][a-z-]+) ", out.split("Commands:")[1], re.MULTILINE)


def test_the_bind_password_is_never_an_argument() -> None:
    for command in commands():
        assert "--bind-password " not in cli(command, "--help", env={}).stdout
        assert "--password" not in cli(command, "--help", env={}).stdout
    refused = cli(
        "plan", "x", "--directory", "ldap://127.0.0.1:1", "--bind-password", "s3cret", env={}
    )
    assert refused.returncode == 1 and "No such option '--bind-password'" in refused.stderr
    assert "s3cret" not in refused.stderr


@pytest.mark.slapd
@pytest.mark.slow
def test_hg_2024_d3_1_no_secret_leaks_from_any_command(slapd: Slapd, tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    secret_file = tmp_path / "secret" / "bind.pw"
    secret_file.parent.mkdir()
    secret_file.write_text(slapd.root_pw + "\n", encoding="utf-8")
    secret_file.chmod(0o600)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    by_env = {
        "RECONCILER_DIRECTORY": slapd.url,
        "RECONCILER_BIND_DN": slapd.root_dn,
        "RECONCILER_BIND_PASSWORD": slapd.root_pw,
        "TMPDIR": str(scratch),
    }
    by_file = {k: v for k, v in by_env.items() if k != "RECONCILER_BIND_PASSWORD"}
    file_opt = ["--bind-password-file", str(secret_file)]
    creds = tmp_path / "creds"
    creds.mkdir()
    audit = str(work / "audit.jsonl")
    runs: list[CliResult] = []

    def run(*args: str, env: dict[str, str] = by_env, ok: tuple[int, ...] = (0,)) -> None:
        result = cli(*args, env=env, cwd=work)
        assert result.returncode in ok, (args, result.stderr)
        runs.append(result)

    plan_file = str(work / "plan.json")
    run("validate", str(folder))
    run("address", "Nguyễn Văn Sơn", "--regulation", "hagiang-2024", "--agency", "sotttt")
    run("plan", str(folder), "--out", plan_file, "--format", "json", *file_opt, env=by_file)
    run("plan", str(folder), *file_opt, "--format", "markdown", env=by_file)
    run(
        "apply", plan_file, "--credentials-out", str(creds / "1.csv"), "--audit-log", audit,
        *file_opt, env=by_file,
    )  # fmt: skip
    run("plan", str(folder), "--detailed-exitcode")
    run(
        "reset-password", "ttlan.soyte@hagiang.gov.vn", "--inventory", str(folder),
        "--credentials-out", str(creds / "2.csv"), "--audit-log", audit,
    )  # fmt: skip
    extra = set(commands()) - {"validate", "address", "plan", "apply", "reset-password"}
    if "report" in extra:
        run("report", str(folder))
    if "publish" in extra:
        run("publish", str(folder), "--out", str(work / "public"))
    if "import" in extra:
        run("import", "--out", str(work / "imported"), *file_opt, env=by_file, ok=(0, 1))
    # a failing bind: the password given is in no message either
    wrong = {**by_env, "RECONCILER_BIND_PASSWORD": "Sai-m4t-khau!canary"}
    run("plan", str(folder), env=wrong, ok=(1,))

    issued = []
    for path in sorted(creds.glob("*.csv")):
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
        with path.open(encoding="utf-8", newline="") as f:
            issued += [row["password"] for row in csv.DictReader(f)]
    assert len(issued) == 6  # 5 mailboxes and one reset
    secrets = [slapd.root_pw, "Sai-m4t-khau!canary", *issued]
    texts = [r.stdout + r.stderr for r in runs]
    for path in [*work.rglob("*"), *scratch.rglob("*"), *folder.rglob("*")]:
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    assert len(texts) > len(runs) + 3
    for secret in secrets:
        for text in texts:
            assert secret not in text
    assert not list(scratch.iterdir()), "temporary files left behind"


@pytest.mark.slapd
def test_credentials_file_refusals_through_the_cli(slapd: Slapd, tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    env = {
        "RECONCILER_DIRECTORY": slapd.url,
        "RECONCILER_BIND_DN": slapd.root_dn,
        "RECONCILER_BIND_PASSWORD": slapd.root_pw,
    }
    plan_file = tmp_path / "plan.json"
    assert cli("plan", str(folder), "--out", str(plan_file), env=env).returncode == 0
    audit = str(tmp_path / "audit.jsonl")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    inside = cli(
        "apply", str(plan_file), "--credentials-out", str(repo / "sub" / "c.csv"),
        "--audit-log", audit, env=env,
    )  # fmt: skip
    assert inside.returncode == 1 and "inside the git work tree" in inside.stderr
    existing = tmp_path / "old.csv"
    existing.write_text("address,password\nx@hagiang.gov.vn,old\n", encoding="utf-8")
    again = cli(
        "apply", str(plan_file), "--credentials-out", str(existing), "--audit-log", audit, env=env
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    assert existing.read_text(encoding="utf-8").endswith("x@hagiang.gov.vn,old\n")
    with scenario.connect(slapd) as d:  # nothing was applied
        assert d.get(f"ou=people,{BASE}", ["ou"]) is None
