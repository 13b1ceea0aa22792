"""Issued passwords: generated with `secrets`, handed over only through a 0600 CSV file.

A password reaches the file (flushed and synced to disk) before the entry that uses it is written,
so a crash never leaves a mailbox whose password nobody holds (the passwords of the writes sent
together are synced together, before the first is sent: `add(sync=False)`, then `sync`); a line
whose entry could not be written is taken back (`CredentialsFile.withdraw`), and the password of
a create that a killed run put on file but never used is found there again by the next run
(`read_password`, from the audit log's record of which file holds it) and used, so that no line
is ever dead.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from types import TracebackType

from reconciler.errors import ReconcilerError
from reconciler.text import csv_cell

SPECIALS = "!#$%&*+-=?@^_"
ALPHABET = string.ascii_letters + string.digits + SPECIALS
LENGTH = 16


def generate(avoid: Iterable[str] = (), length: int = LENGTH) -> str:
    """A random password with upper case, lower case, digit and special character (QN-2020
    Đ8.1–8.2, HG-2024 Đ6.2), containing none of the words in `avoid` (the person's name parts,
    folded to ASCII), of at least 12 characters. It begins with a letter or a digit: a spreadsheet
    opening the credentials file would take a leading `=`, `+`, `-` or `@` for a formula."""
    length = max(length, 12)
    words = [w.lower() for w in avoid if len(w) >= 3]
    while True:
        password = _draw(length)
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
            and any(c in SPECIALS for c in password)
            and not any(w in password.lower() for w in words)
            and password[0].isalnum()
        ):
            return password


#: Bytes below this are drawn evenly among the alphabet's characters (the rest are dropped).
_EVEN = 256 - 256 % len(ALPHABET)


def _draw(length: int) -> str:
    """`length` characters of ALPHABET, each as likely as the others, from the system's CSPRNG:
    random bytes by the batch, those that would favour some characters dropped (one read of
    os.urandom per password instead of one per character)."""
    out: list[str] = []
    while len(out) < length:
        out += [ALPHABET[b % len(ALPHABET)] for b in secrets.token_bytes(2 * length) if b < _EVEN]
    return "".join(out[:length])


def read_password(path: Path, address: str) -> str | None:
    """The password a credentials file holds for `address` (its last line for it), or None when
    the file is gone, unreadable or has none: what an earlier, interrupted run handed over."""
    try:
        if not path.is_file() or path.stat().st_size > 64 * 1024**2:
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    wanted = address.lower()
    found = None
    for line in lines[1:]:
        cell, comma, password = line.partition(",")
        if comma and cell.lower() == wanted and password:
            found = password
    return found


def inside_git_work_tree(path: Path) -> Path | None:
    """The work tree that would hold `path`, if any (a credentials file must never be committed)."""
    folder = path.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


class CredentialsFile:
    """CSV `address,password`, created new with mode 0600, each line synced as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        tree = inside_git_work_tree(path)
        if tree is not None:
            raise ReconcilerError(
                f"--credentials-out {path} is inside the git work tree {tree}; passwords must "
                "never be committed. Write them outside the repository (for example under /run or "
                "a CI secure-files folder)."
            )
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ReconcilerError(
                f"--credentials-out {path} already exists; it may hold passwords that were "
                "handed over already. Choose a new file name."
            ) from None
        except OSError as error:
            raise ReconcilerError(f"cannot create {path}: {error.strerror}") from None
        self._fd = fd
        self.count = 0  # passwords handed over (their mailbox written)
        self._on_file = 0  # lines on file, those whose mailbox is not known to be written too
        self._size = 0  # the file's size
        self._unsynced = False
        #: where each address's line written by this run starts, while it may be taken back
        self._lines: dict[str, int] = {}
        try:
            os.fchmod(fd, 0o600)
            self._write("address,password\n")
        except ReconcilerError:
            self.close()
            raise

    def _write(self, line: str, sync: bool = True) -> None:
        """One whole line, synced unless told (`sync` then syncs it), or nothing: a write cut
        short (a full disk) is cut back off, so the file never holds half a password."""
        data = line.encode("utf-8")
        size = self._size
        try:
            written = 0
            while written < len(data):  # at the end as this run knows it, after a withdrawal too
                written += os.pwrite(self._fd, data[written:], size + written)
            self._size += len(data)
            if sync:
                os.fsync(self._fd)
            else:
                self._unsynced = True
        except OSError as error:
            self._size = size
            with suppress(OSError):
                os.ftruncate(self._fd, size)
                os.fsync(self._fd)
            raise ReconcilerError(
                f"cannot write the credentials file {self.path}: {error.strerror}; the password "
                "was not handed over and nothing was written with it"
            ) from None

    def add(self, address: str, password: str, *, sync: bool = True) -> None:
        """Put a line on file, synced to disk; with `sync` False, synced by `sync()`, which must
        come before the entry is written."""
        cells = (address, password)
        if any(csv_cell(c) != c or any(ch in c for ch in ',"\r\n') for c in cells):
            raise ReconcilerError(f"refusing to write an unsafe CSV cell for {address}")
        start = self._size
        self._write(f"{address},{password}\n", sync)
        self._lines[address.lower()] = start
        self.count += 1
        self._on_file += 1

    def sync(self) -> None:
        """Sync the lines written with `sync=False` to disk."""
        if not self._unsynced:
            return
        try:
            os.fsync(self._fd)
        except OSError as error:
            raise ReconcilerError(
                f"cannot write the credentials file {self.path}: {error.strerror}; the passwords "
                "were not handed over and nothing was written with them"
            ) from None
        self._unsynced = False

    def settled(self, address: str) -> None:
        """The line of `address` is for good (its entry has the password): forget where it is."""
        self._lines.pop(address.lower(), None)

    def unanswered(self, address: str) -> None:
        """The write of `address`'s entry got no answer: its line stays for the next run (which
        finds the entry written, or writes it with that password), not counted as handed over,
        and keeps the file."""
        self.settled(address)
        self.count -= 1

    def withdraw(self, address: str) -> bool:
        """Take back the line this run wrote for `address` (its entry could not be written: the
        password works nowhere); True when it is off the file. The last line is cut off; one
        before it (writes sent together, answered out of order) goes by rewriting the file into
        a new one that replaces it whole, so that a crash leaves either file, never half."""
        start = self._lines.get(address.lower())
        if start is None:
            return False
        try:
            data = os.pread(self._fd, self._size, 0)
            end = data.index(b"\n", start) + 1
            if end == len(data):
                os.ftruncate(self._fd, start)
                os.fsync(self._fd)
            else:
                self._replace(data[:start] + data[end:])
        except (OSError, ValueError):
            return False
        del self._lines[address.lower()]
        for other, at in self._lines.items():
            if at > start:
                self._lines[other] = at - (end - start)
        self._size -= end - start
        self.count -= 1
        self._on_file -= 1
        return True

    def _replace(self, data: bytes) -> None:
        """The file's content replaced by `data`, through a new file renamed over it, synced."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
            os.replace(temporary, self.path)
        except OSError:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        # the file now at the path is the new one: write there from now on, whatever follows
        os.close(self._fd)
        self._fd = fd
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def close(self) -> None:
        """Close the file; one that received no password is removed, so that a run that failed
        before issuing anything (a connection refused, a stale plan) can be repeated with the
        same --credentials-out. A file with a line whose mailbox may have been written (the
        write got no answer) stays."""
        if self._fd < 0:
            return
        with suppress(OSError):
            os.close(self._fd)
        self._fd = -1
        if self._on_file == 0:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> CredentialsFile:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
