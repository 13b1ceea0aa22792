"""`reconciler merge`: the merged province's inventory (the 2025 reorganisation).

Pure: `merge()` takes the two checked inventories (the former province's, `source`, and the
merged province's, `target`), their files as parsed data, and the merge map, and returns the text
of every file of the merged inventory, or raises InventoryError with every problem at its file
and line (the map's, or a record's). No I/O, no click, no LDAP.

What it does (README: The 2025 merger):

- The target's files stay as they are (its people keep their addresses: an issued address is
  never taken back), with what arrives added to them.
- Every source agency goes where the map says: into a target agency, as a new agency, or unit by
  unit. Every source person goes with their agency (or their unit), keeps their id (or takes the
  map's `id_prefix`; an id both provinces use is otherwise an error naming both records), loses
  any pinned address (with its `legacy`) or login (they get the address the target's regulation
  gives them in the merged domain, by the plan, against every address the target holds or keeps
  in quarantine), and keeps every former address as an alias: the address the source inventory
  gives them (as its regulation gives it without a directory, or pinned) and its aliases.
  `origin` records where the record came from (a legacy `admin@` kept as an alias is an address
  issued there), which `plan --source-directory` uses to carry the mailbox over.
- An abolished agency's organisation address, and its units' addresses, become aliases of the
  successor's organisation and unit mailboxes (of the new agency's own, for a new agency).
- `directory.yaml` is the target's, with the merged domain and the former domains listed in
  `former_domains`, so that the old addresses are accepted as aliases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from reconciler.errors import InventoryError, Problem
from reconciler.inventory.loader import quote
from reconciler.inventory.mergemap import MergeMap, Placement
from reconciler.model import Agency, Inventory, Person, agency_key, unit_key
from reconciler.outputs.importer import render_agency, render_directory
from reconciler.planning import desired
from reconciler.rules import regulations
from reconciler.rules.regulations import Regulation


@dataclass(frozen=True, slots=True)
class Side:
    """One inventory of a merger: checked, with its regulation and its files' data as parsed
    (`files`: relative path → (data, leading comment lines)). For the source, `held`: the
    addresses each record's mailbox holds in the source directory (mail first, then its
    aliases), by stable id, when the merge read it; else the addresses are the regulation's."""

    inventory: Inventory
    regulation: Regulation
    files: Mapping[str, tuple[dict[str, Any], str]]
    held: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class Result:
    files: dict[str, str]  # relative path → text
    moved: int = 0  # source people placed
    agencies_new: int = 0
    agencies_merged: int = 0
    aliases: int = 0  # organisation and unit addresses kept as aliases of a successor
    lines: list[str] = field(default_factory=list)  # what was done, for the person running it


def _problem(inventory: Inventory, loc: Any, message: str) -> Problem:
    return inventory.problem(loc, message)


class _Merge:
    def __init__(self, source: Side, target: Side, mmap: MergeMap) -> None:
        self.s, self.t, self.map = source, target, mmap
        self.problems: list[Problem] = []
        self.domain = mmap.domain or target.inventory.settings.domain
        self.docs: dict[str, dict[str, Any]] = {}  # agency id → {"agency": …, "staff": […]}
        #: the regulation the moved records and the new agencies name: the source's, when the
        #: map keeps the former territory under it and it is not the target's
        kept = source.regulation.id != target.regulation.id and mmap.keep_regulation
        self.kept = source.regulation.id if kept else None
        self.headers: dict[str, str] = {}
        self.result = Result({})

    # -- the map against both inventories ---------------------------------------------------

    def check_map(self) -> None:
        s_agencies = {a.id: a for a in self.s.inventory.agencies}
        t_ids = {a.id for a in self.t.inventory.agencies}
        new_ids: dict[str, str] = {}
        made = {p.new["id"] for p in self.map.agencies.values() if p.new is not None}
        abbreviations = {a.abbreviation: a.id for a in self.t.inventory.agencies}
        for source, placement in self.map.agencies.items():
            here: tuple[str | int, ...] = ("agencies", source)
            if source not in s_agencies:
                known = ", ".join(sorted(s_agencies))
                self.problems.append(
                    self.map.at(
                        here,
                        f"the source inventory has no agency {quote(source)} (its agencies: "
                        f"{known})",
                    )
                )
                continue
            if placement.new is not None:
                aid = placement.new["id"]
                if aid in t_ids or aid in new_ids:
                    where = "the target has an agency" if aid in t_ids else "the map makes one"
                    self.problems.append(
                        self.map.at(
                            (*here, "id"),
                            f"{where} with the id {quote(aid)} already: merge into it with "
                            "`into`, or choose another id",
                        )
                    )
                new_ids[aid] = source
                abbr = placement.new["abbreviation"]
                if abbr in abbreviations:
                    self.problems.append(
                        self.map.at(
                            (*here, "abbreviation"),
                            f"the abbreviation {quote(abbr)} is already agency "
                            f"{quote(abbreviations[abbr])}'s",
                        )
                    )
                abbreviations[abbr] = aid
            elif placement.into not in t_ids | made:
                self.problems.append(
                    self.map.at(
                        (*here, "into"),
                        f"the target inventory has no agency {quote(placement.into)}, nor does "
                        "the map make one: give one of its agencies, or a new agency {id, name, "
                        "abbreviation}",
                    )
                )
            for unit, place in placement.units.items():
                if s_agencies[source].unit(unit) is None:
                    self.problems.append(
                        self.map.at(
                            (*here, "units", unit),
                            f"agency {quote(source)} of the source has no unit {quote(unit)}",
                        )
                    )
                if place.agency is not None and place.agency not in t_ids | made:
                    self.problems.append(
                        self.map.at(
                            (*here, "units", unit, "agency"),
                            f"no agency {quote(place.agency)} in the target or the map",
                        )
                    )
            known_ids = t_ids | made
            if placement.successor is not None and placement.successor not in known_ids:
                self.problems.append(
                    self.map.at(
                        (*here, "successor"),
                        f"no agency {quote(placement.successor)} in the target or the map",
                    )
                )
        for agency in self.s.inventory.agencies:
            if agency.id not in self.map.agencies:
                self.problems.append(
                    self.map.at(
                        ("agencies",),
                        f"the source agency {quote(agency.id)} ({self.s_where(agency.loc)}) has no "
                        "place: map it to an agency of the target, or to a new agency",
                    )
                )

    def s_where(self, loc: Any) -> str:
        return f"{PurePath(self.s.inventory.folder, loc.file)}:{loc.line}"

    def t_where(self, loc: Any) -> str:
        return f"{PurePath(self.t.inventory.folder, loc.file)}:{loc.line}"

    # -- ids --------------------------------------------------------------------------------

    def new_id(self, pid: str) -> str:
        return f"{self.map.id_prefix}{pid}"

    def check_ids(self) -> None:
        target = {p.id: p for p in self.t.inventory.people}
        for person in self.s.inventory.people:
            other = target.get(self.new_id(person.id))
            if other is None:
                continue
            hint = (
                "choose another `id_prefix` in the map"
                if self.map.id_prefix
                else "declare `id_prefix` in the map (e.g. `id_prefix: QN-`), or renumber one"
            )
            self.problems.append(
                _problem(
                    self.s.inventory,
                    person.loc,
                    f"staff id {quote(self.new_id(person.id))} is also {other.name}'s in the "
                    f"target ({self.t_where(other.loc)}): {hint}",
                )
            )

    # -- building ---------------------------------------------------------------------------

    def start(self) -> None:
        """The target's agency files, as they are."""
        for rel, (data, header) in sorted(self.t.files.items()):
            if rel == "directory.yaml":
                continue
            aid = data["agency"]["id"]
            staff = list(data.get("staff") or [])
            self.docs[aid] = {"agency": dict(data["agency"]), "staff": staff}
            self.headers[aid] = header
        for source, placement in self.map.agencies.items():
            if placement.new is None:
                continue
            agency: dict[str, Any] = dict(placement.new)
            if self.kept:
                agency["regulation"] = self.kept
            src = self.s.inventory.agency(source)
            if src is not None and src.manager:
                agency["manager"] = self.new_id(src.manager)
                s_agency = self.s_raw_agency(source)
                if "manager_delegation" in s_agency:
                    agency["manager_delegation"] = s_agency["manager_delegation"]
            self.docs[placement.new["id"]] = {"agency": agency, "staff": []}
            self.headers[placement.new["id"]] = ""
            self.result.agencies_new += 1

    def s_raw_agency(self, aid: str) -> dict[str, Any]:
        return dict(self.s.files[f"agencies/{aid}.yaml"][0]["agency"])

    def s_raw_staff(self, aid: str) -> list[dict[str, Any]]:
        return list(self.s.files[f"agencies/{aid}.yaml"][0].get("staff") or [])

    def unit_place(self, placement: Placement, unit: str | None) -> tuple[str, str | None]:
        """(agency id, unit id) a source unit of the placed agency goes to."""
        if unit is None:
            return placement.destination, None
        place = placement.units.get(unit)
        if place is None:
            return placement.destination, unit
        return place.agency or placement.destination, place.unit or unit

    def ensure_unit(self, aid: str, unit_id: str, source_agency: Agency, source_unit: str) -> None:
        """The unit exists in the destination agency: as it is, or added from the source's."""
        agency = self.docs[aid]["agency"]
        units: list[dict[str, Any]] = agency.setdefault("units", [])
        if any(u["id"] == unit_id for u in units):
            return
        src = source_agency.unit(source_unit)
        assert src is not None
        abbreviations = {u["abbreviation"] for u in units}
        if src.abbreviation in abbreviations:
            self.problems.append(
                self.map.at(
                    ("agencies", source_agency.id),
                    f"unit {quote(source_unit)} of the source agency {quote(source_agency.id)} "
                    f"becomes a unit of {quote(aid)}, which already has the abbreviation "
                    f"{quote(src.abbreviation)}: map it to a unit of {quote(aid)} in `units`",
                )
            )
            return
        units.append({"id": unit_id, "name": src.name, "abbreviation": src.abbreviation})

    def add_alias(self, aid: str, unit_id: str | None, address: str) -> None:
        """Keep `address` (an abolished mailbox's) as an alias of the mailbox of the agency `aid`
        or its unit `unit_id` (of the agency's when the target's regulation gives units no
        mailbox)."""
        agency = self.docs[aid]["agency"]
        holder = agency
        if unit_id is not None and self.rule(aid).unit_local("x", "y") is not None:
            found = [u for u in agency.get("units", []) if u["id"] == unit_id]
            if not found:
                return  # the unit could not be added: `ensure_unit` said why
            holder = found[0]
        aliases = holder.setdefault("aliases", [])
        if address not in aliases:
            aliases.append(address)
            self.result.aliases += 1

    def rule(self, aid: str) -> Regulation:
        """The regulation of the merged agency `aid` (its own, kept, or the target's)."""
        named = self.docs[aid]["agency"].get("regulation")
        return regulations.get(named) if named else self.t.regulation

    def has_mailbox(self, aid: str) -> bool:
        agency = self.docs[aid]["agency"]
        local = self.rule(aid).agency_local(agency["abbreviation"], agency.get("mailbox"))
        return local is not None

    def place(self) -> None:
        former = desired.addresses(self.s.inventory, self.s.regulation)
        merged = (self.map.merged or dt.date.today()).isoformat()
        s_domain = self.s.inventory.settings.domain
        for s_agency in self.s.inventory.agencies:
            placement = self.map.agencies[s_agency.id]
            dest = placement.destination
            if placement.new is None:
                self.result.agencies_merged += 1
            # units first: people are placed in them
            for unit in s_agency.units:
                aid, uid = self.unit_place(placement, unit.id)
                assert uid is not None
                self.ensure_unit(aid, uid, s_agency, unit.id)
            # the abolished agency's (or the renamed one's) own addresses
            successor = placement.successor or dest
            org = [*s_agency.aliases]
            if agency_key(s_agency.id) in former:
                org.insert(0, str(former[agency_key(s_agency.id)]))
            if org and not self.has_mailbox(successor):
                self.problems.append(
                    self.map.at(
                        ("agencies", s_agency.id),
                        f"the organisation address {org[0]} of {quote(s_agency.id)} would lose "
                        f"its mail: {quote(successor)} has no organisation mailbox under "
                        f"{self.rule(successor).id} (give it `mailbox` in the target, or name a "
                        "`successor` that has one)",
                    )
                )
            else:
                for address in org:
                    self.add_alias(successor, None, address)
            for unit in s_agency.units:
                key = unit_key(s_agency.id, unit.id)
                aid, uid = self.unit_place(placement, unit.id)
                for address in ([str(former[key])] if key in former else []) + list(unit.aliases):
                    if self.rule(aid).unit_local("x", "y") is None and not self.has_mailbox(aid):
                        self.problems.append(
                            self.map.at(
                                ("agencies", s_agency.id),
                                f"the unit address {address} would lose its mail: {quote(aid)} "
                                "has no organisation mailbox",
                            )
                        )
                        continue
                    self.add_alias(aid, uid, address)
            people = {p.id: p for p in self.s.inventory.people if p.agency == s_agency.id}
            for record in self.s_raw_staff(s_agency.id):
                person = people.get(record["id"])
                if person is None:
                    continue
                aid, uid = self.unit_place(placement, record.get("unit"))
                self.docs[aid]["staff"].append(
                    self.record(record, person, uid, former, s_domain, merged)
                )
                self.result.moved += 1

    def record(
        self,
        raw: dict[str, Any],
        person: Person,
        unit: str | None,
        former: Mapping[str, Any],
        s_domain: str,
        merged: str,
    ) -> dict[str, Any]:
        # the pin goes (and with it `legacy`, which speaks of it): the former address becomes an
        # alias, which `origin` says was issued there
        dropped = ("address", "legacy", "login", "aliases", "unit")
        out = {k: v for k, v in raw.items() if k not in dropped}
        out["id"] = self.new_id(person.id)
        if unit is not None:
            out["unit"] = unit
        if self.kept:
            out["regulation"] = self.kept
        suspension = out.get("suspension")
        if isinstance(suspension, dict) and "clause" in suspension and not self.kept:
            why = self.t.regulation.suspension_problem(suspension["clause"])
            if why:
                self.problems.append(
                    _problem(
                        self.s.inventory,
                        person.loc,
                        f"staff {person.id}: its suspension {quote(suspension['clause'])} is not "
                        f"a ground of the target's regulation {self.t.regulation.id} ({why}): "
                        "state the ground the target's regulation gives before merging, or keep "
                        "the former territory under its own regulation (`keep_regulation: true`)",
                    )
                )
        held = self.s.held.get(person.id, ())
        address = (held[0] if held else "") or person.address or ""
        if not address and person.id in former:
            address = str(former[person.id])
        aliases = [a for a in (address, *held[1:], *person.aliases) if a]
        if aliases:
            out["aliases"] = sorted(dict.fromkeys(aliases))
        origin: dict[str, Any] = {"domain": s_domain, "id": person.id}
        if address:
            origin["address"] = address
        origin["agency"] = person.agency
        origin["merged"] = merged
        out["origin"] = origin
        return out

    def directory(self) -> str:
        data, header = self.t.files["directory.yaml"]
        out = dict(data)
        t_settings = self.t.inventory.settings
        former = [*t_settings.former_domains, self.s.inventory.settings.domain]
        former += self.s.inventory.settings.former_domains
        if self.domain != t_settings.domain:
            former.append(t_settings.domain)
            out["domain"] = self.domain
        keys = list(out)
        at = keys.index("domain") + 1
        listed = [d for d in dict.fromkeys(former) if d != self.domain]
        items = [*keys[:at], "former_domains", *(k for k in keys[at:] if k != "former_domains")]
        out["former_domains"] = listed
        ordered = {k: out[k] for k in items}
        return render_directory(ordered, header)

    def retarget_pins(self) -> None:
        """A new domain: the target's pinned addresses move to it (same local part), the old
        one kept as an alias."""
        old = self.t.inventory.settings.domain
        if self.domain == old:
            return
        for doc in self.docs.values():
            for record in doc["staff"]:
                pinned = record.get("address")
                if isinstance(pinned, str) and pinned.endswith("@" + old):
                    record["address"] = pinned.rpartition("@")[0] + "@" + self.domain
                    record["aliases"] = sorted({*record.get("aliases", []), pinned})

    def files(self) -> dict[str, str]:
        stamp = (
            f"Merged by `reconciler merge` on {(self.map.merged or dt.date.today()).isoformat()}: "
            f"{self.s.inventory.settings.domain} ({self.s.regulation.id}) into "
            f"{self.t.inventory.settings.domain}; each moved record's `origin` says where it came "
            "from."
        )
        out = {"directory.yaml": self.directory()}
        for aid, doc in sorted(self.docs.items()):
            header = self.headers.get(aid, "")
            header = f"{header}\n{stamp}" if header else stamp
            out[f"agencies/{aid}.yaml"] = render_agency(doc, header, pinned_comment="")
        return out


def merge(source: Side, target: Side, mmap: MergeMap) -> Result:
    """The merged inventory's files, or InventoryError with every problem."""
    run = _Merge(source, target, mmap)
    run.check_map()
    run.check_ids()
    if run.problems:
        raise InventoryError(run.problems)
    run.start()
    run.place()
    run.retarget_pins()
    if run.problems:
        raise InventoryError(run.problems)
    run.result.files = run.files()
    return run.result
