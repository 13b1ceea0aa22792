"""How the reconciler is installed: from a lock with hashes, every package shipped, no links."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from reconciler import __version__, schemas_folder

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(
    r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", re.M
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text(encoding="utf-8")
    found = {canonical(n): v for n, v, _hashes in PIN.findall(text)}
    # every requirement line of the lock is an exact pin with at least one hash
    requirement_lines = re.findall(r"^[A-Za-z0-9]", text, re.M)
    assert len(found) == len(requirement_lines), lock
    return found


def declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {canonical(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in deps}


def test_the_locks_pin_every_dependency_with_hashes() -> None:
    runtime, dev = pins("runtime.lock"), pins("dev.lock")
    assert declared() <= runtime.keys()
    assert declared() | declared("dev") <= dev.keys()
    # the same releases in both: a deployment runs what the suite tested
    assert {name: dev.get(name) for name in runtime} == runtime
    # what builds the package is locked too (installs use --no-build-isolation)
    assert "setuptools" in runtime and "setuptools" in dev


def test_every_package_is_shipped() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "reconciler").rglob("__init__.py")
    }
    assert found | {"reconciler.schemas", "reconciler.schemas.ldap"} == shipped


def test_the_schemas_are_found_without_a_link() -> None:
    folder = schemas_folder()
    assert not folder.is_symlink()
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"agency.schema.json", "directory.schema.json", "ldap/govmail.schema"} <= names


def test_no_symbolic_link_is_tracked() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert [line for line in listed.splitlines() if line.startswith("120000")] == []


def test_the_package_says_the_version_it_is_released_as() -> None:
    """`reconciler --version`, the wheel's metadata and the changelog's newest entry agree."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == __version__
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    newest = re.search(r"^## (\S+)", changelog, re.M)
    assert newest is not None and newest.group(1) == __version__
