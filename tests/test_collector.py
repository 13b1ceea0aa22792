"""The cyclic garbage collector's tuning (`reconciler.planning.collector`)."""

from __future__ import annotations

import gc

from reconciler.planning import collector


def test_what_a_pause_made_is_in_the_oldest_generation_when_it_ends() -> None:
    """The objects made while the collector was paused are kept by the pipeline: they are not
    left in the youngest generation, for its next collection to walk them all."""
    gc.disable()  # no collection between the pause's end and the look (the pause puts it back)
    try:
        with collector.paused():
            kept = [[i] for i in range(1_000)]
        assert not gc.isenabled() and gc.get_freeze_count() == 0
        oldest = {id(o) for o in gc.get_objects(2)}
        assert all(id(o) in oldest for o in kept)
        assert gc.get_count()[0] < 100
    finally:
        gc.enable()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_cycles_made_in_a_pause_are_still_collected() -> None:
    class Node:
        pass

    with collector.paused():
        node = Node()
        node.self = node  # type: ignore[attr-defined]
        del node
    assert gc.collect() >= 1
