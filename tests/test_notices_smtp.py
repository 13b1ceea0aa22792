"""Notices sent through a real MTA (issue 16 item 10, HG-2024 Đ7.3): Debian's Postfix and Dovecot
on 127.0.0.1 (`reconciler.devtools.mailserver`), on a throwaway slapd the reconciler fills. After
an apply with a create, a suspension and a refusal, the agency's notice is in its organisation
mailbox, in Vietnamese, citing the clauses, and holds no password."""

from __future__ import annotations

import email
import email.policy
import json
import os
from pathlib import Path

import pytest

from reconciler.devtools.mailserver import MailServer
from reconciler.devtools.throwaway import Slapd

from . import scenario
from .helpers import admin_connection, run_cli
from .scenario import BASE_HG

pytestmark = [pytest.mark.slow, pytest.mark.mail]

SERVICE_DN = "cn=mailserver,dc=example,dc=gov,dc=vn"


def test_hg_2024_d7_3_the_notice_reaches_the_agency_through_the_relay(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the throwaway Postfix needs root (CI runs as root)")
    slapd = Slapd(tmp_path / "slapd")
    slapd.start()
    try:
        with admin_connection(slapd) as conn:
            conn.add(SERVICE_DN, attributes={
                "objectClass": ["applicationProcess", "simpleSecurityObject"],
                "cn": "mailserver", "userPassword": "Mail-server-2026"})
        mail = MailServer(ldap_uri=slapd.url, base_dn=BASE_HG, bind_dn=SERVICE_DN,
                          bind_pw="Mail-server-2026", domain="hagiang.gov.vn")
        with mail, scenario.connect(slapd) as directory:
            spec = scenario.hg()
            soyte = spec["agencies"]["soyte"]["staff"]
            soyte.append({"id": "HG-0102", "name": "Bàn Văn Mình"})
            spec["notices"] = {"relay": f"smtp://127.0.0.1:{mail.smtp_port}",
                               "from": "thongbao@hagiang.gov.vn"}
            folder = scenario.write(spec, tmp_path / "inv")
            scenario.apply(scenario.plan(folder, directory), directory, tmp_path / "first")
            soyte.pop()  # deleted on request
            scenario.write(spec, folder)
            scenario.apply(scenario.plan(folder, directory), directory, tmp_path / "second")
            soyte.append({"id": "HG-0102", "name": "Bàn Văn Mình"})  # refused: not recoverable
            soyte.append({"id": "HG-0103", "name": "Lò Thị Mai"})  # a create
            soyte[0].update(state="suspended",
                            suspension={"clause": "HG-2024 Đ8.2.b", "note": "CV 45/STTTT"})
            scenario.write(spec, folder)
        env = {"RECONCILER_BIND_DN": slapd.root_dn, "RECONCILER_BIND_PASSWORD": slapd.root_pw}
        with mail:
            made = run_cli("plan", str(folder), "--directory", slapd.url, "--allow-suspends", "1",
                           "--out", str(tmp_path / "plan.json"), env=env)
            assert made.returncode == 0, made.stderr
            applied = run_cli("apply", str(tmp_path / "plan.json"), "--directory", slapd.url,
                              "--credentials-out", str(tmp_path / "creds.csv"),
                              "--audit-log", str(tmp_path / "audit" / "audit.jsonl"),
                              "--expect-digest", _digest(tmp_path / "plan.json"), env=env)
            assert applied.returncode == 0, applied.stderr
            assert "1 notice sent through smtp://127.0.0.1" in applied.stderr
            mail.flush()
            delivered = [p.read_bytes() for p in (mail.maildir("agency:soyte") / "new").iterdir()]
        (eml,) = (tmp_path / "audit" / "notices").glob("*-soyte.eml")
    finally:
        slapd.stop()
    assert len(delivered) == 1
    message = email.message_from_bytes(delivered[0], policy=email.policy.default)
    body = message.get_content()
    assert message["To"] == "soyte@hagiang.gov.vn"
    assert message["Subject"].startswith("Thông báo kết quả xử lý hộp thư điện tử công vụ")
    assert "Cấp mới hộp thư ltmai.soyte@hagiang.gov.vn" in body and "(HG-2024 Đ7.1)" in body
    assert "Tạm khóa hộp thư ttlan.soyte@hagiang.gov.vn" in body and "(HG-2024 Đ8.2.b)" in body
    assert "Bàn Văn Mình (HG-0102): không cấp lại" in body and "(HG-2024 Đ7.2)" in body
    assert body == email.message_from_bytes(eml.read_bytes(),
                                            policy=email.policy.default).get_content()
    for line in (tmp_path / "creds.csv").read_text().splitlines()[1:]:
        assert line.split(",", 1)[1].encode() not in delivered[0]


def _digest(plan: Path) -> str:
    """The digest reviewers saw: a plan names its relay, which apply logs in to, only bound to it
    (or to the inventory's directory.yaml)."""
    return str(json.loads(plan.read_text(encoding="utf-8"))["digest"])
