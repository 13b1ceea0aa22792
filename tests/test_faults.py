"""Faults on a real throwaway slapd: the server stopped, killed, frozen, read-only, the connection
cut mid-search and mid-write, the apply killed, a full disk, two applies at once, an admin's
change racing an apply.

Every case checks the same promises: a clear error, exit 1, no traceback, the audit log says what
happened, and the next apply (or a fresh plan + apply) converges with no entry lost or duplicated,
no address issued twice, and a password on file for every mailbox created.

The faults that the LDAP library sees (the server gone, killed, frozen, silent, unwilling, the
connection cut, a compare-and-swap refused) run with each backend (ldap3's as slow tests); those
of apply's own lock and audit log run with the default one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.applying import apply as apply_module
from reconciler.applying.audit import AuditLog
from reconciler.applying.credentials import CredentialsFile
from reconciler.attributes import READ
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import BACKENDS, Directory, open_directory
from reconciler.errors import DirectoryError
from reconciler.model import Entry
from reconciler.planning.planfile import digest

from . import scenario
from .helpers import CliResult, PassThrough, admin_connection, ldapwhoami, run_cli
from .proxy import Proxy

BASE = "dc=hagiang,dc=example,dc=gov,dc=vn"
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi"]
MIDDLE = ["Văn", "Thị", "Minh", "Quốc", "Thanh"]
GIVEN = ["Sơn", "Lan", "Hùng", "Mai", "Tuấn", "Hoa", "Dũng", "Hà", "Nam"]


def name(i: int) -> str:
    return f"{FAMILY[i % 8]} {MIDDLE[i // 8 % 5]} {GIVEN[i // 40 % 9]}"


def big_spec(n: int) -> dict[str, Any]:
    """The two agencies of `scenario.hg` and `n` more people, many of them namesakes."""
    spec = scenario.hg(BASE)
    spec["agencies"]["soyte"]["staff"] += [
        {"id": f"HG-{1000 + i}", "name": name(i)} for i in range(n)
    ]
    return spec


@pytest.fixture(
    params=[BACKENDS[0], *(pytest.param(b, marks=pytest.mark.slow) for b in BACKENDS[1:])]
)
def backend(request: pytest.FixtureRequest) -> str:
    """The LDAP library the commands of a fault test use (RECONCILER_BACKEND): the quick suite
    runs the default one, python-ldap; the whole suite both."""
    return str(request.param)


def env_for(server: Slapd, url: str | None = None, backend: str = "") -> dict[str, str]:
    env = {
        "RECONCILER_DIRECTORY": url or server.url,
        "RECONCILER_BIND_DN": server.root_dn,
        "RECONCILER_BIND_PASSWORD": server.root_pw,
    }
    if backend:
        env["RECONCILER_BACKEND"] = backend
    return env


def cli(*args: str, env: dict[str, str]) -> CliResult:
    """The CLI in-process (an exception would fail the test); `spawn` starts a real one."""
    result = run_cli(*args, env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


class Run:
    """One scenario's files: inventory, plan, audit log, numbered credentials files; every
    command through `backend` (the default one when empty)."""

    def __init__(self, server: Slapd, tmp: Path, people: int, backend: str = "") -> None:
        self.server = server
        self.backend = backend
        self.tmp = tmp
        self.folder = scenario.write(big_spec(people), tmp / "inv")
        self.plan_file = tmp / "plan.json"
        self.audit = tmp / "log" / "audit.jsonl"
        self.n = 0

    def env(self, url: str | None = None) -> dict[str, str]:
        return env_for(self.server, url, self.backend)

    def plan(self, url: str | None = None) -> CliResult:
        env = self.env(url)
        return cli("plan", str(self.folder), "--out", str(self.plan_file), env=env)

    def creds(self) -> Path:
        self.n += 1
        return self.tmp / f"credentials-{self.n}.csv"

    def apply_args(self, *extra: str) -> list[str]:
        return [
            "apply",
            str(self.plan_file),
            "--credentials-out",
            str(self.creds()),
            "--audit-log",
            str(self.audit),
            "--actor",
            "fault-test",
            *extra,
        ]

    def apply(self, *extra: str, url: str | None = None) -> CliResult:
        return cli(*self.apply_args(*extra), env=self.env(url))

    def spawn(self, *extra: str, url: str | None = None) -> subprocess.Popen[str]:
        """An apply in its own process: to be killed, or to run beside another."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", *self.apply_args(*extra)],
            env=env | self.env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def records(self) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        lines = self.audit.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_records(self, n: int, proc: subprocess.Popen[str] | None = None) -> None:
        deadline = time.monotonic() + 30
        while len(self.records()) < n:
            assert time.monotonic() < deadline, "the apply did not progress"
            assert proc is None or proc.poll() is None, proc.communicate()
            time.sleep(0.005)

    def last_failure(self) -> dict[str, Any]:
        failed = [r for r in self.records() if r["outcome"] == "failed" and "message" in r]
        assert failed, "the audit log does not say what failed"
        return failed[-1]

    def converges(self) -> None:
        """A fresh plan + apply, then nothing to do; the directory and the passwords are right."""
        env = self.env()
        fresh = self.plan()
        assert fresh.returncode == 0, fresh.stderr
        applied = self.apply()
        assert applied.returncode == 0, applied.stderr
        again = cli("plan", str(self.folder), "--detailed-exitcode", env=env)
        assert again.returncode == 0, again.stdout
        self.check_directory()

    def check_directory(self) -> None:
        with scenario.connect(self.server) as d:
            entries = [e for e in d.read(BASE, READ) if e.managed]
        keys = Counter(e.key for e in entries)
        mails = Counter(e.mail for e in entries)
        assert not [k for k, n in keys.items() if n > 1], "an entry is duplicated"
        assert not [m for m, n in mails.items() if n > 1], "an address is issued twice"
        people = sum(1 for e in entries if e.key.startswith("HG-"))
        assert people == len(self.load_people()), "an entry is lost"
        passwords = scenario.passwords(self.tmp)
        missing = [e.mail for e in entries if e.mail not in passwords]
        assert not missing, f"no password on file for {missing[:5]}"
        # the password on file (the last one written for an address) is the entry's password
        sample = sorted(entries, key=lambda e: e.key)[:: max(1, len(entries) // 5)]
        for entry in sample:
            who = ldapwhoami(self.server, entry.dn, passwords[entry.mail])
            assert "Password must be changed" in who.stdout + who.stderr, entry.mail

    def load_people(self) -> set[str]:
        import yaml

        people: set[str] = set()
        for path in (self.folder / "agencies").glob("*.yaml"):
            people.update(p["id"] for p in yaml.safe_load(path.read_text("utf-8"))["staff"])
        return people


def failed_clearly(result: CliResult, *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Error: ") or "Error: " in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------


def test_server_stopped_between_plan_and_apply(slapd: Slapd, tmp_path: Path, backend: str) -> None:
    run = Run(slapd, tmp_path, 5, backend)
    assert run.plan().returncode == 0
    slapd.stop()
    try:
        result = run.apply()
        failed_clearly(result, "cannot reach", "is slapd running")
        assert [r["outcome"] for r in run.records()] == ["started", "failed"]
        assert "cannot reach" in run.last_failure()["message"]
    finally:
        slapd.restart()
    assert run.apply().returncode == 0  # the same plan, once the server is back
    run.converges()


@pytest.mark.slow
def test_apply_killed_part_way_resumes_after_break_lock(slapd: Slapd, tmp_path: Path) -> None:
    run = Run(slapd, tmp_path, 300)
    assert run.plan().returncode == 0
    proc = run.spawn()
    run.wait_records(40, proc)
    proc.kill()  # SIGKILL: no cleanup, the lock stays
    proc.communicate(timeout=10)
    done = sum(r["outcome"] == "changed" and r["event"] == "create" for r in run.records())
    assert 0 < done < 300

    held = run.apply()
    failed_clearly(held, "another apply holds the lock", "--break-lock", f"(pid {proc.pid})")
    assert "lock" in run.last_failure()["message"]

    resumed = run.apply("--break-lock")
    assert resumed.returncode == 0, resumed.stderr
    assert "Took over the lock of a previous run" in resumed.stderr
    assert f'"pid": {proc.pid}' in resumed.stderr
    breaks = [r for r in run.records() if r["event"] == "break-lock"]
    assert len(breaks) == 1 and f'"pid": {proc.pid}' in breaks[0]["replaced"]
    recap = re.search(r"ok=(\d+) changed=(\d+) failed=0", resumed.stdout)
    planned = len(json.loads(run.plan_file.read_text(encoding="utf-8"))["operations"])
    assert recap and int(recap[1]) >= done and int(recap[1]) + int(recap[2]) == planned
    run.converges()


@pytest.mark.slow
def test_slapd_killed_during_apply(slapd: Slapd, tmp_path: Path, backend: str) -> None:
    run = Run(slapd, tmp_path, 300, backend)
    assert run.plan().returncode == 0
    proc = run.spawn()
    run.wait_records(30, proc)
    slapd.kill()
    try:
        _, err = proc.communicate(timeout=40)
        assert proc.returncode == 1 and "Traceback" not in err, err
        assert "is slapd still running?" in err or "cannot reach" in err, err
        assert run.records()[-1]["outcome"] == "failed"
    finally:
        slapd.restart()
    # the dead server could not drop the lock: the next run says so, and takes it over when told
    failed_clearly(run.apply(), "another apply holds the lock")
    assert run.apply("--break-lock").returncode == 0
    run.converges()


@pytest.mark.parametrize("point", ["pending", "on-file", "added", "recorded"])
def test_every_mailbox_has_exactly_one_working_password_after_a_kill(
    slapd: Slapd, tmp_path: Path, point: str
) -> None:
    """The kill harness (tests/killpoint.py): SIGKILL at each point of the 5th create, then the
    same apply again. Across every credentials file, each mailbox has one password, on one line,
    and it is the one that works: no dead line, none missing."""
    run = Run(slapd, tmp_path, 8)
    assert run.plan().returncode == 0
    killed = subprocess.run(
        [sys.executable, "-m", "tests.killpoint", point, "5", "--", *run.apply_args()],
        env=env_for(slapd),
        cwd=scenario.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # the passwords of the writes sent together are put on file together: up to the 5th
    on_file = sum(
        len(p.read_text(encoding="utf-8").splitlines()) - 1
        for p in tmp_path.glob("credentials-*.csv")
    )
    resumed = run.apply("--break-lock")
    assert resumed.returncode == 0, resumed.stderr
    if point == "on-file":  # the passwords the killed run put on file are the ones used
        assert on_file == 5
        assert "5 passwords already on file" in resumed.stderr, resumed.stderr
    lines: dict[str, list[str]] = {}
    for path in sorted(tmp_path.glob("credentials-*.csv")):
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            address, password = line.split(",", 1)
            lines.setdefault(address, []).append(password)
    with scenario.connect(slapd) as d:
        mailboxes = {e.mail: e for e in d.read(BASE, READ) if e.managed}
    assert set(lines) == set(mailboxes)
    for address, passwords in lines.items():
        assert len(passwords) == 1, f"{address} has {len(passwords)} lines"
        who = ldapwhoami(slapd, mailboxes[address].dn, passwords[0])
        assert "Password must be changed" in who.stdout + who.stderr, (point, address)
    run.converges()


def test_a_write_refused_mid_pipeline_stops_sending_and_the_rerun_converges(
    slapd: Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20's contract for pipelined writes: the 6th create of the first batch in flight is
    refused by the server (its DN taken by hand once apply's checks are done). Nothing more is
    sent once the refusal is read; the other writes already in flight (the 31 others of the
    batch, or more if the window was refilled before the refusal came back) finish and are
    recorded (audit log, recap, one password line each), the refused one's line is taken back,
    exit 1. Once the
    hand-made entry is gone, the same plan goes on and converges."""
    from reconciler.directory.python_ldap import PythonLdapDirectory

    run = Run(slapd, tmp_path, 60, "python-ldap")
    assert run.plan().returncode == 0
    ops = json.loads(run.plan_file.read_text(encoding="utf-8"))["operations"]
    assert len(ops) > 40 and all(op["action"] == "create" for op in ops)
    victim = ops[5]["new_dn"]
    pipeline = PythonLdapDirectory.pipeline

    def racing(self: PythonLdapDirectory, window: int) -> Any:
        monkeypatch.setattr(PythonLdapDirectory, "pipeline", pipeline)  # once
        with admin_connection(slapd) as admin:
            admin.add(victim, ["inetOrgPerson"], {"cn": "by hand", "sn": "hand"})
        return pipeline(self, window)

    monkeypatch.setattr(PythonLdapDirectory, "pipeline", racing)
    result = run.apply()
    assert result.returncode == 1 and "appeared while applying" in result.stderr, result.stderr
    assert "the writes already sent with it finished" in result.stderr
    records = [r for r in run.records() if r["event"] == "create"]
    changed = {r["dn"] for r in records if r["outcome"] == "changed"}
    [failed] = [r for r in records if r["outcome"] == "failed"]
    assert failed["dn"] in ("", victim) and failed["id"] == ops[5]["id"]
    assert failed.get("withdrawn") is True
    # the batch in flight (32) at least; more when slapd, answering on several threads, sent
    # 16 answers before the refusal and the window was refilled: what was sent is a prefix
    sent = len(changed) + 1
    assert 32 <= sent < len(ops), sent
    assert changed == {op["new_dn"] for op in ops[:sent]} - {victim}
    skipped = len(ops) - sent
    recap = f"ok=0 changed={sent - 1} failed=1 skipped={skipped}"
    assert recap in result.stdout + result.stderr
    with scenario.connect(slapd) as d:
        written = {e.dn for e in d.read(BASE, READ) if e.managed}
    assert written == changed
    assert set(scenario.passwords(tmp_path)) == {op["address"] for op in ops[:sent]} - {
        ops[5]["address"]
    }
    with admin_connection(slapd) as admin:
        admin.delete(victim)
    again = run.apply()
    assert again.returncode == 0, again.stderr
    recap = f"ok={sent - 1} changed={len(ops) - sent + 1} failed=0 skipped=0"
    assert recap in again.stdout + again.stderr
    nothing = cli("plan", str(run.folder), "--detailed-exitcode", env=run.env())
    assert nothing.returncode == 0, nothing.stdout
    run.check_directory()


def bulk_ldif(path: Path, count: int) -> Path:
    """The base entry and `count` entries the tool does not manage (no govMailAccount)."""
    with path.open("w", encoding="utf-8") as out:
        out.write(f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\n")
        out.write("dc: hagiang\no: hagiang\n\n")
        out.write(f"dn: ou=others,{BASE}\nobjectClass: organizationalUnit\nou: others\n\n")
        for i in range(count):
            out.write(
                f"dn: uid=other{i:05d},ou=others,{BASE}\nobjectClass: inetOrgPerson\n"
                f"uid: other{i:05d}\ncn: Người dùng khác {i}\nsn: Khác\n"
                f"mail: other{i:05d}@hagiang.gov.vn\n\n"
            )
    return path


@pytest.mark.slow
def test_connection_cut_mid_search(slapd: Slapd, tmp_path: Path, backend: str) -> None:
    slapd.reset(bulk_ldif(tmp_path / "bulk.ldif", 2000))
    run = Run(slapd, tmp_path, 5, backend)
    with Proxy(("127.0.0.1", slapd.port)) as proxy:
        proxy.cut_after(to_client=60_000)  # the whole read is about 400 kB
        planned = cli("plan", str(run.folder), env=run.env(proxy.url))
        failed_clearly(planned, "lost the connection", "while reading")
        assert proxy.cuts == 1
        run.converges()
        # an apply reads only the entries its plan depends on: here 15 changed titles, some
        # 8 kB of entries; the connection is cut in that read
        spec = big_spec(5)
        for agency in spec["agencies"].values():
            for person in agency["staff"]:
                person["title"] = "Chuyên viên chính"
        scenario.write(spec, run.folder)
        assert run.plan().returncode == 0
        proxy.cut_after(to_client=1_000)
        result = run.apply(url=proxy.url)
    failed_clearly(result, "lost the connection", "while reading")
    assert "while reading" in run.last_failure()["message"]
    assert run.apply("--break-lock").returncode == 0  # the lock could not be dropped either
    run.converges()


@pytest.mark.slow
def test_connection_cut_mid_write(slapd: Slapd, tmp_path: Path, backend: str) -> None:
    run = Run(slapd, tmp_path, 200, backend)
    assert run.plan().returncode == 0
    with Proxy(("127.0.0.1", slapd.port)) as proxy:
        proc = run.spawn(url=proxy.url)
        run.wait_records(30, proc)
        proxy.cut()
        _, err = proc.communicate(timeout=40)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "lost the connection" in err and "while adding" in err, err
    assert "while adding" in run.last_failure()["message"]
    assert run.apply("--break-lock").returncode == 0
    run.converges()


def set_read_only(server: Slapd, on: bool) -> None:
    """Stop slapd, flip olcReadOnly on the database in cn=config, start it again."""
    server.stop()
    ldif = server.conf_dir / "cn=config" / "olcDatabase={1}mdb.ldif"
    lines = [x for x in ldif.read_text().splitlines() if not x.startswith("olcReadOnly:")]
    if on:
        lines.append("olcReadOnly: TRUE")
    ldif.write_text("\n".join(lines) + "\n")
    server.restart()


def test_server_unwilling_to_write(slapd: Slapd, tmp_path: Path, backend: str) -> None:
    run = Run(slapd, tmp_path, 5, backend)
    assert run.plan().returncode == 0
    set_read_only(slapd, True)
    try:
        result = run.apply()
        failed_clearly(result, "refused to add", "nwilling")
        assert "nwilling" in run.last_failure()["message"]
    finally:
        set_read_only(slapd, False)
    assert run.apply().returncode == 0
    run.converges()


@contextlib.contextmanager
def frozen(server: Slapd) -> Iterator[None]:
    """slapd stopped with SIGSTOP: connections are accepted by the kernel, nothing answers."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def library_apply(server: Slapd, run: Run, directory: Directory) -> apply_module.Recap:
    from reconciler.planning import planfile

    saved = planfile.load(run.plan_file)
    d = digest(saved)
    audit = AuditLog(run.audit, run=d, actor="t", plan_digest=d, commit="", directory=server.url)
    try:
        with CredentialsFile(run.creds()) as creds:
            return apply_module.execute(saved, d, directory, audit, creds, actor="t")
    finally:
        audit.close()


@pytest.mark.slow
def test_timeouts_frozen_server_and_silent_network(
    slapd: Slapd, tmp_path: Path, backend: str
) -> None:
    run = Run(slapd, tmp_path, 5, backend)
    assert run.plan().returncode == 0
    kw = {"bind_dn": slapd.root_dn, "password": slapd.root_pw, "timeout": 1.0, "backend": backend}
    # a server that stops answering in the middle of an apply
    directory = open_directory(slapd.url, **kw)  # type: ignore[arg-type]
    start = time.monotonic()
    with frozen(slapd), pytest.raises(DirectoryError) as error:
        library_apply(slapd, run, directory)
    assert time.monotonic() - start < 10
    assert "lost the connection" in str(error.value) and slapd.url in str(error.value)
    directory.close()
    # a network that swallows everything: the bind times out
    with Proxy(("127.0.0.1", slapd.port)) as proxy:
        proxy.mode = "drop"
        start = time.monotonic()
        with pytest.raises(DirectoryError, match=r"binding|no answer"):
            open_directory(proxy.url, **kw)  # type: ignore[arg-type]
        assert time.monotonic() - start < 10
        # a slow network is no error
        proxy.mode, proxy.delay = "forward", 0.002
        assert run.apply("--break-lock", url=proxy.url).returncode == 0
    run.converges()


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `folder` (CI runs as root); skipped, saying why, only where mounting
    is impossible."""
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root (CI runs the suite as root)")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def whole_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file, each a whole record, the last one ended."""
    data = path.read_text(encoding="utf-8")
    assert data.endswith("\n"), f"a cut-off line was left at the end of {path}"
    return [json.loads(line) for line in data.splitlines()]


def test_full_disk_for_the_audit_log(slapd: Slapd, tmp_path: Path) -> None:
    run = Run(slapd, tmp_path, 120)
    assert run.plan().returncode == 0
    with small_disk(tmp_path / "small", "64k") as disk:  # fills up part way: ~60 records fit
        run.audit = disk / "audit.jsonl"
        full = run.apply()
        failed_clearly(full, "cannot write the audit log", "No space left on device")
        records = whole_lines(run.audit)  # no half line for the next run to append to
        assert 10 < len(records) < 120
        assert (records[-1]["event"], records[-1]["outcome"]) == ("apply", "failed")
        # the next run on the same full disk: refused cleanly, and the log still reads whole
        again = run.apply("--break-lock")
        failed_clearly(again, "No space left on device")
        whole_lines(run.audit)
        report = cli(
            "report",
            str(run.folder),
            "--audit-log",
            str(run.audit),
            "--now",
            "2026-12-01",
            env=env_for(slapd),
        )
        assert report.returncode == 0, report.stderr
    # full from the first byte: nothing at all may be changed
    run.audit = Path("/dev/full")
    before = count_entries(slapd)
    full = run.apply("--break-lock")
    failed_clearly(full, "cannot write the audit log /dev/full", "No space left on device")
    assert count_entries(slapd) == before
    run.audit = tmp_path / "log" / "audit.jsonl"
    assert run.apply("--break-lock").returncode == 0
    run.converges()


def test_full_disk_for_the_credentials_file(slapd: Slapd, tmp_path: Path) -> None:
    run = Run(slapd, tmp_path, 150)
    assert run.plan().returncode == 0
    with small_disk(tmp_path / "small", "4k") as disk:  # one page: about 100 lines
        creds = disk / "credentials.csv"
        args = run.apply_args()
        args[args.index("--credentials-out") + 1] = str(creds)
        full = cli(*args, env=env_for(slapd))
        assert full.returncode == 1, full.stderr
        assert "cannot write the credentials file" in full.stderr, full.stderr
        assert "No space left on device" in full.stderr
        # every line on file is whole and its mailbox exists with that password
        lines = creds.read_text(encoding="utf-8").splitlines()
        assert creds.read_bytes().endswith(b"\n") and lines[0] == "address,password"
        handed = dict(line.split(",", 1) for line in lines[1:])
        assert 50 < len(handed) < 150
        shutil.copy(creds, tmp_path / "credentials-0.csv")  # kept with the others
    failure = run.last_failure()
    assert "No space left on device" in failure["message"]
    assert (run.records()[-1]["event"], run.records()[-1]["outcome"]) == ("apply", "failed")
    with scenario.connect(slapd) as d:
        created = {e.mail: e for e in d.read(BASE, READ) if e.managed}
    assert set(handed) <= set(created)
    for address in list(handed)[:: max(1, len(handed) // 5)]:
        who = ldapwhoami(slapd, created[address].dn, handed[address])
        assert "Password must be changed" in who.stdout + who.stderr, address
    assert run.apply("--break-lock").returncode == 0
    run.converges()


def test_full_disk_for_the_plan_and_the_public_directory(slapd: Slapd, tmp_path: Path) -> None:
    run = Run(slapd, tmp_path, 150)
    with small_disk(tmp_path / "small", "4k") as disk:
        run.plan_file = disk / "plan.json"
        planned = run.plan()
        failed_clearly(planned, f"cannot write the plan {run.plan_file}", "No space left")
        assert list(disk.iterdir()) == []  # no half plan, no temporary file
        run.plan_file = tmp_path / "plan.json"
        assert run.plan().returncode == 0 and run.apply().returncode == 0
        published = cli("publish", str(run.folder), "--out", str(disk / "www"), env=env_for(slapd))
        failed_clearly(published, "No space left")
        assert not [p for p in (disk / "www").iterdir() if p.name.endswith(".partial")]


def count_entries(server: Slapd) -> int:
    with scenario.connect(server) as d:
        return sum(1 for _ in d.read(server.suffix, ["1.1"]))


# concurrency ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_applies_at_once(slapd: Slapd, tmp_path: Path) -> None:
    run = Run(slapd, tmp_path, 200)
    assert run.plan().returncode == 0
    with Proxy(("127.0.0.1", slapd.port)) as proxy:
        # the first apply through a slow network, so that it is still creating (200 creates,
        # at least 4 s) whatever the speed of the LDAP library when the second one starts
        proxy.delay = 0.01
        first = run.spawn(url=proxy.url)
        run.wait_records(10, first)  # it holds the lock and is creating
        start = time.monotonic()
        second = run.apply()
        assert time.monotonic() - start < 10  # refused at once, not queued
        failed_clearly(second, "another apply holds the lock", "fault-test on ")
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "failed=0" in out
    run.converges()


class RacingDirectory(PassThrough):
    """Right after the apply's stale-check reads, an admin changes an entry by hand on another
    connection."""

    def __init__(self, inner: Directory, race: Any) -> None:
        super().__init__(inner)
        self.race, self.raced = race, False

    def find(self, base_dn: str, attribute: str, values: Any, attributes: Any) -> Iterator[Entry]:
        yield from self.inner.find(base_dn, attribute, values, attributes)
        if not self.raced:
            self.raced = True
            self.race()


def test_admin_change_racing_an_apply_is_never_overwritten(
    slapd: Slapd, tmp_path: Path, backend: str
) -> None:
    run = Run(slapd, tmp_path, 0, backend)
    spec = big_spec(0)
    scenario.write(spec, run.folder)
    run.converges()
    for agency in spec["agencies"].values():
        agency["staff"][0]["title"] = "Phó Giám đốc"
    scenario.write(spec, run.folder)
    assert run.plan().returncode == 0
    with scenario.connect(slapd) as admin:
        lan = next(e for e in admin.read(BASE, READ) if e.key == "HG-0101")

        def race() -> None:
            admin.modify(lan.dn, {"title": ["Trưởng phòng (sửa tay)"]})

        with RacingDirectory(scenario.connect(slapd, backend), race) as racing:
            recap = library_apply(slapd, run, racing)
        assert recap.failed == 1 and "changed in the directory while" in recap.messages[0]
        after = admin.get(lan.dn, ["title"])
        assert after is not None and after.get("title") == "Trưởng phòng (sửa tay)"
    assert "HG-0101" in run.last_failure()["id"]
    run.converges()  # a fresh, reviewed plan puts the inventory's title back
