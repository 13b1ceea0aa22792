"""A replicated directory: two providers in multi-provider mode and a read-only consumer, on
127.0.0.1 (`reconciler.devtools.replicated`). Every test here is slow: the three servers start
once for the module and are reset to their base entries before each test (about a second).

What is proved: a plan on the consumer is empty once replication has brought an apply's result
(`--wait-replication` waits for it); a plan read from a consumer held behind is refused at apply,
with the lag named; a login on the consumer reaches the providers and counts as activity; a
provider killed in the middle of an apply: the same apply, run again against the list, goes on
on the other provider and converges, and once the dead provider is back both hold identical
managed entries; doctor reports each server's replication state.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler import csn
from reconciler.applying import lockpeers
from reconciler.applying.inflight import WINDOW
from reconciler.devtools.replicated import Replicated, context_csn, search
from reconciler.devtools.throwaway import Slapd, ensure_installed, ssha
from reconciler.directory import BACKENDS, Directory, open_directory
from reconciler.errors import LockHeld

from . import scenario
from .helpers import CliResult, ldapwhoami, run_cli

pytestmark = [pytest.mark.slapd, pytest.mark.slow]

BASE = scenario.BASE_HG
PEOPLE = f"ou=people,{BASE}"
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ"]
MIDDLE = ["Văn", "Thị", "Minh", "Quốc", "Thanh", "Hữu", "Ngọc"]
GIVEN = ["Sơn", "Lan", "Hùng", "Mai", "Tuấn", "Hoa", "Dũng", "Hà", "Nam", "Linh", "Phúc"]


def spec(people: int = 0) -> dict[str, Any]:
    """`scenario.hg` and `people` more staff, many of them namesakes."""
    found = scenario.hg(BASE)
    found["agencies"]["soyte"]["staff"] += [
        {
            "id": f"HG-{10000 + i}",
            "name": f"{FAMILY[i % 10]} {MIDDLE[i // 10 % 7]} {GIVEN[i // 70 % 11]}",
        }
        for i in range(people)
    ]
    return found


@pytest.fixture(scope="module")
def replicated_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    ensure_installed()
    servers = Replicated(tmp_path_factory.mktemp("replicated"))
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The LDAP library the commands use (RECONCILER_BACKEND): the list of providers and the
    replication state are handled above it, alike."""
    return str(request.param)


@pytest.fixture
def replicated(replicated_servers: Replicated) -> Replicated:
    replicated_servers.reset()
    return replicated_servers


class Run:
    """The files of one scenario (inventory, plans, audit log, credentials) and the CLI."""

    def __init__(self, servers: Replicated, tmp: Path, people: int = 0, backend: str = "") -> None:
        self.servers = servers
        self.backend = backend
        self.tmp = tmp
        self.folder = scenario.write(spec(people), tmp / "inv")
        self.audit = tmp / "log" / "audit.jsonl"
        self.n = 0

    def env(self, directory: str | None = None) -> dict[str, str]:
        env = {
            "RECONCILER_DIRECTORY": directory or self.servers.providers_url,
            "RECONCILER_BIND_DN": self.servers.root_dn,
            "RECONCILER_BIND_PASSWORD": self.servers.root_pw,
        }
        return {**env, "RECONCILER_BACKEND": self.backend} if self.backend else env

    def cli(self, *args: str, directory: str | None = None) -> CliResult:
        result = run_cli(*args, env=self.env(directory))
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        return result

    def plan(self, *args: str, out: str = "plan.json", **kw: Any) -> CliResult:
        return self.cli("plan", str(self.folder), "--out", str(self.tmp / out), *args, **kw)

    def apply_args(self, *args: str, plan: str = "plan.json") -> list[str]:
        self.n += 1
        return [
            "apply", str(self.tmp / plan),
            "--credentials-out", str(self.tmp / f"credentials-{self.n}.csv"),
            "--audit-log", str(self.audit), "--actor", "replication-test", *args,
        ]  # fmt: skip

    def apply(self, *args: str, plan: str = "plan.json", **kw: Any) -> CliResult:
        return self.cli(*self.apply_args(*args, plan=plan), **kw)

    def spawn(
        self, *args: str, directory: str | None = None, name: str = "spawned"
    ) -> subprocess.Popen[bytes]:
        """`reconciler apply` in a process of its own, its output to files NAME.out and NAME.err
        (a pipe nobody reads would stop it: it prints a line per operation)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        with (self.tmp / f"{name}.out").open("wb") as out, self.err(name).open("wb") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "reconciler.cli", *self.apply_args(*args)],
                env={**env, **self.env(directory)},
                stdout=out,
                stderr=err,
            )

    def err(self, name: str = "spawned") -> Path:
        return self.tmp / f"{name}.err"

    def changed(self) -> int:
        if not self.audit.exists():
            return 0
        text = self.audit.read_text(encoding="utf-8")
        return text.count('"outcome": "changed"')

    def operations(self, out: str = "plan.json") -> list[tuple[str, str]]:
        data = json.loads((self.tmp / out).read_text(encoding="utf-8"))
        return [(op["action"], op["id"]) for op in data["operations"]]

    def passwords(self) -> dict[str, str]:
        return scenario.passwords(self.tmp)


def managed(server: Slapd) -> list[str]:
    """The managed entries as `ldapsearch` shows them (every user attribute, the ppolicy state
    and the entryUUID), one LDIF record each, its lines sorted, in DN order."""
    out = search(
        server, PEOPLE, ["(objectClass=govMailAccount)", "*", "pwdReset", "pwdAccountLockedTime",
                         "entryUUID"],
    )  # fmt: skip
    records = []
    for record in out.strip().split("\n\n"):
        dn, *values = record.splitlines()  # a server keeps attributes in the order it got them
        records.append("\n".join([dn, *sorted(values)]))
    return sorted(records, key=lambda r: r.splitlines()[0].lower())


def test_apply_on_a_provider_then_the_consumer_plans_nothing(
    replicated: Replicated, tmp_path: Path, backend: str
) -> None:
    run = Run(replicated, tmp_path, people=30, backend=backend)
    planned = run.plan()
    assert planned.returncode == 0, planned.stderr
    applied = run.apply("--wait-replication", "30")
    assert applied.returncode == 0, applied.stderr
    p1, p2 = replicated.provider1.url, replicated.provider2.url
    assert f"Writing to {p1} (provider 1 of the 2 listed)" in applied.stderr
    assert re.search(rf"{re.escape(p2)} holds this run's changes \(\d+\.\d s", applied.stderr)
    consumer = replicated.consumer.url
    again = run.cli(
        "plan", str(run.folder), "--read-from", consumer, "--wait-replication", "30",
        "--detailed-exitcode",
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(
        rf"Read \d+ entries from {re.escape(consumer)} with {backend} in \d+\.\d s\. It is a "
        r"replica, up to date with the providers\.",
        again.stderr,
    ), again.stderr
    assert replicated.in_sync()
    assert managed(replicated.consumer) == managed(replicated.provider1)
    on_p2 = run.cli("plan", str(run.folder), "--detailed-exitcode", directory=p2)
    assert on_p2.returncode == 0, on_p2.stdout


def test_a_plan_read_from_a_consumer_held_behind_is_refused_with_the_lag(
    replicated: Replicated, tmp_path: Path, backend: str
) -> None:
    run = Run(replicated, tmp_path, people=5, backend=backend)
    assert run.plan().returncode == 0
    assert run.apply("--wait-replication", "30").returncode == 0
    replicated.wait_in_sync()
    replicated.pause_consumer()
    # on provider 1, by hand, while the consumer hears nothing
    dn = f"uid=nvson.sotttt,{PEOPLE}"
    with open_directory(
        replicated.provider1.url, bind_dn=replicated.root_dn, password=replicated.root_pw
    ) as p1:
        p1.modify(dn, {"title": ["Phó Giám đốc"]})
    time.sleep(1.5)  # a lag worth naming
    changed = spec(5)
    changed["agencies"]["sotttt"]["staff"][0]["title"] = "Chánh Văn phòng"
    scenario.write(changed, run.folder)
    consumer = replicated.consumer.url
    stale = run.plan("--read-from", consumer, out="stale.json")
    assert stale.returncode == 0, stale.stderr
    lag = re.search(
        r"at least (\d+\.\d) s behind the providers: it lacked serverID 1's", stale.stderr
    )
    assert lag and float(lag[1]) >= 1.5, stale.stderr
    assert ("update", "HG-0001") in run.operations("stale.json")

    refused = run.apply(plan="stale.json")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stderr
    assert f"the plan was read from {consumer}, at least {lag[1]} s behind the providers" in said
    assert f"HG-0001 ({dn}): changed on serverID 1 at" in said
    assert "Nothing was applied" in said and "--wait-replication SECONDS" in said
    assert title(replicated.provider1, dn) == "Phó Giám đốc"
    # waiting is no escape: the provider is not behind, the plan is
    assert run.apply("--wait-replication", "5", plan="stale.json").returncode == 1

    replicated.resume_consumer()
    fresh = run.plan("--read-from", consumer, "--wait-replication", "30")
    assert fresh.returncode == 0, fresh.stderr
    assert run.apply().returncode == 0
    assert title(replicated.provider2, dn) == "Chánh Văn phòng"


def test_a_provider_that_lacks_what_the_plan_saw_is_waited_for(
    replicated: Replicated, tmp_path: Path
) -> None:
    run = Run(replicated, tmp_path, people=3)
    assert run.plan().returncode == 0
    assert run.apply("--wait-replication", "30").returncode == 0
    replicated.pause(replicated.provider2)
    changed = spec(3)
    changed["agencies"]["soyte"]["staff"][0]["title"] = "Phó Giám đốc Sở"
    scenario.write(changed, run.folder)
    assert run.plan().returncode == 0  # read from provider 1
    # on provider 1 alone (provider 2 hears nothing of it, and could not confirm a lock either)
    assert run.apply(directory=replicated.provider1.url).returncode == 0
    changed["agencies"]["soyte"]["staff"][0]["title"] = "Giám đốc Sở"
    scenario.write(changed, run.folder)
    assert run.plan(out="next.json").returncode == 0  # provider 1 again: it saw the first
    p2 = replicated.provider2.url
    refused = run.apply(plan="next.json", directory=p2)
    assert refused.returncode == 1, refused.stdout
    assert f"{p2} does not hold every change the plan was read with" in refused.stderr
    assert "it lacks serverID 1's changes made after" in refused.stderr
    assert "Nothing was applied" in refused.stderr
    threading.Timer(1.5, replicated.resume, (replicated.provider2,)).start()
    waited = run.apply("--wait-replication", "30", plan="next.json", directory=p2)
    assert waited.returncode == 0, waited.stderr
    assert title(replicated.provider1, f"uid=ttlan.soyte,{PEOPLE}") == "Giám đốc Sở"


def title(server: Slapd, dn: str) -> str | None:
    with open_directory(server.url, bind_dn=server.root_dn, password=server.root_pw) as d:
        entry = d.get(dn, ["title"])
    return entry.get("title") if entry else None


def old_directory(run: Run, path: Path, created: str, password: str) -> Path:
    """The directory `run`'s inventory converges to, as LDIF for slapadd, every mailbox created
    at `created` and never logged in; HG-0001's password is `password`, not to be changed."""
    ldif = open_directory(f"ldif:{run.tmp / 'made.ldif'}")
    scenario.apply(scenario.plan(run.folder, ldif), ldif, run.tmp / "made")
    ldif.close()
    records = (run.tmp / "made.ldif").read_text(encoding="utf-8").split("\n\n")
    kept = []
    for record in records:
        lines = [line for line in record.splitlines() if line and not line.startswith("#")]
        if not lines or (
            not lines[0].lower().endswith(f",{BASE}".lower()) and lines[0] != f"dn: {BASE}"
        ):
            continue
        lines = [
            line
            for line in lines
            if not line.lower().startswith(("createtimestamp:", "modifytimestamp:"))
        ]
        lines.append(f"createTimestamp: {created}")
        if lines[0] == f"dn: uid=nvson.sotttt,{PEOPLE}":
            lines = [line for line in lines if not line.startswith(("userPassword", "pwdReset"))]
            lines.append(f"userPassword: {ssha(password)}")
        kept.append("\n".join(lines))
    path.write_text("\n\n".join(kept) + "\n", encoding="utf-8")
    return path


def test_a_login_on_the_consumer_is_seen_by_a_plan_on_a_provider(
    replicated: Replicated, tmp_path: Path
) -> None:
    run = Run(replicated, tmp_path)
    password = "Mat-khau-Dang-nhap-1"
    replicated.reset(old_directory(run, tmp_path / "old.ldif", "20250101000000Z", password))
    suspends = ("--allow-suspends", "100")
    before = run.plan(*suspends, out="before.json")
    assert before.returncode == 0, before.stderr
    assert ("suspend", "HG-0001") in run.operations("before.json")  # 23 months without a login

    dn = f"uid=nvson.sotttt,{PEOPLE}"
    login = ldapwhoami(replicated.consumer, dn, password)
    assert login.returncode == 0, login.stderr
    replicated.wait_in_sync(10)
    for server in replicated.servers:  # forwarded to provider 1, replicated to all
        assert "authTimestamp: " in search(server, dn, ["authTimestamp"], scope="base")
    assert "pwdLastSuccess" not in search(replicated.consumer, dn, ["pwdLastSuccess"], scope="base")

    after = run.plan(*suspends, out="after.json", directory=replicated.provider2.url)
    assert after.returncode == 0, after.stderr
    operations = run.operations("after.json")
    assert ("suspend", "HG-0001") not in operations
    assert ("suspend", "HG-0101") in operations  # who never logged in still is


def test_provider_killed_mid_apply_the_rerun_goes_on_on_the_other(
    replicated: Replicated, tmp_path: Path
) -> None:
    people = 4995  # and the five mailboxes of scenario.hg: 5,000 operations
    run = Run(replicated, tmp_path, people=people)
    planned = run.plan()
    assert planned.returncode == 0, planned.stderr
    assert len(run.operations()) == 5000
    first = run.spawn()

    def wait_changed(n: int) -> int:
        deadline = time.monotonic() + 300
        while (done := run.changed()) < n:
            assert first.poll() is None, run.err().read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "the apply does not progress"
            time.sleep(0.01)
        return done

    try:
        wait_changed(1500)
        # provider 2 stops hearing from provider 1 a moment before it dies: the creates provider
        # 1 makes meanwhile never reach provider 2, as when a provider dies with changes in flight
        replicated.pause(replicated.provider2)
        unsent = wait_changed(1700)
        replicated.provider1.kill()
        replicated.resume(replicated.provider2)
        first.wait(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    err = run.err().read_text(encoding="utf-8")
    assert first.returncode == 1 and "Traceback" not in err, err
    p1, p2 = replicated.provider1.url, replicated.provider2.url
    assert p1 in err
    done_first = run.changed()
    assert 1700 <= done_first < 5000

    # the dead provider cannot confirm the lock: only an operator can say it is dead
    refused = run.apply()
    assert refused.returncode == 1, refused.stdout
    assert f"{p1} did not answer: the lock cannot be confirmed there" in refused.stderr
    again = run.apply("--break-lock")
    assert again.returncode == 0, again.stderr
    assert f"{p1} did not answer" in again.stderr
    assert f"Writing to {p2} (provider 2 of the 2 listed)" in again.stderr
    recap = re.search(r"Recap: ok=(\d+) changed=(\d+) failed=0", again.stdout)
    assert recap and int(recap[1]) + int(recap[2]) == 5000, again.stdout
    # it went on from what provider 2 had received: what the first run had recorded when
    # provider 2 stopped hearing, and at most the window of writes the server had made whose
    # answers the first run had not read yet (apply pipelines them: `inflight.WINDOW`)
    assert 1500 <= int(recap[1]) < unsent + WINDOW
    # the creates provider 2 never received are made again, with new passwords: the first run's
    # line for each is said to be void (in the output and the audit log), never silently dead
    voided = " ".join(again.stderr.split()).count("that line is void")
    assert 0 < voided <= done_first - 1500, again.stderr[-2000:]

    # provider 1 comes back holding its own creates that never left it: each DN was created
    # again, later, on provider 2, and the later add wins on every server (its entryUUID and
    # its password too: the first run's line for it, said above to be void, is dead)
    replicated.provider1.restart()
    took = replicated.wait_in_sync(120, servers=replicated.providers)  # equal contextCSNs
    for url in (p1, p2):
        empty = run.cli("plan", str(run.folder), "--detailed-exitcode", directory=url)
        assert empty.returncode == 0, empty.stdout[-2000:]
    on_p1, on_p2 = managed(replicated.provider1), managed(replicated.provider2)
    assert len(on_p1) == len(on_p2) == 5000
    differ = [(a, b) for a, b in zip(on_p1, on_p2, strict=True) if a != b]
    assert not differ, f"{len(differ)} entries differ, the first:\n{differ[0][0]}\n\n{differ[0][1]}"
    check_no_loss(replicated.provider2, run, people)
    # The consumer holds the same entries. Its contextCSN for serverID 1 may stay ahead of the
    # providers' own: syncprov writes a provider's contextCSN to disk at checkpoints, so one
    # killed comes back with an older one than it had already sent, until it writes again.
    assert csn.holds(
        csn.state(context_csn(replicated.consumer)), csn.state(context_csn(replicated.provider1))
    )
    assert managed(replicated.consumer) == on_p1
    print(f"provider 1 back in step {took:.1f} s after its restart")


def check_no_loss(server: Slapd, run: Run, people: int) -> None:
    """No entry lost or duplicated, no address issued twice, the password on file works."""
    with open_directory(server.url, bind_dn=server.root_dn, password=server.root_pw) as d:
        entries = [e for e in d.read(BASE, ["objectClass", "employeeNumber", "mail"]) if e.managed]
    keys = Counter(e.key for e in entries)
    mails = Counter(e.mail for e in entries)
    assert [k for k, n in keys.items() if n > 1] == []
    assert [m for m, n in mails.items() if n > 1] == []
    assert sum(1 for e in entries if e.key and e.key.startswith("HG-")) == people + 2
    passwords = run.passwords()
    assert [e.mail for e in entries if e.mail not in passwords] == []
    for entry in sorted(entries, key=lambda e: e.key or "")[:: max(1, len(entries) // 25)]:
        who = ldapwhoami(server, entry.dn, passwords[entry.mail or ""])
        assert "Password must be changed" in who.stdout + who.stderr, entry.mail


def test_doctor_reports_every_servers_replication_state(replicated: Replicated) -> None:
    env = {"RECONCILER_BIND_PASSWORD": replicated.root_pw}
    args = [
        "doctor", "--directory", replicated.providers_url, "--replica", replicated.consumer.url,
        "--bind-dn", replicated.root_dn, "--no-canary",
    ]  # fmt: skip
    good = run_cli(*args, env=env)
    assert good.returncode == 0, good.stdout
    assert good.stdout.count("holds every change the others hold") == 3, good.stdout
    assert f"{replicated.consumer.url} (replica)" in good.stdout

    replicated.pause_consumer()
    with open_directory(
        replicated.provider2.url, bind_dn=replicated.root_dn, password=replicated.root_pw
    ) as p2:
        p2.add(f"ou=history,{replicated.suffix}", {"objectClass": ["organizationalUnit"],
                                                   "ou": ["history"]})  # fmt: skip
    time.sleep(6)  # older than doctor's allowance for changes still on their way
    replicated.provider1.kill()
    behind = run_cli(*args, env=env)
    assert behind.returncode == 1, behind.stdout
    out = behind.stdout
    assert f"{replicated.provider1.url}\n  MISSING connection: cannot reach" in out
    consumer = out.split(f"{replicated.consumer.url} (replica)")[1]
    assert "MISSING replication: behind: lacks every change of serverID 2 up to" in consumer, out
    assert "→ check its syncrepl" in consumer
    assert context_csn(replicated.consumer) != context_csn(replicated.provider2)


def test_two_applies_started_at_once_on_the_two_providers_exactly_one_proceeds(
    replicated: Replicated, tmp_path: Path
) -> None:
    run = Run(replicated, tmp_path, people=20)
    assert run.plan().returncode == 0
    assert run.apply("--wait-replication", "30").returncode == 0  # the lock entry: free
    changed = spec(20)
    for agency in changed["agencies"].values():
        for person in agency["staff"]:
            person["title"] = "Chuyên viên chính"
    scenario.write(changed, run.folder)
    assert run.plan().returncode == 0
    # neither provider hears the other: each will accept its own run's taking of the lock
    for provider in replicated.providers:
        replicated.pause(provider)
    p1, p2 = replicated.provider1.url, replicated.provider2.url
    runs = {
        "one": run.spawn(directory=f"{p1},{p2}", name="one"),
        "two": run.spawn(directory=f"{p2},{p1}", name="two"),
    }
    lock = f"cn=reconciler-lock,{BASE}"
    try:
        deadline = time.monotonic() + 60
        while True:  # each run has taken the lock on its own provider
            values = {p.url: title_of(p, lock, "description") for p in replicated.providers}
            if all(v and '"run"' in v for v in values.values()) and len(set(values.values())) == 2:
                break
            for name, proc in runs.items():
                assert proc.poll() is None, run.err(name).read_text(encoding="utf-8")
            assert time.monotonic() < deadline, values
            time.sleep(0.05)
        for provider in replicated.providers:
            replicated.resume(provider)
        for proc in runs.values():
            proc.wait(timeout=120)
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    codes = {name: proc.returncode for name, proc in runs.items()}
    assert sorted(codes.values()) == [0, 1], codes
    loser = next(name for name, code in codes.items() if code == 1)
    said = run.err(loser).read_text(encoding="utf-8")
    assert "another apply took the lock at the same moment on another provider" in said, said
    assert "Nothing was applied" in said
    again = run.cli("plan", str(run.folder), "--detailed-exitcode")
    assert again.returncode == 0, again.stdout
    # an apply told of one provider when two have written: its lock is confirmed on that one only
    assert run.plan().returncode == 0
    alone = run.apply(directory=p1)
    assert alone.returncode == 0, alone.stderr
    assert "holds changes made by 2 providers (serverIDs 1, 2) but --directory lists 1" in (
        alone.stderr
    )


def title_of(server: Slapd, dn: str, attr: str = "title") -> str | None:
    with open_directory(server.url, bind_dn=server.root_dn, password=server.root_pw) as d:
        entry = d.get(dn, [attr])
    return entry.get(attr) if entry else None


def test_of_two_locks_taken_at_once_on_two_providers_one_is_confirmed(
    replicated: Replicated,
) -> None:
    dn = f"cn=reconciler-lock,{replicated.suffix}"
    opened = [
        open_directory(p.url, bind_dn=replicated.root_dn, password=replicated.root_pw)
        for p in replicated.providers
    ]
    one, two = opened
    try:
        attrs = {"objectClass": ["applicationProcess"], "cn": ["reconciler-lock"]}
        one.add(dn, {**attrs, "description": ["free"]})
        replicated.wait_in_sync()
        for provider in replicated.providers:
            replicated.pause(provider)
        # each provider accepts its own compare-and-swap: alone, both runs would go ahead
        one.modify(dn, {"description": ["run A"]}, {"description": ["free"]})
        two.modify(dn, {"description": ["run B"]}, {"description": ["free"]})
        outcome: dict[str, str] = {}

        def take(name: str, home: Directory, peer: Directory) -> None:
            try:
                lockpeers.confirm(home, [peer], dn, f"run {name}", holder=str, timeout=30)
                outcome[name] = "holds"
            except LockHeld as refused:
                outcome[name] = str(refused)

        runs = [
            threading.Thread(target=take, args=("A", one, two)),
            threading.Thread(target=take, args=("B", two, one)),
        ]
        for run in runs:
            run.start()
        time.sleep(0.5)
        for provider in replicated.providers:
            replicated.resume(provider)
        for run in runs:
            run.join(60)
        assert sorted(outcome) == ["A", "B"]
        [winner] = [name for name, said in outcome.items() if said == "holds"]
        [loser] = [name for name in outcome if name != winner]
        assert "another apply took the lock at the same moment" in outcome[loser]
        assert f"run {winner}" in outcome[loser]
        replicated.wait_in_sync(servers=replicated.providers)
        assert {d.get(dn, ["description"]).get("description") for d in opened} == {f"run {winner}"}

        # a provider that does not replicate cannot confirm a lock
        replicated.pause(replicated.provider2)
        one.modify(dn, {"description": ["run C"]}, {"description": [f"run {winner}"]})
        with pytest.raises(LockHeld, match=r"did not reach .* within 1 s: replication"):
            lockpeers.confirm(one, [two], dn, "run C", holder=str, timeout=1)
    finally:
        for d in opened:
            d.close()
