"""`reconciler doctor` against real throwaway slapds: the usual one, and ones that lack pwdLockout,
lastbind or the project's schema; over ldap:// with the admin DN (cn=config unreadable: the
canary proves behaviour) and over ldapi:// as the local user (cn=config readable)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.devtools.throwaway import Slapd
from reconciler.directory import doctor as doctor_module
from reconciler.directory import open_directory
from reconciler.directory.ldap import LdapDirectory
from reconciler.errors import DirectoryError

from .helpers import admin_connection, run_cli

pytestmark = pytest.mark.slapd


def doctor(server: Slapd, *args: str, bind: str = "admin") -> tuple[int, str]:
    if bind == "ldapi":
        result = run_cli("doctor", "--directory", server.ldapi_url, *args)
    else:
        result = run_cli(
            "doctor", "--directory", server.url, "--bind-dn", server.root_dn, *args,
            env={"RECONCILER_BIND_PASSWORD": server.root_pw},
        )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


Tree = set[tuple[str, tuple[tuple[str, tuple[bytes, ...]], ...]]]


def tree(server: Slapd, bound: str = "") -> Tree:
    """Every entry with every attribute, operational ones included, as comparable values; of the
    entry `bound` (a bind DN: its binds set pwdLastSuccess), only its DN."""
    with admin_connection(server) as conn:
        conn.search(server.suffix, "(objectClass=*)", attributes=["*", "+"])
        found: Tree = set()
        for r in conn.response:
            if r["type"] != "searchResEntry":
                continue
            attrs = r["raw_attributes"] if r["dn"] != bound else {}
            values = tuple(sorted((k.lower(), tuple(sorted(v))) for k, v in attrs.items()))
            found.add((r["dn"].lower(), values))
        return found


@pytest.fixture
def populated(slapd: Slapd) -> Slapd:
    with admin_connection(slapd) as conn:
        conn.add(f"ou=people,{slapd.suffix}", attributes={"objectClass": "organizationalUnit"})
        conn.add(
            f"uid=nvson,ou=people,{slapd.suffix}",
            attributes={
                "objectClass": ["inetOrgPerson", "govMailAccount"],
                "uid": "nvson", "cn": "Nguyễn Văn Sơn", "sn": "Nguyễn", "employeeNumber": "HG-1",
                "mail": "nvson@example.gov.vn", "userPassword": "Mat-khau-123",
            },
        )  # fmt: skip
    return slapd


def test_doctor_passes_the_throwaway_slapd_and_its_canary_leaves_it_as_it_was(
    populated: Slapd,
) -> None:
    before = tree(populated)
    code, out = doctor(populated)
    assert code == 0, out
    assert "All good." in out
    for proved in ("pwdLockout", "pwdMustChange", "pwdMinLength", "lastbind", "password change"):
        assert f"ok      {proved}:" in out, out
    assert "write the people container: the bind added and deleted an entry in ou=people" in out
    assert tree(populated) == before  # nothing else touched, the canary gone


def test_doctor_reads_cn_config_over_ldapi_as_the_local_user(populated: Slapd) -> None:
    before = tree(populated)
    code, out = doctor(populated, bind="ldapi")
    assert code == 0, out
    assert "read the settings of olcDatabase=" in out
    assert "equality indexes on objectClass, uid, mail, employeeNumber, govMailAlias" in out
    assert "canary" not in out.lower()  # the settings were read: no entry was written
    assert tree(populated) == before


def test_no_canary_writes_nothing_and_says_what_it_could_not_tell(populated: Slapd) -> None:
    before = tree(populated)
    code, out = doctor(populated, "--no-canary")
    assert code == 0, out
    assert "unknown lastbind" in out and "unknown indexes" in out
    assert tree(populated) == before


def test_the_canary_is_deleted_even_when_a_check_fails(
    populated: Slapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tree(populated)

    def broken(self: Any) -> Any:
        raise DirectoryError("the server went away (simulated)")

    monkeypatch.setattr(doctor_module.Canary, "_lastbind", broken)
    directory = open_directory(  # doctor speaks through ldap3, as `reconciler doctor` opens it
        populated.url, bind_dn=populated.root_dn, password=populated.root_pw, backend="ldap3"
    )
    assert isinstance(directory, LdapDirectory)
    with directory, pytest.raises(DirectoryError, match="simulated"):
        doctor_module.diagnose(directory, None, None)
    assert tree(populated) == before


def test_a_bind_dn_that_may_only_read_is_named_with_the_rights_it_lacks(populated: Slapd) -> None:
    user = f"uid=nvson,ou=people,{populated.suffix}"
    before = tree(populated, bound=user)
    result = run_cli(
        "doctor", "--directory", populated.url, "--bind-dn", user,
        env={"RECONCILER_BIND_PASSWORD": "Mat-khau-123"},
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "MISSING write the lock entry" in out and "MISSING write the people container" in out
    assert "give the bind DN write access" in out
    assert tree(populated, bound=user) == before


def test_the_lock_entry_an_earlier_apply_left_is_tried_not_taken_for_a_running_apply(
    populated: Slapd,
) -> None:
    """Every apply leaves `cn=reconciler-lock` behind, marked free: doctor tries changing it
    (No-Op), instead of saying an apply is running."""
    with admin_connection(populated) as conn:
        conn.add(
            f"cn=reconciler-lock,{populated.suffix}",
            attributes={"objectClass": ["top", "applicationProcess"], "cn": "reconciler-lock",
                        "description": '{"free": true}'},
        )  # fmt: skip
    user = f"uid=nvson,ou=people,{populated.suffix}"
    before = tree(populated, bound=user)
    code, out = doctor(populated, "--no-canary")
    assert code == 0, out
    assert "ok      write the lock entry: the bind may change cn=reconciler-lock" in out
    assert "an apply is running" not in out
    reader = run_cli(
        "doctor", "--directory", populated.url, "--bind-dn", user, "--no-canary",
        env={"RECONCILER_BIND_PASSWORD": "Mat-khau-123"},
    )  # fmt: skip
    assert reader.returncode == 1, reader.stdout + reader.stderr
    assert (
        "MISSING write the lock entry: the bind may not change cn=reconciler-lock" in reader.stdout
    )
    assert tree(populated, bound=user) == before  # the No-Op changed nothing


@pytest.fixture(params=["lockout", "lastbind", "schema"])
def lacking(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Slapd]]:
    what = str(request.param)
    options: dict[str, Any] = {
        "lockout": {"lockout": False},
        "lastbind": {"lastbind": False},
        "schema": {"schema": None},
    }[what]
    with Slapd(tmp_path / what, **options) as server:
        yield what, server


@pytest.mark.slow
@pytest.mark.parametrize("bind", ["admin", "ldapi"])
def test_doctor_names_what_the_server_lacks(lacking: tuple[str, Slapd], bind: str) -> None:
    what, server = lacking
    code, out = doctor(server, bind=bind)
    assert code == 1, out
    expected = {
        "lockout": ("MISSING pwdLockout", "set pwdLockout: TRUE"),
        "lastbind": ("MISSING lastbind", "lastbind"),
        "schema": ("MISSING schema", "govmail"),
    }[what]
    assert all(text in out for text in expected), out
    others = {"lockout": "MISSING pwdLockout", "lastbind": "MISSING lastbind",
              "schema": "MISSING schema"}  # fmt: skip
    assert not [text for key, text in others.items() if key != what and text in out], out
    with admin_connection(server) as conn:  # and the canary is gone
        conn.search(server.suffix, "(uid=reconciler-doctor-canary-*)", attributes=["1.1"])
        assert conn.entries == []


def test_doctor_refuses_a_file_directory() -> None:
    result = run_cli("doctor", "--directory", "ldif:/tmp/x.ldif")
    assert result.returncode == 1 and "doctor checks LDAP servers" in result.stderr
