"""A staff record's details (`model.Details`): shared when the record states none of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.inventory import loader
from reconciler.model import NO_DETAILS, Details, Person, Suspension, builder, details

from . import scenario


def test_a_record_stating_no_details_shares_the_one_empty_details() -> None:
    empty = {f.name: f.default for f in dataclasses.fields(Details)}
    assert details(**empty) is NO_DETAILS
    assert details() is NO_DETAILS
    assert details(**empty | {"quota": 0}) == Details(quota=0)  # a value, even a falsy one
    assert details(**empty | {"aliases": ("a@x.vn",)}).aliases == ("a@x.vn",)
    with pytest.raises(TypeError, match="no such details: qouta"):
        details(qouta=None)


def test_a_persons_details_read_as_its_own_fields() -> None:
    suspended = Suspension("HG-2024 Đ8.2.b", "lộ mật khẩu")
    person = Person("HG-1", "Lò Thị Mai", "soyte", details=Details(suspension=suspended))
    assert person.suspension == suspended
    for f in dataclasses.fields(Details):
        if f.name != "suspension":
            assert getattr(person, f.name) == f.default, f.name
    assert person == Person("HG-1", "Lò Thị Mai", "soyte", details=Details(suspension=suspended))
    assert person != Person("HG-1", "Lò Thị Mai", "soyte")


def test_the_loader_gives_details_only_to_the_records_that_state_them(tmp_path: Path) -> None:
    spec = scenario.hg()
    staff = spec["agencies"]["soyte"]["staff"]
    staff.append({"id": "HG-0901", "name": "Lò Văn Páo", "title": "Y sĩ", "quota": 1})
    staff[-1]["quota_decision"] = "12/QĐ-UBND"
    inventory = loader.load(scenario.write(spec, tmp_path / "inv"))
    people = {p.id: p for p in inventory.people}
    assert people["HG-0901"].quota is not None and people["HG-0901"].quota_decision
    plain = [p for p in inventory.people if p.id != "HG-0901" and not p.suspension]
    assert plain and all(p.details is NO_DETAILS for p in plain)


def test_the_loaders_builder_makes_the_same_frozen_person() -> None:
    build = builder(Person)
    values = {f.name: f"v-{f.name}" for f in dataclasses.fields(Person)}
    built = build(**values)
    assert type(built) is Person and built == Person(**values)
    assert {f.name: getattr(built, f.name) for f in dataclasses.fields(Person)} == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.name = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):  # every field given
        build(id="HG-1", name="Lò Thị Mai", agency="soyte")


def test_a_builder_is_only_for_a_frozen_slotted_dataclass_without_post_init() -> None:
    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        a: int = 0

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            raise ValueError

    for cls in (Mutable, Unslotted, Checked, int):
        with pytest.raises(
            TypeError, match="not a frozen, slotted dataclass without __post_init__"
        ):
            builder(cls)
