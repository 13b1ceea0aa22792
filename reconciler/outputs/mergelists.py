"""`reconciler merge-lists`: what the people around a merger need, from its saved plan.

Pure: `build(plan)` returns the text of each file. For the letters the agencies send, one list
per agency (CSV and printable HTML, in Vietnamese) of each moved person's former and new address;
for the mail team, the job list of an IMAP sync tool (imapsync, `doveadm sync`: the source login
and address, the target login and address of every moved mailbox, and of every abolished
organisation or unit mailbox into its successor's); and the mail-routing facts
(the former domains the mail server must accept, as alias domains). No password anywhere.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass

from reconciler.model import Action, Kind, Operation, Plan
from reconciler.outputs.publish import vi_key
from reconciler.sheets import csv_text

#: The CSV header of an agency's list (Vietnamese, for the letters).
HEADER = ("Họ và tên", "Chức danh", "Địa chỉ cũ", "Địa chỉ mới", "Địa chỉ cũ vẫn nhận thư")
JOBS_HEADER = ("id", "source_login", "source_address", "target_login", "target_address")


@dataclass(frozen=True, slots=True)
class Move:
    id: str
    agency: str
    name: str
    title: str
    former: str
    new: str
    kept: tuple[str, ...]
    source_login: str
    target_login: str


def _attr(op: Operation, name: str) -> tuple[str, ...]:
    for change in op.attributes:
        if change.attr == name:
            return tuple(v for v in change.after if isinstance(v, str))
    return ()


def moves(plan: Plan) -> list[Move]:
    """Every mailbox the plan moves from the source directory (a create with a source)."""
    found = []
    for op in plan.operations:
        if op.action is not Action.CREATE or op.source is None:
            continue
        found.append(
            Move(
                id=op.id,
                agency=op.agency,
                name=op.name,
                title=(_attr(op, "title") or ("",))[0],
                former=op.source.address,
                new=op.address,
                kept=_attr(op, "govMailAlias"),
                source_login=op.source.login,
                target_login=(_attr(op, "uid") or ("",))[0],
            )
        )
    return sorted(found, key=lambda m: (m.agency, vi_key(m.name), m.id))


def inherited(plan: Plan) -> list[tuple[str, str, str, str, str]]:
    """The job rows of the organisation and unit mailboxes abolished in the merger: each former
    address a successor's mailbox gains as an alias (in a domain not the plan's), from the
    mailbox that held it (its login there is its local part, as the reconciler names them) to
    the successor's."""
    rows = []
    for op in plan.operations:
        if op.kind is Kind.PERSON or op.action not in (Action.CREATE, Action.UPDATE):
            continue
        listed = op.attributes if op.action is Action.CREATE else op.changes
        for change in listed:
            if change.attr != "govMailAlias":
                continue
            gained = [a for a in change.after if isinstance(a, str) and a not in change.before]
            for former in sorted(gained):
                if former.endswith("@" + plan.domain):
                    continue
                target = op.address
                rows.append(
                    (op.id, former.partition("@")[0], former, target.partition("@")[0], target)
                )
    return rows


def _html(agency: str, rows: list[Move], plan: Plan) -> str:
    """The printable list of one agency, named by its name (`agency`) as the letters name it."""

    def cell(value: str) -> str:
        return f"<td>{html.escape(value)}</td>"

    body = "\n".join(
        "<tr>"
        + cell(m.name)
        + cell(m.title)
        + cell(m.former)
        + f"<td><b>{html.escape(m.new)}</b></td>"
        + cell(", ".join(m.kept))
        + "</tr>"
        for m in rows
    )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    return f"""<!DOCTYPE html>
<html lang="vi"><head><meta charset="utf-8">
<title>Địa chỉ thư điện tử mới — {html.escape(agency)}</title>
<style>
body {{ font-family: "Times New Roman", serif; margin: 2cm; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #444; padding: 4px 6px; text-align: left; vertical-align: top; }}
th {{ background: #eee; }}
@media print {{ body {{ margin: 1cm; }} }}
</style></head><body>
<h1>Danh sách địa chỉ thư điện tử công vụ mới</h1>
<p>Cơ quan: <b>{html.escape(agency)}</b>. Hộp thư của các cá nhân dưới đây đã được chuyển sang
hệ thống thư điện tử công vụ của {html.escape(plan.domain)}: mật khẩu giữ nguyên, thư gửi đến
địa chỉ cũ vẫn được nhận tại hộp thư mới. Từ nay xin dùng địa chỉ mới.</p>
<table><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<p><small>{len(rows)} hộp thư.</small></p>
</body></html>
"""


def routing(plan: Plan, rows: list[Move]) -> str:
    """The mail server's part: the former domains accepted as alias domains."""
    former = sorted(
        {a.rpartition("@")[2] for m in rows for a in m.kept if not a.endswith("@" + plan.domain)}
    )
    domains = " ".join([plan.domain, *former])
    return (
        f"# Mail routing after the merger into {plan.domain} (README: Mail server)\n"
        "# The former addresses are aliases (govMailAlias) of the moved mailboxes: the mail\n"
        "# server must accept their domains, or mail to them is refused before the aliases are\n"
        "# read.\n"
        f"former_domains = {' '.join(former)}\n\n"
        "# Postfix main.cf:\n"
        f"virtual_mailbox_domains = {domains}\n"
        "# and in each reconciler-*.cf map:\n"
        f"domain = {', '.join([plan.domain, *former])}\n"
    )


def build(plan: Plan) -> dict[str, str]:
    """Relative path → text of every file."""
    rows = moves(plan)
    by_agency: dict[str, list[Move]] = defaultdict(list)
    for move in rows:
        by_agency[move.agency].append(move)
    names = {c.agency: c.name for c in plan.contacts}
    files: dict[str, str] = {}
    for agency, moved in sorted(by_agency.items()):
        files[f"agencies/{agency}.csv"] = csv_text(
            HEADER, [(m.name, m.title, m.former, m.new, ", ".join(m.kept)) for m in moved]
        )
        files[f"agencies/{agency}.html"] = _html(names.get(agency, agency), moved, plan)
    files["imap-sync-jobs.csv"] = csv_text(
        JOBS_HEADER,
        [(m.id, m.source_login, m.former, m.target_login, m.new) for m in rows] + inherited(plan),
    )
    files["mail-routing.txt"] = routing(plan, rows)
    return files
