"""The `--activity FILE` CSV (`address,last_activity`, more columns allowed) exported from the mail
server's logs (`reconciler activity`, inventory/maillog.py)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from reconciler.errors import InventoryError, Problem, ReconcilerError


def parse_moment(text: str) -> dt.datetime:
    """ISO 8601 date or date-time; UTC when it has no zone."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


#: The CSV's columns (`reconciler activity` writes them all) and the kind of activity each holds.
KINDS = {
    "last_activity": "mail",
    "last_login": "login",
    "last_sent": "sent",
    "last_received": "received",
}


def load(path: Path) -> dict[str, dict[str, dt.datetime]]:
    """address (lower case) → the latest moment of each kind of activity in the file (the
    regulation says which kinds count: HG-2024 Đ8.2.a all, QN-2020 Đ7.2 logins only). Every
    malformed row is reported with its line."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as error:
        raise ReconcilerError(f"cannot read the activity file {path}: {error.strerror}") from None
    result: dict[str, dict[str, dt.datetime]] = {}
    problems: list[Problem] = []
    with handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header[:2]] != [
                "address",
                "last_activity",
            ]:
                raise InventoryError(
                    [
                        Problem(
                            str(path),
                            1,
                            "the first line must be the header `address,last_activity`",
                        )
                    ]
                )
            columns = [
                (i, KINDS[h.strip().lower()])
                for i, h in enumerate(header)
                if h.strip().lower() in KINDS
            ]
            for row in reader:
                line = reader.line_num
                if not row or not "".join(row).strip():
                    continue
                # more columns are allowed (`reconciler activity` adds the last login, sent
                # and received): the first two are what counts here
                if len(row) < 2 or "@" not in row[0]:
                    problems.append(
                        Problem(
                            str(path),
                            line,
                            f"expected `address,last_activity`, got {','.join(row)!r}",
                        )
                    )
                    continue
                seen = result.setdefault(row[0].strip().lower(), {})
                for i, kind in columns:
                    value = row[i].strip() if i < len(row) else ""
                    if not value and i > 1:
                        continue  # no moment of that kind
                    try:
                        moment = parse_moment(value)
                    except ValueError:
                        problems.append(
                            Problem(
                                str(path),
                                line,
                                f"{header[i].strip()} {value!r} is not an ISO 8601 date or "
                                "date-time",
                            )
                        )
                        break
                    if kind not in seen or seen[kind] < moment:
                        seen[kind] = moment
        except UnicodeDecodeError:
            raise InventoryError([Problem(str(path), 0, "the file is not UTF-8 text")]) from None
        except csv.Error as error:
            raise InventoryError([Problem(str(path), 0, f"not a CSV file: {error}")]) from None
    if problems:
        raise InventoryError(problems)
    return result
