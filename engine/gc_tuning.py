"""The garbage collector's thresholds for a process that runs an engine worker.

CPython collects its youngest generation every 700 net allocations of container
objects, and the whole heap whenever enough objects have survived into the oldest one.
Runs in flight (their coroutines, futures, models, step records) are exactly such
survivors, so at a few thousand concurrent runs full collections come every few hundred
milliseconds and each one walks every live object: in ``bench/engine.py`` (2,000
concurrent resumes) they took ~150 us of the ~500 us of CPU per resume, and stopped the
event loop for ~60 ms each time. A first threshold of 10,000 keeps collecting cyclic
garbage (every 10,000 allocations instead of 700) while full collections become rare.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000
"""The youngest generation's threshold a worker process runs with (at least)."""


def tune_gc() -> None:
    """Raise the youngest generation's threshold to ``GEN0_THRESHOLD``.

    Never lowers a threshold set higher, and leaves a disabled collector (threshold 0)
    alone; the older generations' thresholds are kept.
    """
    first, second, third = gc.get_threshold()
    if 0 < first < GEN0_THRESHOLD:
        gc.set_threshold(GEN0_THRESHOLD, second, third)
