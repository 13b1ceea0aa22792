"""CSV files for people (the report, the public directory, a merger's lists): one writer for all.

UTF-8 with a byte order mark, so that Excel on Windows opens Vietnamese text as UTF-8 rather than
in the ANSI code page, and CRLF line ends, as spreadsheets write them. Pure: returns text, to be
written as UTF-8 with `newline=""`. Every CSV for people goes through `csv_text`, so that what
all of them need (the byte order mark; keeping a cell from being read as a formula) is done in
one place.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from reconciler.text import csv_row

BOM = "\ufeff"


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The CSV text of `header` and `rows`, starting with a byte order mark."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(csv_row("" if cell is None else cell for cell in row))
    return out.getvalue()
