"""`reconciler activity`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from reconciler.cli.app import main
from reconciler.cli.common import fail
from reconciler.errors import ReconcilerError
from reconciler.text import count


@main.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="the CSV to write (mode 0600: it says who uses mail when); default: standard output",
)
@click.option(
    "--year",
    type=int,
    help="the year of time stamps written without one (default: the year of each file's last "
    "change, the year before for later months)",
)
@click.option(
    "--timezone",
    "zone_name",
    default="Asia/Ho_Chi_Minh",
    show_default=True,
    help="the zone of time stamps written without one",
)
def activity(logs: tuple[Path, ...], out: Path | None, year: int | None, zone_name: str) -> None:
    """Write the --activity CSV of `plan` and `report` from Postfix and Dovecot logs.

    LOGS are mail logs (plain or .gz): the syslog file (/var/log/mail.log…), Postfix's own
    maillog_file or Dovecot's log_path. Per address: the last login (IMAP, POP3, SMTP AUTH), the
    last message sent after a login, the last message delivered into the mailbox, and
    last_activity, the latest of the three. Columns:
    address,last_activity,last_login,last_sent,last_received.
    """
    from reconciler.inventory import maillog

    try:
        found = maillog.read_files(logs, year, maillog.zone(zone_name))
        if out is None:
            found.write(sys.stdout)
            return
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            found.write(handle)
    except ReconcilerError as error:
        fail(error)
    except OSError as error:
        fail(ReconcilerError(f"cannot write {out}: {error.strerror}"))
    click.echo(f"{count(len(found.seen), 'address', 'addresses')} written to {out}", err=True)
