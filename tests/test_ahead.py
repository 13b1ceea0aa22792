"""A step run ahead in a forked child (`reconciler.ahead`), and `plan` reading the directory in one
while it loads the inventory: the same plan and the same words as a read made afterwards, every
error told as before, and no child left behind, however the command ends."""

from __future__ import annotations

import json
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from reconciler import ahead
from reconciler.ahead import Ahead, Send
from reconciler.devtools.throwaway import Slapd
from reconciler.errors import DirectoryError, ReconcilerError
from reconciler.inventory import loader
from reconciler.model import Entry, Inventory
from reconciler.packed import Packed, Relay
from reconciler.planning import desired, pipeline
from reconciler.rules import regulations

from . import scenario
from .helpers import run_cli as run

BASE = "dc=hagiang,dc=example,dc=gov,dc=vn"


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The children forked during the test, by pid; each must be reaped by its end."""
    made: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            made.append(pid)
        return pid

    monkeypatch.setattr(ahead.os, "fork", fork)
    yield made
    for pid in made:
        with pytest.raises(ChildProcessError):  # reaped: not running, not a zombie
            os.waitpid(pid, os.WNOHANG)


def test_the_value_comes_back(forks: list[int]) -> None:
    with Ahead(lambda send: {"ĐỖ Thị Hằng": [b"\x00\xff", 1.5, None]}) as step:
        assert step.result() == {"ĐỖ Thị Hằng": [b"\x00\xff", 1.5, None]}
    assert len(forks) == 1
    with pytest.raises(RuntimeError, match="taken once"):
        step.result()


def test_parts_come_before_the_value_and_never_hold_the_child(
    tmp_path: Path, forks: list[int]
) -> None:
    done = tmp_path / "done"

    def step(send: Send) -> str:
        for i in range(5):  # 5 MB: five times what the pipe holds
            send((i, bytes([i]) * 1_000_000))
        done.touch()  # before the parent read a byte
        return "value"

    taken: list[tuple[int, bytes]] = []
    with Ahead(step) as reading:
        waited = time.monotonic()
        while not done.exists():
            assert time.monotonic() - waited < 30, "the child waited for the parent to read"
            time.sleep(0.01)
        assert reading.result(taken.append) == "value"
    assert [(i, len(b), b[:1]) for i, b in taken] == [(i, 1_000_000, bytes([i])) for i in range(5)]
    with Ahead(step) as reading, pytest.raises(RuntimeError, match="a part nobody takes"):
        reading.result()


def test_parts_are_taken_one_at_a_time_as_needed(forks: list[int]) -> None:
    def step(send: Send) -> str:
        for i in range(3):
            send(i)
        return "value"

    taken: list[int] = []
    with Ahead(step) as reading:
        parts = reading.parts()
        assert next(parts) == 0
        assert reading.result(taken.append) == "value"  # the parts not taken yet, then it
    assert taken == [1, 2] and list(parts) == []
    with Ahead(_sleep) as sleeping:
        sleeping.cancel()
        assert list(sleeping.parts()) == []  # a child ended: no part, no wait


def _refused(send: Send) -> None:
    raise DirectoryError("ldap://127.0.0.1:1 did not answer")


class _Odd(ReconcilerError):
    def __init__(self, message: str, extra: object) -> None:
        self.extra = extra
        super().__init__(message)


def _odd(send: Send) -> None:
    raise _Odd("the words of an odd error", lambda: None)


def _bug(send: Send) -> None:
    raise ValueError("a bug in the step")


def test_errors_come_back_in_words(forks: list[int]) -> None:
    with Ahead(_refused) as step, pytest.raises(DirectoryError, match="did not answer"):
        step.result()
    with Ahead(_odd) as step, pytest.raises(ReconcilerError) as raised:
        step.result()
    assert str(raised.value) == "the words of an odd error"
    with Ahead(_bug) as step, pytest.raises(RuntimeError) as crashed:
        step.result()
    assert "ValueError: a bug in the step" in str(crashed.value)
    assert "Traceback" in str(crashed.value)  # a bug keeps its traceback for the report
    assert len(forks) == 3


def _killed(send: Send) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _unpicklable(send: Send) -> object:
    return threading.Lock()


def test_a_child_that_says_nothing_is_told_in_words(forks: list[int]) -> None:
    with (
        Ahead(_killed) as step,
        pytest.raises(ReconcilerError, match=r"killed by signal 9 \(out of memory\?\)"),
    ):
        step.result()
    with Ahead(_unpicklable) as step, pytest.raises(ReconcilerError, match="exit status 1"):
        step.result()


def _inventory_error(send: Send) -> None:
    from reconciler.errors import InventoryError, Problem

    raise InventoryError([Problem("agencies/soyte.yaml", 3, "staff[0].name: missing")])


def test_an_error_not_made_again_from_its_arguments_comes_back_in_its_words(
    forks: list[int],
) -> None:
    with Ahead(_inventory_error) as step, pytest.raises(ReconcilerError) as raised:
        step.result()
    assert str(raised.value) == "agencies/soyte.yaml:3: staff[0].name: missing"


def _one_part_then_sleep(send: Send) -> None:
    send("first")
    time.sleep(60)


def test_a_taker_that_fails_ends_the_child_at_once(forks: list[int]) -> None:
    def take(part: object) -> None:
        raise KeyError(part)

    started = time.monotonic()
    with Ahead(_one_part_then_sleep) as step, pytest.raises(KeyError, match="first"):
        step.result(take)
    assert time.monotonic() - started < 10  # not the child's 60 s; reaped (the fixture)


def test_a_child_dies_with_its_parent(tmp_path: Path) -> None:
    """A CI runner cancelling a job may kill the parent alone: the child goes too."""
    import subprocess
    import sys

    script = (
        "import os, signal, time\n"
        "from reconciler.ahead import Ahead\n"
        "step = Ahead(lambda send: time.sleep(60))\n"
        "print(step._pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    child = int(parent.stdout.split()[0])
    waited = time.monotonic()
    while _alive(child):
        assert time.monotonic() - waited < 10, "the child outlived its parent"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def _sleep(send: Send) -> None:
    time.sleep(60)


def test_a_child_is_ended_with_its_block(forks: list[int]) -> None:
    started = time.monotonic()
    with pytest.raises(KeyError), Ahead(_sleep):
        raise KeyError("the command failed meanwhile")
    step = Ahead(_sleep)
    step.cancel()
    step.cancel()  # twice is once
    assert time.monotonic() - started < 10 and len(forks) == 2


def test_no_fork_beside_another_thread() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not Ahead.possible()
        with pytest.raises(RuntimeError, match="cannot run ahead"):
            Ahead(lambda send: 1)
    finally:
        stop.set()
        other.join()
    assert Ahead.possible()


def _as_piped(value: object) -> object:
    return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def _surveyed(found: Sequence[Entry]) -> dict[str, object]:
    assert isinstance(found, desired.Surveyed)
    survey = {k: v for k, v in vars(found.survey).items() if k not in ("_tables", "_digest")}
    return survey | {
        "fingerprint": found.survey.fingerprint,
        "items": list(found.items),
        "entries": list(found),
        "tables": (found.shapes, found.common),
    }


def test_a_read_relayed_is_the_read_made_here(tmp_path: Path) -> None:
    """`pipeline.read` with a relay (in a child: `plan`), its parts and its tables through
    pickle, then `Received`: the same entries, survey and fingerprint as a read made here;
    the tombstones last, the audit batch left out, an entry packing keeps as it is kept."""
    from reconciler.directory import open_directory
    from reconciler.directory.ldif import format_entries

    from .test_survey import SETTINGS, _every_kind

    odd = Entry(f"uid=odd,ou=people,{SETTINGS.base_dn}", {"objectclass": ("top",), "sn": ("",)})
    path = tmp_path / "d.ldif"
    path.write_bytes(format_entries([*_every_kind(), odd]))
    loaded = pipeline.Loaded(Inventory(SETTINGS, (), ()), regulations.get(SETTINGS.regulation))
    with open_directory(f"ldif:{path}") as directory:
        here = pipeline.read(directory, loaded)
        parts: list[object] = []
        tables = pipeline.read(directory, loaded, relay=lambda part: parts.append(_as_piped(part)))
    received = pipeline.Received(loaded)
    for part in parts:
        received.take(part)  # type: ignore[arg-type]
    there = received.done(_as_piped(tables))  # type: ignore[arg-type]
    assert _surveyed(there) == _surveyed(here)
    assert len(parts) == 2 and odd in list(there)  # the tombstones, then one part of entries
    assert any(type(item) is Entry for item in there.items)  # type: ignore[attr-defined]


def test_a_relay_sends_parts_with_the_tables_they_need() -> None:
    sent: list[tuple[object, ...]] = []
    relay = Relay(lambda part: sent.append(_as_piped(part)))  # type: ignore[arg-type]
    people = [
        Entry(f"uid=u{i},ou=people,dc=x", {"objectclass": ("top", f"c{i % 3}"), "uid": (f"u{i}",)})
        for i in range(Relay.PART * 2 + 5)
    ]
    for one in people:
        relay.append(one)
    relay.close()
    assert len(relay) == len(people) and not relay.items
    assert [len(part[2]) for part in sent] == [Relay.PART, Relay.PART, 5]  # type: ignore[arg-type]
    assert [len(part[1]) for part in sent] == [3, 0, 0]  # each common value sent once
    other = Packed()
    for part in sent:
        other.take(*part)  # type: ignore[arg-type]
    other.adopt(_as_piped(relay))  # type: ignore[arg-type]
    assert list(other) == people
    late = Entry("uid=late,dc=x", {"objectclass": ("top", "c1"), "uid": ("late",)})
    assert other.pack(late) == relay.pack(late)  # packed as the relay packs
    relay.append(late)
    with pytest.raises(RuntimeError, match="closed"):
        relay.flush()
    with pytest.raises(RuntimeError, match="adopts"):
        Packed().adopt(relay)


# -- plan, reading ahead ---------------------------------------------------------------------


def _plan(folder: Path, directory: str, *more: str) -> tuple[int, str, str]:
    result = run("plan", str(folder), "--directory", directory, "--now", "2026-01-01", *more)
    return result.returncode, result.stdout, result.stderr


def _without_now(text: str) -> dict[str, object]:
    plan = json.loads(text)
    return {k: v for k, v in plan.items() if k not in ("now", "digest")}


@pytest.mark.slapd
@pytest.mark.parametrize("backend", ["python-ldap", "ldap3"])
def test_plan_reads_ahead_as_it_reads_after(
    backend: str, slapd: Slapd, tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = scenario.hg(BASE)
    folder = scenario.write(spec, tmp_path / "inv")
    with scenario.connect(slapd, backend) as directory:  # mailboxes to read, then changes
        scenario.apply(scenario.plan(folder, directory), directory, tmp_path / "run")
    staff = spec["agencies"]["soyte"]["staff"]
    staff[0]["name"] = "Trần Thị Lân"
    staff.append({"id": "HG-0102", "name": "Đỗ Văn Hùng", "title": "Chuyên viên"})
    scenario.write(spec, folder)
    env = {
        "RECONCILER_BIND_DN": slapd.root_dn,
        "RECONCILER_BIND_PASSWORD": slapd.root_pw,
        "RECONCILER_BACKEND": backend,
    }
    done: list[int] = []
    received_done = pipeline.Received.done
    monkeypatch.setattr(
        pipeline.Received,
        "done",
        lambda self, tables: (done.append(1), received_done(self, tables))[1],
    )
    ahead_ = run("plan", str(folder), "--directory", slapd.url, "--format", "json", env=env)
    assert len(forks) == 1 and ahead_.returncode == 0, ahead_.stderr
    actions = [op["action"] for op in json.loads(ahead_.stdout)["operations"]]
    assert sorted(actions) == ["create", "update"], actions  # Lân folds as Lan: same address
    assert done == [1]  # the child's read was the one used
    monkeypatch.setattr(Ahead, "possible", staticmethod(lambda: False))
    after = run("plan", str(folder), "--directory", slapd.url, "--format", "json", env=env)
    assert len(forks) == 1 and after.returncode == 0 and done == [1]
    assert _without_now(ahead_.stdout) == _without_now(after.stdout)
    assert _seconds_blank(ahead_.stderr) == _seconds_blank(after.stderr)
    assert "Read " in ahead_.stderr and slapd.url in ahead_.stderr


def _seconds_blank(text: str) -> str:
    import re

    return re.sub(r"in \d+\.\d s\.", "in _ s.", text)


@pytest.mark.slapd
def test_plan_tells_a_directory_error_as_before(
    slapd: Slapd, tmp_path: Path, forks: list[int]
) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    env = {"RECONCILER_BIND_DN": slapd.root_dn, "RECONCILER_BIND_PASSWORD": "wrong-secret-77"}
    wrong = run("plan", str(folder), "--directory", slapd.url, env=env)
    assert wrong.returncode == 1 and "credentials" in wrong.stderr.lower()
    assert "wrong-secret-77" not in wrong.stderr and "Traceback" not in wrong.stderr
    # with two providers, the one that does not answer is told, from the child, before the read
    both = f"ldap://127.0.0.1:1,{slapd.url}"
    told = run(
        "plan",
        str(folder),
        "--directory",
        both,
        env={**env, "RECONCILER_BIND_PASSWORD": slapd.root_pw},
    )
    assert told.returncode == 0, told.stderr
    lines = told.stderr.splitlines()
    assert lines[0].startswith("ldap://127.0.0.1:1 did not answer")
    assert lines[1].startswith(f"Reading from {slapd.url} (provider 2 of the 2 listed)")
    # and when the read then fails: those lines first, then the error, as before
    spec = scenario.hg("dc=nowhere,dc=nothere,dc=vn")
    failed = run(
        "plan",
        str(scenario.write(spec, tmp_path / "elsewhere")),
        "--directory",
        both,
        env={**env, "RECONCILER_BIND_PASSWORD": slapd.root_pw},
    )
    lines = failed.stderr.splitlines()
    assert failed.returncode == 1 and len(lines) == 3, failed.stderr
    assert lines[0].startswith("ldap://127.0.0.1:1 did not answer")
    assert lines[1].startswith(f"Reading from {slapd.url}")
    assert "dc=nowhere,dc=nothere,dc=vn" in lines[2]
    assert len(forks) == 3


def test_a_broken_inventory_is_told_and_the_read_ended(tmp_path: Path, forks: list[int]) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    agency = next((folder / "agencies").iterdir())
    agency.write_text(agency.read_text(encoding="utf-8") + "\n  - nope: [\n", encoding="utf-8")
    code, out, err = _plan(folder, "ldap://127.0.0.1:1")  # a directory that never answers
    assert code == 1 and out == ""
    assert str(agency) in err and "127.0.0.1:1" not in err  # the inventory's problem alone
    assert len(forks) == 1  # reaped (the fixture)


@pytest.mark.slapd
def test_settings_changed_meanwhile_are_read_again(
    slapd: Slapd, tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    env = {"RECONCILER_BIND_DN": slapd.root_dn, "RECONCILER_BIND_PASSWORD": slapd.root_pw}
    plan = (
        "plan",
        str(folder),
        "--directory",
        slapd.url,
        "--format",
        "json",
        "--now",
        "2026-01-01",
    )
    before = run(*plan, env=env)
    elsewhere = scenario.write(scenario.hg("dc=elsewhere,dc=gov,dc=vn"), tmp_path / "other")
    read_settings = loader.read_settings
    monkeypatch.setattr(loader, "read_settings", lambda _: read_settings(elsewhere))
    after = run(*plan, env=env)  # the child read another base: its read is not used
    assert before.returncode == after.returncode == 0, after.stderr
    assert len(forks) == 2
    assert _without_now(before.stdout) == _without_now(after.stdout)
    assert BASE in before.stdout


def test_a_fork_refused_runs_everything_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def refuse() -> int:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(ahead.os, "fork", refuse)
    open_before = len(os.listdir("/proc/self/fd"))
    assert Ahead.start(lambda send: 1) is None
    assert len(os.listdir("/proc/self/fd")) == open_before  # no pipe left open
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    (tmp_path / "d.ldif").touch()
    code, out, err = _plan(folder, f"ldif:{tmp_path / 'd.ldif'}")
    assert code == 0 and "to create" in out and "Traceback" not in err


@pytest.mark.slapd
def test_a_real_process_tells_the_same_lines_in_the_same_order(
    slapd: Slapd, tmp_path: Path
) -> None:
    """What the in-process runner cannot see: the child's own stderr. It writes none; the
    parent prints its lines, then its own."""
    from .helpers import run_cli_process

    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    env = {"RECONCILER_BIND_DN": slapd.root_dn, "RECONCILER_BIND_PASSWORD": slapd.root_pw}
    args = ("plan", str(folder), "--directory", f"ldap://127.0.0.1:1,{slapd.url}")
    real = run_cli_process(*args, env=env)
    assert real.returncode == 0, real.stderr
    lines = real.stderr.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["ldap://127.0.0.1:1", "Reading", "Read"]
    assert _seconds_blank(real.stderr) == _seconds_blank(run(*args, env=env).stderr)
