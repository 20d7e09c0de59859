"""The garbage collector's settings for a long-running node.

A node holding thousands of station connections keeps hundreds of thousands of long-lived
objects, and CPython's full collection walks all of them with the event loop stopped: 0.3-0.5 s
at 5,000 stations, measured, long enough to show in every station's p99. Two settings, applied
once the node has started:

* everything allocated while starting (modules, mapped classes, compiled schemas and
  statements) is frozen: it lives as long as the process, and no full collection walks it again;
* the youngest generation is collected after `gen0_threshold` allocations instead of CPython's
  700: a message's objects (payload dicts, futures, result rows) live for the few milliseconds
  its answer takes, and with 700 they are promoted to the old generations while still in use,
  which is what fills those generations and sets off the full collections.

Reference counting still frees almost everything at once; only objects in reference cycles wait
for a collection, and a younger collection of 50,000 objects takes a few milliseconds.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def tune_collector(gen0_threshold: int = GEN0_THRESHOLD) -> None:
    """Freeze what startup allocated and collect the youngest generation less often."""
    if gen0_threshold < 1:
        raise ValueError(f"gen0_threshold must be at least 1, got {gen0_threshold}")
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
