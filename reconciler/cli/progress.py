"""Progress for long runs: a live line on a terminal, a line every few seconds in CI logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


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
        elapsed = max(now - self.start, 1e-6)
        rate = self.count / elapsed
        text = f"{self.label}: {self.count:,}"
        if self.total:
            text += f" of {self.total:,}"
            if rate > 0 and self.count < self.total:
                text += f", about {(self.total - self.count) / rate:.0f} s left"
        text += f" ({rate:,.0f}/s)"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
