"""Host batches built ahead of time in a background thread, so host work overlaps device compute.

The loop asks for the batch of step s; the prefetcher has by then usually built it (the task's
`host_batch`, then the transfer into the global batch array) while the device ran step s - 1, and
it starts on the next `depth` steps. Host batches are pure functions of the step, so prefetching
changes when a batch is built, never what it holds: resume and multi-process equivalence are
untouched. An exception raised while building the batch of step s surfaces when step s is asked
for, exactly as it would without prefetch.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any


class Prefetcher:
    """`get(step)` returns `make(step)`, computed up to `depth` steps ahead on one worker thread."""

    def __init__(self, make: Callable[[int], Any], num_steps: int, depth: int):
        if depth < 0:
            raise ValueError(f"prefetch depth {depth} must be >= 0.")
        self._make, self._num_steps, self._depth = make, num_steps, depth
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="host_batch")
            if depth
            else None
        )
        self._futures: dict[int, concurrent.futures.Future] = {}

    def get(self, step: int):
        if self._pool is None:
            return self._make(step)
        for s in range(step, min(step + self._depth + 1, self._num_steps)):
            if s not in self._futures:
                self._futures[s] = self._pool.submit(self._make, s)
        for s in [s for s in self._futures if s < step]:  # a jump (not used by the loop)
            self._futures.pop(s).cancel()
        return self._futures.pop(step).result()

    def close(self) -> None:
        if self._pool is not None:
            for f in self._futures.values():
                f.cancel()
            self._futures.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
