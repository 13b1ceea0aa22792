"""A throwaway replicated directory: two providers in multi-provider mode and one consumer.

Three `Slapd`s on 127.0.0.1, each with the project's schema and the password policy:

- `provider1` (serverID 1) and `provider2` (serverID 2) replicate each other with syncrepl
  (refreshAndPersist, syncprov, `multiprovider on`); provider1 gets the base entries, provider2
  an empty database that replication fills (loaded apart, they would hold the same DNs under
  different entryUUIDs);
- `consumer` is a read-only replica of both; the writes it refers (a login's `authTimestamp`,
  ppolicy's state after a bind, a user's password change) are forwarded to provider1 by the
  chain overlay, so that a login on the consumer reaches the providers.

    with Replicated(tmp_path) as directory:
        directory.providers_url      # "ldap://127.0.0.1:P1,ldap://127.0.0.1:P2"
        directory.consumer.url
        directory.wait_in_sync(10)   # every server holds every provider's changes
        directory.pause()            # the consumer stops receiving changes, until resume()

Only subprocesses (slapd, slapadd, ldapsearch, ldapmodify over ldapi as the local user): no ldap3.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path
from types import TracebackType

from reconciler.devtools.throwaway import (
    DEFAULT_SUFFIX,
    GiB,
    Role,
    Slapd,
    SlapdError,
    free_port,
)


def search(server: Slapd, base: str, attrs: list[str], *, scope: str = "sub") -> str:
    """`ldapsearch` of `base` on `server` as the local user: LDIF, lines unwrapped."""
    result = subprocess.run(
        [
            "ldapsearch",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-Q",
            "-Y",
            "EXTERNAL",
            "-H",
            server.ldapi_url,
            "-s",
            scope,
            "-b",
            base,
            *attrs,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode not in (0, 32):  # 32: no such object
        raise SlapdError(f"ldapsearch on {server.url} failed: {result.stderr.strip()}")
    return result.stdout


def context_csn(server: Slapd) -> frozenset[str]:
    """The contextCSN values of the server's suffix (one per serverID that wrote), or an empty
    set when it cannot be read (stopped)."""
    if not server.running:
        return frozenset()
    try:
        out = search(server, server.suffix, ["contextCSN"], scope="base")
    except (SlapdError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(
        line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("contextCSN:")
    )


class Replicated:
    """Two providers replicating each other and a consumer of both (see the module docstring)."""

    def __init__(
        self,
        workdir: Path,
        suffix: str = DEFAULT_SUFFIX,
        dbnosync: bool = True,
        maxsize: int = 2 * GiB,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.suffix = suffix
        root_pw = secrets.token_urlsafe(18)  # shared: each server binds to its peers as admin
        ports = [free_port() for _ in range(3)]
        while len(set(ports)) < 3:
            ports = [free_port() for _ in range(3)]
        urls = [f"ldap://127.0.0.1:{port}" for port in ports]
        common = {"suffix": suffix, "root_pw": root_pw, "dbnosync": dbnosync, "maxsize": maxsize}
        self.provider1 = Slapd(
            self.workdir / "provider1",
            port=ports[0],
            role=Role.PROVIDER,
            server_id=1,
            peers=[urls[1]],
            **common,  # type: ignore[arg-type]
        )
        self.provider2 = Slapd(
            self.workdir / "provider2",
            port=ports[1],
            role=Role.PROVIDER,
            server_id=2,
            peers=[urls[0]],
            seed=False,
            **common,  # type: ignore[arg-type]
        )
        self.consumer = Slapd(
            self.workdir / "consumer",
            port=ports[2],
            role=Role.CONSUMER,
            peers=urls[:2],
            seed=False,
            **common,  # type: ignore[arg-type]
        )
        self._paused: dict[str, list[str]] = {}  # URL -> its syncrepl values while paused

    def __repr__(self) -> str:  # never the password
        return f"Replicated(providers={self.providers_url!r}, consumer={self.consumer.url!r})"

    @property
    def servers(self) -> tuple[Slapd, Slapd, Slapd]:
        return (self.provider1, self.provider2, self.consumer)

    @property
    def providers(self) -> tuple[Slapd, Slapd]:
        return (self.provider1, self.provider2)

    @property
    def providers_url(self) -> str:
        """The `--directory` value: both providers, provider1 first."""
        return f"{self.provider1.url},{self.provider2.url}"

    @property
    def root_dn(self) -> str:
        return self.provider1.root_dn

    @property
    def root_pw(self) -> str:
        return self.provider1.root_pw

    # lifecycle --------------------------------------------------------------------------------

    def start(self, extra_ldif: Path | None = None, timeout: float = 30.0) -> Replicated:
        """Start the three servers (provider1 loaded with the base entries and `extra_ldif`)
        and return once the others hold a copy."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.provider1.start(extra_ldif)
            self.provider2.start()
            self.consumer.start()
            self.wait_in_sync(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def reset(self, extra_ldif: Path | None = None, timeout: float = 30.0) -> None:
        """Every server back to the base entries (plus `extra_ldif` on provider1), replicating:
        configuration too (a paused server's syncrepl points at its providers again)."""
        self._paused = {}
        for server in self.servers:
            server.kill()
        for server in self.servers:
            server.start(extra_ldif if server is self.provider1 else None)
        self.wait_in_sync(timeout)

    def __enter__(self) -> Replicated:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # replication ------------------------------------------------------------------------------

    def in_sync(self, servers: tuple[Slapd, ...] | None = None) -> bool:
        """Do the running `servers` (default: all) hold the same contextCSN, one per provider
        that wrote? (A replica holds every change of a provider up to its CSN.)"""
        states = [context_csn(s) for s in servers or self.servers if s.running]
        return bool(states) and all(states[0]) and all(s == states[0] for s in states)

    def wait_in_sync(
        self, timeout: float = 30.0, servers: tuple[Slapd, ...] | None = None
    ) -> float:
        """Wait until `in_sync`; returns the seconds it took. SlapdError after `timeout`."""
        start = time.monotonic()
        while not self.in_sync(servers):
            if time.monotonic() - start > timeout:
                states = {
                    s.url: sorted(context_csn(s)) if s.running else "not running"
                    for s in servers or self.servers
                }
                raise SlapdError(f"the servers did not converge within {timeout:g} s: {states}")
            time.sleep(0.05)
        return time.monotonic() - start

    def pause(self, server: Slapd | None = None) -> None:
        """`server` (default: the consumer) stops receiving changes (its syncrepl points at a
        closed port) and keeps serving what it holds, as a server cut off from its providers
        would; a provider still takes writes, and still sends them to the others."""
        server = server or self.consumer
        if server.url in self._paused:
            return
        database = _database(server)
        out = search(server, database, ["olcSyncrepl"], scope="base")
        values = [
            line.split(":", 1)[1].strip()
            for line in out.splitlines()
            if line.startswith("olcSyncrepl:")
        ]
        if not values:
            raise SlapdError(f"{server.url} has no olcSyncrepl in {database}")
        closed = f"ldap://127.0.0.1:{free_port()}"
        cut = values
        for provider in self.providers:
            cut = [value.replace(f"provider={provider.url}", f"provider={closed}") for value in cut]
        _replace_syncrepl(server, database, cut)
        self._paused[server.url] = values

    def resume(self, server: Slapd | None = None) -> None:
        """Replication to `server` (default: the consumer) starts again; it catches up from
        where it stopped."""
        server = server or self.consumer
        values = self._paused.pop(server.url, None)
        if values is not None:
            _replace_syncrepl(server, _database(server), values)

    def pause_consumer(self) -> None:
        self.pause(self.consumer)

    def resume_consumer(self) -> None:
        self.resume(self.consumer)


def _database(server: Slapd) -> str:
    """The DN of the server's mdb database in cn=config."""
    out = search(server, "cn=config", ["1.1"])
    for line in out.splitlines():
        if line.startswith("dn:") and "mdb" in line and line.endswith(",cn=config"):
            return line.split(":", 1)[1].strip()
    raise SlapdError(f"no mdb database in the cn=config of {server.url}: {out!r}")


def _replace_syncrepl(server: Slapd, database: str, values: list[str]) -> None:
    stripped = [value.split("}", 1)[1] if value.startswith("{") else value for value in values]
    change = f"dn: {database}\nchangetype: modify\nreplace: olcSyncrepl\n" + "".join(
        f"olcSyncrepl: {value}\n" for value in stripped
    )
    _modify(server, change)


def _modify(server: Slapd, ldif: str) -> None:
    result = subprocess.run(
        ["ldapmodify", "-Q", "-Y", "EXTERNAL", "-H", server.ldapi_url],
        input=ldif,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise SlapdError(f"ldapmodify on {server.url} failed: {result.stderr.strip()}")
