"""Attacks by whoever can write a plan file (an artifact, a file handed to an admin), on the parts
of a plan that came after issue 15: the mail-store erase command, the notices' relay, the audit
settings, the ids apply hands to the erase command. Each on a real throwaway slapd, through the
command line as an admin would run it; the plan is re-sealed as an attacker would
(`tests/tamper.py`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from reconciler.devtools.mailserver import render
from reconciler.devtools.throwaway import Slapd
from reconciler.model import Entry
from reconciler.outputs import notices

from . import scenario, tamper
from .scenario import BASE_HG
from .test_trust import Attack, converged

ERASER = Path(__file__).resolve().parents[1] / "examples" / "mail" / "reconciler-erase-mailbox"


def _inventory(attack: Attack, **settings: Any) -> tuple[str, str]:
    attack.spec.update(settings)
    scenario.write(attack.spec, attack.folder)
    return ("--inventory", str(attack.folder))


def _installed_eraser(tmp: Path) -> tuple[Path, list[str]]:
    """examples/mail/reconciler-erase-mailbox installed with its mail folder in `tmp`."""
    vmail = tmp / "vmail"
    vmail.mkdir()
    script = tmp / "reconciler-erase-mailbox"
    script.write_text(
        render(
            ERASER.read_text(encoding="utf-8"), {"VMAIL": str(vmail), "DOVECOT_CONF": "/dev/null"}
        )
    )
    script.chmod(0o755)
    return vmail, [str(script), "{id}", "{address}"]


def test_a_resealed_plan_cannot_run_a_command_of_its_own_after_a_delete(
    slapd: Slapd, tmp_path: Path
) -> None:
    """The erase command is the plan's word: a forged one ran as the admin, --inventory or not."""
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"] = []  # one delete, inside the guard
    inventory = _inventory(attack)
    attack.plan()
    pwned = tmp_path / "pwned"

    def edit(data: dict[str, Any]) -> None:
        data["mail_store"] = {"erase": ["/bin/sh", "-c", f"id > {pwned}", "{id}"]}

    tamper.reseal(attack.plan_file, edit)
    attack.refused(attack.apply(*inventory), "mail_store")
    assert not pwned.exists()
    attack.refused(attack.apply(), "mail_store")  # nor without the inventory to compare with
    assert not pwned.exists()


def test_a_delete_already_done_cannot_point_the_erase_at_a_live_mailbox(
    slapd: Slapd, tmp_path: Path
) -> None:
    """The inventory's own erase command, a forged delete "already done" (no entry has its id):
    apply ran the erase with the forged id, and `HG-0101/` is the live HG-0101's mail home."""
    attack = Attack(slapd, tmp_path)
    vmail, erase = _installed_eraser(tmp_path)
    home = vmail / "HG-0101"
    (home / "cur").mkdir(parents=True)
    (home / "cur" / "1.mail").write_text("a letter")
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    inventory = _inventory(attack, mail_store={"erase": erase})
    attack.plan()

    ghost = Entry(
        dn=f"uid=ghost,ou=people,{BASE_HG}",
        attrs={
            "objectclass": ("top", "inetOrgPerson", "govMailAccount"),
            "employeenumber": ("HG-0101/",),
            "mail": ("ttlan.soyte@hagiang.gov.vn",),
            "cn": ("Trần Thị Lan",),
        },
    )

    def edit(data: dict[str, Any]) -> None:
        data["operations"].append(tamper.operation("delete", ghost, BASE_HG))
        data["mail_store"] = {"erase": erase}  # the inventory's own: it runs after a delete

    tamper.reseal(attack.plan_file, edit)
    attack.refused(attack.apply(*inventory), "HG-0101/")
    assert (home / "cur" / "1.mail").exists()
    # and the erase script itself, wherever else it is called from, refuses the trailing slash
    said = subprocess.run([erase[0], "HG-0101/", "x@y"], capture_output=True, text=True)
    assert said.returncode == 2 and "refusing the id" in said.stderr
    assert (home / "cur" / "1.mail").exists()


class FakeRelay:
    """An SMTP server on 127.0.0.1 that says yes to everything and keeps what it hears."""

    def __init__(self) -> None:
        self.heard: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"smtp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(20)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        replies = {b"EHLO": b"250-evil\r\n250 AUTH PLAIN LOGIN\r\n", b"AUTH": b"235 ok\r\n"}
        with conn, conn.makefile("rwb") as f:
            f.write(b"220 evil ESMTP\r\n")
            f.flush()
            data = False
            for line in f:
                self.heard.append(line)
                verb = line[:4].upper()
                if data:
                    if line == b".\r\n":
                        data = False
                        f.write(b"250 ok\r\n")
                elif verb == b"DATA":
                    data = True
                    f.write(b"354 go\r\n")
                elif verb == b"QUIT":
                    f.write(b"221 bye\r\n")
                    f.flush()
                    return
                else:
                    f.write(replies.get(verb, b"250 ok\r\n"))
                f.flush()

    def close(self) -> bytes:
        self.listener.close()
        self.thread.join(5)
        return b"".join(self.heard)


def test_a_resealed_plan_cannot_send_the_smtp_login_to_a_relay_of_its_own(
    slapd: Slapd, tmp_path: Path
) -> None:
    """The relay is the plan's word, and apply logs in to it with RECONCILER_SMTP_USER and
    RECONCILER_SMTP_PASSWORD: a forged relay received them."""
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    inventory = _inventory(attack)
    attack.plan()
    relay = FakeRelay()

    def edit(data: dict[str, Any]) -> None:
        data["notices"] = {
            "relay": relay.url,
            "from": "noreply@hagiang.gov.vn",
            "agencies": {"soyte": {"name": "Sở Y tế", "to": ["spy@example.org"]}},
        }

    tamper.reseal(attack.plan_file, edit)
    secret = {"RECONCILER_SMTP_USER": "notices", "RECONCILER_SMTP_PASSWORD": "Relay-Secret-1"}
    os.environ.update(secret)
    try:
        result = attack.apply(*inventory)
    finally:
        for key in secret:
            os.environ.pop(key, None)
        heard = relay.close()
    attack.refused(result, "notices")
    assert not heard, heard


def test_a_resealed_plan_cannot_send_the_notices_outside_the_domain(
    slapd: Slapd, tmp_path: Path
) -> None:
    """The inventory's own relay, and the plan's recipients: a forged one outside the province got
    the agency's notice (names, addresses, what was done), --inventory or not."""
    attack = Attack(slapd, tmp_path)
    relay = FakeRelay()
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    inventory = _inventory(attack, notices={"relay": relay.url})
    attack.plan()

    def edit(data: dict[str, Any]) -> None:
        data["notices"]["agencies"]["soyte"]["to"].append("spy@example.org")

    tamper.reseal(attack.plan_file, edit)
    try:
        result = attack.apply(*inventory)
    finally:
        heard = relay.close()
    attack.refused(result, "spy@example.org")
    assert b"spy@example.org" not in heard, heard


def test_a_resealed_plan_cannot_send_a_notice_to_another_mailbox_of_the_domain(
    slapd: Slapd, tmp_path: Path
) -> None:
    """Inside the domain, a forged recipient is still someone else: a notice goes only to the
    agency's organisation mailbox, as the directory (or the plan's own create or rename of it)
    gives it; a person's mailbox, or an address nobody holds, got the agency's notice."""
    attack = Attack(slapd, tmp_path)
    relay = FakeRelay()
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    inventory = _inventory(attack, notices={"relay": relay.url})
    attack.plan()
    own = json.loads(attack.plan_file.read_text("utf-8"))["notices"]["agencies"]["soyte"]["to"]
    assert own and all(a.endswith("@hagiang.gov.vn") for a in own)  # its organisation mailbox

    def edit(data: dict[str, Any]) -> None:
        data["notices"]["agencies"]["soyte"]["to"] = ["ttlan.soyte@hagiang.gov.vn"]

    tamper.reseal(attack.plan_file, edit)
    try:
        result = attack.apply(*inventory)
    finally:
        heard = relay.close()
    attack.refused(result, "ttlan.soyte@hagiang.gov.vn", "organisation mailbox", own[0])
    assert b"ttlan.soyte" not in heard, heard


def test_a_resealed_plan_cannot_name_the_notices_files_or_break_their_headers(
    slapd: Slapd, tmp_path: Path
) -> None:
    """The agency a notice is for names its file, and the sender goes in its header: a forged
    agency `soyte/../../x` made the notice's path leave the folder (refused by the OS only because
    the time stamp before it is no folder: the notices were lost after the directory was written),
    one with a NUL byte and a sender with a line break ended in a traceback, also after the
    directory was written. Now the plan is refused whole, before the first write."""
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    inventory = _inventory(attack)
    attack.plan()
    clean = attack.plan_file.read_text("utf-8")
    # each as the refusal shows it
    forged = {"soyte/../../../x": "'soyte/../../../x'", "soyte\0": "'soyte\\x00'"}
    for agency, shown in forged.items():
        attack.plan_file.write_text(clean, "utf-8")

        def edit(data: dict[str, Any], agency: str = agency) -> None:
            for op in data["operations"]:
                op["agency"] = agency
            notices = data["notices"]["agencies"]
            notices[agency] = notices.pop("soyte")

        tamper.reseal(attack.plan_file, edit)
        attack.refused(attack.apply(*inventory), shown)
        attack.refused(attack.apply(), shown)
    attack.plan_file.write_text(clean, "utf-8")
    tamper.reseal(
        attack.plan_file,
        lambda data: data["notices"].update({"from": "noreply@hagiang.gov.vn\r\nBcc: spy@x.org"}),
    )
    attack.refused(attack.apply(), "notices.from")
    assert not list(tmp_path.rglob("x.eml")) and not (tmp_path / "x.eml").exists()


def test_a_notice_stays_in_its_folder_whatever_agency_it_is_for(tmp_path: Path) -> None:
    """An operation's agency is the plan's word (or a deleted entry's govMailAgency, written by
    hand): it named the notice's file as it was, so `soyte/../../x` made its path leave the
    folder, a NUL byte raised a ValueError, 300 letters a name too long, each after the directory
    was written, and the agencies were never told."""
    folder = tmp_path / "log" / "notices"
    agencies = ["soyte/../../x", "soyte\0", "a" * 300, "soyte", ""]
    when = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    written = notices.write(
        [notices.Notice(a, (), "s", "b\n") for a in agencies],
        folder,
        "noreply@hagiang.gov.vn",
        when,
    )
    paths = [path for _, path in written]
    assert [p.parent for p in paths] == [folder] * len(agencies)
    assert len(set(paths)) == len(agencies)
    assert paths[3].name == "20261129T000000Z-soyte.eml"  # an agency's id names it as it is
    assert sorted(tmp_path.rglob("*.eml")) == sorted(paths)


def test_a_resealed_plan_cannot_prune_the_audit_history(slapd: Slapd, tmp_path: Path) -> None:
    """audit.keep_months is the plan's word: -1 put the prune's cutoff a month in the future and
    erased the history in ou=history (the report's source), the earlier runs' records and this
    run's own but its last batch."""
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Trưởng phòng"
    inventory = _inventory(attack)
    attack.plan()
    # a run on record in ou=history (its local log elsewhere: `refused` reads this one)
    done = scenario_apply_without_log(attack, *inventory, "--audit-log", str(tmp_path / "a.jsonl"))
    assert done.returncode == 0, done.stderr

    def history() -> list[str]:
        with scenario.connect(slapd) as d:
            return [
                e.dn for e in d.read(f"ou=history,{BASE_HG}", ["objectClass"]) if e.dn[:3] == "cn="
            ]

    before = history()
    attack.spec["agencies"]["soyte"]["staff"][0]["title"] = "Phó phòng"
    inventory = _inventory(attack)
    attack.plan()
    tamper.reseal(attack.plan_file, lambda data: data.update(audit={"keep_months": -1}))
    attack.refused(attack.apply(*inventory), "keep_months")
    attack.refused(attack.apply(), "keep_months")
    assert set(before) <= set(history())


def test_a_forged_pending_password_is_not_handed_to_a_new_mailbox(
    slapd: Slapd, tmp_path: Path
) -> None:
    """The audit log's place is the plan's word when no --audit-log says otherwise; a log the
    attacker wrote says a run stopped after putting a password on file for the new mailbox, in a
    credentials file the attacker wrote too: apply reused that password, known to the attacker."""
    attack = Attack(slapd, tmp_path)
    attack.spec["agencies"]["soyte"]["staff"].append({"id": "HG-0102", "name": "Lê Văn Bàn"})
    inventory = _inventory(attack)
    attack.plan()
    address = "lvban.soyte@hagiang.gov.vn"
    lair = tmp_path / "lair"
    lair.mkdir()
    os.chmod(lair, 0o777)
    forged_creds = lair / "creds.csv"
    forged_creds.write_text(f"address,password\n{address},Known-To-Me-1\n")
    os.chmod(forged_creds, 0o666)
    os.chown(forged_creds, 65534, 65534)
    log = lair / "audit.jsonl"
    record = {
        "time": "2026-11-30T00:00:00Z",
        "run": "sha256:x",
        "event": "create",
        "id": "HG-0102",
        "address": address,
        "credentials": str(forged_creds),
        "outcome": "pending",
    }
    log.write_text(json.dumps(record) + "\n")
    os.chown(log, 65534, 65534)
    tamper.reseal(attack.plan_file, lambda data: data.update(audit={"log": str(log)}))
    applied = scenario_apply_without_log(attack, *inventory)
    assert "Known-To-Me-1" not in applied.stdout + applied.stderr
    from ldap3 import Connection

    dn = f"uid=lvban.soyte,ou=people,{BASE_HG}"
    conn = Connection(slapd.url, dn, "Known-To-Me-1")
    try:
        assert not conn.bind(), "the new mailbox opens with the attacker's password"
    finally:
        conn.unbind()


def scenario_apply_without_log(attack: Attack, *extra: str) -> Any:
    """apply as an admin who relies on the audit log's place the plan names (directory.yaml's
    audit_log)."""
    from .helpers import run_cli
    from .test_trust import env_for

    attack.n += 1
    return run_cli(
        "apply",
        str(attack.plan_file),
        "--credentials-out",
        str(attack.tmp / f"c{attack.n}.csv"),
        *extra,
        env=env_for(attack.server),
    )


def _owner_suspended(attack: Attack) -> tuple[str, str]:
    """Trần Thị Lan (HG-0101) with an external address, suspended by the plan made now, among
    enough mailboxes for one suspension to pass the guard without --allow-suspends (a decision
    only a reviewed plan carries); the inventory's option for apply."""
    soyte = attack.spec["agencies"]["soyte"]["staff"]
    soyte += [{"id": f"HG-011{n}", "name": f"Lò Văn {given}"} for n, given in enumerate("ABCDEF")]
    _inventory(attack)
    with scenario.connect(attack.server) as d:
        converged(attack.folder, d, attack.tmp / "setup")
    soyte[0].update(external_email="lan.tt@gmail.com", state="suspended",
                    suspension={"clause": "HG-2024 Đ8.2.b", "note": "lộ mật khẩu"})
    inventory = _inventory(attack)
    attack.plan()
    owners = json.loads(attack.plan_file.read_text("utf-8"))["notices"]["owners"]
    assert owners == {"HG-0101": {"agency": "soyte", "to": "lan.tt@gmail.com"}}
    return inventory


def _told(attack: Attack) -> tuple[list[str], list[str]]:
    """The notices apply wrote: to the agencies, to owners (their recipients)."""
    from email import message_from_bytes, policy

    folder = attack.tmp / "log" / "notices"
    to = {p.name: str(message_from_bytes(p.read_bytes(), policy=policy.default)["To"])
          for p in folder.glob("*.eml")}
    return ([t for name, t in to.items() if "-owner-" not in name],
            [t for name, t in to.items() if "-owner-" in name])


def test_a_resealed_plan_cannot_redirect_an_owners_notice(slapd: Slapd, tmp_path: Path) -> None:
    """The notice to the owner of a suspended mailbox goes outside the domain (QN-2020 Đ7.2), to
    the address the plan names: a forged one told a stranger of Lan's case, a forged owner told
    someone of a suspension that is not theirs, a line break in it put a header in the notice."""
    attack = Attack(slapd, tmp_path)
    inventory = _owner_suspended(attack)
    made = attack.plan_file.read_text("utf-8")
    forged: list[dict[str, Any]] = [
        {"HG-0001": {"agency": "sotttt", "to": "spy@example.org"}},  # not suspended
        {"HG-0101": {"agency": "soyte", "to": "lan@gmail.com\r\nBcc: spy@example.org"}},
        {"HG-0101": {"agency": "soyte", "to": "spy@hagiang.gov.vn"}},  # inside the domain
    ]
    for owners in forged:
        attack.plan_file.write_text(made, "utf-8")
        tamper.reseal(attack.plan_file, lambda data, o=owners: data["notices"].update(owners=o))
        attack.refused(attack.apply(*inventory), "owner")
        attack.refused(attack.apply(), "owner")
    # the address changed to another outside the domain: the plan applies, the agency is told,
    # and the owner's notice goes nowhere, said in plain words
    attack.plan_file.write_text(made, "utf-8")
    tamper.reseal(attack.plan_file, lambda data: data["notices"]["owners"]["HG-0101"].update(
        to="spy@example.org"))
    applied = attack.apply(*inventory)
    assert applied.returncode == 0, applied.stderr
    assert "not sent to spy@example.org" in applied.stderr
    assert "the inventory gives HG-0101 lan.tt@gmail.com" in applied.stderr
    assert _told(attack) == (["soyte@hagiang.gov.vn"], [])


def test_an_owners_notice_goes_only_where_the_inventory_or_the_reviewed_plan_says(
    slapd: Slapd, tmp_path: Path
) -> None:
    """A plan neither checked against the inventory nor bound to its reviewed digest names an
    owner's address only on its own word: apply does not send it, and says so; the agency's
    notice still goes."""
    attack = Attack(slapd, tmp_path)
    _owner_suspended(attack)
    applied = attack.apply()
    assert applied.returncode == 0, applied.stderr
    assert "was not sent to lan.tt@gmail.com" in applied.stderr and "--inventory" in applied.stderr
    assert _told(attack) == (["soyte@hagiang.gov.vn"], [])
