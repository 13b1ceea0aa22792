"""A throwaway OpenLDAP server for tests, the demo and benchmarks.

Only subprocesses (slapd, slapadd, slaptest, ldapwhoami): no ldap3 here. See /work/shared/SLAPD.md
for the facts this relies on (Debian bookworm, slapd 2.5).

    with Slapd(tmp_path) as server:
        server.url          # ldap://127.0.0.1:PORT
        server.ldapi_url    # ldapi://%2Ftmp%2F...%2Fldapi
        server.root_dn, server.root_pw, server.suffix

CLI (for scripts): `python -m reconciler.devtools.throwaway start DIR` prints the URL and the admin
DN and writes the admin password to DIR/admin.pw (mode 0600);
`python -m reconciler.devtools.throwaway stop DIR` stops it.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from reconciler import schemas_folder

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SLAPTEST = Path("/usr/sbin/slaptest")
SYSTEM_SCHEMAS = Path("/etc/ldap/schema")
MODULE_PATH = Path("/usr/lib/ldap")
PROJECT_SCHEMA = schemas_folder() / "ldap" / "govmail.schema"

DEFAULT_SUFFIX = "dc=example,dc=gov,dc=vn"
GiB = 1024**3


class Role(enum.Enum):
    """What a throwaway server is in a replicated directory."""

    STANDALONE = "standalone"
    PROVIDER = "provider"  # multi-provider: takes writes, replicates to and from its peers
    CONSUMER = "consumer"  # read-only replica: refers writes to (and chains them to) a provider


class SlapdError(RuntimeError):
    """The throwaway slapd could not be installed, configured or started."""


# ---------------------------------------------------------------------------------------------
# Installation


def _missing() -> list[str]:
    missing = [str(p) for p in (SLAPD, SLAPADD, SLAPTEST) if not p.exists()]
    missing += [tool for tool in ("ldapsearch", "ldapwhoami") if shutil.which(tool) is None]
    return missing


def ensure_installed() -> None:
    """Install Debian's `slapd` and `ldap-utils` when slapd or the client tools are missing.

    Creates /etc/ldap/noslapd first so that the package does not start the system slapd.
    Uses `sudo -n` when not root. Raises SlapdError with what to do when it cannot.
    """
    missing = _missing()
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise SlapdError(
            f"slapd is not installed ({', '.join(missing)} missing) and apt-get is not available: "
            "install OpenLDAP's slapd and client tools (Debian: apt-get install slapd ldap-utils)"
        )
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise SlapdError(
                f"slapd is not installed ({', '.join(missing)} missing) and this user is not root "
                "and has no sudo: run `apt-get install slapd ldap-utils` as root"
            )
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        [*prefix, "mkdir", "-p", "/etc/ldap"],
        [*prefix, "touch", "/etc/ldap/noslapd"],
        [*prefix, "apt-get", "update", "-q"],
        [
            *prefix,
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "slapd",
            "ldap-utils",
        ],
    ]
    for step in steps:
        result = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise SlapdError(
                f"could not install slapd: `{' '.join(step)}` failed with status "
                f"{result.returncode}: {' | '.join(tail)} — install slapd and ldap-utils by hand "
                "or allow passwordless sudo for apt-get"
            )
    still = _missing()
    if still:
        raise SlapdError(f"slapd installed but {', '.join(still)} still missing")


# ---------------------------------------------------------------------------------------------
# Helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ssha(password: str) -> str:
    """A salted SHA-1 hash in the `{SSHA}` userPassword scheme (RFC 2307 style)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by a parent that is not us) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.01)
    return not _pid_alive(pid)


def _base_ldif(suffix: str, lockout: bool = True) -> str:
    attr, _, value = suffix.split(",", 1)[0].partition("=")
    attr = attr.strip().lower()
    value = value.strip()
    if attr == "dc":
        top = f"objectClass: dcObject\nobjectClass: organization\ndc: {value}\no: {value}\n"
    elif attr == "o":
        top = f"objectClass: organization\no: {value}\n"
    elif attr == "ou":
        top = f"objectClass: organizationalUnit\nou: {value}\n"
    else:
        raise SlapdError(f"suffix {suffix!r} must start with dc=, o= or ou=")
    return (
        f"dn: {suffix}\n{top}\n"
        f"dn: ou=policies,{suffix}\nobjectClass: organizationalUnit\nou: policies\n\n"
        f"dn: cn=default,ou=policies,{suffix}\nobjectClass: person\nobjectClass: pwdPolicy\n"
        "cn: default\nsn: default\npwdAttribute: userPassword\npwdMustChange: TRUE\n"
        "pwdAllowUserChange: TRUE\n"
        # QN-2020 Đ8.1, HG-2024 Đ6.2: at least 8 characters; quality 2 refuses a password
        # slapd cannot check (one sent already hashed)
        "pwdMinLength: 8\npwdCheckQuality: 2\n"
        # slapd 2.5 ignores pwdAccountLockedTime (the suspension lock) unless pwdLockout is on;
        # pwdMaxFailure stays 0, so failed binds alone never lock anyone out.
        + ("pwdLockout: TRUE\n" if lockout else "pwdLockout: FALSE\n")
    )


# ---------------------------------------------------------------------------------------------
# The server


class Slapd:
    """A private slapd in `workdir` (created if needed), listening on 127.0.0.1 and on ldapi.

    Base entries: the suffix, `ou=policies` and the default password policy
    `cn=default,ou=policies,<suffix>` (pwdMustChange, pwdAllowUserChange and pwdLockout TRUE:
    `pwdReset: TRUE` forces a change at the next bind, `pwdAccountLockedTime: 000001010000Z`
    makes every bind fail; pwdMinLength 8).

    The local user running it may do anything over ldapi (SASL EXTERNAL), in the database and
    in `cn=config`, as root may on a Debian server. Variants, for `reconciler doctor`'s tests:
    `lockout=False` (a policy under which slapd ignores the suspension lock), `lastbind=False`
    (no pwdLastSuccess), `schema=None` (without the project's schema).

    Replication (`reconciler.devtools.replicated` puts servers together): `role` is
    `Role.PROVIDER` (syncprov, `multiprovider on`, a `serverID`, pulling from `peers`) or
    `Role.CONSUMER` (read-only, pulling from `peers`, writes referred to the first of them and
    forwarded there by the chain overlay, logins forwarded as `authTimestamp`); `seed=False`
    starts with an empty database, which replication fills.
    """

    BASE_ENTRIES = 3

    def __init__(
        self,
        workdir: Path,
        suffix: str = DEFAULT_SUFFIX,
        root_dn: str | None = None,
        root_pw: str | None = None,
        port: int | None = None,
        dbnosync: bool = True,
        maxsize: int = 2 * GiB,
        schema: Path | None = PROJECT_SCHEMA,
        tls: bool = False,
        lockout: bool = True,
        lastbind: bool = True,
        role: Role = Role.STANDALONE,
        server_id: int = 0,
        peers: Sequence[str] = (),
        seed: bool = True,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.suffix = suffix
        self.root_dn = root_dn or f"cn=admin,{suffix}"
        self.root_pw = root_pw or secrets.token_urlsafe(18)
        self._fixed_port = port
        self.port = port or free_port()
        self.dbnosync = dbnosync
        self.maxsize = maxsize
        self.schema = schema
        self.tls = tls
        self.lockout = lockout
        self.lastbind = lastbind
        self.role = role
        self.server_id = server_id
        self.peers = tuple(peers)
        self.seed = seed
        if role is not Role.STANDALONE and not peers:
            raise SlapdError(f"a {role.value} needs the URLs of the servers it replicates from")
        if role is Role.PROVIDER and not 0 < server_id < 4096:
            raise SlapdError("a provider needs a serverID from 1 to 4095")
        self.tls_port = free_port() if tls else 0
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        socket_path = self.workdir / "ldapi"
        if len(str(socket_path)) > 100:  # sun_path is 108 bytes
            socket_path = Path("/tmp") / f"slapd-{secrets.token_hex(6)}.ldapi"
        self.socket_path = socket_path

    def __repr__(self) -> str:  # never the password
        return f"Slapd(url={self.url!r}, suffix={self.suffix!r}, root_dn={self.root_dn!r})"

    # paths ------------------------------------------------------------------------------------

    @property
    def conf_file(self) -> Path:
        return self.workdir / "slapd.conf"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "conf.d"

    @property
    def db_dir(self) -> Path:
        return self.workdir / "db"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "slapd.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / "slapd.log"

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldapi_url(self) -> str:
        return "ldapi://" + urllib.parse.quote(str(self.socket_path), safe="")

    @property
    def ldaps_url(self) -> str:
        """ldaps://127.0.0.1:TLS_PORT (only with tls=True)."""
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate that signed the server's certificate (only with tls=True)."""
        return self.workdir / "tls" / "ca.pem"

    def _make_certificates(self) -> None:
        folder = self.workdir / "tls"
        folder.mkdir(mode=0o700, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        steps = [
            ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "7",
             "-subj", "/CN=reconciler throwaway CA"],
            ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "7", "-extfile", "san.cnf"],
        ]  # fmt: skip
        for step in steps:
            result = subprocess.run(
                ["openssl", *step], cwd=folder, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise SlapdError(f"openssl {step[0]} failed: {result.stderr.strip()}")

    @property
    def running(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    # configuration ----------------------------------------------------------------------------

    def _slapd_conf(self) -> str:
        schemas = [
            SYSTEM_SCHEMAS / f"{name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")
        ]
        if self.schema is not None:
            schemas.append(self.schema)
        includes = "".join(f"include {path}\n" for path in schemas)
        root = f'dn.exact="{self.root_dn}"'
        # the local user over ldapi (SASL EXTERNAL), as root is on a Debian server
        local = (
            f'dn.exact="gidNumber={os.getegid()}+uidNumber={os.geteuid()},'
            'cn=peercred,cn=external,cn=auth"'
        )
        tls = ""
        if self.tls:
            folder = self.workdir / "tls"
            tls = (
                f"TLSCACertificateFile {folder / 'ca.pem'}\n"
                f"TLSCertificateFile {folder / 'server.pem'}\n"
                f"TLSCertificateKeyFile {folder / 'server.key'}\n"
            )
        consumer = self.role is Role.CONSUMER
        return (
            f"{includes}\n"
            f"{tls}"
            f"modulepath {MODULE_PATH}\n"
            "moduleload back_mdb\n"
            "moduleload ppolicy\n" + self._replication_modules() + f"pidfile {self.pid_file}\n"
            "sizelimit unlimited\n"
            "timelimit unlimited\n"
            + (f"serverID {self.server_id}\n" if self.role is Role.PROVIDER else "")
            + self._chain()
            + "\n"
            "database config\n"
            f"access to * by {local} manage by * none\n"
            "\n"
            "database mdb\n"
            f'suffix "{self.suffix}"\n'
            f'rootdn "{self.root_dn}"\n'
            f"rootpw {ssha(self.root_pw)}\n"
            f"directory {self.db_dir}\n"
            f"maxsize {self.maxsize}\n"
            + ("dbnosync\n" if self.dbnosync else "")
            # a consumer's own lastbind would write pwdLastSuccess locally, never to a provider:
            # it forwards authTimestamp instead (below)
            + ("lastbind on\n" if self.lastbind and not consumer else "")
            + "index objectClass,uid,mail,employeeNumber"
            + (",govMailAlias" if self.schema is not None else "")
            + " eq\n"
            + self._syncrepl()
            + "overlay ppolicy\n"
            f'ppolicy_default "cn=default,ou=policies,{self.suffix}"\n'
            "ppolicy_hash_cleartext\n"
            + ("ppolicy_forward_updates\n" if consumer else "")
            + ("overlay lastbind\nlastbind_forward_updates\n" if consumer and self.lastbind else "")
            + "\n"
            "access to attrs=userPassword\n"
            f"  by {root} manage\n"
            f"  by {local} manage\n"
            "  by self write\n"
            "  by anonymous auth\n"
            "  by * none\n"
            "access to *\n"
            f"  by {root} manage\n"
            f"  by {local} manage\n"
            "  by self read\n"
            "  by users read\n"
            "  by anonymous auth\n"
        )

    def _replication_modules(self) -> str:
        if self.role is Role.STANDALONE:
            return ""
        # lastbind: the authTimestamp attribute a consumer forwards (the overlay runs only there)
        return "moduleload syncprov\nmoduleload lastbind\n" + (
            "moduleload back_ldap\n" if self.role is Role.CONSUMER else ""
        )

    def _chain(self) -> str:
        """A consumer forwards the writes it refers (ppolicy state, logins, a user's password
        change) to its first provider, as the user where it can and as the admin otherwise."""
        if self.role is not Role.CONSUMER:
            return ""
        return (
            "overlay chain\n"
            f"chain-uri {self.peers[0]}/\n"
            f'chain-idassert-bind bindmethod=simple binddn="{self.root_dn}" '
            f"credentials={self.root_pw} mode=self\n"
            "chain-return-error TRUE\n"
        )

    def _syncrepl(self) -> str:
        if self.role is Role.STANDALONE:
            return ""
        rid_base = 100 if self.role is Role.CONSUMER else 0
        pulls = "".join(
            f"syncrepl rid={rid_base + n:03d} provider={peer} bindmethod=simple "
            f'binddn="{self.root_dn}" credentials={self.root_pw} searchbase="{self.suffix}" '
            'type=refreshAndPersist retry="1 +" timeout=3\n'
            for n, peer in enumerate(self.peers, 1)
        )
        if self.role is Role.CONSUMER:
            return f"index entryCSN,entryUUID eq\n{pulls}updateref {self.peers[0]}\n"
        return (
            "index entryCSN,entryUUID eq\n"
            f"{pulls}multiprovider on\n"
            "overlay syncprov\n"
            "syncprov-checkpoint 100 1\n"
        )

    def _run(self, args: list[str], what: str) -> None:
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            out = (result.stderr + result.stdout).strip()
            raise SlapdError(f"{what} failed (status {result.returncode}): {out}")

    def _load(self, ldif: Path) -> None:
        self._run(
            [str(SLAPADD), "-q", "-f", str(self.conf_file), "-l", str(ldif)], f"slapadd of {ldif}"
        )

    def _fill(self, extra_ldif: Path | None) -> None:
        """The database's first content: the base entries (plus `extra_ldif`), or nothing at all
        for a replica that replication fills (two servers loaded apart would hold the same DNs
        under different entryUUIDs)."""
        if not self.seed:
            self._run(
                [
                    str(SLAPADD),
                    "-q",
                    "-f",
                    str(self.conf_file),
                    "-b",
                    self.suffix,
                    "-l",
                    "/dev/null",
                ],
                "slapadd of an empty database",
            )
            return
        self._load(self.workdir / "base.ldif")
        if extra_ldif is not None:
            self._load(extra_ldif)

    def initialize(self, extra_ldif: Path | None = None) -> None:
        """Write the configuration and a fresh database (base entries plus `extra_ldif`)."""
        ensure_installed()
        if self.schema is not None and not self.schema.exists():
            raise SlapdError(f"the project's LDAP schema {self.schema} is missing")
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        for old in (self.db_dir, self.conf_dir):
            shutil.rmtree(old, ignore_errors=True)
        self.db_dir.mkdir(mode=0o700)
        self.conf_dir.mkdir(mode=0o700)
        if self.tls:
            self._make_certificates()
        fd = os.open(self.conf_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as conf:
            conf.write(self._slapd_conf())
        (self.workdir / "base.ldif").write_text(_base_ldif(self.suffix, self.lockout))
        self._fill(extra_ldif)
        self._run(
            [str(SLAPTEST), "-Q", "-f", str(self.conf_file), "-F", str(self.conf_dir)],
            "slaptest (conversion to cn=config)",
        )
        fd = os.open(self.workdir / "admin.pw", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as pw:
            pw.write(self.root_pw)

    # lifecycle --------------------------------------------------------------------------------

    def start(self, extra_ldif: Path | None = None) -> Slapd:
        """Configure a fresh database and start slapd; returns when it accepts connections."""
        if self.running:
            raise SlapdError(f"slapd is already running at {self.url}")
        self.initialize(extra_ldif)
        self._launch()
        return self

    def _launch(self, timeout: float = 15.0) -> None:
        for attempt in range(3):
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
            try:
                proc = subprocess.Popen(
                    [
                        str(SLAPD),
                        "-d",
                        "0",
                        "-F",
                        str(self.conf_dir),
                        "-h",
                        self._listeners(),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            finally:
                log.close()
            self._proc, self.pid = proc, proc.pid
            if self._wait_ready(proc, timeout):
                return
            self._proc = self.pid = None
            if self._fixed_port is None and attempt < 2:
                self.port = free_port()  # someone took the port meanwhile: try another
                self.tls_port = free_port() if self.tls else 0
                continue
            break
        tail = self.log_file.read_text(errors="replace").strip().splitlines()[-10:]
        raise SlapdError(f"slapd did not start at {self.url}: {' | '.join(tail)}")

    def _listeners(self) -> str:
        urls = [f"{self.url}/", self.ldapi_url]
        if self.tls:
            urls.append(f"{self.ldaps_url}/")
        return " ".join(urls)

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if self._accepts(socket.AF_INET, ("127.0.0.1", self.port)) and self._accepts(
                socket.AF_UNIX, str(self.socket_path)
            ):
                return True
            time.sleep(0.003)
        proc.kill()
        proc.wait()
        return False

    @staticmethod
    def _accepts(family: socket.AddressFamily, address: tuple[str, int] | str) -> bool:
        """Something listens there: a connect succeeds (the ldapi socket file exists a moment
        before slapd listens on it, so its existence alone is not enough)."""
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            try:
                sock.connect(address)
            except OSError:
                return False
            return True

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        elif not _wait_pid_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_pid_gone(pid, 5.0)
        self._proc = self.pid = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def stop(self) -> None:
        """Stop slapd (SIGTERM, SIGKILL after 10 s) and wait until it has exited."""
        self._signal_and_wait(signal.SIGTERM, 10.0)

    def kill(self) -> None:
        """SIGKILL slapd (for fault tests) and wait until it is gone. The data stays."""
        self._signal_and_wait(signal.SIGKILL, 5.0)

    def restart(self) -> None:
        """Stop if running, then start again on the same data and port."""
        self._fixed_port = self.port
        self.stop()
        self._launch()

    def reset(self, extra_ldif: Path | None = None) -> None:
        """Kill, wipe the database back to the base entries (plus `extra_ldif`), start again."""
        self._fixed_port = self.port
        self.kill()
        shutil.rmtree(self.db_dir, ignore_errors=True)
        self.db_dir.mkdir(mode=0o700)
        self._fill(extra_ldif)
        self._launch()

    def __enter__(self) -> Slapd:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # for the CLI: a server started by another process -----------------------------------------

    def detach(self) -> None:
        """Let slapd outlive this process (stop it later by pid, e.g. from the CLI)."""
        if self._proc is not None:
            self._proc.returncode = 0  # no "still running" warning when this object goes
            self._proc = None

    def save_state(self) -> None:
        state = f"{self.pid}\n{self.port}\n{self.socket_path}\n{self.suffix}\n{self.root_dn}\n"
        (self.workdir / "throwaway.state").write_text(state)

    @classmethod
    def from_state(cls, workdir: Path) -> Slapd:
        state = (Path(workdir) / "throwaway.state").read_text().splitlines()
        pid, port, socket_path, suffix, root_dn = state[:5]
        server = cls(workdir, suffix=suffix, root_dn=root_dn, root_pw="-", port=int(port))
        server.socket_path = Path(socket_path)
        server.pid = int(pid)
        return server


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m reconciler.devtools.throwaway start|stop DIR [--suffix DN] [--port N]"
    if len(args) < 2 or args[0] not in ("start", "stop"):
        print(usage, file=sys.stderr)
        return 2
    command, workdir, rest = args[0], Path(args[1]), args[2:]
    options = dict(zip(rest[::2], rest[1::2], strict=False))
    try:
        if command == "start":
            server = Slapd(
                workdir,
                suffix=options.get("--suffix", DEFAULT_SUFFIX),
                port=int(options["--port"]) if "--port" in options else None,
            )
            server.start()
            server.detach()
            server.save_state()
            print(server.url)
            print(server.root_dn)
        else:
            Slapd.from_state(workdir).stop()
            (Path(workdir) / "throwaway.state").unlink(missing_ok=True)
    except (SlapdError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
