"""The `--activity FILE` CSV (`address,last_activity`, more columns allowed) exported from the mail
server's logs (`reconciler activity`, inventory/maillog.py), and the dates the tool accepts
anywhere (`--now`, `--since`, the activity file, `restored:`)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from reconciler.errors import InventoryError, Problem, ReconcilerError

#: The dates the tool accepts: far enough on either side of today for any real use, near enough
#: that the regulations' months and years added to them never leave the calendar (`--now
#: 9999-12-31` ended in an OverflowError, `--now 0001-03-01` too).
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
#: Most problems reported for one activity file (as for an inventory file).
MAX_PROBLEMS = 100


def out_of_range(moment: dt.datetime | dt.date) -> str | None:
    """Why `moment` is not a date the tool works with, or None."""
    day = moment.date() if isinstance(moment, dt.datetime) else moment
    if EARLIEST.date() <= day < LATEST.date():
        return None
    return (
        f"{day.isoformat()} is outside the dates the reconciler works with "
        f"({EARLIEST.year} to {LATEST.year - 1})"
    )


def parse_moment(text: str) -> dt.datetime:
    """ISO 8601 date or date-time; UTC when it has no zone. ValueError, in plain words, for text
    that is not one or a date outside EARLIEST … LATEST."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or date-time") from None
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    reason = out_of_range(value.astimezone(dt.UTC))
    if reason:
        raise ValueError(reason)
    return value


#: The CSV's columns (`reconciler activity` writes them all) and the kind of activity each holds.
KINDS = {
    "last_activity": "mail",
    "last_login": "login",
    "last_sent": "sent",
    "last_received": "received",
}


def load(path: Path, now: dt.datetime | None = None) -> dict[str, dict[str, dt.datetime]]:
    """address (lower case) → the latest moment of each kind of activity in the file (the
    regulation says which kinds count: HG-2024 Đ8.2.a all, QN-2020 Đ7.2 logins only). Every
    malformed row is reported with its line, at most MAX_PROBLEMS of them; a moment after `now`
    (the plan's clock) is refused: it would exempt the mailbox from the inactivity rules until
    that day. A UTF-8 byte order mark (what Excel's "CSV UTF-8" writes) is skipped."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise ReconcilerError(f"cannot read the activity file {path}: {error.strerror}") from None
    result: dict[str, dict[str, dt.datetime]] = {}
    problems: list[Problem] = []

    def problem(line: int, message: str) -> None:
        problems.append(Problem(str(path), line, message))
        if len(problems) == MAX_PROBLEMS:
            problems.append(
                Problem(
                    str(path),
                    line,
                    f"too many problems in this file: only the first {MAX_PROBLEMS} are shown "
                    "and the rest of the file was not read",
                )
            )
            raise InventoryError(problems)

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
                    problem(line, f"expected `address,last_activity`, got {','.join(row)!r}")
                    continue
                seen = result.setdefault(row[0].strip().lower(), {})
                for i, kind in columns:
                    value = row[i].strip() if i < len(row) else ""
                    if not value and i > 1:
                        continue  # no moment of that kind
                    try:
                        moment = parse_moment(value)
                    except ValueError as error:
                        problem(line, f"{header[i].strip()}: {error}")
                        break
                    if now is not None and moment > now:
                        problem(
                            line,
                            f"{header[i].strip()} {value} is after the plan's clock "
                            f"({now.isoformat()}): an activity cannot come from the future",
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
