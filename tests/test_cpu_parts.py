"""The camera service's CPU by part: each thread's CPU lands in the part its name says, as the fleet names it."""
from __future__ import annotations

import threading
import time

from nonsite.cpu_parts import CpuByPart
from nonsite.fleet import THREAD_PARTS
from nonsite.ingest.stream import READER_THREAD
from nonsite.vision.shared import SHARED_DETECTOR_THREAD


def _busy(seconds: float, started: threading.Event, release: threading.Event) -> None:
    """Spend ``seconds`` of this thread's own CPU, then wait (alive, so it can be read) until released."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(1000))
    started.set()
    release.wait(10)


def test_each_threads_cpu_lands_in_the_part_its_name_says():
    parts = CpuByPart(THREAD_PARTS)
    before = parts.read()
    release = threading.Event()
    threads, done = [], []
    for name, seconds in ((f"{READER_THREAD}cam-1", 0.3), (SHARED_DETECTOR_THREAD, 0.2), ("somebody-else", 0.25)):
        done.append(threading.Event())
        threads.append(threading.Thread(target=_busy, args=(seconds, done[-1], release), name=name, daemon=True))
        threads[-1].start()
    try:
        assert all(event.wait(30) for event in done)
        after = parts.read()
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
    grown = {part: after[part] - before[part] for part in after}
    # Lower bounds only: threads of earlier tests still winding down may add to any part.
    assert grown["readers"] >= 0.3 and grown["model"] >= 0.2, grown
    assert grown["other"] >= 0.25, grown  # a thread of no part's name
    assert all(value >= after[part] for part, value in parts.read().items())  # the totals only grow, the threads gone
