"""Golden plans: for each case in tests/cases/, the text, markdown and JSON plans equal the files
checked in. Refresh them after an intended change with `UPDATE_GOLDEN=1 pytest tests/test_golden.py`
and review the diff; rebuild the cases themselves with `python -m tests.cases.build`.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from reconciler.directory import open_directory
from reconciler.model import Plan
from reconciler.planning import pipeline, planfile, render
from reconciler.planning.plan import Context

CASES = Path(__file__).resolve().parent / "cases"
NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def make_plan(case: Path, tmp: Path) -> Plan:
    shutil.copy(case / "directory.ldif", tmp / "directory.ldif")
    loaded = pipeline.load(case / "inventory")
    with open_directory(f"ldif:{tmp / 'directory.ldif'}") as directory:
        entries = pipeline.read(directory, loaded)
    context = Context(now=NOW, directory_url="ldif:directory.ldif")
    return pipeline.make_plan(loaded, entries, context, limits=None)


def check(path: Path, actual: str) -> None:
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir() if p.is_dir()
                                        and (p / "inventory").exists()))
def test_golden_plan(name: str, tmp_path: Path) -> None:
    case = CASES / name
    plan = make_plan(case, tmp_path)
    check(case / "plan.txt", render.text(plan, show_unmanaged=True))
    check(case / "plan.md", render.markdown(plan, planfile.digest(plan), show_unmanaged=True))
    check(case / "plan.json", planfile.to_json(plan))
    # the saved plan reads back to the same plan, byte for byte
    assert planfile.to_json(planfile.from_json(planfile.to_json(plan))) == planfile.to_json(plan)


@pytest.mark.parametrize("name", ["hagiang-changes", "quangnam-changes", "hagiang-empty"])
def test_a_plan_saved_in_pieces_is_its_json_and_its_digest_the_whole(
    name: str, tmp_path: Path
) -> None:
    """`save` writes the plan an operation at a time and hashes it so: the file is `to_json`
    byte for byte, and the digest is the SHA-256 of `json.dumps` of the whole, compact."""
    import dataclasses
    import hashlib
    import json

    plan = make_plan(CASES / name, tmp_path)
    odd = dataclasses.replace(plan, notes=(*plan.notes, "\0"))  # the stand-in, as a value
    for each in (plan, odd):
        out = tmp_path / "plan.json"
        sealed = planfile.save(each, out)
        assert out.read_text(encoding="utf-8") == planfile.to_json(each)
        data = planfile._digested(each)
        whole = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        assert sealed == planfile.digest(each) == "sha256:" + hashlib.sha256(
            whole.encode()
        ).hexdigest()
        assert planfile.to_json(planfile.load(out)) == planfile.to_json(each)
        written = json.loads(out.read_text(encoding="utf-8"))
        assert written["notes"] == list(each.notes)
        assert len(written["operations"]) == len(each.operations)
