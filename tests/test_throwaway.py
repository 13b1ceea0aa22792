"""The throwaway slapd: schema, ACLs and password policy behave as the reconciler relies on."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import ldap3
import pytest
from ldap3.core.exceptions import LDAPInvalidCredentialsResult

from reconciler.devtools.throwaway import Slapd
from tests.helpers import admin_connection, ldapwhoami, person_attrs, write_people_ldif

pytestmark = pytest.mark.slapd


def test_start_add_read_stop(tmp_path: Path) -> None:
    server = Slapd(tmp_path / "srv")
    with server:
        assert server.running
        assert "root_pw" not in repr(server) and server.root_pw not in repr(server)
        dn = f"uid=nvson,{server.suffix}"
        with admin_connection(server) as conn:
            conn.add(
                dn,
                attributes=person_attrs(
                    "nvson",
                    "HG-0001",
                    govMailAlias=["son.nv@example.gov.vn"],
                    govMailQuota="5368709120",
                    govMailSuspendedAt="20260102030405Z",
                    govMailKind="person",
                    cn="Nguyễn Văn Sơn",
                ),
            )
            conn.search(dn, "(govMailAlias=SON.NV@example.gov.vn)", ldap3.BASE, attributes=["*"])
            assert len(conn.entries) == 1
            entry = conn.entries[0]
            assert entry.employeeNumber.value == "HG-0001"
            assert entry.govMailQuota.value == "5368709120"
            assert entry.cn.value == "Nguyễn Văn Sơn"
            conn.search(server.suffix, "(objectClass=*)", attributes=["1.1"])
            assert len(conn.entries) == Slapd.BASE_ENTRIES + 1
        pid = server.pid
        assert pid is not None
    assert not server.running
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_schema_requires_employee_number(slapd: Slapd) -> None:
    attrs = person_attrs("x", "X-1")
    del attrs["employeeNumber"]
    with admin_connection(slapd) as conn:
        conn.raise_exceptions = False
        assert not conn.add(f"uid=x,{slapd.suffix}", attributes=attrs)
        assert conn.result["description"] == "objectClassViolation"


def test_password_reset_must_be_changed(slapd: Slapd) -> None:
    dn = f"uid=ttlan,{slapd.suffix}"
    with admin_connection(slapd) as conn:
        conn.add(dn, attributes=person_attrs("ttlan", "HG-0003", userPassword="Tạm-thời-1"))
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["userPassword"])
        stored = conn.entries[0].userPassword.value
        assert str(stored).startswith("{SSHA}")  # hashed by ppolicy
        ok = ldapwhoami(slapd, dn, "Tạm-thời-1")
        assert ok.returncode == 0, ok.stderr
        assert "must be changed" not in (ok.stdout + ok.stderr).lower()
        conn.modify(dn, {"pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])]})
    reset = ldapwhoami(slapd, dn, "Tạm-thời-1")
    assert "password must be changed" in (reset.stdout + reset.stderr).lower()


def test_locked_account_cannot_bind(slapd: Slapd) -> None:
    dn = f"uid=lock,{slapd.suffix}"
    with admin_connection(slapd) as conn:
        conn.add(dn, attributes=person_attrs("lock", "HG-0006", userPassword="pw-123456"))
        assert ldapwhoami(slapd, dn, "pw-123456").returncode == 0
        conn.modify(dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, ["000001010000Z"])]})
    locked = ldapwhoami(slapd, dn, "pw-123456")
    assert locked.returncode != 0
    assert "invalid credentials" in locked.stderr.lower()
    user = ldap3.Connection(ldap3.Server(slapd.url), dn, "pw-123456", raise_exceptions=True)
    try:
        with pytest.raises(LDAPInvalidCredentialsResult):
            user.bind()
    finally:
        user.unbind()


def test_lastbind_records_last_success(slapd: Slapd) -> None:
    dn = f"uid=seen,{slapd.suffix}"
    with admin_connection(slapd) as conn:
        conn.add(dn, attributes=person_attrs("seen", "HG-0009", userPassword="pw-123456"))
        assert ldapwhoami(slapd, dn, "pw-123456").returncode == 0
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["pwdLastSuccess"])
        assert conn.entries[0].pwdLastSuccess.value is not None


def test_reset_restart_and_kill(slapd: Slapd, tmp_path: Path) -> None:
    with admin_connection(slapd) as conn:
        conn.add(f"uid=a,{slapd.suffix}", attributes=person_attrs("a", "A-1"))
    slapd.restart()  # data survives a restart
    with admin_connection(slapd) as conn:
        assert conn.search(f"uid=a,{slapd.suffix}", "(objectClass=*)", ldap3.BASE)
    slapd.kill()
    assert not slapd.running
    slapd.reset(write_people_ldif(tmp_path / "p.ldif", slapd.suffix, 50))
    with admin_connection(slapd) as conn:
        conn.search(slapd.suffix, "(objectClass=*)", attributes=["1.1"])
        assert len(conn.entries) == Slapd.BASE_ENTRIES + 51


def test_extra_ldif_and_cli(tmp_path: Path) -> None:
    workdir = tmp_path / "cli"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    run = [sys.executable, "-m", "reconciler.devtools.throwaway"]
    started = subprocess.run(
        [*run, "start", str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    try:
        url, admin = started.stdout.split()
        pw_file = workdir / "admin.pw"
        assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
        password = pw_file.read_text()
        assert password not in started.stdout + started.stderr
        conn = ldap3.Connection(ldap3.Server(url), admin, password, auto_bind=True)
        conn.unbind()
    finally:
        stopped = subprocess.run(
            [*run, "stop", str(workdir)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
    assert stopped.returncode == 0, stopped.stderr
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # stopped: nothing listens


def test_ensure_installed_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import reconciler.devtools.throwaway as throwaway

    monkeypatch.setattr(throwaway, "SLAPD", tmp_path / "no-slapd")
    monkeypatch.setattr(throwaway.shutil, "which", lambda name: None)
    with pytest.raises(throwaway.SlapdError, match=r"apt-get install slapd ldap-utils"):
        throwaway.ensure_installed()
