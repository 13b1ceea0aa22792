"""The public e-mail directory of each agency (QN-2020 Đ13.4), for the agency's web portal. Pure.

`build()` keeps only what may be public: the name, title, unit and address of each mailbox that is
active both in the inventory and in the directory (an entry with `pwdAccountLockedTime` is left
out, whatever the inventory says), and the organisation and unit mailboxes. No stable id, quota,
alias, manager or suspension reason leaves this module.

Order: the organisation mailbox, the unit mailboxes, then the staff, by unit, then by rank within
the unit (1, the head, first: a Giám đốc before the Phó Giám đốc; staff without a rank after
every ranked one), then by name. Names
are compared with `vi_key`, a simple Vietnamese collation: letters compare without their
diacritics (ă and â fold to a, ê to e, ô and ơ to o, ư to u, and tone marks are dropped), except
đ, which is a letter of its own sorting after d (Dũng < Duy < Đào); ties are broken by the
diacritics, then by the exact text. Staff without a unit come first (usually the agency's head).

The CSV starts with a UTF-8 byte order mark so that Excel on Windows opens the Vietnamese text
as UTF-8 rather than in the ANSI code page.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

from reconciler.model import Entry, Inventory, State, agency_key, unit_key
from reconciler.sheets import csv_text

CSV_HEADER = ("Họ và tên", "Chức vụ", "Đơn vị", "Địa chỉ thư điện tử")
#: Where staff without a `rank` come within their unit: after every ranked leader.
UNRANKED = 1_000_000


def vi_key(text: str) -> tuple[str, str, str]:
    """Sort key of a simple Vietnamese collation (see the module's docstring)."""
    nfd = unicodedata.normalize("NFD", text.casefold())
    base = "".join(c for c in nfd if not unicodedata.combining(c))
    primary = base.replace("đ", "d~")  # '~' sorts after every letter: đ comes after all of d
    return primary, nfd, text


@dataclass(frozen=True, slots=True)
class Listing:
    name: str
    title: str
    unit: str
    address: str


@dataclass(frozen=True, slots=True)
class AgencyDirectory:
    id: str  # used only for the file name
    name: str
    mailboxes: tuple[Listing, ...]  # the organisation and unit mailboxes
    staff: tuple[Listing, ...]


@dataclass(frozen=True, slots=True)
class PublicDirectory:
    domain: str
    agencies: tuple[AgencyDirectory, ...]


def _active(entry: Entry | None) -> str | None:
    """The entry's address when it is a live, unsuspended mailbox of the tool's."""
    if entry is None or not entry.managed or entry.all("pwdAccountLockedTime"):
        return None
    return entry.mail


def build(inventory: Inventory, entries: Iterable[Entry]) -> PublicDirectory:
    live = {e.key: e for e in entries if e.managed and e.key}
    agencies = []
    for agency in inventory.agencies:
        mailboxes = []
        address = _active(live.get(agency_key(agency.id)))
        if address:
            mailboxes.append(Listing(agency.name, "", "", address))
        units = sorted(agency.units, key=lambda u: vi_key(u.name))
        for unit in units:
            address = _active(live.get(unit_key(agency.id, unit.id)))
            if address:
                mailboxes.append(Listing(unit.name, "", unit.name, address))
        staff: list[tuple[int, Listing]] = []  # (rank, listing)
        for person in inventory.people:
            if person.agency != agency.id or person.state is not State.ACTIVE:
                continue
            address = _active(live.get(person.id))
            if not address:
                continue
            home = agency.unit(person.unit) if person.unit else None
            listing = Listing(person.name, person.title or "", home.name if home else "", address)
            staff.append((person.rank if person.rank is not None else UNRANKED, listing))
        staff.sort(
            key=lambda s: (
                s[1].unit != "",
                vi_key(s[1].unit),
                s[0],
                vi_key(s[1].name),
                s[1].address,
            )
        )
        listed = tuple(listing for _, listing in staff)
        agencies.append(AgencyDirectory(agency.id, agency.name, tuple(mailboxes), listed))
    agencies.sort(key=lambda a: vi_key(a.name))
    return PublicDirectory(inventory.settings.domain, tuple(agencies))


# ---------------------------------------------------------------------------------------------
# Rendering

_CSS = """
body { font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; margin: 2rem auto;
       max-width: 60rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.4; }
h1 { font-size: 1.5rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { border: 1px solid #d0d0d0; padding: .35rem .6rem; text-align: left; }
th { background: #f3f3f3; }
a { color: #0b57d0; }
""".strip()


def _page(title: str, body: list[str]) -> str:
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="vi">',
                "<head>",
                '<meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{escape(title)}</title>",
                f"<style>\n{_CSS}\n</style>",
                "</head>",
                "<body>",
                *body,
                "</body>",
                "</html>",
            ]
        )
        + "\n"
    )


def _mailto(address: str) -> str:
    return f'<a href="mailto:{escape(address)}">{escape(address)}</a>'


def _table(rows: Iterable[Listing], heads: tuple[str, ...]) -> list[str]:
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in heads)]
    out[-1] += "</tr></thead>"
    out.append("<tbody>")
    for row in rows:
        cells = [row.name, row.title, row.unit][: len(heads) - 1]
        out.append(
            "<tr>"
            + "".join(f"<td>{escape(c)}</td>" for c in cells)
            + f"<td>{_mailto(row.address)}</td></tr>"
        )
    out += ["</tbody>", "</table>"]
    return out


def agency_html(agency: AgencyDirectory, domain: str) -> str:
    title = f"Danh bạ thư điện tử — {agency.name}"
    body = [f"<h1>{escape(title)}</h1>"]
    if agency.mailboxes:
        body.append("<h2>Hộp thư cơ quan, đơn vị</h2>")
        body += _table(agency.mailboxes, ("Tên", "Địa chỉ thư điện tử"))
    body.append("<h2>Cán bộ, công chức</h2>")
    if agency.staff:
        body += _table(agency.staff, CSV_HEADER)
    else:
        body.append("<p>Chưa có.</p>")
    body.append(f'<p><a href="index.html">Danh bạ các cơ quan ({escape(domain)})</a></p>')
    return _page(title, body)


def agency_csv(agency: AgencyDirectory) -> str:
    """The agency's directory as CSV text, starting with a BOM (write it as UTF-8)."""
    rows = ((r.name, r.title, r.unit, r.address) for r in (*agency.mailboxes, *agency.staff))
    return csv_text(CSV_HEADER, rows)


def index_html(directory: PublicDirectory) -> str:
    title = f"Danh bạ thư điện tử công vụ — {directory.domain}"
    body = [
        f"<h1>{escape(title)}</h1>",
        "<table>",
        "<thead><tr><th>Cơ quan</th><th>Hộp thư cơ quan</th><th>Tải về</th></tr></thead>",
        "<tbody>",
    ]
    for agency in directory.agencies:
        mailbox = _mailto(agency.mailboxes[0].address) if agency.mailboxes else ""
        if agency.mailboxes and agency.mailboxes[0].unit:
            mailbox = ""  # the first is a unit's: the agency has no organisation mailbox
        page = escape(f"{agency.id}.html")
        sheet = escape(f"{agency.id}.csv")
        body.append(
            f'<tr><td><a href="{page}">{escape(agency.name)}</a></td><td>{mailbox}</td>'
            f'<td><a href="{sheet}">CSV</a></td></tr>'
        )
    body += ["</tbody>", "</table>"]
    return _page(title, body)


def files(directory: PublicDirectory) -> dict[str, str]:
    """Every file of the published directory: name → text (to be written as UTF-8)."""
    out = {"index.html": index_html(directory)}
    for agency in directory.agencies:
        out[f"{agency.id}.html"] = agency_html(agency, directory.domain)
        out[f"{agency.id}.csv"] = agency_csv(agency)
    return out
