"""The merge map of `reconciler merge` (README: The 2025 merger): YAML checked against
`schemas/merge-map.schema.json`, every problem as `FILE:LINE: message`, like the inventory.

`load(path)` reads the file into a `MergeMap`: where each source agency goes. What needs both
inventories (does the target agency exist? does every source agency have a place?) is checked by
the merge itself (`outputs.merger`), which reports it at the map's line through `MergeMap.at`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import InventoryError, Problem
from reconciler.inventory.loader import quote, read_document, where
from reconciler.inventory.yamlload import Lines

SCHEMA = "merge-map.schema.json"


@dataclass(frozen=True, slots=True)
class UnitPlace:
    """Where a source unit goes: a unit of an agency of the merged inventory (`unit` None: the
    unit keeps its own id there, as a new unit when the agency has none of that id)."""

    agency: str | None  # None: the source agency's destination
    unit: str | None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a source agency goes: `into` an agency of the target, or a new agency (`new` holds
    its id, name, abbreviation and mailbox); its units one by one (`units`); the agency whose
    organisation mailbox inherits its organisation address (`successor`)."""

    source: str
    into: str | None = None
    new: dict[str, str] | None = None
    units: dict[str, UnitPlace] = field(default_factory=dict)
    successor: str | None = None

    @property
    def destination(self) -> str:
        if self.new is not None:
            return self.new["id"]
        assert self.into is not None
        return self.into


@dataclass(frozen=True, slots=True)
class MergeMap:
    path: str
    agencies: dict[str, Placement]
    lines: Lines
    domain: str | None = None
    id_prefix: str = ""
    merged: dt.date | None = None
    keep_regulation: bool = False  # the former territory keeps its own regulation

    def at(self, path: tuple[str | int, ...], message: str) -> Problem:
        """A problem at the line of the map's value at `path`."""
        return Problem(self.path, self.lines.at(path), f"{where(path)}: {message}")


def load(path: Path, today: dt.date) -> MergeMap:
    """Read and check the merge map at `path`; InventoryError with every problem."""
    data, lines = read_document(Path(path), SCHEMA)
    problems: list[Problem] = []
    shown = str(path)

    def at(where_: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(shown, lines.at(where_), f"{where(where_)}: {message}"))

    merged = today
    if "merged" in data:
        try:
            merged = dt.date.fromisoformat(data["merged"])
        except ValueError:
            at(("merged",), f"{quote(data['merged'])} is not a real date")
    placements: dict[str, Placement] = {}
    for source, value in (data.get("agencies") or {}).items():
        here: tuple[str | int, ...] = ("agencies", source)
        placement = _placement(source, value, here, at)
        if placement is not None:
            placements[source] = placement
    if problems:
        raise InventoryError(problems)
    return MergeMap(
        shown,
        placements,
        lines,
        domain=data.get("domain"),
        id_prefix=data.get("id_prefix", ""),
        merged=merged,
        keep_regulation=bool(data.get("keep_regulation", False)),
    )


def _placement(source: str, value: Any, here: tuple[str | int, ...], at: Any) -> Placement | None:
    if isinstance(value, str):
        return Placement(source, into=value)
    new_keys = {"id", "name", "abbreviation"}
    given = set(value)
    if "into" in value:
        clash = sorted(given & (new_keys | {"mailbox"}))
        if clash:
            at(here, f"give either `into` (an agency of the target) or a new agency {{id, name, "
               f"abbreviation}}, not both (remove {', '.join(clash)})")  # fmt: skip
            return None
    elif not new_keys <= given:
        missing = ", ".join(f"`{k}`" for k in sorted(new_keys - given))
        at(here, f"a new agency needs {missing} (or give `into`: an agency of the target)")
        return None
    units: dict[str, UnitPlace] = {}
    for unit, place in (value.get("units") or {}).items():
        if isinstance(place, str):
            units[unit] = UnitPlace(None, place)
        else:
            units[unit] = UnitPlace(place["agency"], place.get("unit"))
    new = None
    if "into" not in value:
        new = {k: str(value[k]) for k in ("id", "name", "abbreviation", "mailbox") if k in value}
    return Placement(
        source,
        into=value.get("into"),
        new=new,
        units=units,
        successor=value.get("successor"),
    )
