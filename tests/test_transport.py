"""Transport through the CLI, with each LDAP backend (the library is covered by
test_directory.py): ldaps and StartTLS with the throwaway CA, verification on by default, a wrong
CA refused clearly, a plain simple bind to a non-loopback host refused unless --starttls or
--insecure; and `plan` says which backend read the directory."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.devtools.throwaway import Slapd
from reconciler.directory import BACKENDS

from . import scenario
from .helpers import CliResult, run_cli

BASE = "dc=hagiang,dc=example,dc=gov,dc=vn"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("tls"), tls=True) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def cli(*args: str, server: Slapd, **extra: str) -> CliResult:
    env = {"RECONCILER_BIND_DN": server.root_dn, "RECONCILER_BIND_PASSWORD": server.root_pw}
    result = run_cli(*args, env=env | extra)
    assert "Traceback" not in result.stderr and server.root_pw not in result.stderr
    return result


def other_ca(folder: Path) -> Path:
    folder.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "k.pem", "-out", "ca.pem", "-days", "1", "-subj", "/CN=other CA"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    return folder / "ca.pem"


@pytest.mark.slow
def test_ldaps_and_starttls_through_the_cli(
    tls_server: Slapd, tmp_path: Path, backend: str
) -> None:
    s = tls_server
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    ca = ["--ca-file", str(s.ca_file), "--backend", backend]
    plan_file = tmp_path / "plan.json"
    first = cli("plan", str(folder), "--directory", s.ldaps_url, *ca, "--out", str(plan_file),
                server=s)  # fmt: skip
    assert first.returncode == 0, first.stderr
    applied = cli(
        "apply", str(plan_file), "--directory", s.url, "--starttls", *ca,
        "--credentials-out", str(tmp_path / "c.csv"), "--audit-log", str(tmp_path / "a.jsonl"),
        server=s,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    again = cli("plan", str(folder), "--directory", s.url, "--starttls", *ca,
                "--detailed-exitcode", server=s)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr

    s.reset()  # the next backend's turn starts from the empty directory
    # verification is on by default: no --ca-file, no trust
    for url, tls in ((s.ldaps_url, ["--backend", backend]), (s.url, ["--starttls"])):
        untrusted = cli("plan", str(folder), "--directory", url, *tls, server=s)
        assert untrusted.returncode == 1
        assert "could not be verified" in untrusted.stderr and "--ca-file" in untrusted.stderr
    # a CA that did not sign the server's certificate
    wrong = ["--ca-file", str(other_ca(tmp_path / "other")), "--backend", backend]
    for url, tls in ((s.ldaps_url, []), (s.url, ["--starttls"])):
        refused = cli("plan", str(folder), "--directory", url, *tls, *wrong, server=s)
        assert refused.returncode == 1 and "could not be verified" in refused.stderr
    # not a CA file at all
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    bad = cli("plan", str(folder), "--directory", s.ldaps_url, "--ca-file", str(junk),
              server=s, RECONCILER_BACKEND=backend)  # fmt: skip
    assert bad.returncode == 1 and "Error:" in bad.stderr and "CA file" in bad.stderr


def test_plain_bind_to_a_remote_host_is_refused_through_the_cli(
    tmp_path: Path, backend: str
) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    server = Slapd(tmp_path / "unused")  # only its credentials: nothing is started
    for url in ("ldap://192.0.2.10:389", "ldap://directory.example.gov.vn"):
        refused = cli("plan", str(folder), "--directory", url, server=server,
                      RECONCILER_BACKEND=backend)  # fmt: skip
        assert refused.returncode == 1
        assert "refusing to send the password" in refused.stderr and "--starttls" in refused.stderr
    # plain ldap:// to loopback is allowed (and here finds nothing listening)
    local = cli("plan", str(folder), "--directory", "ldap://127.0.0.1:1", "--backend", backend,
                server=server)  # fmt: skip
    assert local.returncode == 1 and "connection refused" in local.stderr


def test_plan_says_which_backend_read_the_directory(slapd: Slapd, tmp_path: Path) -> None:
    folder = scenario.write(scenario.hg(BASE), tmp_path / "inv")
    plans = {}
    for backend, how in (("python-ldap", {}), ("ldap3", {"RECONCILER_BACKEND": "ldap3"})):
        out = tmp_path / f"{backend}.json"
        forced = ["--backend", backend] if not how else []
        planned = cli("plan", str(folder), "--directory", slapd.url, *forced, "--out", str(out),
                      "--now", "2026-12-01", server=slapd, **how)  # fmt: skip
        assert planned.returncode == 0, planned.stderr
        assert f"entries from {slapd.url} with {backend} in " in planned.stderr
        plans[backend] = json.loads(out.read_text(encoding="utf-8"))
        assert plans[backend]["directory"]["backend"] == backend
    # the same plan through either library: the backend is recorded, not digested
    assert plans["python-ldap"]["digest"] == plans["ldap3"]["digest"]
    default = cli("plan", str(folder), "--directory", slapd.url, server=slapd)
    assert f"with {BACKENDS[0]} in " in default.stderr  # python-ldap, installed by the dev lock
    wrong = cli("plan", str(folder), "--directory", slapd.url, server=slapd,
                RECONCILER_BACKEND="ldap4")  # fmt: skip
    assert wrong.returncode != 0 and "'ldap4' is not one of 'python-ldap', 'ldap3'" in wrong.stderr
