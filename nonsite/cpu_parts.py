"""Where the camera service's CPU goes: the process's CPU seconds, split by what its threads do.

Sizing a bureau's machine needs what a camera costs and why: reading its source (a stream's demuxing
and decoding, a video or folder camera's reading), its pipeline (motion gate, tracker, rules), the
shared model, a model version in shadow, or evidence (the queue's workers, the outbox and spool
shippers). The service says which of its threads is which part by the prefixes of their names, each
defined where its threads start (``nonsite.fleet.THREAD_PARTS``), so a thread renamed there stays in
its part. Each thread's own CPU clock says what it used. The totals only grow: a thread's CPU is added
as it is read, so a camera restarted (its threads replaced) loses at most what its old threads used
since the last reading, and that counts as ``other``: the process's CPU not used by a named thread
(start-up, the service loop, the metrics endpoint, library threads of their own).

A thread's clock is read by its kernel thread id (Linux's per-thread CPU clock id), not through
``pthread_getcpuclockid``: a thread that ends between being listed and being read then gives an
error instead of a read through its freed descriptor.
"""
from __future__ import annotations

import threading
import time

Parts = dict[str, tuple[str, ...]]  # a part's name -> the prefixes of its threads' names


def _thread_clock(native_id: int) -> int:
    """Linux's CPU clock id of a thread of this process (``MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)``)."""
    return (~native_id << 3) | 6


class CpuByPart:
    """The process's CPU seconds since it started, by part; safe to read from any thread."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self._lock = threading.Lock()
        self._clock_at_read: dict[threading.Thread, float] = {}  # each named thread's CPU clock at the last reading
        self._totals = dict.fromkeys([*parts, "other"], 0.0)

    def read(self) -> dict[str, float]:
        with self._lock:
            read: dict[threading.Thread, float] = {}
            for thread in threading.enumerate():
                part = next((part for part, prefixes in self.parts.items() if thread.name.startswith(prefixes)), None)
                if part is None or thread.native_id is None:
                    continue
                try:
                    clock = time.clock_gettime(_thread_clock(thread.native_id))
                except OSError:  # it ended since it was listed
                    continue
                self._totals[part] += max(0.0, clock - self._clock_at_read.get(thread, 0.0))
                read[thread] = clock
            self._clock_at_read = read
            named = sum(self._totals[part] for part in self.parts)
            self._totals["other"] = max(self._totals["other"], time.process_time() - named)
            return dict(self._totals)
