"""Folding, splitting (reconciler.names) and allocation of addresses (reconciler.rules.naming)
under both regulations."""

from __future__ import annotations

import csv
import random
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import NamingError
from reconciler.model import Address, Kind
from reconciler.names import RESERVED, NameParts, fold, split
from reconciler.rules import regulations
from reconciler.rules.naming import Wanted, address_for, allocate, problems

QN = regulations.get("quangnam-2020")
HG = regulations.get("hagiang-2024")
QN_DOMAIN = "quangnam.gov.vn"
HG_DOMAIN = "hagiang.gov.vn"


def person(
    key: str,
    name: str,
    agency: str = "sotttt",
    *,
    rank: int | None = None,
    current: str | None = None,
    pinned: str | None = None,
    **overrides: str,
) -> Wanted:
    return Wanted(
        key=key,
        kind=Kind.PERSON,
        parts=split(name, **overrides),
        agency_abbr=agency,
        rank=rank,
        current=current,
        pinned=pinned,
    )


def agency(
    agency_id: str, abbr: str, mailbox: str | None = None, current: str | None = None
) -> Wanted:
    return Wanted(
        key=f"agency:{agency_id}",
        kind=Kind.AGENCY,
        agency_abbr=abbr,
        mailbox=mailbox,
        current=current,
    )


def unit(agency_id: str, abbr: str, unit_id: str, unit_abbr: str) -> Wanted:
    return Wanted(
        key=f"unit:{agency_id}/{unit_id}",
        kind=Kind.UNIT,
        agency_abbr=abbr,
        unit_abbr=unit_abbr,
    )


def addresses(result: Mapping[str, Address]) -> dict[str, str]:
    return {key: str(address) for key, address in result.items()}


# ---------------------------------------------------------------------------------------------
# fold


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nguyễn", "nguyen"),
        ("Đặng", "dang"),
        ("đường", "duong"),
        ("Ðặng", "dang"),  # U+00D0
        ("Ɖạt ɖa", "datda"),  # U+0189, U+0256
        ("H'Hen", "hhen"),
        ("H’Bia", "hbia"),
        ("Hʼ Mai", "hmai"),
        ("Y-Moan", "ymoan"),
        ("Mơ\u0306", "mo"),
        ("Nŭ Čil ĕ ŏ", "nucileo"),
        ("Tr\u200bần", "tran"),
        ("\ufeffLan", "lan"),
        ("Hư\u00adơng", "huong"),
        ("NGUYỄN VĂN AN", "nguyenvanan"),
        ("Phòng 2", "phong2"),
        ("", ""),
        ("'’ʼ-", ""),
    ],
)
def test_fold(text: str, expected: str) -> None:
    assert fold(text) == expected


def test_fold_nfd_and_tone_placement_agree() -> None:
    nfc = "Nguyễn Thị Hoà Thuý"
    nfd = unicodedata.normalize("NFD", nfc)
    assert len(nfd) > len(nfc)
    assert fold(nfd) == fold(nfc) == "nguyenthihoathuy"
    assert fold("Hoà") == fold("Hòa") == "hoa"
    assert fold("Thuý") == fold("Thúy") == "thuy"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fold_never_raises_and_is_ascii(text: str) -> None:
    folded = fold(text)
    assert re.fullmatch("[a-z0-9]*", folded)
    assert fold(folded) == folded


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_fold_ignores_normal_form(text: str) -> None:
    assert fold(unicodedata.normalize("NFD", text)) == fold(unicodedata.normalize("NFC", text))


# ---------------------------------------------------------------------------------------------
# split


def test_split_default() -> None:
    assert split("Nguyễn Thị Tú Vân") == NameParts(
        family=("nguyen",), middle=("thi", "tu"), given="van", full="nguyen thi tu van"
    )
    assert split("Lê Na") == NameParts(("le",), (), "na", "le na")


def test_split_collapses_whitespace_and_case() -> None:
    assert split("  NGUYỄN \t văn\u00a0 nam ") == split("Nguyễn Văn Nam")


def test_split_drops_words_that_fold_to_nothing() -> None:
    assert split("Bùi ' Văn ’ Tú") == split("Bùi Văn Tú")


def test_split_given_override_makes_the_rest_the_family() -> None:
    parts = split("Y Ngông Niê Kdăm", given="Y Ngông")
    assert parts == NameParts(("nie", "kdam"), (), "yngong", "y ngong nie kdam")
    assert split("Nay H'Wil", given="H'Wil").family == ("nay",)


def test_split_family_override_at_the_end_makes_the_rest_the_given_name() -> None:
    assert split("H'Hen Niê", family="Niê") == NameParts(("nie",), (), "hhen", "hhen nie")
    assert split("H'Blum Buôn Yă", family="Buôn Yă").given == "hblum"


def test_split_family_override_at_the_start() -> None:
    parts = split("Công Tằng Tôn Nữ Thị Bích Ngọc", family="Công Tằng Tôn Nữ")
    assert parts.family == ("cong", "tang", "ton", "nu")
    assert parts.middle == ("thi", "bich")
    assert parts.given == "ngoc"


def test_split_all_overrides() -> None:
    parts = split(
        "Phạm Lê Nguyễn Hoàng Minh Khôi", family="Phạm Lê", middle="Nguyễn Hoàng Minh", given="Khôi"
    )
    assert parts == NameParts(
        ("pham", "le"), ("nguyen", "hoang", "minh"), "khoi", "pham le nguyen hoang minh khoi"
    )


def test_split_override_matches_without_spaces_diacritics_or_case() -> None:
    assert split("Alăng Thị Mai", family="A Lăng").family == ("alang",)
    assert split("Nguyễn Văn Nam", given="NAM").given == "nam"


def test_split_empty_family_override_means_none() -> None:
    assert split("A Huy", family="", given="A Huy") == NameParts((), (), "ahuy", "a huy")


def test_split_one_word_name_needs_an_override() -> None:
    with pytest.raises(NamingError, match="single word"):
        split("Tuệ")
    assert split("Tuệ", given="Tuệ") == NameParts((), (), "tue", "tue")


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("", {}, "no letters"),
        ("' ’", {}, "no letters"),
        ("Lê Na", {"given": "Nam"}, "not part of the name"),
        ("H'Hen Niê", {"family": "Kdăm"}, "not part of the name"),
        ("Lê Na", {"given": "'"}, "given name"),
        ("Lê Na", {"family": "Lê Na"}, "no given name"),
    ],
)
def test_split_refuses(name: str, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(NamingError, match=message):
        split(name, **overrides)


# ---------------------------------------------------------------------------------------------
# The name table: every row's plain address under both regulations

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _override(cell: str) -> str | None:
    if not cell:
        return None
    return "" if cell == "(none)" else _unescape(cell)


def _table() -> list[tuple[str, dict[str, str | None], str, str]]:
    rows = []
    with (Path(__file__).parent / "names.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            name = _unescape(row["name"])
            if row["form"] == "NFD":
                name = unicodedata.normalize("NFD", name)
            overrides = {k: _override(row[k]) for k in ("family", "middle", "given")}
            rows.append((name, overrides, row["quangnam"], row["hagiang"]))
    return rows


TABLE = _table()


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 40


@pytest.mark.parametrize(("name", "overrides", "qn", "hg"), TABLE, ids=[r[0] for r in TABLE])
def test_table(name: str, overrides: dict[str, str | None], qn: str, hg: str) -> None:
    parts = split(name, **overrides)
    assert QN.plain(parts, "sotttt") == qn
    assert HG.plain(parts, "sotttt") == hg
    for reg, local in ((QN, qn), (HG, hg)):
        assert next(reg.person_candidates(parts, "sotttt")) == local
        assert reg.accepts(local, parts, "sotttt")
        box = Wanted("P1", Kind.PERSON, parts, "sotttt")
        result = allocate([box], {}, (), "example.gov.vn", reg)
        assert result == {"P1": Address(local, "example.gov.vn", reg.person_clause)}


# ---------------------------------------------------------------------------------------------
# address_for (the `reconciler address` command)


def test_address_for() -> None:
    assert address_for("Nguyễn Văn Nam", QN, None) == "namnv@quangnam.gov.vn"
    assert address_for("Nguyễn Văn Sơn", HG, "sotttt") == "nvson.sotttt@hagiang.gov.vn"
    assert address_for("Nguyễn Văn Sơn", HG, "sotttt", "TuyenQuang.gov.vn") == (
        "nvson.sotttt@tuyenquang.gov.vn"
    )
    assert address_for("Nguyễn Văn Nam", QN, "ignored", "danang.gov.vn") == "namnv@danang.gov.vn"


def test_address_for_hagiang_needs_the_agency() -> None:
    with pytest.raises(NamingError, match="--agency"):
        address_for("Nguyễn Văn Sơn", HG, None)
    with pytest.raises(NamingError, match="single word"):
        address_for("Tuệ", QN, None)
    with pytest.raises(NamingError, match="a-z and 0-9"):
        address_for("Nguyễn Văn Sơn", HG, "Sở TT")


# ---------------------------------------------------------------------------------------------
# allocate: the regulations' examples


def test_quangnam_examples() -> None:
    boxes = [
        person("QN-1", "Nguyễn Văn Nam"),
        person("QN-3", "Nguyễn Thị Thanh Vân", rank=5),  # chuyên viên
        person("QN-2", "Nguyễn Thị Tú Vân", rank=2),  # trưởng phòng
    ]
    result = allocate(boxes, {}, (), QN_DOMAIN, QN)
    assert result == {
        "QN-1": Address("namnv", QN_DOMAIN, "QN-2020 Đ4.1"),
        "QN-2": Address("vanntt", QN_DOMAIN, "QN-2020 Đ4.1"),
        "QN-3": Address("vanntt1", QN_DOMAIN, "QN-2020 Đ4.2"),
    }


def test_quangnam_rank_wins_over_key_and_unranked_come_last() -> None:
    boxes = [
        person("A", "Nguyễn Thị Thanh Vân"),
        person("B", "Nguyễn Thị Tú Vân", rank=3),
        person("C", "Nguyễn Thị Tường Vân", rank=1),
    ]
    assert addresses(allocate(boxes, {}, (), QN_DOMAIN, QN)) == {
        "C": "vanntt@quangnam.gov.vn",
        "B": "vanntt1@quangnam.gov.vn",
        "A": "vanntt2@quangnam.gov.vn",
    }


def test_hagiang_examples() -> None:
    boxes = [
        person("HG-1", "Nguyễn Văn Sơn"),
        person("HG-2", "Nguyễn Văn Sơn"),
        person("HG-3", "Ngô Văn Sơn"),
        agency("sotttt", "sotttt"),
        unit("sotttt", "sotttt", "vp", "vanphong"),
    ]
    result = allocate(boxes, {}, (), HG_DOMAIN, HG)
    assert result == {
        "HG-1": Address("nvson.sotttt", HG_DOMAIN, "HG-2024 Đ5.2"),
        "HG-2": Address("nvson1.sotttt", HG_DOMAIN, "HG-2024 Đ5.2"),
        "HG-3": Address("ngvson.sotttt", HG_DOMAIN, "HG-2024 Đ5.2"),
        "agency:sotttt": Address("sotttt", HG_DOMAIN, "HG-2024 Đ5.1"),
        "unit:sotttt/vp": Address("vanphong.sotttt", HG_DOMAIN, "HG-2024 Đ5.1"),
    }


def test_hagiang_collision_a_against_an_existing_holder() -> None:
    taken = {"nvson.sotttt@hagiang.gov.vn": "HG-1"}
    holders = {"nvson.sotttt@hagiang.gov.vn": "nguyen van son"}
    result = allocate([person("HG-9", "Ngô Văn Sơn")], taken, (), HG_DOMAIN, HG, holders=holders)
    assert str(result["HG-9"]) == "ngvson.sotttt@hagiang.gov.vn"
    assert result["HG-9"].clause == HG.collision_clause


def test_hagiang_collision_b_against_an_existing_holder() -> None:
    taken = {"nvson.sotttt@hagiang.gov.vn": "HG-1"}
    holders = {"nvson.sotttt@hagiang.gov.vn": "nguyen van son"}
    result = allocate([person("HG-9", "Nguyễn Văn Sơn")], taken, (), HG_DOMAIN, HG, holders=holders)
    assert str(result["HG-9"]) == "nvson1.sotttt@hagiang.gov.vn"


def test_hagiang_holder_keeping_its_address_is_named_as_the_inventory_now_names_it() -> None:
    # HG-1 keeps nvson.sotttt, read as Nguyễn Văn Sơn, now recorded as Ngô Văn Sơn: a newcomer
    # Nguyễn Văn Sơn meets a holder of another name (lengthened, not numbered)
    nvson = "nvson.sotttt@hagiang.gov.vn"
    holder = person("HG-1", "Ngô Văn Sơn", current=nvson)
    boxes = [holder, person("HG-9", "Nguyễn Văn Sơn")]
    result = allocate(boxes, {nvson: "HG-1"}, (), HG_DOMAIN, HG, holders={nvson: "nguyen van son"})
    assert addresses(result) == {"HG-1": nvson, "HG-9": "ngvson.sotttt@hagiang.gov.vn"}


def test_a_pin_already_its_own_is_pinned_twice_when_another_pins_it() -> None:
    # A holds its pin under its name already: B's pin is a pin on A's too, not held before
    boxes = [person("A", "Lê Na", pinned="x@h.vn"), person("B", "Lê Na", pinned="X@h.vn")]
    taken, holders = {"x@h.vn": "A"}, {"x@h.vn": split("Lê Na").full}
    result = allocate(boxes, taken, (), HG_DOMAIN, HG, holders=holders)
    assert result.problems == {
        "B": "the pinned address x@h.vn is pinned on the mailbox of staff A too"
    }


def test_hagiang_holder_with_unknown_name_counts_as_different() -> None:
    taken = {"nvson.sotttt@hagiang.gov.vn": ""}
    result = allocate([person("HG-9", "Nguyễn Văn Sơn")], taken, (), HG_DOMAIN, HG)
    assert str(result["HG-9"]) == "ngvson.sotttt@hagiang.gov.vn"


def test_hagiang_lengthening_goes_through_family_then_middle_names() -> None:
    boxes = [
        person(f"P{i}", name)
        for i, name in enumerate(
            ["Nguyễn Văn Sơn", "Ngô Văn Sơn", "Ngô Vũ Sơn", "Ngô Vĩ Sơn", "Ngô Vị Sơn"]
        )
    ]
    assert [str(a).split("@")[0] for a in allocate(boxes, {}, (), HG_DOMAIN, HG).values()] == [
        "nvson.sotttt",  # Nguyễn Văn Sơn
        "ngvson.sotttt",  # Ngô Văn Sơn: nvson is Nguyễn Văn Sơn's, names differ
        "ngovson.sotttt",  # Ngô Vũ Sơn: ngvson is Ngô Văn Sơn's
        "ngovison.sotttt",  # Ngô Vĩ Sơn: family exhausted at "ngov", then the middle name
        "ngovison1.sotttt",  # Ngô Vị Sơn = Ngô Vĩ Sơn without diacritics: numbered there
    ]


def test_hagiang_namesake_met_on_a_lengthened_form_is_numbered_there() -> None:
    boxes = [person("A", "Nguyễn Văn Sơn"), person("B", "Ngô Văn Sơn"), person("C", "Ngô Văn Sơn")]
    assert addresses(allocate(boxes, {}, (), HG_DOMAIN, HG)) == {
        "A": "nvson.sotttt@hagiang.gov.vn",
        "B": "ngvson.sotttt@hagiang.gov.vn",
        "C": "ngvson1.sotttt@hagiang.gov.vn",
    }


def test_hagiang_exhausted_lengthening_numbers_the_plain_form() -> None:
    # "A Huy" (Ba Na, A taken as family) and "Huy A" split the other way: same letters, different
    # names, and a one-letter family name cannot be lengthened
    boxes = [person("P1", "A Huy"), person("P2", "Huy A", family="A", given="Huy")]
    result = allocate(boxes, {}, (), HG_DOMAIN, HG)
    assert str(result["P1"]) == "ahuy.sotttt@hagiang.gov.vn"
    assert result["P2"] == Address("ahuy1.sotttt", HG_DOMAIN, HG.collision_clause)
    # Nay H'Wil and H'Wil Nay: lengthening the family name works
    boxes = [person("A", "Nay H'Wil"), person("B", "H'Wil Nay", family="Nay", given="H'Wil")]
    assert addresses(allocate(boxes, {}, (), HG_DOMAIN, HG)) == {
        "A": "nhwil.sotttt@hagiang.gov.vn",
        "B": "nahwil.sotttt@hagiang.gov.vn",
    }


def test_hagiang_persons_in_different_agencies_do_not_collide() -> None:
    boxes = [person("A", "Nguyễn Văn Sơn", "sotttt"), person("B", "Nguyễn Văn Sơn", "soyte")]
    assert addresses(allocate(boxes, {}, (), HG_DOMAIN, HG)) == {
        "A": "nvson.sotttt@hagiang.gov.vn",
        "B": "nvson.soyte@hagiang.gov.vn",
    }


# ---------------------------------------------------------------------------------------------
# allocate: collisions in depth


@pytest.mark.parametrize("reg", [QN, HG], ids=lambda r: r.id)
def test_three_identical_names(reg: regulations.Regulation) -> None:
    boxes = [person(f"P{i}", "Nguyễn Văn Sơn") for i in (3, 1, 2)]
    result = addresses(allocate(boxes, {}, (), "x.gov.vn", reg))
    plain = reg.plain(split("Nguyễn Văn Sơn"), "sotttt")
    stem, _, suffix = plain.partition(".")
    dot = "." if suffix else ""
    assert result == {
        "P1": f"{plain}@x.gov.vn",
        "P2": f"{stem}1{dot}{suffix}@x.gov.vn",
        "P3": f"{stem}2{dot}{suffix}@x.gov.vn",
    }


@pytest.mark.parametrize("reg", [QN, HG], ids=lambda r: r.id)
def test_names_equal_only_without_diacritics_are_identical(reg: regulations.Regulation) -> None:
    boxes = [person("P1", "Nguyễn Văn Sơn"), person("P2", "Nguyen Van Son")]
    result = addresses(allocate(boxes, {}, (), "x.gov.vn", reg))
    assert result["P2"] == {QN.id: "sonnv1@x.gov.vn", HG.id: "nvson1.sotttt@x.gov.vn"}[reg.id]


@pytest.mark.parametrize("reg", [QN, HG], ids=lambda r: r.id)
def test_newcomer_who_outranks_the_holder_does_not_take_the_address(
    reg: regulations.Regulation,
) -> None:
    old = person("OLD", "Nguyễn Thị Thanh Vân", rank=9)
    held = str(allocate([old], {}, (), "x.gov.vn", reg)["OLD"])
    boss = person("BOSS", "Nguyễn Thị Tú Vân", rank=1)
    old = replace(old, current=held)
    result = addresses(allocate([boss, old], {held: "OLD"}, (), "x.gov.vn", reg))
    assert result["OLD"] == held
    assert result["BOSS"] != held
    assert result["BOSS"] == {QN.id: "vanntt1@x.gov.vn", HG.id: "ngttvan.sotttt@x.gov.vn"}[reg.id]


@pytest.mark.parametrize("reg", [QN, HG], ids=lambda r: r.id)
def test_taken_by_unmanaged_entry_and_reserved_are_skipped(reg: regulations.Regulation) -> None:
    plain = reg.plain(split("Nguyễn Văn Nam"), "sotttt")
    taken = {f"{plain}@x.gov.vn": ""}
    result = allocate([person("P", "Nguyễn Văn Nam")], taken, (), "x.gov.vn", reg)
    assert result["P"].local != plain
    assert result["P"].clause == reg.collision_clause
    result = allocate([person("P", "Nguyễn Văn Nam")], {}, [plain.upper()], "x.gov.vn", reg)
    assert result["P"].local != plain


def test_built_in_reserved_names_are_never_issued() -> None:
    # "Admin" as a given name with no family: quangnam-2020 would give "admin"
    box = person("P", "Admin", family="", given="Admin")
    assert "admin" in RESERVED
    assert allocate([box], {}, (), QN_DOMAIN, QN)["P"].local == "admin1"


def test_own_former_address_is_free_for_its_holder() -> None:
    # P was "namnv", was renamed, and is now back to the old name: the alias is theirs
    taken = {"namnv@quangnam.gov.vn": "P", "namtv@quangnam.gov.vn": "P"}
    box = person("P", "Nguyễn Văn Nam", current="namtv@quangnam.gov.vn")
    other = person("Q", "Nông Văn Nam")
    result = addresses(allocate([other, box], taken, (), QN_DOMAIN, QN))
    assert result == {"P": "namnv@quangnam.gov.vn", "Q": "namnv1@quangnam.gov.vn"}


def test_own_numbered_alias_below_others_is_reused() -> None:
    # the first free number for P is its own alias namnv1, though Q (sorted first) skips it
    taken = {"namnv@quangnam.gov.vn": "", "namnv1@quangnam.gov.vn": "P"}
    boxes = [person("Q", "Nông Văn Nam", rank=1), person("P", "Nguyễn Văn Nam", current="x@y")]
    result = addresses(allocate(boxes, taken, (), QN_DOMAIN, QN))
    assert result == {"Q": "namnv2@quangnam.gov.vn", "P": "namnv1@quangnam.gov.vn"}


# ---------------------------------------------------------------------------------------------
# allocate: sticky addresses, pins, agencies and units


@pytest.mark.parametrize("reg", [QN, HG], ids=lambda r: r.id)
def test_diacritic_fix_keeps_a_numbered_address(reg: regulations.Regulation) -> None:
    first = allocate(
        [person("A", "Nguyễn Văn Nam"), person("B", "Nguyen Van Nam")], {}, (), "x.gov.vn", reg
    )
    taken = {str(a): k for k, a in first.items()}
    # B's name is corrected with diacritics; nobody moves
    again = allocate(
        [
            person("A", "Nguyễn Văn Nam", current=str(first["A"])),
            person("B", "NGUYỄN VĂN NAM", current=str(first["B"])),
        ],
        taken,
        (),
        "x.gov.vn",
        reg,
    )
    assert again == first


@pytest.mark.parametrize("reg", [QN, HG], ids=lambda r: r.id)
def test_real_name_change_gets_a_new_address_and_the_old_is_not_reissued(
    reg: regulations.Regulation,
) -> None:
    old = str(allocate([person("A", "Nguyễn Thị Lan")], {}, (), "x.gov.vn", reg)["A"])
    taken = {old: "A"}
    boxes = [person("A", "Trần Thị Lan", current=old), person("B", "Nguyễn Thị Lan")]
    result = addresses(allocate(boxes, taken, (), "x.gov.vn", reg))
    assert result["A"] == address_for("Trần Thị Lan", reg, "sotttt", "x.gov.vn")
    assert result["B"] not in (old, result["A"])


def test_hagiang_transfer_renames_quangnam_does_not() -> None:
    moved = person("A", "Nguyễn Văn Sơn", "soyte", current="nvson.sotttt@hagiang.gov.vn")
    taken = {"nvson.sotttt@hagiang.gov.vn": "A"}
    assert str(allocate([moved], taken, (), HG_DOMAIN, HG)["A"]) == "nvson.soyte@hagiang.gov.vn"
    moved = person("A", "Nguyễn Văn Sơn", "soyte", current="sonnv1@quangnam.gov.vn")
    taken = {"sonnv1@quangnam.gov.vn": "A"}
    result = allocate([moved], taken, (), QN_DOMAIN, QN)
    assert result["A"] == Address("sonnv1", QN_DOMAIN, "QN-2020 Đ4.2")


def test_current_kept_even_when_it_became_reserved() -> None:
    box = person("A", "Nguyễn Văn Nam", current="namnv@quangnam.gov.vn")
    result = allocate([box], {"namnv@quangnam.gov.vn": "A"}, ["namnv"], QN_DOMAIN, QN)
    assert result["A"].local == "namnv"


def test_current_held_by_another_key_is_not_kept() -> None:
    box = person("A", "Nguyễn Văn Nam", current="namnv@quangnam.gov.vn")
    result = allocate([box], {"namnv@quangnam.gov.vn": "B"}, (), QN_DOMAIN, QN)
    assert result["A"].local == "namnv1"


def test_domain_change_keeps_the_local_part() -> None:
    boxes = [
        person("A", "Nguyễn Văn Nam", current="namnv1@quangnam.gov.vn"),
        person("B", "Nguyễn Văn Nam", rank=1),
        agency("sotttt", "sotttt", "vanphongso", current="vanphongso@quangnam.gov.vn"),
    ]
    taken = {"namnv1@quangnam.gov.vn": "A", "vanphongso@quangnam.gov.vn": "agency:sotttt"}
    assert addresses(allocate(boxes, taken, (), "danang.gov.vn", QN)) == {
        "A": "namnv1@danang.gov.vn",
        "B": "namnv@danang.gov.vn",
        "agency:sotttt": "vanphongso@danang.gov.vn",
    }


def test_pinned_address_is_kept_as_is() -> None:
    boxes = [
        person("A", "Nguyễn Văn Sơn", pinned="Son.NV@hagiang.gov.vn"),
        person("B", "Nguyễn Văn Sơn"),
    ]
    result = allocate(boxes, {"son.nv@hagiang.gov.vn": "A"}, (), HG_DOMAIN, HG)
    assert result["A"] == Address("son.nv", HG_DOMAIN, HG.person_clause)
    assert str(result["B"]) == "nvson.sotttt@hagiang.gov.vn"


def test_pin_wins_over_a_regulation_form() -> None:
    boxes = [
        person("B", "Nguyễn Văn Nam"),
        person("Z", "Lê Văn An", pinned="namnv@quangnam.gov.vn"),
    ]
    assert addresses(allocate(boxes, {}, (), QN_DOMAIN, QN)) == {
        "Z": "namnv@quangnam.gov.vn",
        "B": "namnv1@quangnam.gov.vn",
    }


@pytest.mark.parametrize(
    ("boxes", "taken", "message"),
    [
        (
            [person("B", "Lê Na", pinned="x@hagiang.gov.vn")],
            {"x@hagiang.gov.vn": "A"},
            "x@hagiang.gov.vn is already held by the mailbox of staff A",
        ),
        (
            [person("B", "Lê Na", pinned="x@hagiang.gov.vn")],
            {"x@hagiang.gov.vn": "agency:soyte"},
            "already held by the organisation mailbox of agency soyte",
        ),
        (
            [person("B", "Lê Na", pinned="x@hagiang.gov.vn")],
            {"x@hagiang.gov.vn": ""},
            "already held by an entry the tool does not manage",
        ),
        (
            [person("A", "Lê Na", pinned="x@h.vn"), person("B", "Lê Na", pinned="X@h.vn")],
            {},
            "x@h.vn is pinned on the mailbox of staff A too",
        ),
        (
            [person("B", "Lê Na", pinned="postmaster@h.vn")],
            {},
            'cannot be issued: "postmaster" is always reserved',
        ),
        (
            [person("B", "Lê Na", pinned="hotro@h.vn")],
            {},
            'cannot be issued: "hotro" is reserved in directory.yaml',
        ),
        ([person("B", "Lê Na", pinned="no-at-sign")], {}, '"no-at-sign" is not a valid address'),
    ],
)
def test_pin_conflicts_are_problems_of_the_record(
    boxes: list[Wanted], taken: dict[str, str], message: str
) -> None:
    result = allocate(boxes, taken, ["hotro"], HG_DOMAIN, HG)
    assert "B" not in result  # no address is made up for it
    assert list(result.problems) == ["B"]
    assert message in result.problems["B"]


def test_quangnam_agencies_and_units() -> None:
    boxes = [
        agency("sotttt", "sotttt", "VanPhongSo"),
        agency("soyte", "soyte"),
        unit("sotttt", "sotttt", "vp", "vanphong"),
        person("A", "Nguyễn Văn Nam"),
    ]
    assert allocate(boxes, {}, (), QN_DOMAIN, QN) == {
        "agency:sotttt": Address("vanphongso", QN_DOMAIN, QN.agency_clause),
        "A": Address("namnv", QN_DOMAIN, QN.person_clause),
    }


def test_organisation_mailboxes_come_before_people() -> None:
    # a person whose plain form equals a unit address, both new: the unit wins
    boxes = [
        person("A", "Võ Anh Nông Phong", given="Phong"),  # initials v a n → "vanphong"
        unit("sotttt", "sotttt", "vp", "vanphong"),
    ]
    result = addresses(allocate(boxes, {}, (), HG_DOMAIN, HG))
    assert result["unit:sotttt/vp"] == "vanphong.sotttt@hagiang.gov.vn"
    assert result["A"] == "voanphong.sotttt@hagiang.gov.vn"


def test_organisation_address_held_by_someone_else_is_a_problem() -> None:
    boxes = [
        agency("sotttt", "sotttt"),
        unit("sotttt", "sotttt", "vp", "vanphong"),
        person("A", "Lê Na"),
    ]
    taken = {"sotttt@hagiang.gov.vn": "", "vanphong.sotttt@hagiang.gov.vn": "HG-7"}
    result = allocate(boxes, taken, (), HG_DOMAIN, HG)
    assert addresses(result) == {"A": "lna.sotttt@hagiang.gov.vn"}  # the others still get theirs
    assert result.problems == {
        "agency:sotttt": "its organisation mailbox would be sotttt@hagiang.gov.vn, already held "
        "by an entry the tool does not manage: choose another agency abbreviation (an address is "
        "never taken back)",
        "unit:sotttt/vp": "its unit mailbox would be vanphong.sotttt@hagiang.gov.vn, already "
        "held by the mailbox of staff HG-7: choose another unit abbreviation (an address is "
        "never taken back)",
    }


def test_organisation_address_on_a_reserved_local_part_is_a_problem() -> None:
    boxes = [
        agency("admin", "admin"),
        agency("hotro", "hotro"),
        unit("sotttt", "sotttt", "vp", "vanphong"),
    ]
    result = allocate(boxes, {}, ["hotro", "vanphong.sotttt"], HG_DOMAIN, HG)
    assert dict(result) == {}
    admin = result.problems["agency:admin"]
    assert '"admin" is always reserved: choose another agency abbreviation' in admin
    assert '"hotro" is reserved in directory.yaml' in result.problems["agency:hotro"]
    assert "choose another unit abbreviation" in result.problems["unit:sotttt/vp"]
    qn = allocate([agency("sotttt", "sotttt", "postmaster")], {}, (), QN_DOMAIN, QN)
    assert "choose another `mailbox`" in qn.problems["agency:sotttt"]


def test_organisation_address_held_by_a_pin_names_the_pinned_record() -> None:
    boxes = [agency("sotttt", "sotttt", "namnv"), person("P", "Lê Na", pinned="namnv@" + QN_DOMAIN)]
    result = allocate(boxes, {}, (), QN_DOMAIN, QN)
    assert str(result["P"]) == "namnv@quangnam.gov.vn"
    assert "already held by the mailbox of staff P" in result.problems["agency:sotttt"]


def test_bad_abbreviations_are_problems_and_bad_calls_errors() -> None:
    bad = allocate([agency("x", "Sở TT")], {}, (), HG_DOMAIN, HG)
    assert "a-z and 0-9" in bad.problems["agency:x"]
    hg = allocate([person("A", "Lê Na", "so-yte")], {}, (), HG_DOMAIN, HG)
    assert "a-z and 0-9" in hg.problems["A"]
    qn = allocate([agency("x", "x", "a..b")], {}, (), QN_DOMAIN, QN)
    assert "cannot be the local part" in qn.problems["agency:x"]
    # the caller's mistakes, not the inventory's
    with pytest.raises(NamingError, match="twice"):
        allocate([person("A", "Lê Na"), person("A", "Lê Nam")], {}, (), QN_DOMAIN, QN)
    with pytest.raises(NamingError, match="not a mail domain"):
        allocate([], {}, (), "not a domain", QN)
    with pytest.raises(NamingError, match="no split name"):
        allocate([Wanted("A", Kind.PERSON)], {}, (), QN_DOMAIN, QN)


@pytest.mark.parametrize("domain", ["xn--qung-nam-9za.gov.vn", "a-b.vn", "quangnam.gov.vn"])
def test_every_domain_the_schema_accepts_is_a_mail_domain(domain: str) -> None:
    assert str(allocate([person("A", "Lê Na")], {}, (), domain, QN)["A"]) == f"nal@{domain}"


# ---------------------------------------------------------------------------------------------
# Length


def test_long_names_are_cut_at_64_characters_given_name_first() -> None:
    parts = split("Nguyễn Văn A" + "b" * 80)
    box = Wanted("A", Kind.PERSON, parts, "sotttt")
    qn = allocate([box, replace(box, key="B")], {}, (), QN_DOMAIN, QN)
    assert [len(a.local) for a in qn.values()] == [64, 64]
    assert qn["A"].local.endswith("bnv")
    assert qn["B"].local.endswith("bnv1")
    hg = allocate([box, replace(box, key="B")], {}, (), HG_DOMAIN, HG)
    assert hg["A"].local.startswith("nvab") and hg["A"].local.endswith("b.sotttt")
    assert hg["B"].local.startswith("nvab") and hg["B"].local.endswith("b1.sotttt")
    assert all(len(a.local) == 64 for a in hg.values())
    for key, address in hg.items():
        assert HG.accepts(address.local, parts, "sotttt"), key
    for key, address in qn.items():
        assert QN.accepts(address.local, parts, "sotttt"), key


def test_abbreviation_too_long_for_a_local_part() -> None:
    long = "a" * 70
    boxes = [agency("x", long), unit("x", long, "vp", "vp"), person("A", "Lê Na", long)]
    result = allocate(boxes, {}, (), HG_DOMAIN, HG)
    assert dict(result) == {}
    assert "leaves no room for the name" in result.problems["A"]
    assert "70 characters before the @, more than 64" in result.problems["agency:x"]
    assert "73 characters before the @" in result.problems["unit:x/vp"]
    # 62 letters: the organisation mailbox fits, a unit's does not, a person's name is cut
    b62 = "b" * 62
    fits = allocate(
        [agency("x", b62), unit("x", b62, "vp", "vp"), person("A", "Lê Na", b62)],
        {},
        (),
        HG_DOMAIN,
        HG,
    )
    assert addresses(fits) == {"agency:x": f"{b62}@{HG_DOMAIN}", "A": f"l.{b62}@{HG_DOMAIN}"}
    assert "choose another unit abbreviation" in fits.problems["unit:x/vp"]


# ---------------------------------------------------------------------------------------------
# Properties

FAMILIES = ["Nguyễn", "Ngô", "Nông", "Trần", "Lê", "Đặng", "Ðặng", "Giàng", "Tôn Nữ"]
MIDDLES = ["", "Văn", "Thị", "Vạn", "Seo", "Thị Tú", "Hữu"]
GIVENS = ["Sơn", "Nam", "Vân", "Hoà", "Hòa", "H'Hen", "Lử"]
AGENCIES = ["sotttt", "soyte", "a"]

names = st.builds(
    lambda f, m, g: " ".join(x for x in (f, m, g) if x),
    st.sampled_from(FAMILIES),
    st.sampled_from(MIDDLES),
    st.sampled_from(GIVENS),
)
regs = st.sampled_from([QN, HG])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Wanted], dict[str, str], list[str]]:
    count = draw(st.integers(0, 14))
    boxes = []
    for i in range(count):
        name = draw(names)
        boxes.append(
            person(
                f"P{i:02d}",
                name,
                draw(st.sampled_from(AGENCIES)),
                rank=draw(st.one_of(st.none(), st.integers(1, 3))),
            )
        )
    if draw(st.booleans()):
        boxes.append(agency("a", "a", "a"))
        boxes.append(unit("a", "a", "u", "nvson"))
    pool = [
        "sonnv",
        "sonnv1",
        "nvson.sotttt",
        "ngvson.sotttt",
        "nvson1.sotttt",
        "vanntt",
        "namnv",
        "nvnam.soyte",
        "a",
        "sontt.a",
    ]
    taken = {
        f"{local}@x.gov.vn": "" for local in draw(st.lists(st.sampled_from(pool), unique=True))
    }
    reserved = draw(st.lists(st.sampled_from([*pool, "hoant"]), max_size=2))
    return boxes, taken, reserved


SHUFFLE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SHUFFLE
@given(scenarios(), regs, st.randoms(use_true_random=False))
def test_allocation_properties(
    scenario: tuple[list[Wanted], dict[str, str], list[str]],
    reg: regulations.Regulation,
    rnd: random.Random,
) -> None:
    boxes, taken, reserved = scenario
    result = allocate(boxes, taken, reserved, "x.gov.vn", reg)
    if result.problems:  # only an organisation address reserved or already held may refuse
        kinds = {box.key: box.kind for box in boxes}
        for key, problem in result.problems.items():
            assert kinds[key] is not Kind.PERSON and "choose another" in problem
        return
    # well-formed addresses
    for address in result.values():
        assert re.fullmatch(r"[a-z0-9.]+@x\.gov\.vn", str(address))
        assert len(address.local) <= 64
        assert address.clause.startswith(reg.code + " Đ")
    # unique, never taken by someone else, never reserved
    assert len({str(a) for a in result.values()}) == len(result)
    for address in result.values():
        assert str(address) not in taken
        assert address.local not in set(reserved) | RESERVED
    # every person got one, and one the regulation accepts for them
    for box in boxes:
        if box.kind is Kind.PERSON:
            assert box.parts is not None
            assert reg.accepts(result[box.key].local, box.parts, box.agency_abbr)
    # deterministic and independent of input order
    shuffled = list(boxes)
    rnd.shuffle(shuffled)
    assert allocate(shuffled, dict(reversed(taken.items())), reserved, "x.gov.vn", reg) == result
    # allocating again with the result as current changes nothing
    issued = {str(a): k for k, a in result.items()}
    again = [replace(b, current=str(result[b.key])) if b.key in result else b for b in boxes]
    assert allocate(again, {**taken, **issued}, reserved, "x.gov.vn", reg) == result
    # nor does it without the issued addresses being listed as taken
    assert allocate(again, taken, reserved, "x.gov.vn", reg) == result
    # adding people never changes an issued address
    newcomers = [
        person(f"N{i}", name, rank=1)
        for i, name in enumerate(
            ["Nguyễn Văn Sơn", "Ngô Văn Sơn", "Nguyễn Thị Tú Vân", "Trần Văn Nam"]
        )
    ]
    more = allocate(again + newcomers, {**taken, **issued}, reserved, "x.gov.vn", reg)
    assert {k: more[k] for k in result} == result
    # the names of the holders of the issued addresses, told, change nothing: a mailbox that
    # keeps its address is then known as its holder from `taken` and `holders` alone
    named = {str(result[b.key]): b.parts.full for b in boxes if b.parts and b.key in result}
    told = allocate(
        again + newcomers, {**taken, **issued}, reserved, "x.gov.vn", reg, holders=named
    )
    assert told == more


@SHUFFLE
@given(scenarios(), regs, st.booleans(), st.sampled_from([None, QN, HG]))
def test_each_address_is_made_with_the_clause_of_its_rule(
    scenario: tuple[list[Wanted], dict[str, str], list[str]],
    reg: regulations.Regulation,
    moved: bool,
    own: regulations.Regulation | None,
) -> None:
    """An `Allocation` keeps each address as one str, and its clause only where it is not the
    regulation's person clause: the `Address` made from them is the one the mailbox's own rule
    gives it, newcomer or kept (in the same domain or moved to another), under the allocation's
    regulation or another."""
    boxes, taken, reserved = scenario
    boxes = [replace(b, regulation=own) if b.key.startswith("P0") else b for b in boxes]
    first = allocate(boxes, taken, reserved, "x.gov.vn", reg)
    again = [replace(b, current=first.address(b.key)) if b.key in first else b for b in boxes]
    kept = allocate(again, taken, reserved, "y.gov.vn" if moved else "x.gov.vn", reg)
    for result in (first, kept):
        assert dict(result) == {k: result[k] for k in result.addresses}
        for box in boxes:
            if box.key not in result:
                continue
            address = result[box.key]
            assert str(address) == result.address(box.key)
            assert address.domain == ("y.gov.vn" if moved and result is kept else "x.gov.vn")
            rule = box.regulation or reg
            if box.kind is Kind.AGENCY:
                assert address.clause == rule.agency_clause
            elif box.kind is Kind.UNIT:
                assert address.clause == rule.unit_clause
            else:
                assert box.parts is not None
                plain = address.local == rule.plain(box.parts, box.agency_abbr)
                assert address.clause == (rule.person_clause if plain else rule.collision_clause)


#: agency abbreviations that leave room for a name, for a name and no number (62 letters:
#: numbered forms do not fit), for nothing (63), or that are no address part
ABBRS = ["sotttt", "a", "b" * 61, "c" * 62, "d" * 63, "Sở"]


@st.composite
def checked(draw: st.DrawFn) -> tuple[list[Wanted], dict[str, str], list[str]]:
    """An inventory checked alone (`problems`): no current addresses; pins, namesakes, long
    abbreviations and mailboxes under the other regulation."""
    boxes, taken, reserved = draw(scenarios())
    # most people are of one agency, whose abbreviation leaves room for no number at times
    abbr = draw(st.sampled_from([*ABBRS, "c" * 62, "c" * 62]))
    pins = [None, None, None, "nvson.sotttt@x.gov.vn", "admin@x.gov.vn", "a@x.gov.vn"]
    out = []
    for box in boxes:
        if box.kind is Kind.PERSON:
            box = replace(
                box,
                agency_abbr=draw(st.sampled_from([abbr, abbr, box.agency_abbr])),
                pinned=draw(st.sampled_from(pins)),
                regulation=draw(st.sampled_from([None, None, QN, HG])),
            )
        out.append(box)
    return out, taken, reserved


@SHUFFLE
@given(checked(), regs)
def test_problems_are_the_allocations_problems(
    scenario: tuple[list[Wanted], dict[str, str], list[str]], reg: regulations.Regulation
) -> None:
    """`problems`, which does not allocate people who cannot fail, says what `allocate` says."""
    boxes, taken, reserved = scenario
    expected = allocate(boxes, taken, reserved, "x.gov.vn", reg).problems
    assert problems(boxes, taken, reserved, "x.gov.vn", reg) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(regulations.KNOWN),
    st.text("abcdefghij", min_size=1, max_size=70),
    st.text("abcdefghij", min_size=1, max_size=70),
    st.text("abcdefghij", min_size=1, max_size=70),
    st.text("abcdefghij", min_size=1, max_size=70),
    st.sampled_from([*ABBRS, "e" * 60, "sở", ""]),
    st.integers(1, 10**7),
    st.integers(1, 10**7),
)
def test_render_fits_whatever_the_name(
    reg_id: str,
    stem: str,
    given_name: str,
    other_stem: str,
    other_given: str,
    abbr: str,
    bound: int,
    number: int,
) -> None:
    """What `problems` counts on: whether a regulation renders a personal local part depends on
    the agency abbreviation and the number's digits alone, and a number of fewer digits fits
    where a longer one does."""
    reg = regulations.get(reg_id)

    def fits(stem: str, given_name: str, number: int | None) -> bool:
        try:
            reg.render(stem, given_name, number, abbr)
        except NamingError:
            return False
        return True

    number = min(number, bound)
    if fits(stem, given_name, None) and fits(stem, given_name, bound):
        assert fits(other_stem, other_given, None)
        assert fits(other_stem, other_given, number)


@settings(max_examples=60, deadline=None)
@given(
    st.text(min_size=1, max_size=30),
    st.text(min_size=1, max_size=30),
    st.text(min_size=1, max_size=30),
    regs,
)
def test_any_unicode_name_gives_a_valid_address_or_a_naming_error(
    family: str, middle: str, given_name: str, reg: regulations.Regulation
) -> None:
    try:
        parts = split(f"{family} {middle} {given_name}")
    except NamingError:
        return
    result = allocate([Wanted("P", Kind.PERSON, parts, "sotttt")], {}, (), "x.gov.vn", reg)
    assert re.fullmatch(r"[a-z0-9.]{1,64}@x\.gov\.vn", str(result["P"]))


# ---------------------------------------------------------------------------------------------
# Scale


@pytest.mark.slow
def test_one_hundred_thousand_mailboxes_with_many_collisions() -> None:
    import time

    rnd = random.Random(7)
    families = ["Nguyễn", "Ngô", "Nông", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi"]
    middles = ["Văn", "Thị", "Hữu", "Đức", "Minh", ""]
    givens = ["Sơn", "Nam", "Vân", "Hà", "Lan", "Hùng", "Dũng", "Hoa"]
    cache: dict[str, NameParts] = {}
    boxes = []
    for i in range(100_000):
        name = " ".join(
            x for x in (rnd.choice(families), rnd.choice(middles), rnd.choice(givens)) if x
        )
        parts = cache.setdefault(name, split(name))
        boxes.append(
            Wanted(
                f"P{i:06d}",
                Kind.PERSON,
                parts,
                rnd.choice(["sotttt", "soyte"]),
                rank=rnd.choice([None, 1, 2]),
            )
        )
    for reg in (QN, HG):
        start = time.perf_counter()
        result = allocate(boxes, {}, (), "x.gov.vn", reg)
        elapsed = time.perf_counter() - start
        assert len({str(a) for a in result.values()}) == 100_000
        assert elapsed < 10, f"{reg.id}: {elapsed:.1f}s"  # about 1 s on a laptop; CI is slower
