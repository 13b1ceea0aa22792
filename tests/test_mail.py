"""The mail system end to end: Debian's Postfix and Dovecot, configured by `examples/mail/`, on a
throwaway slapd that the reconciler itself fills (plan → apply), all on 127.0.0.1.

One slapd and one mail server for the module (starting them takes about 3 s); each test works on
its own mailboxes. Mail goes in by SMTP (smtplib) and is looked for in the Maildir of the mail
home Dovecot keys by employeeNumber.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import email
import email.header
import imaplib
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3
import pytest

from reconciler.devtools.mailserver import MailServer
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import Directory

from . import scenario
from .helpers import admin_connection, run_cli
from .scenario import BASE_HG

pytestmark = [pytest.mark.slow, pytest.mark.mail]

DOMAIN = "hagiang.gov.vn"
PASSWORD_URL = "https://mail.hagiang.gov.vn/doi-mat-khau"
SERVICE_DN = "cn=mailserver,dc=example,dc=gov,dc=vn"
OUTSIDE = "someone@outside.example"
#: A former province merged into this one (README "After a merger"): its domain and the alias a
#: moved mailbox keeps in it.
FORMER = "tinhcu.gov.vn"
FORMER_ALIAS = f"son.nv@{FORMER}"


@dataclass
class World:
    slapd: Slapd
    mail: MailServer
    directory: Directory
    spec: dict[str, Any]
    folder: Path
    tmp: Path
    address: dict[str, str] = field(default_factory=dict)  # id -> address
    password: dict[str, str] = field(default_factory=dict)  # id -> current password

    def apply(self) -> list[tuple[str, str]]:
        """Write the inventory, plan, apply; returns the operations (action, id)."""
        scenario.write(self.spec, self.folder)
        plan = scenario.plan(self.folder, self.directory, now=dt.datetime.now(dt.UTC))
        recap = scenario.apply(plan, self.directory, self.tmp)
        assert recap.failed == 0, recap.messages
        for op in plan.operations:
            self.address[op.id] = op.address
        return [(op.action.value, op.id) for op in plan.operations]

    def staff(self, person_id: str) -> dict[str, Any]:
        for agency in self.spec["agencies"].values():
            for person in agency["staff"]:
                if person["id"] == person_id:
                    return person
        raise KeyError(person_id)

    def dn(self, person_id: str) -> str:
        return f"uid={self.address[person_id].split('@')[0]},ou=people,{BASE_HG}"


def _staff(*people: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"id": pid, "name": name} for pid, name in people]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if os.geteuid() != 0:
        pytest.skip("the throwaway Postfix needs root (CI runs as root)")
    tmp = tmp_path_factory.mktemp("mail")
    slapd = Slapd(tmp / "slapd")
    slapd.start()
    try:
        with admin_connection(slapd) as conn:  # the mail server's own read-only account
            service_pw = "Mail-server-2026"
            conn.add(
                SERVICE_DN,
                attributes={
                    "objectClass": ["applicationProcess", "simpleSecurityObject"],
                    "cn": "mailserver",
                    "userPassword": service_pw,
                },
            )
        mail = MailServer(
            ldap_uri=slapd.url,
            base_dn=BASE_HG,
            bind_dn=SERVICE_DN,
            bind_pw=service_pw,
            domain=DOMAIN,
            password_url=PASSWORD_URL,
            former_domains=(FORMER,),
        )
        spec = scenario.hg()
        spec["former_domains"] = [FORMER]
        spec["agencies"]["sotttt"]["staff"][0]["aliases"] = [FORMER_ALIAS]
        spec["agencies"]["sotttt"]["staff"] += [
            *_staff(
                ("HG-0002", "Lê Thị Mai"),
                ("HG-0003", "Phạm Văn Đức"),
                ("HG-0004", "Hoàng Thị Thu"),
                ("HG-0006", "Đỗ Thị Hằng"),
                ("HG-0007", "Bùi Văn Long"),
            ),
            {
                "id": "HG-0005",
                "name": "Vũ Văn Nam",
                "quota": "1MB",
                "quota_decision": "QĐ thử nghiệm",
            },
        ]
        with mail, scenario.connect(slapd) as directory:
            spec["mail_store"] = {"erase": mail.erase_command()}
            w = World(slapd, mail, directory, spec, tmp / "inventory", tmp / "apply")
            w.apply()
            issued = scenario.passwords(w.tmp)
            for person_id, address in w.address.items():
                w.password[person_id] = issued[address]
            for person_id in ("HG-0001", "HG-0002", "HG-0003", "HG-0004", "HG-0005", "HG-0007"):
                change_password(w, person_id, f"Da-doi-{person_id}!")
            yield w
    finally:
        slapd.stop()


# helpers --------------------------------------------------------------------------------------


def change_password(w: World, person_id: str, new: str) -> None:
    """What a user (or the webmail's password plugin) does: the LDAP password modify operation,
    bound as the user with the old password."""
    conn = ldap3.Connection(
        ldap3.Server(w.slapd.url, get_info=ldap3.NONE),
        user=w.dn(person_id),
        password=w.password[person_id],
        auto_bind=True,
        raise_exceptions=True,
    )
    try:
        conn.extend.standard.modify_password(old_password=w.password[person_id], new_password=new)
    finally:
        conn.unbind()
    w.password[person_id] = new


def send(w: World, recipients: list[str], body: str = "Xin chào") -> dict[str, tuple[int, str]]:
    """One message from outside by SMTP; the RCPT reply of each recipient."""
    replies: dict[str, tuple[int, str]] = {}
    with smtplib.SMTP("127.0.0.1", w.mail.smtp_port, timeout=30) as smtp:
        smtp.ehlo("outside.example")
        smtp.mail(OUTSIDE)
        for rcpt in recipients:
            code, text = smtp.rcpt(rcpt)
            replies[rcpt] = (code, text.decode())
        if any(code == 250 for code, _ in replies.values()):
            message = f"From: {OUTSIDE}\r\nSubject: test\r\n\r\n{body}\r\n"
            code, text = smtp.data(message.encode("utf-8"))
            assert code == 250, text
    return replies


def messages(w: World, key: str) -> list[Path]:
    maildir = w.mail.maildir(key)
    return sorted(p for sub in ("new", "cur") for p in (maildir / sub).glob("*") if p.is_file())


def wait_for(w: World, condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout:g} s: {w.mail.log_tail()}")


#: Each login comes from its own 127.0.0.N: Dovecot slows down the logins from an address that
#: failed before (2, 4, 8… s), which would only slow the tests down.
_SOURCES = iter(range(2, 255))


class _Imap(imaplib.IMAP4):
    def _create_socket(self, timeout: float | None) -> socket.socket:
        source = (f"127.0.0.{next(_SOURCES)}", 0)
        return socket.create_connection((self.host, self.port), timeout, source_address=source)


def imap_login(w: World, user: str, password: str) -> tuple[bool, str, int]:
    """(logged in, the server's words, messages in INBOX)."""
    imap = _Imap("127.0.0.1", w.mail.imap_port, timeout=30)
    try:
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error as refused:
            text = refused.args[0]
            return False, text.decode() if isinstance(text, bytes) else str(text), 0
        status, data = imap.select("INBOX", readonly=True)
        assert status == "OK", data
        return True, "", int(data[0] or 0)
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


def submission_login(w: World, user: str, password: str) -> int:
    """The reply code of one AUTH PLAIN on the submission port (after STARTTLS), from its own
    127.0.0.N too."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    source = (f"127.0.0.{next(_SOURCES)}", 0)
    with smtplib.SMTP("127.0.0.1", w.mail.submission_port, timeout=30, source_address=source) as s:
        s.starttls(context=context)
        s.ehlo()
        s.user, s.password = user, password
        try:
            code, _ = s.auth("PLAIN", s.auth_plain)
        except smtplib.SMTPAuthenticationError as refused:
            return refused.smtp_code
        return code


# tests ----------------------------------------------------------------------------------------


def test_person_unit_and_agency_mailboxes_receive_in_their_maildir(world: World) -> None:
    person, unit, agency = (
        world.address["HG-0001"],
        world.address["unit:sotttt/vanphong"],
        world.address["agency:sotttt"],
    )
    assert (person, unit, agency) == (
        "nvson.sotttt@hagiang.gov.vn",
        "vanphong.sotttt@hagiang.gov.vn",
        "sotttt@hagiang.gov.vn",
    )
    replies = send(world, [person, unit, agency])
    assert {code for code, _ in replies.values()} == {250}, replies
    for key in ("HG-0001", "unit:sotttt/vanphong", "agency:sotttt"):
        wait_for(world, lambda key=key: len(messages(world, key)) == 1, f"delivery to {key}")


def test_issued_password_is_refused_until_changed_then_works(world: World) -> None:
    address = world.address["HG-0006"]
    ok, says, _ = imap_login(world, address, world.password["HG-0006"])
    assert not ok
    assert PASSWORD_URL in says and "doi mat khau" in says.lower()
    assert submission_login(world, address, world.password["HG-0006"]) == 535
    wrong, says_wrong, _ = imap_login(world, address, "Sai-mat-khau-1")
    assert not wrong and PASSWORD_URL not in says_wrong  # the reason only with the password
    change_password(world, "HG-0006", "Mat-khau-moi-9")
    ok, says, _ = imap_login(world, address, "Mat-khau-moi-9")
    assert ok, says
    assert submission_login(world, address, "Mat-khau-moi-9") == 235


def test_rename_keeps_the_maildir_and_the_old_address(world: World) -> None:
    old = world.address["HG-0002"]
    send(world, [old], "trước khi đổi tên")
    wait_for(world, lambda: len(messages(world, "HG-0002")) == 1, "delivery before the rename")
    world.staff("HG-0002")["name"] = "Lê Thị Hoa"
    assert ("rename", "HG-0002") in world.apply()
    new = world.address["HG-0002"]
    assert (old, new) == ("ltmai.sotttt@hagiang.gov.vn", "lthoa.sotttt@hagiang.gov.vn")
    for address in (old, new):  # one message each: Postfix would merge the two recipients
        assert send(world, [address], "sau khi đổi tên")[address][0] == 250
    wait_for(world, lambda: len(messages(world, "HG-0002")) == 3, "delivery after the rename")
    for login in (new, old):  # the new address, or the old one kept as an alias
        ok, says, count = imap_login(world, login, world.password["HG-0002"])
        assert ok, says
        assert count == 3  # the same Maildir: the home is keyed by employeeNumber
    homes = {p.name for p in world.mail.vmail.iterdir()}
    assert homes <= {*world.address, "unit:sotttt", "agency:sotttt"}  # ids, never addresses


def test_suspended_mailbox_rejects_mail_at_rcpt_and_cannot_log_in(world: World) -> None:
    address = world.address["HG-0003"]
    ok, says, _ = imap_login(world, address, world.password["HG-0003"])
    assert ok, says  # before the suspension
    person = world.staff("HG-0003")
    person["state"] = "suspended"
    person["suspension"] = {"clause": "HG-2024 Đ8.1", "note": "theo đề nghị của cơ quan"}
    assert world.apply() == [("suspend", "HG-0003")]
    code, text = send(world, [address])[address]
    assert code == 550 and "5.2.1" in text and "suspended" in text
    ok, says, _ = imap_login(world, address, world.password["HG-0003"])
    assert not ok and PASSWORD_URL not in says
    assert submission_login(world, address, world.password["HG-0003"]) == 535


def test_deleted_mailbox_rejects_mail_and_its_maildir_is_erased(world: World) -> None:
    address = world.address["HG-0004"]
    send(world, [address])
    wait_for(world, lambda: len(messages(world, "HG-0004")) == 1, "delivery before the delete")
    ok, _, _ = imap_login(world, address, world.password["HG-0004"])
    assert ok
    agency = world.spec["agencies"]["sotttt"]
    agency["staff"] = [p for p in agency["staff"] if p["id"] != "HG-0004"]
    assert world.apply() == [("delete", "HG-0004")]
    assert not world.mail.home("HG-0004").exists()  # erased by the configured command
    assert world.mail.home("HG-0001").exists()  # and nothing else
    code, text = send(world, [address])[address]
    assert code == 550 and "5.1.1" in text
    audit = (world.tmp / "audit.jsonl").read_text(encoding="utf-8")
    assert '"erase"' in audit and "HG-0004" in audit


def test_a_mailbox_near_its_quota_gets_the_warning(world: World) -> None:
    address = world.address["HG-0005"]  # quota 1 MB
    send(world, [address], "x" * 1000)
    wait_for(world, lambda: len(messages(world, "HG-0005")) == 1, "a small delivery")
    assert not _warnings(world, "HG-0005")
    send(world, [address], ("y" * 76 + "\r\n") * 12_500)  # 975 KB: past 90 %
    wait_for(world, lambda: len(_warnings(world, "HG-0005")) == 1, "the quota warning")
    warning = _warnings(world, "HG-0005")[0]
    body = warning.get_payload(decode=True)
    assert "HG-2024 Đ9.2.d" in warning["Subject"]
    assert isinstance(body, bytes) and "90%" in body.decode("utf-8")


def _warnings(w: World, key: str) -> list[email.message.Message]:
    found = []
    for path in messages(w, key):
        message = email.message_from_bytes(path.read_bytes())
        subject = str(email.header.make_header(email.header.decode_header(message["Subject"])))
        if "Hộp thư" in subject:
            del message["Subject"]
            message["Subject"] = subject
            found.append(message)
    return found


def test_message_size_limit_lets_a_20_mb_attachment_through_and_stops_21(world: World) -> None:
    def encoded(megabytes: int) -> int:  # base64 in lines of 76 + CRLF, with 64 KB of headers
        return megabytes * 1024 * 1024 * 4 // 3 * 78 // 76 + 64 * 1024

    attachment_20, attachment_21 = encoded(20), encoded(21)
    with smtplib.SMTP("127.0.0.1", world.mail.smtp_port, timeout=30) as smtp:
        smtp.ehlo("outside.example")
        assert smtp.has_extn("size")
        code, text = smtp.mail(OUTSIDE, [f"SIZE={attachment_20}"])
        assert code == 250, text
        smtp.rset()
        code, text = smtp.mail(OUTSIDE, [f"SIZE={attachment_21}"])
        assert code == 552 and b"5.3.4" in text


def test_activity_from_the_live_mail_logs(world: World, tmp_path: Path) -> None:
    address = world.address["HG-0007"]
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ok, says, _ = imap_login(world, address, world.password["HG-0007"])
    assert ok, says
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", world.mail.submission_port, timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.login(address, world.password["HG-0007"])
        smtp.sendmail(address, [world.address["HG-0001"]], b"Subject: gui di\r\n\r\nx\r\n")
    send(world, [address])
    wait_for(world, lambda: len(messages(world, "HG-0007")) == 1, "delivery to HG-0007")
    out = tmp_path / "activity.csv"
    result = run_cli(
        "activity", str(world.mail.postfix_log), str(world.mail.dovecot_log), "--out", str(out),
        "--timezone", _local_zone(),  # the throwaway servers log the machine's local time
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8") as handle:
        rows = {row["address"]: row for row in csv.DictReader(handle)}
    row = rows[address]
    for column in ("last_activity", "last_login", "last_sent", "last_received"):
        moment = dt.datetime.fromisoformat(row[column])
        assert started - dt.timedelta(seconds=2) <= moment <= dt.datetime.now(dt.UTC), column


def _local_zone() -> str:
    if os.environ.get("TZ"):
        return os.environ["TZ"].lstrip(":")
    with contextlib.suppress(OSError):
        return Path("/etc/timezone").read_text(encoding="utf-8").strip() or "UTC"
    return "UTC"


def test_a_former_domain_after_a_merger_is_delivered_and_logs_in(world: World) -> None:
    """After a merger the former province's addresses are aliases in their own domain: with the
    domain added as the README says, mail to them arrives in the moved mailbox, an unknown address
    there is refused like any other, and the user logs in with the old address too."""
    assert world.staff("HG-0001")["aliases"] == [FORMER_ALIAS]
    before = len(messages(world, "HG-0001"))
    assert send(world, [FORMER_ALIAS], "gửi đến địa chỉ cũ")[FORMER_ALIAS][0] == 250
    wait_for(world, lambda: len(messages(world, "HG-0001")) == before + 1, "delivery to the alias")
    unknown = f"khongco@{FORMER}"
    code, says = send(world, [unknown])[unknown]
    assert code == 550 and "5.1.1" in says
    ok, says, _ = imap_login(world, FORMER_ALIAS, world.password["HG-0001"])
    assert ok, says
