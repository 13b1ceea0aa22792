"""One test per rule the tool enforces, named after its clause, for the rules whose behaviour other
suites prove at length (naming, time rules, the report): here each is shown once, plainly, the way
`docs/regulations.md` states it. The scenarios of issue 16 are in `test_law.py`."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from reconciler.applying.credentials import generate
from reconciler.directory import Directory, open_directory
from reconciler.errors import InventoryError
from reconciler.inventory import loader
from reconciler.model import Action, Kind, Plan
from reconciler.names import split
from reconciler.rules import naming, regulations

from . import scenario

QN = regulations.get("quangnam-2020")
HG = regulations.get("hagiang-2024")
BROKEN = Path(__file__).resolve().parent / "broken"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "regulations.md"


@pytest.fixture
def ldif(tmp_path: Path) -> Directory:
    return open_directory(f"ldif:{tmp_path / 'directory.ldif'}")


def first_plan(spec: dict, ldif: Directory, tmp_path: Path) -> Plan:
    return scenario.plan(scenario.write(spec, tmp_path / "inv"), ldif)


def refused(case: str) -> list[str]:
    with pytest.raises(InventoryError) as error:
        loader.load(BROKEN / case, regulations.get)
    return [p.message for p in error.value.problems]


# --- quangnam-2020 -----------------------------------------------------------------------------


def test_qn_2020_d4_1_the_personal_address_is_given_name_then_initials() -> None:
    assert naming.address_for("Nguyễn Văn Nam", QN, None) == "namnv@quangnam.gov.vn"
    assert naming.address_for("Nguyễn Thị Tú Vân", QN, None) == "vanntt@quangnam.gov.vn"


def test_qn_2020_d4_2_namesakes_are_numbered_and_the_higher_rank_keeps_the_plain_form() -> None:
    parts = split("Nguyễn Thị Tú Vân")
    wanted = [
        naming.Wanted("B", Kind.PERSON, parts, rank=5),
        naming.Wanted("A", Kind.PERSON, parts, rank=2),
    ]
    got = naming.allocate(wanted, {}, (), "quangnam.gov.vn", QN)
    assert (got["A"].local, got["B"].local) == ("vanntt", "vanntt1")
    assert got["B"].clause == "QN-2020 Đ4.2"


def test_qn_2020_d5_1_a_new_mailbox_cites_the_request_and_the_address_rule(
    ldif: Directory, tmp_path: Path
) -> None:
    create = first_plan(scenario.qn(), ldif, tmp_path).operations[0]
    assert (create.action, create.clause, create.address_clause) == (
        Action.CREATE, "QN-2020 Đ5.1", "QN-2020 Đ4.1")


def test_qn_2020_d5_3_and_d6_3_an_issued_password_must_be_changed(
    ldif: Directory, tmp_path: Path
) -> None:
    create = first_plan(scenario.qn(), ldif, tmp_path).operations[0]
    written = {c.attr: c.after for c in create.attributes}
    assert written["pwdReset"] == ("TRUE",)
    assert QN.must_change_clause == "QN-2020 Đ6.3" and QN.reset_clause == "QN-2020 Đ6.2"


def test_qn_2020_d7_1_a_record_removed_is_deleted_on_request(
    ldif: Directory, tmp_path: Path
) -> None:
    spec = scenario.qn()
    folder = scenario.write(spec, tmp_path / "inv")
    scenario.apply(scenario.plan(folder, ldif), ldif, tmp_path / "out")
    spec["agencies"]["soyte"]["staff"] = []
    scenario.write(spec, folder)
    (op,) = scenario.plan(folder, ldif).operations
    assert (op.action, op.clause) == (Action.DELETE, "QN-2020 Đ7.1")


def test_qn_2020_d7_2_only_its_grounds_may_be_declared() -> None:
    (message,) = refused("qn-2020-d7-2-not-a-suspension-ground")
    assert "is not a ground for suspension under quangnam-2020" in message


@pytest.mark.parametrize("regulation", [QN, HG])
def test_qn_2020_d8_1_d8_2_and_hg_2024_d6_2_every_issued_password_meets_the_rule(
    regulation: regulations.Regulation,
) -> None:
    parts = split("Nguyễn Văn Nam")
    for _ in range(200):
        assert regulation.password_ok(generate(["nguyen", "van", "nam"]), parts) is None
    assert QN.password_ok("Nam12345!", parts) is not None  # a name: QN-2020 Đ8.1
    assert HG.password_ok("abcdefg1!", parts) is not None  # no upper case: HG-2024 Đ6.2


def test_qn_2020_d9_the_quota_ceiling() -> None:
    (default,) = refused("qn-2020-d9-default-quota-above-ceiling")
    assert "above the QN-2020 Đ9 ceiling of 5 GB" in default
    (decision,) = refused("qn-2020-d9-quota-decision-without-document")
    assert "by its number and date" in decision


def test_qn_2020_d10_3_a_transfer_is_an_update_the_address_stays(
    ldif: Directory, tmp_path: Path
) -> None:
    spec = scenario.qn()
    folder = scenario.write(spec, tmp_path / "inv")
    scenario.apply(scenario.plan(folder, ldif), ldif, tmp_path / "out")
    spec["agencies"]["sotttt"]["staff"].append(spec["agencies"]["soyte"]["staff"].pop())
    scenario.write(spec, folder)
    (op,) = scenario.plan(folder, ldif).operations
    assert (op.action, op.clause, op.address) == (
        Action.UPDATE, "QN-2020 Đ10.3", "lantt@quangnam.gov.vn")


# --- hagiang-2024 ------------------------------------------------------------------------------


def test_hg_2024_d2_3_legacy_vietnamese_encodings_are_refused() -> None:
    assert any("TCVN3" in m or "legacy" in m.lower() for m in refused("legacy-tcvn3"))


def test_hg_2024_d5_1_organisation_and_unit_addresses(ldif: Directory, tmp_path: Path) -> None:
    plan = first_plan(scenario.hg(), ldif, tmp_path)
    by_id = {op.id: op for op in plan.operations}
    assert by_id["agency:sotttt"].address == "sotttt@hagiang.gov.vn"
    assert by_id["unit:sotttt/vanphong"].address == "vanphong.sotttt@hagiang.gov.vn"
    assert by_id["agency:sotttt"].address_clause == "HG-2024 Đ5.1"


def test_hg_2024_d5_2_personal_address_and_both_collision_rules() -> None:
    assert naming.address_for("Nguyễn Văn Sơn", HG, "sotttt") == "nvson.sotttt@hagiang.gov.vn"
    taken = {"nvson.sotttt@hagiang.gov.vn": "HG-0001"}
    holders = {"nvson.sotttt@hagiang.gov.vn": "nguyen van son"}
    wanted = [
        naming.Wanted("HG-0002", Kind.PERSON, split("Ngô Văn Sơn"), agency_abbr="sotttt"),
        naming.Wanted("HG-0003", Kind.PERSON, split("Nguyễn Văn Sơn"), agency_abbr="sotttt"),
    ]
    got = naming.allocate(wanted, taken, (), "hagiang.gov.vn", HG, holders=holders)
    assert got["HG-0002"].local == "ngvson.sotttt"  # (a) names differ: lengthen the initials
    assert got["HG-0003"].local == "nvson1.sotttt"  # (b) identical names: a number


def test_hg_2024_d6_1_an_issued_password_must_be_changed_at_the_first_access(
    ldif: Directory, tmp_path: Path
) -> None:
    plan = first_plan(scenario.hg(), ldif, tmp_path)
    assert all(
        {c.attr: c.after for c in op.attributes}["pwdReset"] == ("TRUE",)
        for op in plan.operations
    )


def test_hg_2024_d7_1_create_transfer_and_delete_cite_the_request(
    ldif: Directory, tmp_path: Path
) -> None:
    spec = scenario.hg()
    folder = scenario.write(spec, tmp_path / "inv")
    assert {op.clause for op in scenario.plan(folder, ldif).operations} == {"HG-2024 Đ7.1"}
    scenario.apply(scenario.plan(folder, ldif), ldif, tmp_path / "out")
    spec["agencies"]["sotttt"]["staff"].append(spec["agencies"]["soyte"]["staff"].pop())
    scenario.write(spec, folder)
    (rename,) = scenario.plan(folder, ldif).operations
    assert (rename.action, rename.clause, rename.address_clause) == (
        Action.RENAME, "HG-2024 Đ7.1", "HG-2024 Đ5.2")


def test_hg_2024_d7_2_the_delete_guard_says_a_deletion_cannot_be_undone() -> None:
    from reconciler.errors import UnsafePlan
    from reconciler.model import Limits
    from reconciler.planning.limits import check_limits

    plan = Plan("hagiang-2024", "hagiang.gov.vn", "dc=x", dt.datetime.now(dt.UTC), "", "", "",
                "", tuple(_delete(f"HG-{n}") for n in range(3)))
    with pytest.raises(UnsafePlan, match=re.escape("cannot be restored (HG-2024 Đ7.2)")):
        check_limits(plan, Limits(max_deletes=1))


def _delete(key: str):  # type: ignore[no-untyped-def]
    from reconciler.model import Operation

    return Operation(Action.DELETE, key, f"{key}@hagiang.gov.vn", "HG-2024 Đ7.1", "removed")


def test_hg_2024_d8_2_c_is_a_ground_and_d8_2_a_is_not(tmp_path: Path) -> None:
    assert HG.suspension_problem("HG-2024 Đ8.2.c") is None
    assert HG.suspension_problem("HG-2024 Đ8.1") is None
    messages = refused("hg-2024-d8-not-a-suspension-ground")
    assert any('"HG-2024 Đ8.2.a" is not a ground' in m for m in messages)


def test_hg_2024_d11_2_the_manager_is_the_head_or_a_named_delegate() -> None:
    other, not_head = refused("hg-2024-d11-2-manager")
    assert 'is staff of agency "soyte"' in other
    assert "name the written delegation as `manager_delegation`" in not_head


def test_hg_2024_d12_2_a_reset_cites_the_request_for_a_new_password() -> None:
    assert HG.reset_clause == "HG-2024 Đ12.2" and HG.must_change_clause == "HG-2024 Đ6.1"


# --- the clause table ---------------------------------------------------------------------------


def test_the_clause_table_names_only_tests_that_exist() -> None:
    """docs/regulations.md names, for each rule the tool enforces, the test that proves it."""
    table = DOCS.read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", table))
    assert len(named) >= 30
    defined = {
        m
        for path in Path(__file__).resolve().parent.glob("test_*.py")
        for m in re.findall(r"^def (test_[a-z0-9_]+)", path.read_text(encoding="utf-8"), re.M)
    }
    assert named - defined == set()
    # every test named after a clause is in the table
    after_clause = {t for t in defined if re.match(r"test_(qn_2020|hg_2024)_d[0-9]", t)}
    assert after_clause - named == set()


def test_hg_2024_d8_1_a_lock_found_at_import_is_recorded_as_a_request_not_a_breach() -> None:
    from reconciler.model import Entry
    from reconciler.outputs import importer

    def entry(dn: str, classes: tuple[str, ...], **attrs: str) -> Entry:
        return Entry(dn, {"objectclass": classes, **{k.lower(): (v,) for k, v in attrs.items()}})

    people = ("top", "person", "organizationalPerson", "inetOrgPerson")
    entries = [
        entry("dc=legacy,dc=vn", ("dcObject", "organization")),
        entry("ou=users,dc=legacy,dc=vn", ("organizationalUnit",)),
        entry("uid=son,ou=users,dc=legacy,dc=vn", people, uid="son", cn="Nguyễn Văn Sơn",
              sn="Nguyễn", mail="son@hagiang.gov.vn", departmentNumber="Sở Y tế",
              pwdAccountLockedTime="000001010000Z"),
    ]
    options = importer.Options(
        regulation="hagiang-2024", domain="hagiang.gov.vn", base_dn="dc=legacy,dc=vn",
        people_base="ou=users,dc=legacy,dc=vn", today=dt.date(2026, 11, 23),
        agency_attribute="departmentNumber",
    )
    result = importer.build(entries, options)
    (record,) = [r for doc in result.agencies.values() for r in doc["staff"]]
    assert record["suspension"] == {
        "clause": "HG-2024 Đ8.1", "note": "found suspended at import on 2026-11-23"}
