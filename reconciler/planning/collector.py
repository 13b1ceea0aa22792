"""The cyclic garbage collector's tuning, in one place.

Loading an inventory or a directory makes millions of small objects and almost no reference
cycles. The collector is paused while the pipeline's steps run (`paused`), and runs less often in
the rest of a command (`raise_thresholds`, called once by the command line). A module of its own,
without imports, so that the command line can tune the collector before any command without
loading the pipeline's libraries.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside: loading, reading and planning keep every entry and mailbox
    alive until the end, and the collector would walk them all again and again and find nothing
    (at 100,000 mailboxes it took a quarter of `plan`, and tripled the loader's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # what was made inside is kept, so it goes to the oldest generation at once (freezing
        # and unfreezing moves lists, not objects): else the first young collection after the
        # pause walks it all (0.05 s after 100,000 staff are loaded) to find nothing
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


def raise_thresholds() -> None:
    """For a whole command: the default (a pass every 700 allocations) took a sixth of `validate`
    at 100,000 staff. Cycles are still collected, less often."""
    gc.set_threshold(100_000, 50, 100)
