"""The benchmarks' measuring helpers: medians of interleaved runs after a warm-up, and peak memory."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence


def median_times(fns: Sequence[Callable[[], object]], repeats: int,
                 clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Median time of each fn() over `repeats` rounds on `clock`, after one warm-up call of each.

    The functions take turns within a round, so a machine that gets busier slows them alike.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times, strict=True):
            start = clock()
            fn()
            bucket.append(clock() - start)
    return [statistics.median(t) for t in times]


def peak_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
