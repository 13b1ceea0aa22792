"""The periodic report as markdown, CSV and one self-contained HTML page. Pure functions.

The HTML page needs nothing but itself: inline CSS, an inline SVG bar chart (one bar per agency,
split by state), no JavaScript, no external resource; every text is escaped with html.escape.
Labels are in Vietnamese (the report goes to the province); clauses and evidence are as the plan
states them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from html import escape

from reconciler.outputs.report import AgencyReport, Report
from reconciler.rules.lifecycle import local_day

TITLE = "Báo cáo tình hình sử dụng hộp thư điện tử công vụ"
_EVENTS = {
    "create": "Tạo mới",
    "rename": "Đổi địa chỉ",
    "delete": "Đã xóa",
    "suspend": "Bị khóa",
    "restore": "Khôi phục",
}
_ACTIONS = {"suspend": "khóa", "delete": "xóa"}
ACTIVE_COLOUR = "#2e7d32"
SUSPENDED_COLOUR = "#c62828"


def _day(moment: dt.datetime) -> str:
    return local_day(moment).strftime("%d/%m/%Y")


def _period(report: Report) -> str:
    return f"từ {_day(report.since)} đến {_day(report.now)}"


def _count(report: Report, agency: AgencyReport, event: str) -> str:
    return str(agency.count(event)) if report.audited else "—"


def _total(report: Report, event: str) -> str:
    return str(report.count(event)) if report.audited else "—"


def _suspended(agency: AgencyReport) -> str:
    return "; ".join(f"{clause}: {n}" for clause, n in agency.suspended)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------------------
# Markdown


def markdown(report: Report) -> str:
    lines = [
        f"# {TITLE}",
        "",
        f"- Tên miền: `{report.domain}` ({report.regulation})",
        f"- Kỳ báo cáo: {_period(report)}",
        f"- Tổng số: {report.active} đang hoạt động, {report.suspended} bị khóa",
    ]
    if not report.audited:
        lines.append("- Không có nhật ký (--audit-log): số tạo mới / đổi / xóa trong kỳ là —")
    lines += [
        "",
        "## Theo cơ quan",
        "",
        "| Cơ quan | Đang hoạt động | Bị khóa | "
        + " | ".join(f"{label} trong kỳ" for label in _EVENTS.values())
        + f" | Sắp đến hạn ({report.horizon_days} ngày) |",
        "|---|--:|--:|" + "--:|" * len(_EVENTS) + "--:|",
    ]
    for agency in report.agencies:
        name = _md(agency.name) + ("" if agency.in_inventory else " (không có trong kho)")
        cells = [name, str(agency.active), str(agency.suspended_total)]
        cells += [_count(report, agency, event) for event in _EVENTS]
        cells.append(str(len(agency.due)))
        lines.append("| " + " | ".join(cells) + " |")
    totals = ["**Tổng**", str(report.active), str(report.suspended)]
    totals += [_total(report, event) for event in _EVENTS]
    totals.append(str(len(report.due)))
    lines.append("| " + " | ".join(totals) + " |")

    lines += ["", "## Tài khoản bị khóa theo điều khoản", ""]
    rows = [(a, clause, n) for a in report.agencies for clause, n in a.suspended]
    if rows:
        lines += ["| Cơ quan | Điều khoản | Số tài khoản |", "|---|---|--:|"]
        lines += [f"| {_md(a.name)} | {_md(clause)} | {n} |" for a, clause, n in rows]
    else:
        lines.append("Không có.")

    lines += ["", f"## Sắp đến hạn trong {report.horizon_days} ngày tới", ""]
    if report.due:
        lines += [
            "| Cơ quan | Địa chỉ | Họ và tên | Sẽ | Ngày | Điều khoản | Căn cứ |",
            "|---|---|---|---|---|---|---|",
        ]
        names = {a.id: a.name for a in report.agencies}
        for due in report.due:
            lines.append(
                f"| {_md(names.get(due.agency, due.agency))} | {_md(due.address)} | "
                f"{_md(due.name)} | {_ACTIONS.get(due.action, due.action)} | "
                f"{due.day.strftime('%d/%m/%Y')} | {_md(due.clause)} | {_md(due.reason)} |"
            )
    else:
        lines.append("Không có.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# CSV: one row per agency, machine-readable headers, plain UTF-8


CSV_HEADER = (
    "agency_id",
    "agency",
    "active",
    "suspended",
    "suspended_by_clause",
    "created_in_period",
    "renamed_in_period",
    "deleted_in_period",
    "suspended_in_period",
    "restored_in_period",
    "due_within_days",
)


def csv_text(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for agency in report.agencies:
        writer.writerow(
            [
                agency.id,
                agency.name,
                agency.active,
                agency.suspended_total,
                _suspended(agency),
                *(agency.count(e) if report.audited else "" for e in _EVENTS),
                len(agency.due),
            ]
        )
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; margin: 2rem auto;
       max-width: 64rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { border: 1px solid #d0d0d0; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; background: #fafafa; }
.legend span { display: inline-block; width: .8rem; height: .8rem; margin: 0 .3rem 0 1rem;
               vertical-align: middle; }
svg { max-width: 100%; height: auto; }
@media print { body { margin: 0; max-width: none; } }
""".strip()

LABEL_WIDTH = 300
BAR_WIDTH = 380
ROW_HEIGHT = 30


def chart(report: Report) -> str:
    """An SVG bar chart: one `<g class="bar">` per agency, green active, red suspended."""
    largest = max((a.total for a in report.agencies), default=0) or 1
    height = ROW_HEIGHT * len(report.agencies) + 10
    width = LABEL_WIDTH + BAR_WIDTH + 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="Noto Sans, DejaVu Sans, Arial, sans-serif" font-size="13">',
        f"<title>{escape('Số tài khoản theo cơ quan và trạng thái')}</title>",
    ]
    for row, agency in enumerate(report.agencies):
        y = 5 + row * ROW_HEIGHT
        active = round(BAR_WIDTH * agency.active / largest, 1)
        suspended = round(BAR_WIDTH * agency.suspended_total / largest, 1)
        name = escape(agency.name)
        parts.append(f'<g class="bar" data-agency="{escape(agency.id)}">')
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{y + 17}" text-anchor="end">{name}</text>')
        parts.append(
            f'<rect class="active" x="{LABEL_WIDTH}" y="{y + 3}" width="{active}" height="20" '
            f'fill="{ACTIVE_COLOUR}"><title>{name}: {agency.active} đang hoạt động</title></rect>'
        )
        parts.append(
            f'<rect class="suspended" x="{LABEL_WIDTH + active}" y="{y + 3}" '
            f'width="{suspended}" height="20" fill="{SUSPENDED_COLOUR}"><title>{name}: '
            f"{agency.suspended_total} bị khóa</title></rect>"
        )
        parts.append(
            f'<text x="{LABEL_WIDTH + active + suspended + 6}" y="{y + 17}">'
            f"{agency.active} / {agency.suspended_total}</text>"
        )
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _cell(value: object, numeric: bool = False) -> str:
    cls = ' class="n"' if numeric else ""
    return f"<td{cls}>{escape(str(value))}</td>"


def html(report: Report) -> str:
    head_cells = ["Cơ quan", "Đang hoạt động", "Bị khóa"]
    head_cells += [f"{label} trong kỳ" for label in _EVENTS.values()]
    head_cells.append(f"Sắp đến hạn ({report.horizon_days} ngày)")
    rows = []
    for agency in report.agencies:
        name = agency.name + ("" if agency.in_inventory else " (không có trong kho)")
        cells = [_cell(name), _cell(agency.active, True), _cell(agency.suspended_total, True)]
        cells += [_cell(_count(report, agency, e), True) for e in _EVENTS]
        cells.append(_cell(len(agency.due), True))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    totals = [_cell("Tổng"), _cell(report.active, True), _cell(report.suspended, True)]
    totals += [_cell(_total(report, e), True) for e in _EVENTS]
    totals.append(_cell(len(report.due), True))
    rows.append('<tr class="total">' + "".join(totals) + "</tr>")

    clause_rows = [
        "<tr>" + _cell(a.name) + _cell(clause) + _cell(n, True) + "</tr>"
        for a in report.agencies
        for clause, n in a.suspended
    ]
    names = {a.id: a.name for a in report.agencies}
    due_rows = [
        "<tr>"
        + _cell(names.get(d.agency, d.agency))
        + _cell(d.address)
        + _cell(d.name)
        + _cell(_ACTIONS.get(d.action, d.action))
        + _cell(d.day.strftime("%d/%m/%Y"))
        + _cell(d.clause)
        + _cell(d.reason)
        + "</tr>"
        for d in report.due
    ]
    meta = f"Tên miền {report.domain} ({report.regulation}) · Kỳ báo cáo {_period(report)}"
    if not report.audited:
        meta += " · không có nhật ký: số tạo mới / đổi / xóa trong kỳ là —"
    out = [
        "<!DOCTYPE html>",
        '<html lang="vi">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(TITLE)} — {escape(report.domain)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(TITLE)}</h1>",
        f'<p class="meta">{escape(meta)}</p>',
        "<h2>Số tài khoản theo cơ quan</h2>",
        f'<p class="legend"><span style="background:{ACTIVE_COLOUR}"></span>Đang hoạt động'
        f'<span style="background:{SUSPENDED_COLOUR}"></span>Bị khóa</p>',
        chart(report),
        "<h2>Theo cơ quan</h2>",
        "<table>",
        "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head_cells) + "</tr></thead>",
        "<tbody>",
        *rows,
        "</tbody>",
        "</table>",
        "<h2>Tài khoản bị khóa theo điều khoản</h2>",
    ]
    if clause_rows:
        out += [
            "<table>",
            "<thead><tr><th>Cơ quan</th><th>Điều khoản</th><th>Số tài khoản</th></tr></thead>",
            "<tbody>",
            *clause_rows,
            "</tbody>",
            "</table>",
        ]
    else:
        out.append("<p>Không có.</p>")
    out.append(f"<h2>Sắp đến hạn trong {report.horizon_days} ngày tới</h2>")
    if due_rows:
        heads = ("Cơ quan", "Địa chỉ", "Họ và tên", "Sẽ", "Ngày", "Điều khoản", "Căn cứ")
        out += [
            "<table>",
            "<thead><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr></thead>",
            "<tbody>",
            *due_rows,
            "</tbody>",
            "</table>",
        ]
    else:
        out.append("<p>Không có.</p>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


RENDERERS = {"markdown": markdown, "csv": csv_text, "html": html}
