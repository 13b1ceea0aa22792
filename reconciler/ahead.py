"""A step of a command run ahead, in a forked child process, while the command goes on with
another: `plan` reads the directory while it loads the inventory; `validate` parses the agency
files ahead while it turns those already parsed into records (`inventory.loader`, taking each
file's parse when it comes to that file: `parts`).

Both steps are CPU-bound Python (libyaml's events and the checks; python-ldap's decoding and
the packing of each entry), so threads would take turns; a child process runs on the second
core. The step sends parts of its work as it goes (`send`: `plan`'s read, its entries packed
128 at a time), which this process takes (`result`'s `take`: `plan` surveys them) once
it is done with its own step and while the child goes on; then the step's value comes. At
100,000 mailboxes the read and the inventory take the longer of the two instead of their sum.

    reading = Ahead.start(read_everything)  # read_everything(send) -> value; None: no child
    if reading is not None:
        with reading:
            loaded = load_the_inventory()  # an error here ends the child: nothing waits for it
            value = reading.result(take)   # each part sent given to take, then the value, or
                                           # the ReconcilerError the step raised

The child is this very program forked: the pipe is private to the two and what comes through
it is trusted as the process's own memory. The child never waits for the parent to read: what
the pipe cannot take yet is kept and written at the next part, or at the end. It writes to
nothing but the pipe (what it has to say goes through it too), leaves with `os._exit` (no
atexit handler, no buffer flushed twice), is killed and reaped when the `with` ends or `result`
fails, and is killed by the system if the parent dies first. Forking is not possible without
`os.fork`, nor safe while another thread runs (`possible`), and the system may refuse it
(`start` gives None): the caller then runs the step itself.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from reconciler.errors import ReconcilerError

T = TypeVar("T")

Send = Callable[[Any], None]

_PART, _VALUE, _ERROR, _CRASH = "part", "value", "error", "crash"
_PIPE_SIZE = 1 << 20  # bytes the pipe holds (Linux: 64 KiB unless asked, 1 MiB by default max)


class Ahead(Generic[T]):
    """`step` started in a forked child (see the module docstring); `result` waits for it."""

    @staticmethod
    def possible() -> bool:
        """Whether a step can run ahead here: `os.fork`, and no other thread."""
        return hasattr(os, "fork") and threading.active_count() == 1

    @classmethod
    def start(cls, step: Callable[[Send], T]) -> Ahead[T] | None:
        """`step` started ahead; None when it cannot be (`possible`), or the system would not
        fork now (no memory, too many processes): the caller then runs it itself."""
        if not cls.possible():
            return None
        try:
            return cls(step)
        except OSError:
            return None

    def __init__(self, step: Callable[[Send], T]) -> None:
        if not self.possible():
            raise RuntimeError("a step cannot run ahead here (Ahead.possible)")
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            stream.flush()
        read, write = os.pipe()
        parent = os.getpid()
        try:
            with contextlib.suppress(AttributeError, OSError):  # else more writes, same bytes
                fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
            pid = os.fork()
        except BaseException:
            os.close(read)
            os.close(write)
            raise
        if pid == 0:  # the child: never returns
            os.close(read)
            _run(step, write, parent)
        os.close(write)
        self._pid, self._pipe = pid, os.fdopen(read, "rb", buffering=1 << 16)
        #: what came after the parts: the child sent its last record, or closed the pipe
        self._last: tuple[str, Any] | None = None

    def parts(self) -> Iterator[Any]:
        """Each part the step sends, as it comes (waiting for it), for a caller that takes them
        one at a time as it needs them; they end where the step ends (or the child, cancelled
        or failed), whose value or error `result` then gives."""
        while self._last is None:
            try:
                kind, value = pickle.load(self._pipe)
            except (EOFError, pickle.UnpicklingError, ValueError):  # ValueError: pipe closed
                kind, value = _CRASH, None
            if kind != _PART:
                self._last = kind, value
                return
            yield value

    def result(self, take: Send | None = None) -> T:
        """The step's value, each part it sent (and `parts` did not give) given to `take`
        first; the ReconcilerError it raised, raised again here. However this ends (`take`
        raising, an interrupt), the child is ended and reaped before it returns."""
        if not self._pid:
            raise RuntimeError("the result of a step run ahead is taken once")
        try:
            for part in self.parts():
                if take is None:
                    raise RuntimeError("a step run ahead sent a part nobody takes")
                take(part)
        finally:
            self._pipe.close()
            if self._last is None:  # this side failed or was interrupted: not waited for
                self._kill()
            status = self._reap()
        last: tuple[str, Any] = self._last or (_CRASH, None)
        kind, value = last
        if kind == _VALUE:
            return value  # type: ignore[no-any-return]
        if kind == _ERROR and isinstance(value, ReconcilerError):
            raise value
        if value:  # a bug in the step: its traceback, for the report
            raise RuntimeError(f"the step run in a child process failed:\n{value}")
        hint = " (out of memory?)" if _killed_by(status) == signal.SIGKILL else ""
        raise ReconcilerError(
            f"a process this command started ended without its result, {_status(status)}"
            f"{hint}: run the command again"
        )

    def cancel(self) -> None:
        """End the child, if it still runs, and reap it."""
        self._pipe.close()
        if self._pid:
            self._kill()
            self._reap()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # unreaped, an ended child is still there
            os.kill(self._pid, signal.SIGKILL)

    def _reap(self) -> int:
        status = os.waitpid(self._pid, 0)[1]
        self._pid = 0  # once reaped: an interrupt while waiting leaves it to `cancel`
        return status

    def __enter__(self) -> Ahead[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


class _Pipe:
    """The child's end: pickled records written as far as the pipe takes them without
    waiting, the rest kept for the next record (`send`) or the end (`close`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.waiting: collections.deque[memoryview] = collections.deque()
        os.set_blocking(fd, False)

    def send(self, record: tuple[str, Any]) -> None:
        self.waiting.append(memoryview(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)))
        self._write()

    def _write(self) -> None:
        waiting = self.waiting
        while waiting:
            try:
                written = os.write(self.fd, waiting[0])
            except BlockingIOError:
                return
            if written < len(waiting[0]):
                waiting[0] = waiting[0][written:]
            else:
                waiting.popleft()

    def close(self, record: tuple[str, Any]) -> None:
        """Send the last record, waiting for the parent to read every one; pickled straight
        into the pipe (a large value is never held pickled whole)."""
        os.set_blocking(self.fd, True)
        self._write()
        with os.fdopen(self.fd, "wb", buffering=1 << 16) as out:
            pickle.dump(record, out, protocol=pickle.HIGHEST_PROTOCOL)


def _run(step: Callable[[Send], T], fd: int, parent: int) -> None:
    """In the child: run `step`, send what came of it, and leave without returning."""
    code = 0
    try:
        _end_with(parent)
        pipe = _Pipe(fd)
        try:
            last: tuple[str, object] = (_VALUE, step(lambda part: pipe.send((_PART, part))))
        except ReconcilerError as error:
            last = (_ERROR, error)
            try:
                again = pickle.loads(pickle.dumps(error))
            except Exception:
                again = None
            if type(again) is not type(error) or str(again) != str(error):
                # an error not made again the same from its arguments: its words are
                last = (_ERROR, ReconcilerError(str(error)))
        except KeyboardInterrupt:
            code = 130
            return
        except BaseException:
            last = (_CRASH, traceback.format_exc())
        pipe.close(last)
    except BaseException:  # the parent is gone, or the value did not pickle: it sees the end
        code = code or 1
    finally:
        os._exit(code)


def _end_with(parent: int) -> None:
    """In the child: be killed when the `parent` ends, however it ends (a CI runner cancelling
    the job may kill the parent alone): Linux's PR_SET_PDEATHSIG, where libc has prctl."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before that took effect (even before the fork returned)
        os._exit(1)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _killed_by(status: int) -> int | None:
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
