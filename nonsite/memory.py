"""Native memory of a long-running process under glibc: fewer malloc arenas, and free pages handed back.

The camera service decodes, converts and batches frames on many threads. glibc gives each
contending thread its own malloc arena (up to 8 per core) and keeps freed memory in them, so the
resident size creeps up for tens of minutes while Python's own heap stays flat (the soak measured
237 MB of Python objects in a 2.8 GB process). Two arenas and a ``malloc_trim`` every so often keep
what was freed from staying resident. A no-op where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt's parameter number for the arena cap (malloc.h)
ARENAS = 2
TRIM_EVERY_S = 60.0


def _glibc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


class NativeMemory:
    """Cap the arenas once, at start, before the threads; then ``tick()`` from the service loop trims."""

    def __init__(self):
        self._libc = _glibc()
        self._trimmed = time.monotonic()
        if self._libc is not None and self._libc.mallopt(M_ARENA_MAX, ARENAS) == 1:
            log.info("malloc: at most %d arenas, trimmed every %.0f s", ARENAS, TRIM_EVERY_S)

    def tick(self) -> None:
        if self._libc is not None and time.monotonic() - self._trimmed >= TRIM_EVERY_S:
            self._trimmed = time.monotonic()
            self._libc.malloc_trim(0)
