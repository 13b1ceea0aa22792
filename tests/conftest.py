"""Shared fixtures: one throwaway slapd per test session, reset to its base entries per test.

`slapd_server` (session): the running `reconciler.devtools.throwaway.Slapd`; slapd is installed when
missing and a failure to install or start it is an error, never a skip.
`slapd` (function): the same server, reset first to the three base entries (the suffix,
`ou=policies`, `cn=default,ou=policies`): a kill, a fresh database and a start, about 30 ms.
`directory` (function, twice): the same tests on that slapd and on an `ldif:` file directory.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # ldap3 2.9.1 touches pyasn1 names deprecated in pyasn1 0.6 while importing: import it once
    # here, quietly, so that `pytest -W error` can collect test modules that import ldap3.
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3  # noqa: F401

from reconciler.devtools.throwaway import Slapd, ensure_installed
from reconciler.directory import Directory, open_directory

from . import scenario


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    ensure_installed()
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slapd(slapd_server: Slapd) -> Slapd:
    slapd_server.reset()
    return slapd_server


@pytest.fixture(params=["slapd", "ldif"])
def directory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Directory]:
    if request.param == "slapd":
        server: Slapd = request.getfixturevalue("slapd")
        d = scenario.connect(server)
    else:
        d = open_directory(f"ldif:{tmp_path / 'directory.ldif'}")
    try:
        yield d
    finally:
        d.close()
