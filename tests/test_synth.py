"""The synthetic province generator: its inventories validate, and plan → apply → plan converges
on them against a real throwaway slapd; its converged LDIF is exactly what apply would make."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from reconciler.devtools import synth
from reconciler.devtools.throwaway import Slapd
from reconciler.inventory import loader as inventory
from reconciler.model import Action
from reconciler.planning import desired
from reconciler.rules import regulations
from tests import scenario

N = 300


def _base_dn(server: Slapd) -> str:
    return f"dc=hagiang,{server.suffix}"


def test_generation_is_deterministic_and_realistic() -> None:
    one = synth.generate(2000, seed=7)
    assert one == synth.generate(2000, seed=7)
    assert one != synth.generate(2000, seed=8)
    names = [r["name"] for _, r in synth.people(one)]
    families = Counter(n.split()[0] for n in names)
    assert 0.30 < families["Nguyễn"] / len(names) < 0.45
    assert families["Trần"] > families["Phạm"] > families["Đỗ"]
    assert any(n.startswith(("Giàng", "Sùng", "Vàng", "Thào", "Lầu", "Hầu", "Mùa")) for n in names)
    assert any("family" in r for _, r in synth.people(one))  # Ê Đê overrides
    assert len(set(names)) < len(names)  # colliding full names
    ranks = Counter(r.get("rank") for _, r in synth.people(one))
    assert ranks[1] == len(one["agencies"]) and ranks[2] == 2 * len(one["agencies"])


def test_inventories_validate(tmp_path: Path) -> None:
    spec = synth.generate(N, seed=3, agencies=4)
    for variant in (
        spec,
        synth.changes(spec, 0.10),
        synth.mutate(spec, creates=20, suspends=10, renames=10, titles=10),
    ):
        folder = synth.write(variant, tmp_path / "inv")
        inv = inventory.load(folder)  # raises InventoryError on any problem
        reg = regulations.get(inv.settings.regulation)
        assert desired.check(inv, reg) == []


@pytest.mark.slapd
def test_plan_apply_plan_converges(slapd: Slapd, tmp_path: Path) -> None:
    spec = synth.generate(N, seed=5, agencies=4, base_dn=_base_dn(slapd))
    folder = synth.write(spec, tmp_path / "inv")
    directory = scenario.connect(slapd)
    try:
        first = scenario.plan(folder, directory)
        assert first.count(Action.CREATE) == len(first.operations) > N
        recap = scenario.apply(first, directory, tmp_path / "run")
        assert recap.failed == 0 and recap.changed == len(first.operations)
        assert scenario.plan(folder, directory).empty

        changed = synth.mutate(spec, seed=9, transfers=5, renames=5, titles=5, suspends=5)
        synth.write(changed, folder)
        second = scenario.plan(folder, directory)
        counts = Counter(op.action for op in second.operations)
        assert counts[Action.RENAME] == 10 and counts[Action.UPDATE] == 5
        assert counts[Action.SUSPEND] == 5
        assert scenario.apply(second, directory, tmp_path / "run").failed == 0
        assert scenario.plan(folder, directory).empty
    finally:
        directory.close()


@pytest.mark.slapd
def test_converged_ldif_loads_as_what_apply_makes(slapd: Slapd, tmp_path: Path) -> None:
    spec = synth.generate(N, seed=6, agencies=3, base_dn=_base_dn(slapd))
    folder = synth.write(spec, tmp_path / "inv")
    ldif = tmp_path / "converged.ldif"
    text = "".join(synth.converged_ldif(inventory.load(folder), skip=(slapd.suffix,)))
    ldif.write_text(text, encoding="utf-8")
    slapd.reset(extra_ldif=ldif)
    directory = scenario.connect(slapd)
    try:
        assert scenario.plan(folder, directory).empty
        removed = synth.changes(spec, 0.04)
        synth.write(removed, folder)
        counts = Counter(op.action for op in scenario.plan(folder, directory).operations)
        assert counts == {Action.RENAME: 6, Action.UPDATE: 3, Action.DELETE: 3}
    finally:
        directory.close()
