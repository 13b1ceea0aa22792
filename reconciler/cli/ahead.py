"""A step of a command run ahead, in a forked child process, while the command goes on with
another: `plan` reads the directory while it loads the inventory.

Both steps are CPU-bound Python (libyaml's events and the checks; python-ldap's decoding and
the packing of each entry), so threads would take turns; a child process runs on the second
core. At 100,000 mailboxes the read (4.7 s) and the inventory (2.0 s) then take the longer of
the two instead of their sum, and the entries read come back pickled through a pipe in about
0.2 s (they are packed: one `bytes` each, `reconciler.packed`).

    if Ahead.possible():
        with Ahead(read_everything) as reading:
            loaded = load_the_inventory()  # an error here ends the child: nothing waits for it
            entries = reading.result()     # its value, or the ReconcilerError it raised

The child is this very program forked: the pipe is private to the two and what comes through
it is trusted as the process's own memory. It writes to nothing else the parent could see
(its output to stderr aside: a progress line), leaves with `os._exit` (no atexit handler, no
buffer flushed twice) and is killed and reaped when the `with` ends, however it ends. Forking
is not possible without `os.fork`, nor safe while another thread runs (`possible`): the caller
then runs the step itself.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

from reconciler.errors import ReconcilerError

T = TypeVar("T")

_VALUE, _ERROR, _CRASH = "value", "error", "crash"


class Ahead(Generic[T]):
    """`step` started in a forked child (see the module docstring); `result` waits for it."""

    @staticmethod
    def possible() -> bool:
        """Whether a step can run ahead here: `os.fork`, and no other thread."""
        return hasattr(os, "fork") and threading.active_count() == 1

    def __init__(self, step: Callable[[], T]) -> None:
        if not self.possible():
            raise RuntimeError("a step cannot run ahead here (Ahead.possible)")
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            stream.flush()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read)
            _run(step, write)
        os.close(write)
        self._pid, self._pipe = pid, read

    def result(self) -> T:
        """The step's value; the ReconcilerError it raised, raised again here."""
        if not self._pid:
            raise RuntimeError("the result of a step run ahead is taken once")
        try:
            with os.fdopen(self._pipe, "rb", buffering=1 << 16) as pipe:
                self._pipe = -1
                try:
                    kind, value = pickle.load(pipe)
                except (EOFError, pickle.UnpicklingError, ValueError):
                    kind, value = _CRASH, None
        finally:
            status = self._reap()
        if kind == _VALUE:
            return value  # type: ignore[no-any-return]
        if kind == _ERROR:
            raise value
        raise RuntimeError(
            "the step run in a child process failed"
            + (f":\n{value}" if value else f" without a word ({_status(status)})")
        )

    def cancel(self) -> None:
        """End the child, if it still runs, and reap it."""
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1
        if self._pid:
            os.kill(self._pid, signal.SIGKILL)  # unreaped, a child that ended is still there
            self._reap()

    def _reap(self) -> int:
        pid, self._pid = self._pid, 0
        return os.waitpid(pid, 0)[1]

    def __enter__(self) -> Ahead[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


def _run(step: Callable[[], T], pipe: int) -> None:
    """In the child: run `step`, send what came of it, and leave without returning."""
    code = 0
    try:
        try:
            sent: tuple[str, object] = (_VALUE, step())
        except ReconcilerError as error:
            sent = (_ERROR, error)
            try:
                pickle.dumps(error)
            except Exception:  # an error whose arguments do not pickle: its words do
                sent = (_ERROR, ReconcilerError(str(error)))
        except KeyboardInterrupt:
            code = 130
            return
        except BaseException:
            sent = (_CRASH, traceback.format_exc())
        with os.fdopen(pipe, "wb", buffering=1 << 16) as out:
            pickle.dump(sent, out, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # the parent is gone, or the value did not pickle: it sees the end
        code = code or 1
    finally:
        os._exit(code)


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
