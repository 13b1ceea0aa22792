"""`--directory URL,URL…`: the first provider that answers is used, and the tool says which; on
one throwaway slapd and closed ports (the replicated setup is in test_replication.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.devtools.throwaway import Slapd, free_port
from reconciler.directory import BACKENDS, open_directory
from reconciler.errors import DirectoryError

from . import scenario
from .helpers import run_cli

pytestmark = pytest.mark.slapd


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Either LDAP library: the list is opened above them, alike."""
    return str(request.param)


def test_the_first_provider_that_answers_is_used(slapd: Slapd, backend: str) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    options = {"bind_dn": slapd.root_dn, "password": slapd.root_pw, "backend": backend}
    with open_directory(f"{dead}, {slapd.url}", **options) as directory:
        assert directory.url == slapd.url and directory.backend == backend
        assert directory.providers == (dead, slapd.url)
        [skipped] = directory.skipped
        assert skipped.startswith(f"{dead}: cannot reach") and "connection refused" in skipped
        assert directory.get(slapd.suffix, ["dc"]) is not None
    with open_directory(f"{slapd.url},{dead}", **options) as directory:
        assert directory.url == slapd.url and directory.skipped == ()
    other = f"ldap://127.0.0.1:{free_port()}"
    with pytest.raises(DirectoryError) as refused:
        open_directory(f"{dead},{other}", **options)
    assert "none of the 2 directory servers listed answered" in str(refused.value)
    assert dead in str(refused.value) and other in str(refused.value)


def test_an_ldif_file_is_not_a_provider(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="not a provider among others"):
        open_directory(f"ldap://127.0.0.1:1,ldif:{tmp_path / 'd.ldif'}")
    # a comma in a file's name is a comma in a file's name
    with open_directory(f"ldif:{tmp_path / 'a,b.ldif'}") as directory:
        assert directory.providers == ()


def test_plan_and_apply_say_which_provider_they_use(
    slapd: Slapd, tmp_path: Path, backend: str
) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    folder = scenario.write(scenario.hg(), tmp_path / "inv")
    env = {
        "RECONCILER_DIRECTORY": f"{dead},{slapd.url}",
        "RECONCILER_BIND_DN": slapd.root_dn,
        "RECONCILER_BIND_PASSWORD": slapd.root_pw,
        "RECONCILER_BACKEND": backend,
    }
    planned = run_cli("plan", str(folder), "--out", str(tmp_path / "plan.json"), env=env)
    assert planned.returncode == 0, planned.stderr
    assert f"{dead} did not answer: cannot reach" in planned.stderr
    assert f"Reading from {slapd.url} (provider 2 of the 2 listed)" in planned.stderr
    apply = (
        "apply", str(tmp_path / "plan.json"), "--credentials-out", str(tmp_path / "c.csv"),
        "--audit-log", str(tmp_path / "log" / "audit.jsonl"),
    )  # fmt: skip
    refused = run_cli(*apply, env=env)  # a provider that does not answer cannot confirm the lock
    assert refused.returncode == 1 and "Nothing was applied" in refused.stderr
    assert f"{dead} did not answer: the lock cannot be confirmed there" in refused.stderr
    applied = run_cli(*apply, "--break-lock", env=env)  # it is dead: the operator says so
    assert applied.returncode == 0, applied.stderr
    assert f"Writing to {slapd.url} (provider 2 of the 2 listed)" in applied.stderr
    audit = (tmp_path / "log" / "audit.jsonl").read_text(encoding="utf-8")
    assert f'"url": "{slapd.url}"' in audit
    assert f"{dead}: cannot reach" in audit  # the audit log says which provider was written
    single = run_cli("plan", str(folder), "--directory", slapd.url, env=env)
    assert single.returncode == 0 and "provider" not in single.stderr  # one URL: nothing to say
