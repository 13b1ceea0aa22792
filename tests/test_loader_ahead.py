"""The agency files parsed ahead in a second process (`loader.parsed_ahead`, `validate`): what
the loader finds is what it finds parsing every file itself (every record, line, refusal and the
digest), no child process outlives the load, a child that fails or reads other bytes leaves the
files to the loader, `validate` through pipes prints what it prints without the second process,
and `plan` does not parse ahead."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import reconciler.ahead
from reconciler.ahead import Send
from reconciler.devtools import synth
from reconciler.errors import InventoryError
from reconciler.inventory import loader, yamlload
from reconciler.planning import pipeline
from reconciler.rules import regulations

from . import scenario
from .helpers import run_cli
from .test_hostile import CASES, agency, person, write

HERE = Path(__file__).parent
EXAMPLES = HERE.parent / "inventory"
#: another agency file, so that every case has one to parse ahead
OTHER = {"agencies/zzother.yaml": agency(person("ZZ-1"), agency_id="zzother", abbr="zzother")}


def outcome(folder: Path) -> tuple[str, object]:
    """What loading `folder` gives: the inventory, or every problem as FILE:LINE: message."""
    try:
        return "loaded", loader.load(folder, regulations.get)
    except InventoryError as error:
        return "refused", [str(p) for p in error.problems]


@pytest.fixture
def ahead(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every inventory is parsed ahead inside `parsed_ahead`, however small; the children's
    process ids, as each load starts one, and 0 for each file whose parse is taken from one."""
    started: list[int] = []
    start = loader._Ahead.start.__func__  # type: ignore[attr-defined]
    take = loader._Ahead.take

    def recorded(cls: type[loader._Ahead], folder: Path) -> loader._Ahead | None:
        found = start(cls, folder)
        if found is not None:
            started.append(found.child._pid)
        return found

    def counted(self: loader._Ahead, path: Path, blob: bytes) -> object:
        found = take(self, path, blob)
        if found is not None:
            started.append(0)
        return found

    monkeypatch.setattr(loader, "AHEAD_BYTES", 0)
    monkeypatch.setattr(loader, "AHEAD_FILES", 1)
    monkeypatch.setattr(loader, "AHEAD_HERE", 0)  # the child parses every file
    monkeypatch.setattr(loader, "_cores", lambda: 2)  # whatever this machine has
    monkeypatch.setattr(loader._Ahead, "start", classmethod(recorded))
    monkeypatch.setattr(loader._Ahead, "take", counted)
    return started


def reaped(started: list[int]) -> bool:
    for pid in filter(None, started):
        with pytest.raises(ChildProcessError):  # neither running nor a zombie
            os.waitpid(pid, os.WNOHANG)
    return True


def both(folder: Path, started: list[int]) -> None:
    """Loading `folder` parsed ahead gives what loading it here gives, some file's parse taken
    from the child, and leaves no child."""
    expected = outcome(folder)
    assert not started  # outside `parsed_ahead`, no child
    with loader.parsed_ahead():
        assert outcome(folder) == expected
    assert 0 in started, "no file's parse was taken from a child"
    assert reaped(started)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_inventory_parsed_ahead_is_refused_alike(
    case: str, tmp_path: Path, ahead: list[int]
) -> None:
    files, _ = CASES[case]
    both(write(tmp_path / "inv", {**files, **OTHER}), ahead)


@pytest.mark.parametrize(
    "folder",
    [
        *sorted(p for p in (HERE / "broken").iterdir() if p.is_dir()),
        *sorted(p for p in EXAMPLES.iterdir() if p.is_dir()),
    ],
    ids=lambda p: p.name,
)
def test_an_inventory_parsed_ahead_is_loaded_alike(
    folder: Path, tmp_path: Path, ahead: list[int]
) -> None:
    copy = tmp_path / "inv"
    shutil.copytree(folder, copy, symlinks=True)
    if not list((copy / "agencies").glob("*.yaml")):
        write(copy, OTHER)
    both(copy, ahead)


def test_a_child_that_fails_leaves_the_rest_to_the_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead: list[int]
) -> None:
    folder = tmp_path / "inv"
    shutil.copytree(EXAMPLES / "hagiang", folder)
    assert len(list((folder / "agencies").glob("*.yaml"))) > 1
    parse = loader._parse_ahead

    def first_only(paths: list[Path], send: Send) -> None:
        parse(paths[:1], send)  # one file, then the child is gone without a word
        os._exit(3)

    monkeypatch.setattr(loader, "_parse_ahead", first_only)
    both(folder, ahead)
    assert ahead.count(0) == 1


def test_other_bytes_than_the_child_read_are_parsed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "inv", {**OTHER, "agencies/sotttt.yaml": agency(person("HG-1"))})
    assert loader._Ahead.start(folder / "agencies") is None  # too small to be worth a process
    monkeypatch.setattr(loader, "AHEAD_BYTES", 0)
    monkeypatch.setattr(loader, "_cores", lambda: 2)
    ahead = loader._Ahead.start(folder / "agencies")
    assert ahead is not None
    pid = ahead.child._pid
    try:
        path = folder / "agencies" / "sotttt.yaml"
        assert ahead.take(path, path.read_bytes() + b"# changed\n") is None
        other = folder / "agencies" / "zzother.yaml"
        found = ahead.take(other, other.read_bytes())
        assert found is not None and found.parsed == yamlload.parse(other.read_bytes())
        assert ahead.take(path, path.read_bytes()) is None  # passed: not read again
    finally:
        ahead.close()
    assert reaped([pid])


def test_a_fork_refused_parses_every_file_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead: list[int]
) -> None:
    def refuse() -> int:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    folder = tmp_path / "inv"
    shutil.copytree(EXAMPLES / "hagiang", folder)
    expected = outcome(folder)
    monkeypatch.setattr(reconciler.ahead.os, "fork", refuse)
    descriptors = len(os.listdir("/proc/self/fd"))
    with loader.parsed_ahead():
        assert outcome(folder) == expected
    assert ahead == [] and len(os.listdir("/proc/self/fd")) == descriptors


def test_no_child_on_one_core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write(tmp_path / "inv", {**OTHER, "agencies/sotttt.yaml": agency(person("HG-1"))})
    monkeypatch.setattr(loader, "AHEAD_BYTES", 0)
    monkeypatch.setattr(loader, "_cores", lambda: 1)
    assert loader._Ahead.start(folder / "agencies") is None


def test_the_first_fifth_of_the_bytes_is_parsed_here_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child, pickling what it parses, has more to do per file than the loader checking it:
    the loader parses the first files itself, so that both end about together."""
    staff = "".join(person(f"A-{i}") for i in range(20))
    files = {f"agencies/a{a}.yaml": agency(staff, agency_id=f"a{a}") for a in range(10)}
    folder = write(tmp_path / "inv", files)
    monkeypatch.setattr(loader, "AHEAD_BYTES", 0)
    monkeypatch.setattr(loader, "_cores", lambda: 2)
    ahead = loader._Ahead.start(folder / "agencies")
    assert ahead is not None
    try:
        names = {p.name for p in ahead.index}
        assert "a0.yaml" not in names and {f"a{a}.yaml" for a in range(2, 10)} <= names
    finally:
        ahead.close()


def test_a_parse_the_budget_cannot_afford_is_made_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead: list[int]
) -> None:
    """The child's budget does not count directory.yaml: a file it parsed within its own budget
    may be beyond the loader's, which then parses it itself, to the line where it runs out."""
    files = {
        f"agencies/a{a}.yaml": agency(
            "".join(person(f"A{a}-{i}") for i in range(40)), agency_id=f"a{a}", abbr=f"a{a}"
        )
        for a in range(3)
    }
    folder = write(tmp_path / "inv", files)
    # 42 mappings a file, 1 in directory.yaml: the child affords the three files, the loader two
    monkeypatch.setattr(yamlload, "MAX_MAPPINGS", 126)
    monkeypatch.setattr(yamlload, "Budget", functools.partial(yamlload.Budget, 126))
    here = outcome(folder)
    assert here[0] == "refused" and "a2.yaml" in str(here[1]) and "126 records" in str(here[1])
    with loader.parsed_ahead():
        assert outcome(folder) == here
    assert ahead.count(0) == 3  # the child parsed a2 too: its parse is not used
    assert reaped(ahead)


def test_validate_parses_ahead_and_plan_does_not(tmp_path: Path, ahead: list[int]) -> None:
    """`plan` already loads the inventory beside a child reading the directory: a third process
    would only compete for the two cores."""
    folder = scenario.write(scenario.hg("dc=hagiang,dc=example,dc=gov,dc=vn"), tmp_path / "inv")
    valid = run_cli("validate", str(folder))
    assert valid.returncode == 0 and " valid " in valid.stdout
    assert len([pid for pid in ahead if pid]) == 1 and 0 in ahead
    ahead.clear()
    planned = run_cli("plan", str(folder), "--directory", "ldap://127.0.0.1:1")  # never answers
    assert planned.returncode == 1 and "127.0.0.1:1" in planned.stderr
    assert ahead == []


@pytest.mark.slow
def test_validate_through_pipes_prints_what_it_prints_parsing_here(tmp_path: Path) -> None:
    """A province big enough to be parsed ahead, through `python -m reconciler validate` with
    pipes for stdin, stdout and stderr: the same lines as the loader parsing every file itself,
    valid, then with a problem in the first and the last agency file."""
    spec = synth.generate(30_000, seed=3)
    folder = synth.write(spec, tmp_path / "inv")
    files = sorted((folder / "agencies").glob("*.yaml"))
    assert sum(f.stat().st_size for f in files) > loader.AHEAD_BYTES

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "validate", str(folder)],
            input="",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    valid = run()
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.endswith(f"{len(list(synth.people(spec)))} staff\n")
    for f in (files[0], files[-1]):
        text = f.read_text(encoding="utf-8")
        f.write_text(text.replace('    name: "', '    name: "1', 1), encoding="utf-8")
    broken = run()
    assert broken.returncode == 1
    with pytest.raises(InventoryError) as here:
        pipeline.load(folder)  # outside `parsed_ahead`: every file parsed here
    shown = [str(p) for p in here.value.problems]
    assert len(shown) == 2
    assert broken.stderr.splitlines()[:-1] == shown
    assert broken.stdout == ""


def test_the_child_reads_no_link_and_the_loader_follows_one_inside(
    tmp_path: Path, ahead: list[int]
) -> None:
    """The child opens no symbolic link (O_NOFOLLOW), whatever it leads to: the loader follows
    one inside the inventory and parses it itself, and refuses one that leads out."""
    folder = write(tmp_path / "inv", OTHER)
    (folder / "agencies" / "linked.yaml").symlink_to(folder / "agencies" / "zzother.yaml")
    outside = tmp_path / "secret.yaml"
    outside.write_text("not: an agency\n", encoding="utf-8")
    (folder / "agencies" / "out.yaml").symlink_to(outside)
    assert loader._regular_file(folder / "agencies" / "out.yaml") is None
    assert loader._regular_file(folder / "agencies" / "linked.yaml") is None
    assert loader._regular_file(outside) == b"not: an agency\n"
    both(folder, ahead)
    assert outcome(folder)[0] == "refused"  # the link out


def test_no_child_for_an_agencies_folder_that_is_a_link(tmp_path: Path, ahead: list[int]) -> None:
    """`agencies/` itself a link (out of the inventory, which the loader refuses): the child
    would list and read what it leads to, so there is none."""
    elsewhere = write(tmp_path / "elsewhere", OTHER) / "agencies"
    folder = write(tmp_path / "inv", {})
    shutil.rmtree(folder / "agencies", ignore_errors=True)
    (folder / "agencies").symlink_to(elsewhere)
    expected = outcome(folder)
    with loader.parsed_ahead():
        assert outcome(folder) == expected
    assert ahead == [] and expected[0] == "refused"


def test_a_cgroup_s_cpu_quota_counts_as_the_cores_it_allows(tmp_path: Path) -> None:
    """A container given `--cpus 1` on a machine of many CPUs may run on all of them, a tenth of
    a second in each: the child's work would only take the loader's time (`_cores`)."""
    cgroups = tmp_path / "cgroup"
    mine = tmp_path / "self-cgroup"
    leaf = cgroups / "ci.slice" / "job"
    leaf.mkdir(parents=True)
    mine.write_text("0::/ci.slice/job\n")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert loader._cores(cgroups, mine) == cpus  # no cpu.max anywhere
    (leaf / "cpu.max").write_text("max 100000\n")
    assert loader._cores(cgroups, mine) == cpus
    (cgroups / "ci.slice" / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs, above the job
    assert loader._cores(cgroups, mine) == 1
    (cgroups / "ci.slice" / "cpu.max").write_text("400000 100000\n")
    assert loader._cores(cgroups, mine) == min(4, cpus or 1)
    (cgroups / "cpu.max").write_text("garbage\n")  # unreadable: no limit from it
    assert loader._cores(cgroups, mine) == min(4, cpus or 1)
    mine.write_text("12:cpu:/v1-only\n")  # cgroup v1: the CPUs say it
    assert loader._cores(cgroups, mine) == cpus
    assert loader._cores(cgroups, tmp_path / "missing") == cpus
