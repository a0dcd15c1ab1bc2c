"""Where the camera service's CPU goes: the process's CPU seconds, split by what its threads do.

Sizing a bureau's machine needs what a camera costs and why: reading its stream (demuxing and
decoding, ``camera-<id>`` threads), its pipeline (motion gate, tracker, rules: ``pipeline-<id>``),
the shared model (``shared-detector``) or storing evidence (``evidence-<n>``). Each thread's own CPU
clock says what it used. The totals only grow: a thread's CPU is added as it is read, so a camera
restarted (its threads replaced) loses at most what its old threads used since the last reading, and
that counts as ``other``: the process's CPU not used by a named thread (the service loop, the metrics
endpoint, library threads of their own).
"""
from __future__ import annotations

import threading
import time

PARTS = {"readers": "camera-", "pipelines": "pipeline-", "model": "shared-detector", "evidence": "evidence-"}


class CpuByPart:
    """The process's CPU seconds since it started, by part; safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clock_at_read: dict[threading.Thread, float] = {}  # each named thread's CPU clock at the last reading
        self._totals = dict.fromkeys([*PARTS, "other"], 0.0)

    def read(self) -> dict[str, float]:
        with self._lock:
            read: dict[threading.Thread, float] = {}
            for thread in threading.enumerate():
                part = next((part for part, prefix in PARTS.items() if thread.name.startswith(prefix)), None)
                if part is None or thread.ident is None:
                    continue
                try:
                    clock = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
                except OSError:  # it ended since it was listed
                    continue
                self._totals[part] += max(0.0, clock - self._clock_at_read.get(thread, 0.0))
                read[thread] = clock
            self._clock_at_read = read
            named = sum(self._totals[part] for part in PARTS)
            self._totals["other"] = max(self._totals["other"], time.process_time() - named)
            return dict(self._totals)
