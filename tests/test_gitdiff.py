"""`reconciler plan --base-ref`: staff records added, removed, moved or edited since a revision."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.inventory.gitdiff import Kind, changes_since, compare
from reconciler.planning import render

from .helpers import run_cli
from .scenario import NOW, ROOT

SOYTE = b"""agency: {id: soyte, name: S\xe1\xbb\x9f Y t\xe1\xba\xbf, abbreviation: soyte}
staff:
  - {id: HG-0101, name: Tran Thi Lan, title: Chuyen vien}
  - {id: HG-0102, name: Le Van Ba}
  - {id: HG-0103, name: Do Van Tu}
"""
SOTTTT = b"""agency: {id: sotttt, name: So TTTT, abbreviation: sotttt}
staff:
  - {id: HG-0001, name: Nguyen Van Son}
"""


def test_a_transfer_is_one_move_not_a_removal_and_an_addition() -> None:
    old = {"agencies/soyte.yaml": SOYTE, "agencies/sotttt.yaml": SOTTTT}
    new = {
        "agencies/soyte.yaml": SOYTE.replace(
            b"  - {id: HG-0101, name: Tran Thi Lan, title: Chuyen vien}\n", b""
        ).replace(b"Le Van Ba}", b"Le Van Ba, title: Pho Giam doc}"),
        "agencies/sotttt.yaml": SOTTTT + b"  - {id: HG-0101, name: Tran Thi Lan, title: Chuyen "
        b"vien}\n  - {id: HG-0002, name: Mai Anh}\n",
    }
    new["agencies/soyte.yaml"] = new["agencies/soyte.yaml"].replace(
        b"  - {id: HG-0103, name: Do Van Tu}\n", b""
    )
    changes = compare("main", old, new)
    kinds = {c.id: c.kind for c in changes.changes}
    assert kinds == {
        "HG-0101": Kind.MOVED,
        "HG-0002": Kind.ADDED,
        "HG-0102": Kind.EDITED,
        "HG-0103": Kind.REMOVED,
    }
    move = next(c for c in changes.changes if c.kind is Kind.MOVED)
    assert (move.from_file, move.file, move.fields) == (
        "agencies/soyte.yaml",
        "agencies/sotttt.yaml",
        (),
    )
    edit = next(c for c in changes.changes if c.kind is Kind.EDITED)
    assert edit.fields == ("title",)
    assert {f.file: (f.status, f.staff) for f in changes.files} == {
        "agencies/soyte.yaml": ("changed", 3),
        "agencies/sotttt.yaml": ("changed", 2),
    }


def test_files_added_removed_and_unreadable() -> None:
    old = {"agencies/soyte.yaml": SOYTE, "directory.yaml": b"regulation: x\n"}
    new = {
        "agencies/sotttt.yaml": SOTTTT,
        "directory.yaml": b"regulation: y\n",
        "agencies/bad.yaml": b"staff: [\n",
    }
    changes = compare("HEAD~1", old, new)
    assert changes.count(Kind.REMOVED) == 3 and changes.count(Kind.ADDED) == 1
    assert {f.file: f.status for f in changes.files} == {
        "agencies/soyte.yaml": "removed",
        "agencies/sotttt.yaml": "added",
        "agencies/bad.yaml": "added",
        "directory.yaml": "changed",
    }
    assert changes.unreadable == ("agencies/bad.yaml",)
    text = "\n".join(render.inventory_changes_text(changes))
    assert "directory.yaml changed" in text and "agencies/bad.yaml did not parse" in text


def test_nothing_changed() -> None:
    files = {"agencies/soyte.yaml": SOYTE}
    assert compare("main", files, dict(files)).empty


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "-C", str(folder), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding the Hà Giang example under inventory/, committed on main."""
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(ROOT / "inventory" / "hagiang", root / "inventory")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-qm", "init")
    return root


def transfer(inventory: Path) -> None:
    soyte = inventory / "agencies" / "soyte.yaml"
    record = "  - id: HG-0023\n    name: Vàng Thị Mỷ\n    title: Phó Giám đốc\n    rank: 2\n"
    text = soyte.read_text(encoding="utf-8")
    assert record in text
    soyte.write_text(text.replace(record, ""), encoding="utf-8")
    sotttt = inventory / "agencies" / "sotttt.yaml"
    sotttt.write_text(sotttt.read_text(encoding="utf-8") + record, encoding="utf-8")


def test_reads_the_base_with_git_show(repo: Path) -> None:
    inventory = repo / "inventory"
    transfer(inventory)
    changes = changes_since(inventory, "main")
    assert [(c.kind, c.id) for c in changes.changes] == [(Kind.MOVED, "HG-0023")]
    with pytest.raises(ReconcilerError, match="not a revision"):
        changes_since(inventory, "no-such-branch")


def test_plan_base_ref_in_text_and_markdown(repo: Path, tmp_path: Path) -> None:
    inventory = repo / "inventory"
    (tmp_path / "dir.ldif").touch()  # an empty directory: only apply creates a missing one
    ldif = f"ldif:{tmp_path / 'dir.ldif'}"
    transfer(inventory)
    now = NOW.isoformat()
    args = ["plan", str(inventory), "--directory", ldif, "--now", now, "--base-ref", "main"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "Inventory changes since main: 0 added, 0 removed, 1 moved, 0 edited." in result.stdout
    assert "→ moved Vàng Thị Mỷ (HG-0023): agencies/soyte.yaml → agencies/sotttt.yaml" in (
        result.stdout
    )
    result = run_cli(*args, "--format", "markdown")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "#### Inventory changes since `main` (1)" in out
    assert (
        "**moved** Vàng Thị Mỷ (`HG-0023`): `agencies/soyte.yaml` → `agencies/sotttt.yaml`" in out
    )
    # a line per agency file changed, for the CODEOWNERS of each file
    assert "- `agencies/soyte.yaml`:" in out and "file changed, 1 staff record" in out
    assert out.index("**Agency files:**") < out.index("#### Inventory changes")
    assert out.rstrip().endswith("</sub>") and "Plan digest `sha256:" in out
    bad = run_cli(*args[:-1], "nope")
    assert bad.returncode == 1 and "not a revision" in bad.stderr
