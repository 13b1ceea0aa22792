"""The periodic report as markdown, CSV and one self-contained HTML page. Pure functions.

The report goes to the province (QN-2020 Đ13.6, HG-2024 Đ7.3): every word of it is Vietnamese;
clauses are cited as the regulations write them, and the evidence of a time rule is worded here
from what the rule counted from (`Due.basis`, `Due.since`), not taken from a plan's reason.

The lists of mailboxes (overdue, due within the horizon) are grouped by agency and cut at
`CAP_PER_AGENCY` rows each in markdown and HTML, so that the page of a province of 20,000 people
stays small; the CSV holds every row.

The HTML page needs nothing but itself: inline CSS, an inline SVG bar chart (one bar per agency,
split by state, the agency's name wrapped on as many lines as it needs), no JavaScript, no
external resource; every text is escaped with html.escape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape

from reconciler.outputs.report import HORIZON_DAYS, OUTSIDE, AgencyReport, Due, Report
from reconciler.rules import lifecycle
from reconciler.rules.lifecycle import local_day
from reconciler.sheets import csv_text as sheet
from reconciler.text import markdown_text

TITLE = "Báo cáo tình hình sử dụng hộp thư điện tử công vụ"
_EVENTS = {
    "create": "Tạo mới",
    "rename": "Đổi địa chỉ",
    "delete": "Đã xóa",
    "suspend": "Bị khóa",
    "restore": "Khôi phục",
}
_ACTIONS = {"suspend": "khóa", "delete": "xóa"}
#: What a time rule counted from, in words (`lifecycle.BASES`).
BASIS = {
    lifecycle.LAST_LOGIN: "lần đăng nhập cuối",
    lifecycle.EVIDENCE["login"]: "lần đăng nhập máy chủ thư cuối",
    lifecycle.EVIDENCE["sent"]: "lần gửi thư cuối",
    lifecycle.EVIDENCE["received"]: "lần nhận thư cuối",
    lifecycle.EVIDENCE["mail"]: "lần gửi, nhận thư cuối",
    lifecycle.CREATED: "ngày tạo",
    lifecycle.RESTORED: "ngày khôi phục",
    lifecycle.RESTORE_REQUESTED: "ngày đề nghị khôi phục",
    lifecycle.PASSWORD_ISSUED: "ngày cấp mật khẩu",
    lifecycle.SUSPENDED: "ngày bị khóa",
}
#: A lock found without the tool's reason (a ppolicy lockout, an administrator's).
OUTSIDE_TEXT = "bị khóa ngoài công cụ (không ghi điều khoản)"
#: Rows of each agency's part of a list of mailboxes in markdown and HTML (the CSV has all).
CAP_PER_AGENCY = 10
ACTIVE_COLOUR = "#2e7d32"
SUSPENDED_COLOUR = "#c62828"
OVERDUE_TITLE = "Quá hạn: đã đến hạn nhưng chưa bị khóa"
OVERDUE_NOTE = (
    "Quy định về thời hạn đã áp dụng cho các hộp thư này nhưng chúng chưa bị khóa (hoặc xóa); "
    "lần lập kế hoạch và thực hiện tiếp theo sẽ làm việc đó."
)


def _date(day: dt.date | None) -> str:
    return day.strftime("%d/%m/%Y") if day else "?"


def _day(moment: dt.datetime) -> str:
    return _date(local_day(moment))


def _period(report: Report) -> str:
    return f"từ {_day(report.since)} đến {_day(report.now)}"


def _count(report: Report, agency: AgencyReport, event: str) -> str:
    return str(agency.count(event)) if report.audited else "—"


def _total(report: Report, event: str) -> str:
    return str(report.count(event)) if report.audited else "—"


def clause_text(clause: str) -> str:
    return OUTSIDE_TEXT if clause == OUTSIDE else clause


def _suspended(agency: AgencyReport) -> str:
    return "; ".join(f"{clause_text(clause)}: {n}" for clause, n in agency.suspended)


def evidence(due: Due) -> str:
    """What the rule counted from, in Vietnamese."""
    day = _date(due.since)
    if due.basis == lifecycle.SUSPENDED:
        return f"bị khóa liên tục từ {day}"
    if due.basis == lifecycle.PASSWORD_ISSUED:
        return f"mật khẩu cấp ngày {day} chưa được đổi"
    if due.basis == lifecycle.CREATED:
        return f"chưa sử dụng kể từ khi tạo ngày {day}"
    return f"không hoạt động kể từ {day} ({BASIS.get(due.basis, 'hoạt động cuối')})"


def _name(agency: AgencyReport) -> str:
    return agency.name + ("" if agency.in_inventory else " (không có trong kho dữ liệu)")


def _notes(report: Report) -> list[str]:
    notes = []
    if not report.audited:
        notes.append("Không có lịch sử thay đổi: số tạo mới, đổi, xóa trong kỳ là —.")
    elif report.history_from is not None:
        notes.append(
            f"Lịch sử thay đổi bắt đầu từ {_day(report.history_from)}: số liệu trong kỳ chỉ "
            "tính từ ngày đó."
        )
    return notes


def _groups(report: Report, overdue: bool) -> list[tuple[AgencyReport, tuple[Due, ...], int]]:
    """Per agency with mailboxes in the list: (agency, the rows shown, how many more)."""
    out = []
    for agency in report.agencies:
        rows = agency.overdue if overdue else agency.due
        if rows:
            out.append((agency, rows[:CAP_PER_AGENCY], len(rows) - CAP_PER_AGENCY))
    return out


def _more(n: int) -> str:
    return f"… và {n} hộp thư khác (danh sách đầy đủ trong báo cáo CSV)"


def _row(due: Due) -> list[str]:
    return [
        due.address,
        due.name,
        _ACTIONS.get(due.action, due.action),
        _date(due.day),
        due.clause,
        evidence(due),
    ]


_ROW_HEADS = ("Địa chỉ", "Họ và tên", "Sẽ", "Ngày", "Điều khoản", "Căn cứ")


def _headings(report: Report) -> list[str]:
    return [
        "Cơ quan",
        "Đang hoạt động",
        "Bị khóa",
        *(f"{label} trong kỳ" for label in _EVENTS.values()),
        "Quá hạn",
        f"Sắp đến hạn ({report.horizon_days} ngày)",
    ]


def _agency_cells(report: Report, agency: AgencyReport) -> list[str]:
    return [
        _name(agency),
        str(agency.active),
        str(agency.suspended_total),
        *(_count(report, agency, e) for e in _EVENTS),
        str(len(agency.overdue)),
        str(len(agency.due)),
    ]


def _total_cells(report: Report) -> list[str]:
    return [
        "Tổng",
        str(report.active),
        str(report.suspended),
        *(_total(report, e) for e in _EVENTS),
        str(len(report.overdue)),
        str(len(report.due)),
    ]


# ---------------------------------------------------------------------------------------------
# Markdown


def _md(text: str) -> str:
    return markdown_text(text)


def _md_table(heads: Sequence[str], rows: Iterable[Sequence[str]], numeric: int = 0) -> list[str]:
    """A table whose columns from `numeric` on are right-aligned (numbers); its cells are text,
    made literal markdown (`_md`), but for a row given as `_Bold`."""
    align = ["---" if i < numeric or not numeric else "--:" for i in range(len(heads))]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        cells = [_md(c) for c in row]
        if isinstance(row, _Bold):
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


class _Bold(list[str]):
    """A table row whose first cell is shown bold (the totals)."""


def _md_list(report: Report, overdue: bool) -> list[str]:
    groups = _groups(report, overdue)
    if not groups:
        return ["Không có."]
    lines: list[str] = []
    for agency, rows, more in groups:
        n = len(agency.overdue if overdue else agency.due)
        lines += ["", f"### {_md(agency.name)} ({n})", ""]
        lines += _md_table(_ROW_HEADS, (_row(d) for d in rows))
        if more > 0:
            lines += ["", _more(more)]
    return lines[1:]


def markdown(report: Report) -> str:
    lines = [
        f"# {TITLE}",
        "",
        f"- Tên miền: `{report.domain}` (quy định {report.regulation})",
        f"- Kỳ báo cáo: {_period(report)}",
        f"- Tổng số: {report.active} đang hoạt động, {report.suspended} bị khóa",
    ]
    lines += [f"- {note}" for note in _notes(report)]
    lines += ["", "## Theo cơ quan", ""]
    rows = [_agency_cells(report, a) for a in report.agencies]
    total = _total_cells(report)
    rows.append(_Bold(total))
    lines += _md_table(_headings(report), rows, numeric=1)

    lines += ["", "## Tài khoản bị khóa theo điều khoản", ""]
    clauses = [
        [a.name, clause_text(clause), str(n)] for a in report.agencies for clause, n in a.suspended
    ]
    if clauses:
        lines += _md_table(("Cơ quan", "Điều khoản", "Số tài khoản"), clauses, numeric=2)
    else:
        lines.append("Không có.")

    lines += ["", f"## {OVERDUE_TITLE} ({len(report.overdue)})", ""]
    if report.overdue:
        lines += [OVERDUE_NOTE, ""]
    lines += _md_list(report, overdue=True)
    lines += ["", f"## Sắp đến hạn trong {report.horizon_days} ngày tới ({len(report.due)})", ""]
    lines += _md_list(report, overdue=False)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# CSV: one file for spreadsheets: a row per agency, the total, then a row per mailbox overdue or
# due (every one of them), told apart by the first column.

CSV_HEADER = (
    "Loại",
    "Mã cơ quan",
    "Cơ quan",
    "Đang hoạt động",
    "Bị khóa",
    "Bị khóa theo điều khoản",
    *(f"{label} trong kỳ" for label in _EVENTS.values()),
    "Quá hạn",
    f"Sắp đến hạn trong {HORIZON_DAYS} ngày",
    *_ROW_HEADS,
)
ROW_AGENCY = "Cơ quan"
ROW_TOTAL = "Tổng"
ROW_OVERDUE = "Hộp thư quá hạn"
ROW_DUE = "Hộp thư sắp đến hạn"


def csv_text(report: Report) -> str:
    no_row = [""] * len(_ROW_HEADS)

    def counts(of: Report | AgencyReport) -> list[object]:
        return [
            *(of.count(e) if report.audited else "" for e in _EVENTS),
            len(of.overdue),
            len(of.due),
        ]

    rows: list[list[object]] = [
        [
            ROW_AGENCY,
            a.id,
            _name(a),
            a.active,
            a.suspended_total,
            _suspended(a),
            *counts(a),
            *no_row,
        ]
        for a in report.agencies
    ]
    rows.append([ROW_TOTAL, "", "", report.active, report.suspended, "", *counts(report), *no_row])
    names = {a.id: a.name for a in report.agencies}
    blank = [""] * (len(CSV_HEADER) - 3 - len(_ROW_HEADS))
    for kind, dues in ((ROW_OVERDUE, report.overdue), (ROW_DUE, report.due)):
        rows += [[kind, d.agency, names.get(d.agency, d.agency), *blank, *_row(d)] for d in dues]
    return sheet(CSV_HEADER, rows)


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; margin: 2rem auto;
       max-width: 64rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
h3 { font-size: 1rem; margin: 1.25rem 0 .5rem; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { border: 1px solid #d0d0d0; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; background: #fafafa; }
p.more { color: #555; font-style: italic; }
.legend span { display: inline-block; width: .8rem; height: .8rem; margin: 0 .3rem 0 1rem;
               vertical-align: middle; }
svg { max-width: 100%; height: auto; }
@media print { body { margin: 0; max-width: none; } }
""".strip()

LABEL_WIDTH = 300
BAR_WIDTH = 380
ROW_HEIGHT = 30
LINE_HEIGHT = 16
#: Characters per line of an agency's name in the chart (13 px text in LABEL_WIDTH pixels).
LABEL_CHARS = 34


def wrap(text: str, width: int = LABEL_CHARS) -> list[str]:
    """`text` cut into lines of at most `width` characters, at spaces (a longer word is cut)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line or not lines:
        lines.append(line)
    return lines


def chart(report: Report) -> str:
    """An SVG bar chart: one `<g class="bar">` per agency, green active, red suspended; the
    agency's name right-aligned beside its bar, on as many lines as it needs."""
    largest = max((a.total for a in report.agencies), default=0) or 1
    labels = [wrap(a.name) for a in report.agencies]
    heights = [max(ROW_HEIGHT, LINE_HEIGHT * len(lines) + 12) for lines in labels]
    height = sum(heights) + 10
    width = LABEL_WIDTH + BAR_WIDTH + 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="Noto Sans, DejaVu Sans, Arial, sans-serif" font-size="13">',
        f"<title>{escape('Số tài khoản theo cơ quan và trạng thái')}</title>",
    ]
    y = 5
    for agency, lines, row_height in zip(report.agencies, labels, heights, strict=True):
        middle = y + row_height / 2
        active = round(BAR_WIDTH * agency.active / largest, 1)
        suspended = round(BAR_WIDTH * agency.suspended_total / largest, 1)
        name = escape(agency.name)
        first = middle - (len(lines) - 1) * LINE_HEIGHT / 2 + 4.5
        parts.append(f'<g class="bar" data-agency="{escape(agency.id)}">')
        spans = "".join(
            f'<tspan x="{LABEL_WIDTH - 8}" y="{first + i * LINE_HEIGHT:g}">{escape(line)}</tspan>'
            for i, line in enumerate(lines)
        )
        parts.append(f'<text class="label" text-anchor="end"><title>{name}</title>{spans}</text>')
        top = middle - 10
        parts.append(
            f'<rect class="active" x="{LABEL_WIDTH}" y="{top:g}" width="{active}" height="20" '
            f'fill="{ACTIVE_COLOUR}"><title>{name}: {agency.active} đang hoạt động</title></rect>'
        )
        parts.append(
            f'<rect class="suspended" x="{LABEL_WIDTH + active}" y="{top:g}" '
            f'width="{suspended}" height="20" fill="{SUSPENDED_COLOUR}"><title>{name}: '
            f"{agency.suspended_total} bị khóa</title></rect>"
        )
        parts.append(
            f'<text x="{LABEL_WIDTH + active + suspended + 6}" y="{middle + 4.5:g}">'
            f"{agency.active} / {agency.suspended_total}</text>"
        )
        parts.append("</g>")
        y += row_height
    parts.append("</svg>")
    return "\n".join(parts)


def _cell(value: object, numeric: bool = False) -> str:
    cls = ' class="n"' if numeric else ""
    return f"<td{cls}>{escape(str(value))}</td>"


def _html_table(heads: Sequence[str], rows: list[str]) -> list[str]:
    return [
        "<table>",
        "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in heads) + "</tr></thead>",
        "<tbody>",
        *rows,
        "</tbody>",
        "</table>",
    ]


def _html_list(report: Report, overdue: bool) -> list[str]:
    groups = _groups(report, overdue)
    if not groups:
        return ["<p>Không có.</p>"]
    out: list[str] = []
    for agency, rows, more in groups:
        n = len(agency.overdue if overdue else agency.due)
        out.append(f"<h3>{escape(agency.name)} ({n})</h3>")
        out += _html_table(
            _ROW_HEADS, ["<tr>" + "".join(_cell(c) for c in _row(d)) + "</tr>" for d in rows]
        )
        if more > 0:
            out.append(f'<p class="more">{escape(_more(more))}</p>')
    return out


def html(report: Report) -> str:
    rows = []
    for agency in report.agencies:
        cells = _agency_cells(report, agency)
        rows.append("<tr>" + _cell(cells[0]) + "".join(_cell(c, True) for c in cells[1:]) + "</tr>")
    totals = _total_cells(report)
    rows.append(
        '<tr class="total">' + _cell(totals[0]) + "".join(_cell(c, True) for c in totals[1:])
    )
    rows[-1] += "</tr>"
    clause_rows = [
        "<tr>" + _cell(a.name) + _cell(clause_text(clause)) + _cell(n, True) + "</tr>"
        for a in report.agencies
        for clause, n in a.suspended
    ]
    meta = " · ".join(
        [
            f"Tên miền {report.domain} (quy định {report.regulation})",
            f"Kỳ báo cáo {_period(report)}",
            *_notes(report),
        ]
    )
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
        *_html_table(_headings(report), rows),
        "<h2>Tài khoản bị khóa theo điều khoản</h2>",
    ]
    if clause_rows:
        out += _html_table(("Cơ quan", "Điều khoản", "Số tài khoản"), clause_rows)
    else:
        out.append("<p>Không có.</p>")
    out.append(f"<h2>{escape(OVERDUE_TITLE)} ({len(report.overdue)})</h2>")
    if report.overdue:
        out.append(f"<p>{escape(OVERDUE_NOTE)}</p>")
    out += _html_list(report, overdue=True)
    out.append(f"<h2>Sắp đến hạn trong {report.horizon_days} ngày tới ({len(report.due)})</h2>")
    out += _html_list(report, overdue=False)
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


RENDERERS = {"markdown": markdown, "csv": csv_text, "html": html}
