"""The in-process runner of the CLI (`helpers.run_cli`, used by most tests of the commands) against
the real thing: the installed console script into a pipe gives the same exit status, output and
width; the interpreter's exit statuses; nothing left behind in the test process; and an uncaught
exception, a traceback for a user, fails the test."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest

from reconciler.cli import main

from . import scenario
from .helpers import run_cli, run_cli_process


@pytest.fixture
def command() -> Iterator[Callable[[Callable[[], object]], None]]:
    """Registers `reconciler probe`, running the function given, for one test."""

    def register(body: Callable[[], object]) -> None:
        main.add_command(click.Command("probe", callback=body))

    yield register
    main.commands.pop("probe", None)


def test_the_same_as_the_console_script_into_a_pipe(tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    (tmp_path / "directory.ldif").touch()  # an empty directory: only apply creates a missing one
    ldif = f"ldif:{tmp_path / 'directory.ldif'}"
    runs = [
        ["--help"],  # the help's width is a pipe's
        ["plan", "--help"],
        # a terminal would get colours: a pipe (and the runner) does not
        ["plan", str(folder), "--directory", ldif, "--now", "2026-01-01", "--detailed-exitcode"],
        ["plan", str(folder), "--nope"],  # a usage error: 1, never "changes" (2)
        ["address", "Nam", "--regulation", "quangnam-2020"],  # a refusal: 1
    ]
    for args in runs:
        real = run_cli_process(*args, console_script=True)
        ours = run_cli(*args)
        assert (ours.returncode, ours.stdout, ours.stderr) == (
            real.returncode,
            real.stdout,
            real.stderr,
        ), args
    assert [run_cli(*args).returncode for args in runs[2:]] == [2, 1, 1]
    assert "\x1b[" not in run_cli(*runs[2]).stdout


@pytest.mark.parametrize("code", [None, 0, 1, 2, 255, 256, -1, True, "stopped: no plan"])
def test_exit_status_is_the_interpreters(
    code: object, command: Callable[[Callable[[], object]], None]
) -> None:
    command(lambda: sys.exit(code))
    ours = run_cli("probe")
    real = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.exit({code!r})"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ours.returncode, ours.stdout, ours.stderr) == (real.returncode, "", real.stderr)


def test_an_uncaught_exception_fails_the_test(
    tmp_path: Path, command: Callable[[Callable[[], object]], None]
) -> None:
    def body() -> None:
        raise KeyError("no such mailbox")

    command(body)
    cwd = os.getcwd()
    with pytest.raises(KeyError, match="no such mailbox") as raised:
        run_cli("probe", cwd=tmp_path)
    assert "`reconciler probe` ended in a traceback" in raised.value.__notes__
    assert os.getcwd() == cwd and sys.stdout is not None and not sys.stdout.closed


def test_a_run_sees_a_clean_process_and_leaves_none_of_its_changes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: Callable[[Callable[[], object]], None],
) -> None:
    monkeypatch.setenv("RECONCILER_DIRECTORY", "ldap://left.over")
    monkeypatch.setenv("RECONCILER_BIND_PASSWORD", "from-the-shell")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    seen: dict[str, object] = {}

    def body() -> None:
        seen.update(
            reconciler={k: v for k, v in os.environ.items() if k.startswith("RECONCILER_")},
            cwd=os.getcwd(),
            tty=(sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty()),
            tmp=tempfile.gettempdir(),
        )
        # what a command could change in the process
        gc.set_threshold(1, 2, 3)
        gc.disable()
        os.environ["RECONCILER_LEFT"] = "x"
        os.environ["TMPDIR"] = "/nowhere"
        os.chdir("/")

    command(body)
    threshold, environ, cwd = gc.get_threshold(), dict(os.environ), os.getcwd()
    tempdir = tempfile.gettempdir()
    result = run_cli(
        "probe", env={"RECONCILER_BIND_DN": "cn=admin", "TMPDIR": str(scratch)}, cwd=tmp_path
    )
    assert result.returncode == 0
    assert seen == {
        "reconciler": {"RECONCILER_BIND_DN": "cn=admin"},
        "cwd": str(tmp_path),
        "tty": (False, False, False),
        "tmp": str(scratch),
    }
    assert gc.get_threshold() == threshold and gc.isenabled()
    assert dict(os.environ) == environ and os.getcwd() == cwd
    assert tempfile.gettempdir() == tempdir

    # the real commands tune the collector (the group) and switch it off (plan): put back too
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    (tmp_path / "d.ldif").touch()  # an empty directory: only apply creates a missing one
    planned = run_cli("plan", str(folder), "--directory", f"ldif:{tmp_path / 'd.ldif'}")
    assert planned.returncode == 0, planned.stderr
    assert gc.get_threshold() == threshold and gc.isenabled()
