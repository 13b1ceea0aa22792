"""A throwaway mail server for tests: Debian's Postfix and Dovecot, configured by the reference
files of `examples/mail/` and listening on 127.0.0.1 only.

    with MailServer(ldap_uri=server.url, base_dn=..., bind_dn=..., bind_pw=...,
                    domain="example.gov.vn") as mail:
        mail.smtp_port, mail.submission_port, mail.imap_port   # on 127.0.0.1
        mail.home("HG-0001")          # the mail home of an employeeNumber
        mail.erase_command()          # a mail_store.erase for directory.yaml

The reference files are used as they are, only their @NAME@ placeholders filled in (host, port,
base, paths: the same table as the README's "Mail server" section); what an instance needs
beyond them (its own queue, folders, ports, logs, a master.cf without chroot) is written here and
includes them. Postfix needs root (its master runs as root and drops to the `postfix` user);
mail is stored as Debian's `mail` user. Only subprocesses here, no LDAP library: the server
reads the directory itself. Issue 16 (notices by SMTP) reuses it as a relay.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from reconciler.devtools.throwaway import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mail"
POSTFIX = Path("/usr/sbin/postfix")
POSTCONF = Path("/usr/sbin/postconf")
DOVECOT = Path("/usr/sbin/dovecot")
DOVEADM = Path("/usr/bin/doveadm")
#: The user that owns the mail in the tests (Debian's `mail`); a server has its own `vmail`.
VMAIL_USER = "mail"
PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


class MailServerError(RuntimeError):
    """The throwaway mail server could not be configured or started."""


def missing() -> list[str]:
    """What of Debian's packages the mail server needs is not installed (scripts/setup installs
    them)."""
    needed = {
        "postfix": POSTFIX,
        "postfix-ldap": Path("/usr/lib/postfix/postfix-ldap.so"),
        "dovecot-core": DOVECOT,
        "dovecot-imapd": Path("/usr/lib/dovecot/imap"),
        "dovecot-lmtpd": Path("/usr/lib/dovecot/lmtp"),
        "dovecot-ldap": Path("/usr/lib/dovecot/modules/auth/libauthdb_ldap.so"),
    }
    return [package for package, path in needed.items() if not path.exists()]


def render(text: str, values: dict[str, str], source: str = "template") -> str:
    """`text` with every @NAME@ replaced by values[NAME]; a placeholder without a value is an
    error (a reference file and this module must agree)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise MailServerError(f"{source}: no value for the placeholder @{name}@")
        return values[name]

    return PLACEHOLDER.sub(value, text)


_MASTER_CF = """\
# A throwaway instance: no chroot, SMTP and submission on 127.0.0.1 only.
{smtp} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

_MAIN_CF = """\
# A throwaway instance ({workdir}); examples/mail/postfix/main.cf follows.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.{domain}
mydomain = {domain}
myorigin = {domain}
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
maillog_file_prefixes = {workdir}
maillog_file = {log}
biff = no
smtpd_banner = $myhostname ESMTP
delay_warning_time = 0
# the queue retries at once in tests
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""

_DOVECOT_CONF = """\
# A throwaway instance ({workdir}); examples/mail/dovecot/90-reconciler.conf follows.
base_dir = {run}
state_dir = {state}
instance_name = reconciler-{tag}
listen = 127.0.0.1
protocols = imap lmtp
ssl = no
log_path = {log}
info_log_path = {log}
default_internal_user = dovecot
default_login_user = dovenull
# tests wait for nothing: a failed login is answered at once; tests log in from 127.0.0.N to
# 127.0.0.1 (Dovecot counts failures per address), which Dovecot does not count as local
auth_failure_delay = 0
disable_plaintext_auth = no
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
!include {include}
"""


def _pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_gone(pid: int, timeout: float = 15.0) -> None:
    """Wait for a daemon (not our child: it forked) to exit; SIGKILL it after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class MailServer:
    """Postfix and Dovecot in a private folder, on the directory at `ldap_uri`."""

    def __init__(
        self,
        *,
        ldap_uri: str,
        base_dn: str,
        bind_dn: str,
        bind_pw: str,
        domain: str,
        password_url: str = "https://mail.example.gov.vn/doi-mat-khau",
        workdir: Path | None = None,
        former_domains: tuple[str, ...] = (),
    ) -> None:
        self.ldap_uri = ldap_uri
        self.base_dn = base_dn
        self.bind_dn = bind_dn
        self.bind_pw = bind_pw
        self.domain = domain
        self.former_domains = former_domains  # a merged province's: README "After a merger"
        self.password_url = password_url
        self._given_workdir = workdir
        self.workdir = Path()
        self.smtp_port = free_port()
        self.submission_port = free_port()
        self.imap_port = free_port()
        self._started: list[str] = []

    def __repr__(self) -> str:  # never the bind password
        return f"MailServer(smtp=127.0.0.1:{self.smtp_port}, imap=127.0.0.1:{self.imap_port})"

    # paths ------------------------------------------------------------------------------------

    @property
    def postfix_dir(self) -> Path:
        return self.workdir / "postfix"

    @property
    def queue_dir(self) -> Path:
        return self.workdir / "queue"

    @property
    def dovecot_dir(self) -> Path:
        return self.workdir / "dovecot"

    @property
    def vmail(self) -> Path:
        return self.workdir / "vmail"

    @property
    def postfix_log(self) -> Path:
        return self.workdir / "postfix.log"

    @property
    def dovecot_log(self) -> Path:
        return self.workdir / "dovecot.log"

    @property
    def dovecot_conf(self) -> Path:
        return self.dovecot_dir / "dovecot.conf"

    def home(self, employee_number: str) -> Path:
        """The mail home of a mailbox (examples/mail/dovecot: keyed by employeeNumber)."""
        return self.vmail / employee_number

    def maildir(self, employee_number: str) -> Path:
        return self.home(employee_number) / "Maildir"

    def values(self) -> dict[str, str]:
        """The placeholders of examples/mail/ for this instance."""
        return {
            "LDAP_URI": self.ldap_uri,
            "BASE_DN": self.base_dn,
            "BIND_DN": self.bind_dn,
            "BIND_PW": self.bind_pw,
            "DOMAIN": self.domain,
            "PASSWORD_URL": self.password_url,
            "POSTFIX_DIR": str(self.postfix_dir),
            "POSTFIX_QUEUE": str(self.queue_dir),
            "DOVECOT_DIR": str(self.dovecot_dir),
            "VMAIL": str(self.vmail),
            "VMAIL_USER": VMAIL_USER,
            "TLS_CERT": str(self.workdir / "tls" / "cert.pem"),
            "TLS_KEY": str(self.workdir / "tls" / "key.pem"),
            "DOVECOT_CONF": str(self.dovecot_conf),
        }

    def erase_command(self) -> list[str]:
        """`mail_store: {erase: …}` for directory.yaml: examples/mail/reconciler-erase-mailbox
        (as installed in this instance) with the id and the address."""
        return [str(self.workdir / "reconciler-erase-mailbox"), "{id}", "{address}"]

    # configuration ----------------------------------------------------------------------------

    def _merged(self, text: str) -> str:
        """After a merger, the former domains beside the domain, as the README's "After a
        merger" says: on `virtual_mailbox_domains` and on each map's `domain =` line."""
        if not self.former_domains:
            return text
        domains = [self.domain, *self.former_domains]
        text = re.sub(
            r"^virtual_mailbox_domains = .*$",
            "virtual_mailbox_domains = " + " ".join(domains),
            text,
            flags=re.M,
        )
        return re.sub(r"^domain = .*$", "domain = " + ", ".join(domains), text, flags=re.M)

    def _copy(self, name: str, target: Path, mode: int, group: str | None = None) -> None:
        source = EXAMPLES / name
        rendered = render(source.read_text(encoding="utf-8"), self.values(), name)
        target.write_text(self._merged(rendered) if name.startswith("postfix/") else rendered)
        os.chmod(target, mode)
        if group is not None:
            shutil.chown(target, "root", group)

    def _configure(self) -> None:
        if self._given_workdir is not None:
            self.workdir = Path(self._given_workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            # not under pytest's 0700 folders: Postfix and Dovecot drop to their own users
            self.workdir = Path(tempfile.mkdtemp(prefix="reconciler-mail-"))
        os.chmod(self.workdir, 0o755)
        for folder in (self.postfix_dir, self.dovecot_dir, self.queue_dir):
            folder.mkdir(mode=0o755, exist_ok=True)
        self.vmail.mkdir(mode=0o770, exist_ok=True)
        shutil.chown(self.vmail, VMAIL_USER, VMAIL_USER)
        self._certificate()
        postfix_files = (
            "reconciler-mailboxes.cf",
            "reconciler-aliases.cf",
            "reconciler-suspended.cf",
            "reconciler-senders.cf",
        )
        for name in postfix_files:
            self._copy(f"postfix/{name}", self.postfix_dir / name, 0o640, "postfix")
        main = _MAIN_CF.format(
            workdir=self.workdir,
            queue=self.queue_dir,
            data=self.workdir / "postfix-data",
            domain=self.domain,
            log=self.postfix_log,
        )
        fragment = self._merged(
            render((EXAMPLES / "postfix/main.cf").read_text(), self.values(), "main.cf")
        )
        (self.postfix_dir / "main.cf").write_text(main + "\n" + fragment)
        submission = render(
            (EXAMPLES / "postfix/master.cf").read_text(), self.values(), "master.cf"
        )
        submission = re.sub(
            r"^submission(?= )", f"127.0.0.1:{self.submission_port}", submission, flags=re.M
        )
        master = _MASTER_CF.format(smtp=f"127.0.0.1:{self.smtp_port}")
        (self.postfix_dir / "master.cf").write_text(master + "\n" + submission)
        (self.workdir / "postfix-data").mkdir(mode=0o700, exist_ok=True)
        shutil.chown(self.workdir / "postfix-data", "postfix", "postfix")

        for name in (
            "reconciler-passdb-mustchange.conf.ext",
            "reconciler-passdb.conf.ext",
            "reconciler-userdb.conf.ext",
        ):
            self._copy(f"dovecot/{name}", self.dovecot_dir / name, 0o600)
        self._copy(
            "dovecot/reconciler-quota-warning.sh",
            self.dovecot_dir / "reconciler-quota-warning.sh",
            0o755,
        )
        self._copy("dovecot/90-reconciler.conf", self.dovecot_dir / "90-reconciler.conf", 0o644)
        for sub in ("run", "state"):
            (self.dovecot_dir / sub).mkdir(mode=0o755, exist_ok=True)
        # the quota warning's dovecot-lda runs as the mail user and logs here too
        self.dovecot_log.touch()
        os.chmod(self.dovecot_log, 0o666)
        self.dovecot_conf.write_text(
            _DOVECOT_CONF.format(
                workdir=self.workdir,
                run=self.dovecot_dir / "run",
                state=self.dovecot_dir / "state",
                tag=secrets.token_hex(4),
                log=self.dovecot_log,
                imap=self.imap_port,
                include=self.dovecot_dir / "90-reconciler.conf",
            )
        )
        self._copy("reconciler-erase-mailbox", self.workdir / "reconciler-erase-mailbox", 0o755)

    def _certificate(self) -> None:
        folder = self.workdir / "tls"
        folder.mkdir(mode=0o755, exist_ok=True)
        result = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
             "-days", "7", "-subj", f"/CN=mail.{self.domain}"],
            cwd=folder, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise MailServerError(f"openssl could not make a certificate: {result.stderr}")
        os.chmod(folder / "key.pem", 0o600)

    # lifecycle --------------------------------------------------------------------------------

    def _run(self, args: list[str], what: str) -> str:
        # output through a file: a daemon that forks keeps a pipe open after its parent exits
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, check=False, timeout=60
            ).returncode
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(args, code, out.read(), err.read())
        if result.returncode != 0:
            raise MailServerError(
                f"{what} failed (status {result.returncode}): "
                f"{(result.stderr + result.stdout).strip()}"
            )
        return result.stdout

    def start(self) -> MailServer:
        """Configure and start Postfix, then Dovecot; returns when both accept connections."""
        absent = missing()
        if absent:
            raise MailServerError(
                f"the mail server's packages are not installed ({', '.join(absent)}): run "
                "scripts/setup"
            )
        if os.geteuid() != 0:
            raise MailServerError("the throwaway mail server needs root (Postfix's master does)")
        pwd.getpwnam(VMAIL_USER)
        self._configure()
        try:
            config = ["-c", str(self.postfix_dir)]
            self._run([str(POSTFIX), *config, "check"], "postfix check")
            self._started.append("postfix")
            self._run([str(POSTFIX), *config, "start"], "postfix start")
            self._started.append("dovecot")
            self._run([str(DOVECOT), "-c", str(self.dovecot_conf)], "dovecot")
            for port in (self.smtp_port, self.submission_port, self.imap_port):
                self._wait_port(port)
            self._wait_path(self.queue_dir / "private" / "dovecot-lmtp")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_port(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.02)
        raise MailServerError(f"nothing listens on 127.0.0.1:{port}: {self.log_tail()}")

    def _wait_path(self, path: Path, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return
            time.sleep(0.02)
        raise MailServerError(f"{path} did not appear: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        tail: list[str] = []
        for log in (self.postfix_log, self.dovecot_log):
            with contextlib.suppress(OSError):
                tail += log.read_text(errors="replace").splitlines()[-lines:]
        return " | ".join(tail)

    def flush(self, timeout: float = 20.0) -> None:
        """Wait until Postfix's queue is empty (every accepted message delivered or bounced)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queue = self._run(
                [str(POSTCONF), "-c", str(self.postfix_dir), "-h", "queue_directory"], "postconf"
            )
            busy = any(
                any(files for _, _, files in os.walk(Path(queue.strip()) / folder))
                for folder in ("incoming", "active", "deferred", "maildrop")
            )
            if not busy:
                return
            time.sleep(0.05)
        raise MailServerError(f"Postfix's queue did not empty: {self.log_tail()}")

    def doveadm(self, *args: str) -> str:
        return self._run([str(DOVEADM), "-c", str(self.dovecot_conf), *args], "doveadm")

    def stop(self) -> None:
        """Stop Dovecot and Postfix and wait until their masters are gone; remove the folder
        unless it was given."""
        masters = {
            "dovecot": self.dovecot_dir / "run" / "master.pid",
            "postfix": self.queue_dir / "pid" / "master.pid",  # SIGTERM: it stops its children
        }
        pids = [
            pid for name, path in masters.items() if name in self._started if (pid := _pid(path))
        ]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in pids:
            _wait_gone(pid)
        self._started.clear()
        if self._given_workdir is None and self.workdir != Path():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
