"""The `--activity` CSV from the mail server's own logs (Postfix and Dovecot, examples/mail/).

    reconciler activity /var/log/mail.log /var/log/mail.log.1 /var/log/mail.log.2.gz --out a.csv

What counts, per address, the latest of each:

- login: Dovecot's `imap-login: Login: user=<…>` (POP3 and the other login services too), and a
  login to send (Postfix's `sasl_username=…`);
- sent: a message submitted after such a login (Postfix `…: client=…, sasl_username=…`);
- received: a message delivered into the mailbox (Postfix `postfix/lmtp|virtual|local`
  `to=<…>, … status=sent`, or Dovecot's `lmtp(…)`/`lda(…)` `saved mail to`).

The CSV is `address,last_activity,last_login,last_sent,last_received`: `last_activity` is the
latest of the three (HG-2024 Đ8.2.a counts logins, sending and receiving); the other columns let
a rule count only what it counts (QN-2020 Đ7.2: logins only). `plan --activity` reads the first
two columns. Lines are read as rsyslog writes them (`2026-11-29T16:58:39.123+07:00 host …`) or in
the traditional form without a year (`Nov 29 16:58:39 host …`, Postfix's own maillog_file and
Dovecot's log_path): those take `year` and `zone`.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, BinaryIO, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconciler.errors import ReconcilerError
from reconciler.text import csv_row

KINDS = ("login", "sent", "received")
HEADER = ("address", "last_activity", "last_login", "last_sent", "last_received")
PROVINCE_ZONE = "Asia/Ho_Chi_Minh"

_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s")
_TRADITIONAL = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)?\s")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_ADDRESS = r"([^<>\s,]+@[^<>\s,]+)"
_EVENTS = (
    ("login", re.compile(r"\b(?:imap|pop3|submission|managesieve)-login: (?:Info: )?Login: "
                         rf"user=<{_ADDRESS}>")),
    ("sent", re.compile(rf"postfix/[\w/-]*smtpd\[\d+\]: \w+: client=.*\bsasl_username={_ADDRESS}")),
    ("received", re.compile(r"postfix/(?:lmtp|virtual|local)\[\d+\]: \w+: "
                            rf"to=<{_ADDRESS}>.*\bstatus=sent\b")),
    ("received", re.compile(rf"\b(?:lmtp|lda)\({_ADDRESS}\)[^:]*: (?:Info: )?.*saved mail to ")),
)  # fmt: skip


class Activity:
    """The latest moment of each kind of activity, per address (lower case)."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, dt.datetime]] = {}

    def add(self, address: str, kind: str, moment: dt.datetime) -> None:
        kinds = self.seen.setdefault(address.lower(), {})
        if kind not in kinds or kinds[kind] < moment:
            kinds[kind] = moment
        if kind == "sent":  # sending needs a login first
            self.add(address, "login", moment)

    def rows(self) -> Iterator[tuple[str, ...]]:
        for address in sorted(self.seen):
            kinds = self.seen[address]
            latest = max(kinds.values())
            yield (
                address,
                _iso(latest),
                *(_iso(kinds[k]) if k in kinds else "" for k in KINDS),
            )

    def write(self, out: IO[str]) -> None:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(csv_row(row) for row in self.rows())  # an address is the log's text


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReconcilerError(f"unknown time zone {name!r}: give an IANA name such as "
                              f"{PROVINCE_ZONE} or UTC") from None  # fmt: skip


def moment_of(line: str, year: int, tz: dt.tzinfo) -> dt.datetime | None:
    """The time stamp at the start of a log line, or None."""
    iso = _ISO.match(line)
    if iso:
        stamp = dt.datetime.fromisoformat(iso.group(1).replace("Z", "+00:00"))
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=tz)
    old = _TRADITIONAL.match(line)
    if old and old.group(1) in _MONTHS:
        month, day, hour, minute, second = (_MONTHS[old.group(1)], *map(int, old.groups()[1:]))
        try:
            return dt.datetime(year, month, day, hour, minute, second, tzinfo=tz)
        except ValueError:
            return None
    return None


def read_lines(
    activity: Activity, lines: Iterable[str], year: int, tz: dt.tzinfo, last_month: int = 12
) -> None:
    """Add the events of these lines. A traditional time stamp has no year: it is `year`, or the
    year before for a month after `last_month` (a log that runs over New Year)."""
    for line in lines:
        for kind, pattern in _EVENTS:
            found = pattern.search(line)
            if found is None:
                continue
            moment = moment_of(line, year, tz)
            if moment is None:
                break
            if not _ISO.match(line) and moment.month > last_month:
                moment = moment.replace(year=year - 1)
            activity.add(found.group(1), kind, moment)
            break


def _open(path: Path) -> BinaryIO:
    """A log file, uncompressed on the fly when its name ends in .gz (logrotate's)."""
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.open(path))
    return path.open("rb")


def read_files(paths: Iterable[Path], year: int | None, tz: dt.tzinfo) -> Activity:
    """Every log file (plain or .gz); a traditional time stamp takes the year of the file's last
    change, unless `year` is given."""
    activity = Activity()
    for path in paths:
        try:
            changed = dt.datetime.fromtimestamp(path.stat().st_mtime, tz)
            with _open(path) as raw, io.TextIOWrapper(raw, "utf-8", errors="replace") as text:
                if year is None:
                    read_lines(activity, text, changed.year, tz, changed.month)
                else:
                    read_lines(activity, text, year, tz)
        except OSError as error:  # gzip.BadGzipFile is one too
            raise ReconcilerError(
                f"cannot read the mail log {path}: {error.strerror or error}"
            ) from None
        except EOFError:
            raise ReconcilerError(f"cannot read the mail log {path}: it is cut short") from None
    return activity
