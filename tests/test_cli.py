"""The commands as a user runs them: exit codes, messages in plain words, no traceback.

In-process (`helpers.run_cli`), but for the end-to-end runs of the installed console script and
of `python -m reconciler` at the end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import __version__
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import open_directory

from . import scenario
from .helpers import CliResult, ldapwhoami, run_cli_process
from .helpers import run_cli as run

BASE = "dc=hagiang,dc=example,dc=gov,dc=vn"


def server_env(server: Slapd) -> dict[str, str]:
    return {
        "RECONCILER_DIRECTORY": server.url,
        "RECONCILER_BIND_DN": server.root_dn,
        "RECONCILER_BIND_PASSWORD": server.root_pw,
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def no_traceback(result: CliResult | subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr


def test_every_command_has_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("validate", "plan", "apply", "address", "reset-password"):
        assert command in result.stdout
        sub = run(command, "--help")
        assert sub.returncode == 0 and "Usage:" in sub.stdout


def test_every_command_is_in_the_groups_table_under_its_own_module() -> None:
    """The group imports a command's module only when the command is asked for: a command
    missing from `COMMANDS` (or under another module) would be unknown to `reconciler`."""
    import importlib

    from reconciler.cli import app

    for module in sorted(Path(app.__file__).parent.glob("[!_]*.py")):
        importlib.import_module(f"reconciler.cli.{module.stem}")  # each registers its own
    registered = {
        name: command.callback.__module__.rsplit(".", 1)[-1]
        for name, command in app.main.commands.items()
        if command.callback is not None and name != "probe"
    }
    assert registered == app.COMMANDS


def test_a_command_starts_without_the_other_commands_modules() -> None:
    """`apply` (its help, here) imports its own module, not every command's."""
    probe = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "main(['apply', '--help'], standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('reconciler.cli.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = done.stdout.strip().splitlines()[-1]
    assert "reconciler.cli.apply_cmd" in loaded
    assert "_cmd" not in loaded.replace("reconciler.cli.apply_cmd", "")


def test_apply_freezes_what_is_alive_at_exit_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interpreter's last collections need not walk what a run leaves (`gc.freeze` at exit),
    registered once however many applies a process runs."""
    import gc

    from reconciler.cli import apply_cmd

    registered: list[object] = []
    monkeypatch.setattr(apply_cmd, "_FROZEN_AT_EXIT", [])
    monkeypatch.setattr(apply_cmd.atexit, "register", registered.append)
    apply_cmd._freeze_at_exit()
    apply_cmd._freeze_at_exit()
    assert registered == [gc.freeze]


def test_address_command() -> None:
    result = run("address", "Nguyễn Văn Sơn", "--regulation", "hagiang-2024", "--agency", "sotttt")
    assert result.returncode == 0
    assert result.stdout.strip() == "nvson.sotttt@hagiang.gov.vn"
    result = run("address", "Nguyễn Thị Tú Vân", "--regulation", "quangnam-2020")
    assert result.stdout.strip() == "vanntt@quangnam.gov.vn"
    bad = run("address", "Nam", "--regulation", "quangnam-2020")
    assert bad.returncode == 1 and "Error:" in bad.stderr
    no_traceback(bad)


@pytest.mark.slapd
def test_plan_apply_plan_through_the_cli(slapd: Slapd, tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    env = server_env(slapd)
    plan_file = tmp_path / "plan.json"
    first = run("plan", str(folder), "--out", str(plan_file), "--detailed-exitcode", env=env)
    assert first.returncode == 2, first.stderr
    assert "Plan: 5 to create" in first.stdout
    digest = json.loads(plan_file.read_text(encoding="utf-8"))["digest"]

    # no credentials file: refused before anything is written
    refused = run("apply", str(plan_file), "--audit-log", str(tmp_path / "a.jsonl"), env=env)
    assert refused.returncode == 1 and "--credentials-out" in refused.stderr
    no_traceback(refused)
    # not the reviewed plan: refused
    wrong = run(
        "apply",
        str(plan_file),
        "--expect-digest",
        "sha256:0",
        "--credentials-out",
        str(tmp_path / "x.csv"),
        env=env,
    )
    assert wrong.returncode == 1 and "not the plan that was reviewed" in wrong.stderr
    assert not (tmp_path / "x.csv").exists() or (tmp_path / "x.csv").stat().st_size < 20

    creds = tmp_path / "creds.csv"
    applied = run(
        "apply",
        str(plan_file),
        "--expect-digest",
        digest,
        "--credentials-out",
        str(creds),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        "--actor",
        "ci",
        env=env,
    )
    assert applied.returncode == 0, applied.stderr
    assert "ok=0 changed=5 failed=0 skipped=0" in applied.stdout
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    rows = read_csv(creds)
    assert len(rows) == 5
    for row in rows:  # the password is in no output, no plan, no audit record
        for text in (
            applied.stdout,
            applied.stderr,
            plan_file.read_text(encoding="utf-8"),
            (tmp_path / "audit.jsonl").read_text(encoding="utf-8"),
        ):
            assert row["password"] not in text
    audit_text = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in audit_text.splitlines()]
    assert {r["actor"] for r in records} == {"ci"}
    assert sum(r["outcome"] == "changed" for r in records) >= 5

    second = run("plan", str(folder), "--detailed-exitcode", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "No changes" in second.stdout

    # the same plan again: everything is already there, nothing is changed
    again = run(
        "apply",
        str(plan_file),
        "--credentials-out",
        str(tmp_path / "again.csv"),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=env,
    )
    assert again.returncode == 0 and "ok=5 changed=0" in again.stdout

    # a password reset hands over a must-change password
    reset_file = tmp_path / "reset.csv"
    reset = run(
        "reset-password",
        "ttlan.soyte@hagiang.gov.vn",
        "--inventory",
        str(folder),
        "--credentials-out",
        str(reset_file),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=env,
    )
    assert reset.returncode == 0, reset.stderr
    password = read_csv(reset_file)[0]["password"]
    assert password not in reset.stdout + reset.stderr
    who = ldapwhoami(slapd, f"uid=ttlan.soyte,ou=people,{BASE}", password)
    assert "Password must be changed" in who.stdout + who.stderr


@pytest.mark.slapd
def test_directory_errors_are_one_readable_line(slapd: Slapd, tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    closed = run("plan", str(folder), "--directory", "ldap://127.0.0.1:1")
    assert closed.returncode == 1 and "127.0.0.1:1" in closed.stderr
    no_traceback(closed)
    env = server_env(slapd) | {"RECONCILER_BIND_PASSWORD": "wrong-secret-77"}
    wrong = run("plan", str(folder), env=env)
    assert wrong.returncode == 1 and "wrong-secret-77" not in wrong.stderr
    assert "credentials" in wrong.stderr.lower()
    no_traceback(wrong)
    spec = scenario.hg("dc=nowhere,dc=invalid")
    scenario.write(spec, folder)
    base = run("plan", str(folder), env=server_env(slapd))
    assert base.returncode == 1 and "dc=nowhere,dc=invalid" in base.stderr
    no_traceback(base)


def test_credentials_file_inside_a_git_tree_is_refused(tmp_path: Path) -> None:
    from reconciler.applying.credentials import CredentialsFile
    from reconciler.errors import ReconcilerError

    (tmp_path / ".git").mkdir()
    with pytest.raises(ReconcilerError, match="git work tree"):
        CredentialsFile(tmp_path / "creds.csv")
    assert not (tmp_path / "creds.csv").exists()


def test_invalid_inventory_exits_1_with_file_and_line(tmp_path: Path) -> None:
    spec = scenario.hg()
    spec["agencies"]["sotttt"]["staff"][0]["unit"] = "khongco"
    folder = scenario.write(spec, tmp_path / "inv")
    result = run("plan", str(folder), "--directory", f"ldif:{tmp_path / 'd.ldif'}")
    assert result.returncode == 1
    assert "agencies/sotttt.yaml:" in result.stderr and "khongco" in result.stderr
    no_traceback(result)


def test_a_plan_past_the_limits_is_shown_then_refused(tmp_path: Path) -> None:
    """The reviewer sees the plan the guard refuses, then why and how to allow it; exit 1, and
    no plan file to apply."""
    spec = scenario.hg(BASE)
    spec["agencies"]["soyte"]["staff"] = [
        {"id": f"HG-{200 + i}", "name": f"Lê Văn {chr(65 + i)}"} for i in range(11)
    ]
    folder = scenario.write(spec, tmp_path / "inv")
    url = f"ldif:{tmp_path / 'd.ldif'}"
    with open_directory(url) as directory:
        scenario.apply(scenario.plan(folder, directory), directory, tmp_path / "out")
    spec["agencies"]["soyte"]["staff"] = []
    scenario.write(spec, folder)
    plan_file = tmp_path / "plan.json"
    result = run("plan", str(folder), "--directory", url, "--out", str(plan_file))
    assert result.returncode == 1
    assert "0 to restore, 11 to delete." in result.stdout
    assert "Error: this plan deletes 11 mailboxes" in result.stderr
    assert "--allow-deletes 11" in result.stderr
    assert result.output.index("Plan: ") < result.output.index("Error: ")
    assert not plan_file.exists()


@pytest.mark.parametrize("example", ["quangnam", "hagiang"])
def test_bundled_examples_are_valid(example: str) -> None:
    result = run("validate", str(scenario.ROOT / "inventory" / example))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_a_failed_apply_that_issued_nothing_leaves_no_credentials_file(tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    plan_file = tmp_path / "plan.json"
    (tmp_path / "d.ldif").touch()  # an empty directory: only apply creates a missing one
    made = run(
        "plan", str(folder), "--directory", f"ldif:{tmp_path / 'd.ldif'}", "--out", str(plan_file)
    )
    assert made.returncode == 0, made.stderr
    creds = tmp_path / "creds.csv"
    failed = run(
        "apply",
        str(plan_file),
        "--directory",
        "ldap://127.0.0.1:1",
        "--credentials-out",
        str(creds),
        "--audit-log",
        str(tmp_path / "a.jsonl"),
    )
    assert failed.returncode == 1
    assert not creds.exists()  # so the same command can simply be run again


# End to end, in real processes: the console script pip installed, `python -m reconciler` --------


def test_the_console_script_end_to_end() -> None:
    valid = run_cli_process(
        "validate", str(scenario.ROOT / "inventory" / "hagiang"), console_script=True
    )
    assert valid.returncode == 0 and "valid" in valid.stdout, valid.stderr
    case = scenario.ROOT / "tests" / "broken" / "address-outside-domain"
    refused = run_cli_process("validate", ".", cwd=case, console_script=True)
    expected = (case / "expected.txt").read_text(encoding="utf-8").splitlines()
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.splitlines() == [*expected, f".: {len(expected)} problems found"]


def test_python_m_reconciler_end_to_end() -> None:
    version = run_cli_process("--version")
    assert version.returncode == 0 and version.stdout == f"reconciler, version {__version__}\n"
    bad = run_cli_process("address", "Nam", "--regulation", "quangnam-2020")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ") and bad.stdout == ""
    no_traceback(bad)


def test_a_mistyped_command_is_told_the_ones_it_may_mean() -> None:
    """The group imports a command's module only when it is asked for; a typo is still told
    the names it is near, from every command (click alone offers those already imported)."""
    typo = run_cli_process("valdate")  # a process of its own: no command imported before
    assert typo.returncode == 1
    assert "No such command 'valdate'. Did you mean 'validate'?" in typo.stderr
    near = run_cli_process("merge-list")
    assert "Did you mean one of: 'merge', 'merge-lists'?" in near.stderr
