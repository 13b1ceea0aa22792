"""Input the tool cannot trust (issue 15, points 9 and 11): clocks and dates outside a sane range,
a bind password file that is not UTF-8, and the activity CSV (a byte order mark, a million bad
rows, activity in the future). Each ends in a clear message, never a traceback, never a byte of a
secret."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest

from reconciler.errors import InventoryError
from reconciler.inventory import activity

from .helpers import run_cli

CASE = Path(__file__).resolve().parent / "cases" / "hagiang-empty"
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.fixture
def case(tmp_path: Path) -> tuple[Path, str]:
    shutil.copy(CASE / "directory.ldif", tmp_path / "directory.ldif")
    return CASE / "inventory", f"ldif:{tmp_path / 'directory.ldif'}"


def clear_refusal(result: object, *words: str) -> None:
    out = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.returncode != 0, out  # type: ignore[attr-defined]
    assert "Traceback" not in out and "Error" in out, out
    for word in words:
        assert word in out, out


@pytest.mark.parametrize(
    ("command", "now"),
    [("plan", "9999-12-31T23:59:59Z"), ("report", "0001-03-01"), ("plan", "1970-01-01")],
)
def test_clock_outside_the_sane_range_is_refused(
    case: tuple[Path, str], command: str, now: str
) -> None:
    inventory, url = case
    result = run_cli(command, str(inventory), "--directory", url, "--now", now)
    clear_refusal(result, "outside the dates the reconciler works with", "2000 to 2099")


def test_a_bind_password_file_that_is_not_utf8_is_refused_without_its_bytes(
    case: tuple[Path, str], tmp_path: Path
) -> None:
    inventory, _ = case
    secret = tmp_path / "bind.pw"
    secret.write_bytes(b"s\xe9cr\xffet-\xc3(\n")
    secret.chmod(0o600)
    result = run_cli(
        "plan",
        str(inventory),
        "--directory",
        "ldap://127.0.0.1:1",
        "--bind-dn",
        "cn=admin",
        "--bind-password-file",
        str(secret),
    )
    clear_refusal(result, "is not UTF-8 text")
    out = result.stdout + result.stderr
    for leak in ("xe9", "xff", "0xe9", "0xff", "cr", "\ufffd", "byte"):
        assert leak not in out.replace(str(secret), ""), out


def write_csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_activity_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", "address,last_activity\r\na@x.vn,2026-11-01\r\n", bom=True)
    assert activity.load(path, NOW) == {"a@x.vn": {"mail": dt.datetime(2026, 11, 1, tzinfo=dt.UTC)}}


def test_activity_csv_problems_are_capped(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", "address,last_activity\n" + "nope\n" * 1_000_000)
    start = time.perf_counter()
    with pytest.raises(InventoryError) as error:
        activity.load(path, NOW)
    assert time.perf_counter() - start < 5
    problems = error.value.problems
    assert len(problems) == 101 and "too many problems" in problems[-1].message


def test_activity_after_the_clock_or_outside_the_range_is_refused(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv",
        "address,last_activity\na@x.vn,2099-01-01\nb@x.vn,2026-12-02T00:00:00Z\n"
        "c@x.vn,9999-12-31\nd@x.vn,2026-11-30\n",
    )
    with pytest.raises(InventoryError) as error:
        activity.load(path, NOW)
    messages = [f"{p.line}: {p.message}" for p in error.value.problems]
    assert len(messages) == 3, messages
    assert messages[0].startswith("2: last_activity 2099-01-01 is after the plan's clock")
    assert messages[1].startswith("3: last_activity 2026-12-02T00:00:00Z is after")
    assert "outside the dates" in messages[2]


def test_plan_refuses_an_activity_file_from_the_future(
    case: tuple[Path, str], tmp_path: Path
) -> None:
    inventory, url = case
    path = write_csv(tmp_path / "a.csv", "address,last_activity\na@hagiang.gov.vn,2099-01-01\n")
    result = run_cli(
        "plan", str(inventory), "--directory", url, "--now", "2026-12-01", "--activity", str(path)
    )
    assert result.returncode == 1, result.stderr
    assert f"{path}:2: last_activity 2099-01-01 is after the plan's clock" in result.stderr
