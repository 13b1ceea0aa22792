"""`reconciler merge` without a directory: the map's problems at its lines (JSON Schema and the
two inventories), ids that clash, the prefix, and what the merged files say."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from reconciler.inventory import loader

from .helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent / "inventory"


def run(*args: str) -> tuple[int, str]:
    result = run_cli(*args)
    return result.returncode, result.stdout + result.stderr


def merge(tmp: Path, map_text: str, target: Path | None = None) -> tuple[int, str, Path]:
    path = tmp / "map.yaml"
    path.write_text(map_text, encoding="utf-8")
    out = tmp / "out"
    shutil.rmtree(out, ignore_errors=True)
    into = str(target or ROOT / "danang")
    source = str(ROOT / "quangnam")
    code, text = run(
        "merge", "--from", source, "--into", into, "--map", str(path), "--out", str(out)
    )
    return code, text, path


EXAMPLE = (ROOT / "danang" / "merge-quangnam.yaml").read_text(encoding="utf-8")


def test_the_map_is_checked_against_its_schema_with_lines(tmp_path: Path) -> None:
    code, text, path = merge(tmp_path, "agencies:\n  sotttt: {into: sokhcn, colour: red}\n")
    assert code == 1
    assert f"{path}:2: agencies.sotttt.colour: unknown key `colour`" in text


def test_every_source_agency_needs_a_place_that_exists(tmp_path: Path) -> None:
    broken = EXAMPLE.replace("  soyte: soyte\n", "  soyte: sosuckhoe\n").replace(
        "  sogddt: sogddt\n", ""
    )
    code, text, path = merge(tmp_path, broken)
    assert code == 1
    lines = broken.splitlines()
    at = lines.index("  soyte: sosuckhoe") + 1
    said = f'{path}:{at}: agencies.soyte.into: the target inventory has no agency "sosuckhoe"'
    assert said in text
    assert f'the source agency "sogddt" ({ROOT / "quangnam"}/agencies/sogddt.yaml:' in text


def test_an_id_both_provinces_use_names_both_records_or_takes_the_prefix(tmp_path: Path) -> None:
    target = tmp_path / "danang"
    shutil.copytree(ROOT / "danang", target)
    agency = target / "agencies" / "soyte.yaml"
    agency.write_text(agency.read_text(encoding="utf-8").replace("DN-0013", "QN-0029"), "utf-8")
    code, text, _ = merge(tmp_path, EXAMPLE, target)
    assert code == 1
    assert (
        f'{ROOT / "quangnam"}/agencies/soyte.yaml:15: staff id "QN-0029" is also Lê Quang Hùng\'s '
        f"in the target ({agency}:" in text
    )
    code, text, _ = merge(tmp_path, "id_prefix: QN-\n" + EXAMPLE, target)
    assert code == 0, text
    people = {p.id: p for p in loader.load(tmp_path / "out").people}
    assert "QN-QN-0029" in people and people["QN-QN-0029"].origin.id == "QN-0029"  # type: ignore[union-attr]
    assert people["QN-0029"].agency == "soyte"  # the target's own record, untouched


def test_the_merged_files_keep_every_former_address_and_say_where_records_came_from(
    tmp_path: Path,
) -> None:
    code, text, _ = merge(tmp_path, EXAMPLE)
    assert code == 0, text
    out = tmp_path / "out"
    settings = yaml.safe_load((out / "directory.yaml").read_text(encoding="utf-8"))
    assert settings["former_domains"] == ["quangnam.gov.vn"]
    inventory = loader.load(out)
    people = {p.id: p for p in inventory.people}
    binh = people["QN-0006"]  # pinned tvbinh@ and an alias in Quảng Nam
    assert binh.address is None
    assert set(binh.aliases) == {"tvbinh@quangnam.gov.vn", "tranvanbinh@quangnam.gov.vn"}
    assert binh.origin is not None and binh.origin.agency == "sotttt"
    assert people["DN-0033"].address == "tmduc@danang.gov.vn"  # the target's pin stays
    xa = inventory.agency("ubnd-xa-dailoc")
    assert xa is not None and xa.aliases == ("ubnddailoc@quangnam.gov.vn",)
    daihung = {p.agency for p in inventory.people if p.origin and p.origin.agency == "ubnd-daihung"}
    assert daihung == {"ubnd-xa-dailoc"}
    khcn = inventory.agency("sokhcn")
    assert khcn is not None and khcn.aliases == ("vanphongsotttt@quangnam.gov.vn",)
    assert {u.id for u in khcn.units} >= {"vanphong", "cds", "bcxb", "cntt", "ttcntt"}


def test_a_legacy_reserved_pin_is_carried_through_the_merge(tmp_path: Path) -> None:
    """Issue 14: a legacy `admin@` pin says it was issued before (`legacy: true`). The target's
    record keeps it with its pin; a source record loses its pin, and `legacy` with it, and keeps
    the address as an alias in the former domain, which its `origin` says was issued there."""
    source, target = tmp_path / "quangnam", tmp_path / "danang"
    shutil.copytree(ROOT / "quangnam", source)
    shutil.copytree(ROOT / "danang", target)
    for path, record, address in (
        (source / "agencies" / "sotttt.yaml", "  - id: QN-0002\n", "admin@quangnam.gov.vn"),
        (target / "agencies" / "sogddt.yaml", "  - id: DN-0022\n", "admin@danang.gov.vn"),
    ):
        text = path.read_text(encoding="utf-8")
        assert record in text
        pin = f"    address: {address}  # legacy address kept as issued\n    legacy: true\n"
        path.write_text(text.replace(record, record + pin), encoding="utf-8")
    out = tmp_path / "out"
    code, text = run(
        "merge", "--from", str(source), "--into", str(target), "--map",
        str(target / "merge-quangnam.yaml"), "--out", str(out),
    )  # fmt: skip
    assert code == 0, text
    assert run("validate", str(out))[0] == 0
    records = {
        r["id"]: r
        for f in (out / "agencies").glob("*.yaml")
        for r in yaml.safe_load(f.read_text(encoding="utf-8"))["staff"]
    }
    moved = records["QN-0002"]
    assert "address" not in moved and "legacy" not in moved
    assert moved["aliases"] == ["admin@quangnam.gov.vn"]
    assert moved["origin"]["address"] == "admin@quangnam.gov.vn"
    kept = records["DN-0022"]
    assert (kept["address"], kept["legacy"]) == ("admin@danang.gov.vn", True)


def _carried_plan(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A saved plan of the merged example that carries QN-0001's mailbox from a source entry."""
    import datetime as dt
    import json

    from reconciler.model import Entry
    from reconciler.planning import pipeline, planfile
    from reconciler.planning.plan import Context

    code, text, _ = merge(tmp_path, EXAMPLE)
    assert code == 0, text
    loaded = pipeline.load(tmp_path / "out")
    source = Entry(
        "uid=namnv,ou=people,dc=quangnam,dc=gov,dc=vn",
        {
            "objectclass": ("inetOrgPerson", "govMailAccount"),
            "employeenumber": ("QN-0001",),
            "uid": ("namnv",),
            "mail": ("namnv@quangnam.gov.vn",),
            "govmailalias": ("nguyenvannam@quangnam.gov.vn",),
            "pwdaccountlockedtime": ("000001010000Z",),
            "govmailsuspendedat": ("20250301000000Z",),
            "pwdlastsuccess": ("20250630080000Z",),
        },
    )
    context = Context(
        now=dt.datetime(2025, 7, 2, tzinfo=dt.UTC),
        sources={"QN-0001": source},
        source_url="ldap://127.0.0.1:1",
        source_base_dn="dc=quangnam,dc=gov,dc=vn",
    )
    plan = pipeline.make_plan(loaded, [], context, limits=None)
    path = tmp_path / "plan.json"
    planfile.save(plan, path)
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_a_carried_create_lists_what_it_carries_and_never_the_password(tmp_path: Path) -> None:
    from reconciler.model import Deferred
    from reconciler.planning import planfile

    path, data = _carried_plan(tmp_path)
    op = next(o for o in data["operations"] if o["id"] == "QN-0001")
    assert op["source"]["dn"] == "uid=namnv,ou=people,dc=quangnam,dc=gov,dc=vn"
    written = op["attributes"]
    assert written["userPassword"] == [{"deferred": "carried password"}]
    assert written["pwdAccountLockedTime"] == ["000001010000Z"]
    assert written["govMailSuspendedAt"] == ["20250301000000Z"]  # its start, not the apply's
    assert written["govMailLastLogin"] == ["20250630080000Z"]
    assert set(written["govMailAlias"]) == {"namnv@quangnam.gov.vn", "nguyenvannam@quangnam.gov.vn"}
    assert "pwdReset" not in written and "govMailPasswordIssuedAt" not in written
    assert data["source"] == {"url": "ldap://127.0.0.1:1", "base_dn": "dc=quangnam,dc=gov,dc=vn"}
    loaded = planfile.load(path)
    carried = next(o for o in loaded.operations if o.id == "QN-0001")
    assert carried.source is not None and carried.source.login == "namnv"
    assert dict((c.attr, c.after) for c in carried.attributes)["userPassword"] == (
        Deferred.CARRIED,
    )


def test_a_plan_file_with_a_carried_marker_out_of_place_is_refused(tmp_path: Path) -> None:
    import json

    import pytest

    from reconciler.errors import ReconcilerError
    from reconciler.planning import planfile

    _, data = _carried_plan(tmp_path)
    for edit, says in (
        (lambda o: o.pop("source"), "names no source entry"),
        (lambda o: o["attributes"].update(title=[{"deferred": "carried password"}]),
         "a carried password can only go to userPassword, not to title"),
    ):  # fmt: skip
        edited = json.loads(json.dumps(data))
        target = next(o for o in edited["operations"] if o["id"] == "QN-0001")
        edit(target)
        (tmp_path / "edited.json").write_text(json.dumps(edited), encoding="utf-8")
        with pytest.raises(ReconcilerError, match=says):
            planfile.load(tmp_path / "edited.json")


def test_a_merged_inventory_planned_without_its_source_says_what_it_would_not_carry(
    tmp_path: Path,
) -> None:
    import datetime as dt

    from reconciler.planning import pipeline
    from reconciler.planning.plan import Context

    assert merge(tmp_path, EXAMPLE)[0] == 0
    loaded = pipeline.load(tmp_path / "out")
    plan = pipeline.make_plan(
        loaded, [], Context(now=dt.datetime(2025, 7, 2, tzinfo=dt.UTC)), limits=None
    )
    assert any(
        note.startswith("60 merged records from a former province get a new mailbox with a new "
                        "password") and "--source-directory" in note
        for note in plan.notes
    )  # fmt: skip


def test_a_legacy_source_entry_is_found_by_its_former_address_and_its_hash_carried(
    tmp_path: Path,
) -> None:
    """A source directory the reconciler never managed (no employeeNumber): the former mailbox
    is found by the record's former address, and apply writes its hash as it was (LDIF files as
    both directories)."""
    import datetime as dt

    from reconciler.devtools.throwaway import ssha
    from reconciler.directory import open_directory
    from reconciler.planning import pipeline
    from reconciler.planning.plan import Context

    from . import scenario

    assert merge(tmp_path, EXAMPLE)[0] == 0
    hashed = ssha("Mat-khau-cu-1")
    source_file = tmp_path / "source.ldif"
    source_file.write_text(
        "version: 1\n\ndn: dc=quangnam,dc=gov,dc=vn\nobjectClass: dcObject\nobjectClass: "
        "organization\ndc: quangnam\no: quangnam\n\n"
        "dn: cn=Nguyen Van Nam,dc=quangnam,dc=gov,dc=vn\nobjectClass: inetOrgPerson\n"
        "cn: Nguyen Van Nam\nsn: Nguyen\nuid: nam.nv\nmail: namnv@quangnam.gov.vn\n"
        f"userPassword: {hashed}\n\n",
        encoding="utf-8",
    )
    loaded = pipeline.load(tmp_path / "out")
    with open_directory(f"ldif:{source_file}") as source:
        found = pipeline.read_sources(source, "dc=quangnam,dc=gov,dc=vn", loaded)
        assert list(found) == ["QN-0001"]
        target_url = f"ldif:{tmp_path / 'target.ldif'}"
        with open_directory(target_url) as target:
            context = Context(
                now=dt.datetime(2025, 7, 2, tzinfo=dt.UTC),
                directory_url=target_url,
                sources=found,
                source_url=source.url,
                source_base_dn="dc=quangnam,dc=gov,dc=vn",
            )
            plan = pipeline.make_plan(loaded, pipeline.read(target, loaded), context, limits=None)
            recap = scenario.apply(plan, target, tmp_path / "apply", source=source)
            assert recap.failed == 0
    written = (tmp_path / "target.ldif").read_text(encoding="utf-8")
    block = next(b for b in written.split("\n\n") if "employeeNumber: QN-0001" in b)
    assert f"userPassword: {hashed}" in block and "govMailAlias: namnv@quangnam.gov.vn" in block
    assert "nam.nv" not in written  # the login changes with the address: the job list says so


def test_a_unit_whose_abbreviation_the_destination_uses_is_a_problem_of_the_map(
    tmp_path: Path,
) -> None:
    target = tmp_path / "danang"
    shutil.copytree(ROOT / "danang", target)
    agency = target / "agencies" / "sokhcn.yaml"
    text = agency.read_text(encoding="utf-8")
    agency.write_text(
        text.replace(
            "    - {id: cds, name: Phòng Chuyển đổi số, abbreviation: cds}\n",
            "    - {id: cds, name: Phòng Chuyển đổi số, abbreviation: cntt}\n",
        ),
        encoding="utf-8",
    )
    code, text, path = merge(tmp_path, EXAMPLE, target)
    assert code == 1
    line = EXAMPLE.splitlines().index("  sotttt: sokhcn") + 1
    assert (
        f'{path}:{line}: agencies.sotttt: unit "cntt" of the source agency "sotttt" becomes a '
        'unit of "sokhcn", which already has the abbreviation "cntt"'
    ) in text
    fixed = EXAMPLE.replace("  sotttt: sokhcn\n", "  sotttt: {into: sokhcn, units: {cntt: cds}}\n")
    code, text, _ = merge(tmp_path, fixed, target)
    assert code == 0, text
    people = {p.id: p for p in loader.load(tmp_path / "out").people}
    assert people["QN-0005"].unit == "cds"  # Phòng CNTT of Quảng Nam joins Phòng Chuyển đổi số


def test_a_unit_of_a_source_agency_may_go_to_another_agency_of_the_target(
    tmp_path: Path,
) -> None:
    """Split by unit: the Sở TT&TT joins the Sở KH&CN, but its press division goes elsewhere
    (`units: {bcxb: {agency: …, unit: …}}`); a unit given without `unit` goes whole, a new unit of
    that agency under its own id."""
    split = EXAMPLE.replace(
        "  sotttt: sokhcn\n",
        "  sotttt: {into: sokhcn, units: {bcxb: {agency: vpubnd, unit: tonghop}, "
        "ttcntt: {agency: soyte}}}\n",
    )
    code, text, _ = merge(tmp_path, split, ROOT / "danang")
    assert code == 0, text
    people = {p.id: p for p in loader.load(tmp_path / "out").people}
    moved = people["QN-0006"]  # Phòng Báo chí – Xuất bản
    assert (moved.agency, moved.unit) == ("vpubnd", "tonghop")
    assert people["QN-0001"].agency == "sokhcn"  # the rest of the Sở joins the Sở KH&CN
    centre = people["QN-0011"]  # the Trung tâm CNTT&TT, moved whole into the Sở Y tế
    assert (centre.agency, centre.unit) == ("soyte", "ttcntt")
    merged = loader.load(tmp_path / "out").agency("soyte")
    assert merged is not None and "ttcntt" in {u.id for u in merged.units}


KEEP = """merged: 2025-07-01
keep_regulation: true
agencies:
  sotttt: sokhcn
  soyte: soyte
  vpubnd: vpubnd
  ubnd-dongvan: {id: ubnd-xa-dongvan, name: Ủy ban nhân dân xã Đồng Văn, abbreviation: xadongvan}
  ubnd-lungcu: {id: ubnd-xa-lungcu, name: Ủy ban nhân dân xã Lũng Cú, abbreviation: xalungcu}
"""


def test_a_former_territory_keeps_its_own_regulation_until_the_province_issues_one(
    tmp_path: Path,
) -> None:
    """Hà Giang (hagiang-2024) merged into Đà Nẵng (quangnam-2020) with `keep_regulation`: the
    moved people and the new communes keep hagiang-2024's addresses (in the merged domain),
    clauses, suspension grounds and time rules; Đà Nẵng's own keep quangnam-2020's."""
    import datetime as dt

    from reconciler.directory import open_directory
    from reconciler.model import Action
    from reconciler.outputs import notices
    from reconciler.rules import regulations

    from . import scenario

    path = tmp_path / "map.yaml"
    path.write_text(KEEP, encoding="utf-8")
    out = tmp_path / "out"
    code, text = run("merge", "--from", str(ROOT / "hagiang"), "--into", str(ROOT / "danang"),
                     "--map", str(path), "--out", str(out))  # fmt: skip
    assert code == 0, text
    inventory = loader.load(out)
    people = {p.id: p for p in inventory.people}
    assert people["HG-0001"].regulation == "hagiang-2024" and people["DN-0001"].regulation is None
    assert people["HG-0011"].suspension.clause == "HG-2024 Đ8.2.b"  # type: ignore[union-attr]
    assert inventory.agency("ubnd-xa-dongvan").regulation == "hagiang-2024"  # type: ignore[union-attr]
    started = dt.datetime.now(dt.UTC)  # the LDIF file stamps its entries with the clock
    url = f"ldif:{tmp_path / 'danang.ldif'}"
    with open_directory(url, access="create") as d:
        first = scenario.plan(out, d, started)
        ops = {op.id: op for op in first.operations}
        assert ops["HG-0001"].address == "nvson.sokhcn@danang.gov.vn"  # HG-2024 Đ5.2 form
        assert (ops["HG-0001"].clause, ops["HG-0001"].address_clause) == (
            "HG-2024 Đ7.1",
            "HG-2024 Đ5.2",
        )
        assert ops["DN-0001"].address == "hungtv@danang.gov.vn"  # QN-2020 Đ4.1 form
        assert ops["DN-0001"].clause == "QN-2020 Đ5.1"
        assert ops["agency:ubnd-xa-dongvan"].address == "xadongvan@danang.gov.vn"  # HG-2024 Đ5.1
        assert ops["unit:ubnd-xa-dongvan/vanphong"].address == "vanphong.xadongvan@danang.gov.vn"
        assert "unit:sokhcn/vanphong" not in ops  # quangnam-2020 gives units no mailbox
        words = notices.build(first, [(ops["HG-0001"], "changed", started)],
                              regulations.get("quangnam-2020"), started)  # fmt: skip
        assert "Điều 7 khoản 1 (HG-2024 Đ7.1)" in str(words)
        scenario.apply(first, d, tmp_path / "apply")
        # nobody logs in: four months later quangnam-2020's 3-month rule has fired for Đà Nẵng's
        # own; hagiang-2024's 6-month rule not yet for Hà Giang's, only its rule on a first
        # password unchanged after a month (Đ8.2.d), which quangnam-2020 does not have
        later = scenario.plan(out, d, started + dt.timedelta(days=122))
        suspended = {op.id: op.clause for op in later.operations if op.action is Action.SUSPEND}
        assert suspended["DN-0001"] == "QN-2020 Đ7.2"
        assert {c for k, c in suspended.items() if k.startswith("HG-")} == {"HG-2024 Đ8.2.d"}
        assert {c for k, c in suspended.items() if k.startswith("DN-")} == {"QN-2020 Đ7.2"}


def test_apply_refuses_a_carried_password_without_its_source_entry(tmp_path: Path) -> None:
    """The invariants (issue 15's hook): a hash is carried only by a create that names its
    source entry by DN and fingerprint; a plan made by `plan` passes, an edited one does not."""
    from dataclasses import replace

    from reconciler.model import Action, Change, Deferred
    from reconciler.planning import invariants, planfile

    path, _ = _carried_plan(tmp_path)
    plan = planfile.load(path)
    assert invariants.check_plan(plan) == []
    carried = next(op for op in plan.operations if op.source is not None)
    for edited, says in (
        (replace(carried, source=None), "carried only by a create that names its source entry"),
        (replace(carried, source=replace(carried.source, fingerprint="")),  # type: ignore[arg-type]
         "named by its DN and fingerprint"),
    ):  # fmt: skip
        bad = replace(
            plan, operations=tuple(edited if o is carried else o for o in plan.operations)
        )
        assert any(says in p for p in invariants.check_plan(bad)), says
    # a create of the target's own (no source entry) may not carry one either
    own = next(op for op in plan.operations if op.action is Action.CREATE and op.source is None)
    marked = tuple(
        Change(c.attr, c.before, (Deferred.CARRIED,)) if c.attr == "userPassword" else c
        for c in own.attributes
    )
    bad = replace(plan, operations=tuple(
        replace(own, attributes=marked) if o is own else o for o in plan.operations
    ))  # fmt: skip
    assert any("carried only by a create that names" in p for p in invariants.check_plan(bad))
