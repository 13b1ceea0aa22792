"""Progress for long runs: a live line on a terminal, a line every few seconds in CI logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Seconds of progress before a rate and a time left are shown.
WARMUP = 3.0


def duration(seconds: float) -> str:
    """A time left as people read it: "40 s", "12 min", "2 h 05 min"."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        every: float = 5.0,
        minimum: int = 2000,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every if not self.tty else 0.2
        self.minimum = minimum
        self.start = time.monotonic()
        self.last = self.start
        self.count = 0
        self.shown = False

    def __call__(self, done: int, total: int | None = None) -> None:
        self.count = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        if now - self.last < self.every or (
            not self.shown and done < self.minimum and now - self.start < self.every
        ):
            return
        self.last = now
        self.shown = True
        self._show(now)

    def _show(self, now: float) -> None:
        elapsed = now - self.start
        text = f"{self.label}: {self.count:,}"
        if self.total:
            text += f" of {self.total:,}"
        if self.count > 0 and elapsed >= WARMUP:
            # a rate (and from it a time left) only once there are a few seconds of it: the
            # first items of a run say nothing of the rest (a connection, a first page)
            rate = self.count / elapsed
            if self.total and self.count < self.total:
                text += f", about {duration((self.total - self.count) / rate)} left"
            text += f" ({rate:,.0f}/s)"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Take the live line off the terminal, so that another line can be printed; the next
        update draws it again."""
        if self.shown and self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        self.clear()
