"""The periodic report and the public directory: golden files, the CLI, and the HTML in Chromium.

Golden files live in tests/golden/report/ and tests/golden/publish/. They are built from a fixed
inventory and fixed `Entry` objects (no server) at a fixed `now`. After an intended change,
regenerate them with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report_publish.py

and review the diff before committing.

The Chromium test opens the HTML report in headless Chromium (Debian's `chromium` package). It is
skipped when /usr/bin/chromium is missing, unless the environment variable CI is set: in CI it
must run (scripts/setup installs the package).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.model import (
    Agency,
    Details,
    Entry,
    Inventory,
    Person,
    Settings,
    State,
    Suspension,
    Unit,
    agency_key,
    unit_key,
)
from reconciler.outputs import publish, report, report_render
from reconciler.planning.plan import Context
from reconciler.rules import lifecycle, regulations

from . import scenario
from .helpers import run_cli

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
BASE = "dc=hagiang,dc=gov,dc=vn"
DOMAIN = "hagiang.gov.vn"
CHROMIUM = Path("/usr/bin/chromium")

SOTTTT = Agency(
    id="sotttt",
    name="Sở Thông tin và Truyền thông",
    abbreviation="sotttt",
    units=(
        Unit("vanphong", "Văn phòng", "vanphong"),
        Unit("cntt", "Phòng Công nghệ thông tin", "cntt"),
    ),
)
SOYTE = Agency(id="soyte", name="Sở Y tế", abbreviation="soyte")
INVENTORY = Inventory(
    settings=Settings(regulation="hagiang-2024", domain=DOMAIN, base_dn=BASE),
    agencies=(SOTTTT, SOYTE),
    people=(
        Person("HG-0001", "Nguyễn Văn Sơn", "sotttt", title="Giám đốc", rank=1),
        Person("HG-0002", "Đào Thị Hà", "sotttt", unit="vanphong", title="Chánh Văn phòng"),
        Person("HG-0003", "Dương Văn Dũng", "sotttt", unit="cntt", title="Trưởng phòng"),
        Person("HG-0004", "Đỗ Minh Đức", "sotttt", unit="cntt", title="Chuyên viên"),
        Person("HG-0006", "Đinh Thị Duyên", "sotttt", unit="cntt", title="Chuyên viên"),
        Person(
            "HG-0005",
            "Hà Thị Ánh",
            "sotttt",
            unit="vanphong",
            state=State.SUSPENDED,
            details=Details(suspension=Suspension("HG-2024 Đ8.2.b", "lộ mật khẩu")),
        ),
        Person("HG-0101", "Trần Thị Lan", "soyte", title="Phó Giám đốc <Sở>"),
        Person("HG-0102", "Lê Văn Ân", "soyte"),
        Person("HG-0103", "Lò Thị Mai", "soyte"),
    ),
)
RECENT = "20261125020000Z"


def mailbox(
    key: str,
    local: str,
    name: str,
    agency: str,
    kind: str = "person",
    created: str = "20250301000000Z",
    **extra: str,
) -> Entry:
    attrs: dict[str, tuple[str, ...]] = {
        "objectclass": ("top", "inetOrgPerson", "govMailAccount"),
        "employeenumber": (key,),
        "uid": (local,),
        "mail": (f"{local}@{DOMAIN}",),
        "cn": (name,),
        "govmailkind": (kind,),
        "govmailagency": (agency,),
        "govmailquota": ("5368709120",),
        "createtimestamp": (created,),
        "pwdlastsuccess": (RECENT,),
    }
    for attr, value in extra.items():
        if value:
            attrs[attr.lower()] = (value,)
        else:
            attrs.pop(attr.lower(), None)
    return Entry(f"uid={local},ou=people,{BASE}", attrs)


LOCKED = {"pwdAccountLockedTime": "000001010000Z"}
ENTRIES = (
    Entry(BASE, {"objectclass": ("dcObject", "organization")}),
    mailbox(agency_key("sotttt"), "sotttt", SOTTTT.name, "sotttt", "agency"),
    mailbox(unit_key("sotttt", "vanphong"), "vanphong.sotttt", "Văn phòng", "sotttt", "unit"),
    mailbox(unit_key("sotttt", "cntt"), "cntt.sotttt", "Phòng CNTT", "sotttt", "unit"),
    mailbox("HG-0001", "nvson.sotttt", "Nguyễn Văn Sơn", "sotttt"),
    mailbox("HG-0002", "dtha.sotttt", "Đào Thị Hà", "sotttt"),
    mailbox("HG-0003", "dvdung.sotttt", "Dương Văn Dũng", "sotttt"),
    mailbox("HG-0006", "dtduyen.sotttt", "Đinh Thị Duyên", "sotttt"),
    # suspended by the inactivity rule: the inventory still says active, the directory does not
    mailbox(
        "HG-0004",
        "dmduc.sotttt",
        "Đỗ Minh Đức",
        "sotttt",
        govMailSuspendReason="HG-2024 Đ8.2.a (time rule): no activity since 2026-02-01",
        govMailSuspendedAt="20260801000000Z",
        **LOCKED,
    ),
    mailbox(
        "HG-0005",
        "htanh.sotttt",
        "Hà Thị Ánh",
        "sotttt",
        govMailSuspendReason="HG-2024 Đ8.2.b: lộ mật khẩu",
        govMailSuspendedAt="20261001000000Z",
        **LOCKED,
    ),
    mailbox(agency_key("soyte"), "soyte", SOYTE.name, "soyte", "agency"),
    mailbox("HG-0101", "ttlan.soyte", "Trần Thị Lan", "soyte"),
    # issued 10 November, password not changed: HG-2024 Đ8.2.d on 10 December
    mailbox(
        "HG-0102",
        "lvan.soyte",
        "Lê Văn Ân",
        "soyte",
        created="20261110020000Z",
        pwdReset="TRUE",
        pwdLastSuccess="",
    ),
    # created 5 June, never used: HG-2024 Đ8.2.a on 5 December
    mailbox(
        "HG-0103",
        "ltmai.soyte",
        "Lò Thị Mai",
        "soyte",
        created="20260605020000Z",
        pwdLastSuccess="",
    ),
    # left by an agency that is gone from the inventory, locked by an administrator
    mailbox("HG-0999", "nvcu.sokhcn", "Nguyễn Văn Cũ", "sokhcn", **LOCKED),
)
RECORDS = (
    {"time": "2025-01-01T00:00:00+00:00", "event": "create", "id": "HG-0001", "outcome": "changed"},
    {
        "time": "2026-09-01T08:00:00+00:00",
        "event": "create",
        "id": "HG-0101",
        "dn": f"uid=ttlan.soyte,ou=people,{BASE}",
        "address": f"ttlan.soyte@{DOMAIN}",
        "after": {"govMailAgency": ["soyte"]},
        "outcome": "changed",
    },
    {"time": "2026-10-01T08:00:00+00:00", "event": "rename", "id": "HG-0003", "outcome": "changed"},
    {
        "time": "2026-11-01T08:00:00+00:00",
        "event": "delete",
        "id": "HG-0998",
        "before": {"govmailagency": ["soyte"]},
        "outcome": "changed",
    },
    {"time": "2026-11-02T08:00:00+00:00", "event": "delete", "id": "HG-0101", "outcome": "failed"},
    {
        "time": "2026-08-01T00:00:00+00:00",
        "event": "suspend",
        "id": "HG-0004",
        "outcome": "changed",
    },
    {"time": "2026-10-01T00:00:00+00:00", "event": "suspend", "id": "HG-0005", "outcome": "ok"},
)


def build_report() -> report.Report:
    reg = regulations.get("hagiang-2024")
    return report.build(INVENTORY, ENTRIES, reg, RECORDS, NOW)


def golden(path: Path, text: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_bytes().decode("utf-8"), f"{path} differs (UPDATE_GOLDEN=1)"


# ---------------------------------------------------------------------------------------------
# The report


def test_qn_2020_d13_6_and_hg_2024_d7_3_the_report_counts() -> None:
    built = build_report()
    by_id = {a.id: a for a in built.agencies}
    assert [a.id for a in built.agencies] == ["sotttt", "soyte", "sokhcn"]
    sotttt, soyte, gone = by_id["sotttt"], by_id["soyte"], by_id["sokhcn"]
    assert (sotttt.active, sotttt.suspended) == (
        7,
        (("HG-2024 Đ8.2.a", 1), ("HG-2024 Đ8.2.b", 1)),
    )
    assert gone.suspended == ((report.OUTSIDE, 1),) and not gone.in_inventory
    assert built.since == dt.datetime(2026, 5, 31, 17, tzinfo=dt.UTC)  # 1 June, local time
    assert dict(soyte.period) == {"create": 1, "rename": 0, "delete": 1, "suspend": 0, "restore": 0}
    assert sotttt.count("rename") == 1 and sotttt.count("suspend") == 1
    assert sotttt.count("create") == 0  # 2025: before the period
    assert [(d.id, d.clause, d.day.isoformat()) for d in soyte.due] == [
        ("HG-0103", "HG-2024 Đ8.2.a", "2026-12-05"),
        ("HG-0102", "HG-2024 Đ8.2.d", "2026-12-10"),
    ]
    assert soyte.due[1].reason == "password issued 2026-11-10 never changed"
    assert not sotttt.due


def test_report_counts_the_entries_the_next_plan_adopts() -> None:
    """An entry issued before the tool and pinned on a record (as `reconciler import` writes it)
    is that record's mailbox for the report as for the plan: counted in the record's agency."""
    pinned = Person(
        "HG-0104", "Vàng Seo Dình", "soyte", details=Details(address=f"dinhvs@{DOMAIN}")
    )
    inventory = replace(INVENTORY, people=(*INVENTORY.people, pinned))
    legacy = Entry(
        f"uid=dinhvs,ou=people,{BASE}",
        {
            "objectclass": ("top", "inetOrgPerson"),
            "uid": ("dinhvs",),
            "mail": (f"dinhvs@{DOMAIN}",),
            "cn": ("Vàng Seo Dình",),
        },
    )
    reg = regulations.get("hagiang-2024")
    before = {a.id: a.active for a in report.build(INVENTORY, ENTRIES, reg, None, NOW).agencies}
    after = report.build(inventory, (*ENTRIES, legacy), reg, None, NOW)
    assert {a.id: a.active for a in after.agencies} == {**before, "soyte": before["soyte"] + 1}


def test_report_without_audit_log_shows_unknown_period_counts() -> None:
    built = report.build(INVENTORY, ENTRIES, regulations.get("hagiang-2024"), None, NOW)
    assert not built.audited
    assert "—" in report_render.markdown(built)
    assert ",,,,," in report_render.csv_text(built)


def test_report_golden_markdown_and_csv() -> None:
    built = build_report()
    golden(GOLDEN / "report" / "report.md", report_render.markdown(built))
    golden(GOLDEN / "report" / "report.csv", report_render.csv_text(built))


def test_report_html_is_self_contained_and_escaped() -> None:
    page = report_render.html(build_report())
    assert page.startswith('<!DOCTYPE html>\n<html lang="vi">')
    assert '<meta charset="utf-8">' in page
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "https://" not in page and "src=" not in page and "<link" not in page
    assert page.count('<g class="bar"') == 3
    assert "Phó Giám đốc &lt;Sở&gt;" not in page  # titles are not in the report at all
    assert "Sở Thông tin và Truyền thông" in page and "Lê Văn Ân" in page


# ---------------------------------------------------------------------------------------------
# The public directory


def test_vietnamese_order() -> None:
    names = ["Đào", "Dũng", "Duy", "Anh", "Ánh", "Ấn", "Bình", "dung", "Ða", "Ư", "Uy"]
    ordered = sorted(names, key=publish.vi_key)
    assert ordered.index("Duy") < ordered.index("Đào")
    assert ordered.index("Dũng") < ordered.index("Duy")
    assert ordered[:3] == ["Ấn", "Anh", "Ánh"]  # an < anh; diacritics only break ties
    assert sorted(["Đinh", "Dương", "Đỗ", "Dũng"], key=publish.vi_key) == [
        "Dũng",
        "Dương",
        "Đinh",
        "Đỗ",
    ]


def test_qn_2020_d13_4_the_public_directory_lists_only_active_mailboxes() -> None:
    public = publish.build(INVENTORY, ENTRIES)
    sotttt = next(a for a in public.agencies if a.id == "sotttt")
    assert [s.name for s in sotttt.staff] == [
        "Nguyễn Văn Sơn",  # no unit first
        "Dương Văn Dũng",  # Phòng Công nghệ thông tin < Văn phòng; Dương < Đinh
        "Đinh Thị Duyên",
        "Đào Thị Hà",
    ]
    assert [m.address for m in sotttt.mailboxes] == [
        f"sotttt@{DOMAIN}",
        f"cntt.sotttt@{DOMAIN}",
        f"vanphong.sotttt@{DOMAIN}",
    ]
    everything = "".join(publish.files(public).values())
    for secret in ("HG-0", "5368709120", "Đ8.2", "lộ mật khẩu", "dmduc", "htanh", "nvcu"):
        assert secret not in everything, secret
    assert "Phó Giám đốc &lt;Sở&gt;" in everything  # escaped
    assert publish.agency_csv(sotttt).startswith("\ufeffHọ và tên,")


def test_publish_golden() -> None:
    for name, text in publish.files(publish.build(INVENTORY, ENTRIES)).items():
        golden(GOLDEN / "publish" / name, text)


# ---------------------------------------------------------------------------------------------
# The commands, on the LDIF directory


def test_report_and_publish_commands(tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    (tmp_path / "directory.ldif").touch()  # an empty directory: only apply creates a missing one
    url = f"ldif:{tmp_path / 'directory.ldif'}"
    planned = run_cli("plan", str(folder), "--directory", url, "--out", str(tmp_path / "plan.json"))
    assert planned.returncode == 0, planned.stderr
    applied = run_cli(
        "apply",
        str(tmp_path / "plan.json"),
        "--directory",
        url,
        "--credentials-out",
        str(tmp_path / "c.csv"),
        "--audit-log",
        str(tmp_path / "log" / "audit.jsonl"),
    )
    assert applied.returncode == 0, applied.stderr
    common = ["--directory", url, "--audit-log", str(tmp_path / "log" / "audit.jsonl")]
    md = run_cli("report", str(folder), *common)
    assert md.returncode == 0, md.stderr
    assert "| Sở Y tế | 2 | 0 | 2 |" in md.stdout
    later = run_cli(
        "report",
        str(folder),
        *common,
        "--format",
        "csv",
        "--now",
        (NOW + dt.timedelta(days=365 * 3)).isoformat(),
    )
    assert later.returncode == 0, later.stderr
    # three years on: out of the period, and both mailboxes of Sở Y tế long overdue
    assert later.stdout.splitlines()[2] == "Cơ quan,soyte,Sở Y tế,2,0,,0,0,0,0,0,2,0,,,,,,"
    due = run_cli(
        "report", str(folder), *common, "--format", "html", "--out", str(tmp_path / "r.html")
    )
    assert due.returncode == 0, due.stderr
    assert "<svg" in (tmp_path / "r.html").read_text(encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"event": "create"}\nnot json\n', encoding="utf-8")
    bad = run_cli(
        "report", str(folder), "--directory", url, "--audit-log", str(tmp_path / "bad.jsonl")
    )
    assert bad.returncode == 1 and "bad.jsonl:2: not a JSON line" in bad.stderr

    out = tmp_path / "public"
    published = run_cli("publish", str(folder), "--directory", url, "--out", str(out))
    assert published.returncode == 0, published.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "index.html",
        "sotttt.csv",
        "sotttt.html",
        "soyte.csv",
        "soyte.html",
    ]
    assert (out / "soyte.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert "ttlan.soyte@hagiang.gov.vn" in (out / "soyte.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The HTML report in a real browser


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="headless Chromium test: /usr/bin/chromium is not installed (apt-get install "
    "chromium, or run scripts/setup with CI=1); in CI it always runs",
)
def test_html_report_renders_in_chromium(tmp_path: Path) -> None:
    built = build_report()
    page = tmp_path / "report.html"
    page.write_text(report_render.html(built), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    for agency in built.agencies:
        assert agency.name in dom.stdout
    svg = re.search(r"<svg.*?</svg>", dom.stdout, re.S)
    assert svg, "no <svg> chart in the rendered page"
    assert len(re.findall(r'<g class="bar"', svg.group(0))) == len(built.agencies)
    shot = tmp_path / "report.png"
    taken = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1400", page.as_uri())
    assert taken.returncode == 0, taken.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 5_000
    if os.environ.get("KEEP_SCREENSHOT"):
        Path(os.environ["KEEP_SCREENSHOT"]).write_bytes(shot.read_bytes())


# ---------------------------------------------------------------------------------------------
# Issue 18: overdue mailboxes, Vietnamese throughout, a page that stays small, long names


def test_report_shows_the_overdue_mailboxes_of_the_hagiang_example() -> None:
    """At 2027-05-20 the plan suspends 85 of the 86 mailboxes of inventory/hagiang under
    HG-2024 Đ8.2.d (no password ever changed): the report says so, not "Không có"."""
    from reconciler.planning import pipeline

    loaded = pipeline.load(scenario.ROOT / "inventory" / "hagiang")
    issued = "20261201030000Z"
    entries = []
    plan = pipeline.make_plan(loaded, [], Context(now=NOW), limits=None)
    for op in plan.operations:
        attrs = {
            c.attr.lower(): tuple(v for v in c.after if isinstance(v, str)) for c in op.attributes
        }
        attrs["createtimestamp"] = (issued,)
        attrs.pop("userpassword", None)
        if "pwdaccountlockedtime" in attrs:
            attrs["govmailsuspendedat"] = (issued,)
        entries.append(Entry(op.new_dn, attrs))
    later = dt.datetime(2027, 5, 20, tzinfo=dt.UTC)
    built = report.build(loaded.inventory, entries, loaded.regulation, [], later)
    assert len(built.overdue) == 85 and not built.due
    assert {d.clause for d in built.overdue} == {"HG-2024 Đ8.2.d"}
    assert {d.day for d in built.overdue} == {dt.date(2027, 1, 1)}
    text = report_render.markdown(built)
    assert "## Quá hạn: đã đến hạn nhưng chưa bị khóa (85)" in text
    assert "mật khẩu cấp ngày 01/12/2026 chưa được đổi" in text


ENGLISH = re.compile(
    r"\b(?:the|never|since|locked|outside|tool|activity|created|password|issued|months?|"
    r"agency|due|active|suspended|report|no|of|and)\b",
    re.IGNORECASE,
)


def _words(text: str) -> str:
    """The prose of a rendered report: without tags, addresses, ids, clauses and dates."""
    text = re.sub(r"<style>.*?</style>|<[^>]+>", " ", text, flags=re.S)
    text = re.sub(r"\S+@\S+|HG-\d+|agency:\S+|unit:\S+|[A-Z]{2}-\d{4} Đ[\d.a-z]+", " ", text)
    return re.sub(r"hagiang-2024|hagiang\.gov\.vn|sokhcn|sotttt|soyte|Noto Sans|DejaVu", " ", text)


def test_every_word_of_the_report_is_vietnamese() -> None:
    built = build_report()
    for render in (report_render.markdown, report_render.csv_text, report_render.html):
        prose = _words(render(built))
        assert not ENGLISH.findall(prose), (render.__name__, ENGLISH.findall(prose)[:10])
    for basis in lifecycle.BASES:
        assert basis in report_render.BASIS


def test_report_csv_is_for_spreadsheets_and_holds_every_row() -> None:
    text = report_render.csv_text(build_report())
    assert text.startswith("\ufeffLoại,Mã cơ quan,Cơ quan,Đang hoạt động,")
    assert "\r\n" in text
    assert text.count("Hộp thư sắp đến hạn,") == 2


def _many(n: int) -> report.Report:
    """A report of n mailboxes due, in 50 agencies of long names."""
    agencies = []
    for a in range(50):
        due = tuple(
            report.Due(
                agency=f"a{a}",
                id=f"HG-{a:02d}{i:05d}",
                address=f"nguoi{i}.a{a}@hagiang.gov.vn",
                name=f"Nguyễn Văn Người {i}",
                action="suspend",
                clause="HG-2024 Đ8.2.a",
                day=dt.date(2026, 12, 20),
                reason="",
                basis=lifecycle.LAST_LOGIN,
                since=dt.date(2026, 6, 20),
            )
            for i in range(n // 50)
        )
        agencies.append(
            report.AgencyReport(
                id=f"a{a}",
                name=f"Ủy ban nhân dân xã số {a} thuộc huyện Đồng Văn, tỉnh Hà Giang",
                active=n // 50,
                suspended=(),
                period=tuple((e, 0) for e in report.PERIOD_EVENTS),
                due=due,
            )
        )
    return report.Report("hagiang-2024", DOMAIN, NOW, NOW, True, tuple(agencies))


def test_report_page_of_20000_mailboxes_stays_small_and_the_csv_has_them_all() -> None:
    built = _many(20_000)
    page = report_render.html(built)
    assert len(page.encode()) < 400_000, len(page.encode())
    assert page.count("… và 390 hộp thư khác (danh sách đầy đủ trong báo cáo CSV)") == 50
    assert report_render.csv_text(built).count("Hộp thư sắp đến hạn,") == 20_000


LONG = (
    "Ban Quản lý dự án đầu tư xây dựng các công trình dân dụng và công nghiệp tỉnh Hà Giang "
    "(trực thuộc Ủy ban nhân dân tỉnh)"
)


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) bytes of a PNG (8-bit, not interlaced): enough for
    Chromium's screenshots."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    size = 4 if colour == 6 else 3
    stride = width * size
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for x in range(stride):
            left = line[x - size] if x >= size else 0
            up, corner = previous[x], previous[x - size] if x >= size else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (
                    line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)
                ) & 255
        rows.append(bytes(line))
        previous = line
    return width, size, rows


@pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="headless Chromium test: /usr/bin/chromium is not installed (apt-get install "
    "chromium, or run scripts/setup with CI=1); in CI it always runs",
)
def test_long_agency_names_are_not_cut_in_chromium(tmp_path: Path) -> None:
    """The chart alone, at the top left of a white page, in Chromium: a screenshot whose left
    edge is blank (a name cut at the chart's border would touch it) and in which every bar's
    label has ink. Before names wrapped, a long name ran off the chart's left edge."""
    built = build_report()
    built = replace(
        built, agencies=tuple(replace(a, name=LONG + f" {i}") for i, a in enumerate(built.agencies))
    )
    svg = report_render.chart(built)
    width = int(re.search(r'width="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    height = int(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    page = tmp_path / "chart.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>html,body{margin:0;'
        f"background:#fff}}svg{{display:block}}</style></head><body>{svg}</body></html>",
        encoding="utf-8",
    )
    shot = tmp_path / "chart.png"
    taken = chromium(
        tmp_path, "--hide-scrollbars", f"--screenshot={shot}",
        f"--window-size={width + 40},{height + 40}", page.as_uri(),
    )  # fmt: skip
    assert taken.returncode == 0, taken.stderr
    if os.environ.get("KEEP_SCREENSHOT"):
        Path(os.environ["KEEP_SCREENSHOT"]).write_bytes(shot.read_bytes())
    _, size, rows = _png_pixels(shot.read_bytes())

    def ink(y: int, x0: int, x1: int) -> bool:
        row = rows[y]
        return any(sum(row[x * size : x * size + 3]) < 3 * 160 for x in range(x0, x1))

    assert not any(ink(y, 0, 3) for y in range(height)), "a label touches the chart's left edge"
    y = 5
    for lines in (report_render.wrap(a.name) for a in built.agencies):
        assert len(lines) > 1  # wrapped
        band = max(report_render.ROW_HEIGHT, report_render.LINE_HEIGHT * len(lines) + 12)
        assert any(ink(row, 3, report_render.LABEL_WIDTH) for row in range(y, y + band))
        y += band
