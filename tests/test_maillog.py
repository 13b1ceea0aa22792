# ruff: noqa: E501  (log lines as the servers write them)
"""`reconciler activity`: the --activity CSV from Postfix and Dovecot log lines (these lines are
copied from the logs of the throwaway mail server of tests/test_mail.py, which also runs the
command on a live server's logs)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import os
from pathlib import Path

from reconciler.inventory import activity as activity_module
from reconciler.inventory import maillog

from .helpers import run_cli

HCM = maillog.zone("Asia/Ho_Chi_Minh")

POSTFIX = """\
Nov 29 16:58:39 mail postfix/submission/smtpd[10737]: 84CA121224A: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=bob@hagiang.gov.vn
Nov 29 16:58:39 mail postfix/lmtp[10749]: 7198D21221C: to=<carol@hagiang.gov.vn>, orig_to=<oldcarol@hagiang.gov.vn>, relay=mail.hagiang.gov.vn[private/dovecot-lmtp], delay=0.11, delays=0.02/0.01/0.02/0.07, dsn=2.0.0, status=sent (250 2.0.0 <carol@hagiang.gov.vn> bnCxHb9ZDGv/KQAAg+zDdQ:R2 Saved)
Nov 29 16:58:40 mail postfix/lmtp[10749]: 7198D21221D: to=<dan@hagiang.gov.vn>, relay=mail.hagiang.gov.vn[private/dovecot-lmtp], delay=0.11, dsn=4.3.0, status=deferred (451 4.3.0 Temporary internal error)
Nov 29 16:58:41 mail postfix/smtp[10750]: 7198D21221E: to=<someone@outside.example>, relay=mx.outside.example[192.0.2.1]:25, dsn=2.0.0, status=sent (250 ok)
Nov 29 16:58:41 mail postfix/submission/smtpd[10737]: warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=eve@hagiang.gov.vn
"""
DOVECOT = """\
Nov 29 17:10:08 imap-login: Info: Login: user=<Alice@hagiang.gov.vn>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=2067, secured, session=<HfWDXW1hULt/AAAB>
Nov 29 17:10:09 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 1 secs): user=<eve@hagiang.gov.vn>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, secured, session=<1S+EXW1hXLt/AAAB>
Nov 29 16:58:39 lmtp(alice@hagiang.gov.vn)<10751><bnCxHb9ZDGv/KQAAg+zDdQ>: Info: msgid=<20261129165839.7198D21221C@mail.hagiang.gov.vn>: saved mail to INBOX
"""
RSYSLOG = """\
2027-01-02T08:00:00.123456+07:00 mail dovecot: imap-login: Login: user=<bob@hagiang.gov.vn>, method=PLAIN, rip=10.0.0.5, lip=10.0.0.1, mpid=1, TLS, session=<x>
2027-01-02T09:30:00+07:00 mail dovecot: lmtp(bob@hagiang.gov.vn)<1><x>: msgid=<m@x>: saved mail to INBOX
"""


def rows(activity: maillog.Activity) -> dict[str, list[str]]:
    return {row[0]: list(row[1:]) for row in activity.rows()}


def test_each_kind_of_activity_is_read_and_the_rest_is_not() -> None:
    found = maillog.Activity()
    maillog.read_lines(found, (POSTFIX + DOVECOT).splitlines(), 2026, HCM)
    assert rows(found) == {
        # sending after a login: a login and a message sent
        "bob@hagiang.gov.vn": ["2026-11-29T16:58:39+07:00"] * 3 + [""],
        # delivered after an alias was rewritten: the mailbox's address counts
        "carol@hagiang.gov.vn": ["2026-11-29T16:58:39+07:00", "", "", "2026-11-29T16:58:39+07:00"],
        # an IMAP login and a delivery by Dovecot's LMTP; the address in lower case
        "alice@hagiang.gov.vn": [
            "2026-11-29T17:10:08+07:00",
            "2026-11-29T17:10:08+07:00",
            "",
            "2026-11-29T16:58:39+07:00",
        ],
    }  # deferred, relayed outside and failed logins are not activity


def test_a_traditional_time_stamp_after_the_files_month_is_the_year_before() -> None:
    found = maillog.Activity()
    lines = ["Dec 31 23:59:00 mail " + DOVECOT.splitlines()[0].split(" ", 3)[3]]
    maillog.read_lines(found, lines, 2027, HCM, last_month=1)
    assert rows(found)["alice@hagiang.gov.vn"][0] == "2026-12-31T23:59:00+07:00"


def test_the_command_reads_plain_gz_and_rsyslog_logs_into_a_0600_csv(tmp_path: Path) -> None:
    (tmp_path / "mail.log").write_text(RSYSLOG, encoding="utf-8")
    with gzip.open(tmp_path / "mail.log.2.gz", "wt", encoding="utf-8") as old:
        old.write(POSTFIX)
    stamp = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
    os.utime(tmp_path / "mail.log.2.gz", (stamp, stamp))
    out = tmp_path / "activity.csv"
    result = run_cli(
        "activity", str(tmp_path / "mail.log"), str(tmp_path / "mail.log.2.gz"), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    with out.open(encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert table[0] == list(maillog.HEADER)
    by_address = {row[0]: row for row in table[1:]}
    assert by_address["bob@hagiang.gov.vn"][1:] == [
        "2027-01-02T09:30:00+07:00",  # the latest: a delivery
        "2027-01-02T08:00:00+07:00",
        "2026-11-29T16:58:39+07:00",  # sent, from the rotated log of 2026
        "2027-01-02T09:30:00+07:00",
    ]
    # and plan --activity reads it, each kind apart (the regulation says which count)
    assert activity_module.load(out)["bob@hagiang.gov.vn"] == {
        "mail": dt.datetime(2027, 1, 2, 2, 30, tzinfo=dt.UTC),
        "login": dt.datetime(2027, 1, 2, 1, 0, tzinfo=dt.UTC),
        "sent": dt.datetime(2026, 11, 29, 9, 58, 39, tzinfo=dt.UTC),
        "received": dt.datetime(2027, 1, 2, 2, 30, tzinfo=dt.UTC),
    }


def test_a_missing_log_or_a_bad_zone_is_one_line_and_exit_1(tmp_path: Path) -> None:
    missing = run_cli("activity", str(tmp_path / "none.log"))
    assert missing.returncode == 1 and "cannot read the mail log" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "mail.log").write_text(DOVECOT, encoding="utf-8")
    zone = run_cli("activity", str(tmp_path / "mail.log"), "--timezone", "Mars/Olympus")
    assert zone.returncode == 1 and "unknown time zone" in zone.stderr
