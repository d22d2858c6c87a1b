"""The garbage collector's thresholds for a process that runs an engine worker.

CPython collects its youngest generation every 700 net allocations of container
objects, the middle one every 10 youngest collections, and the whole heap whenever
enough objects have survived into the oldest one. Runs in flight (their coroutines,
futures, models, step records) are exactly such survivors, so at a few thousand
concurrent runs full collections come every few hundred milliseconds and each one walks
every live object: in ``bench/engine.py`` (2,000 concurrent resumes) they took ~150 us
of the ~500 us of CPU per resume, and stopped the event loop for ~60 ms each time. A
first threshold of 10,000 keeps collecting cyclic garbage (every 10,000 allocations
instead of 700) while full collections become rare.

The middle generation's collections then walk everything that survived the youngest
ones, still mostly runs in flight: 2 of them, 31 ms in all, in the 2,000 resumes of
``bench/engine.py``, about a tenth of the phase's CPU with the youngest ones. A middle
threshold of 100 (every 1,000,000 allocations instead of 100,000) leaves them out of
such a burst; cyclic garbage that survived a youngest collection waits longer for the
middle one, and is still found by it.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000
"""The youngest generation's threshold a worker process runs with (at least)."""

GEN1_THRESHOLD = 100
"""The middle generation's threshold a worker process runs with (at least)."""


def tune_gc() -> None:
    """Raise the youngest and middle generations' thresholds to ``GEN0_THRESHOLD`` and
    ``GEN1_THRESHOLD``.

    Never lowers a threshold set higher, and leaves a disabled collector (first
    threshold 0) alone; the oldest generation's threshold is kept.
    """
    first, second, third = gc.get_threshold()
    if first == 0:
        return
    gc.set_threshold(max(first, GEN0_THRESHOLD), max(second, GEN1_THRESHOLD), third)
