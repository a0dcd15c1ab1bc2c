"""A worker thread that sleeps on a condition until work arrives and stops when asked.

The shared detector and the shadow each run one such thread beside the cameras; their own code says
what waiting work is and how to do it (``_run``), this says how they start and stop.
"""
from __future__ import annotations

import threading


class Worker:
    def __init__(self, name: str):
        self.thread_name = name
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def start(self):
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._worker.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Wake the thread and wait up to ``timeout`` for it to finish what it holds."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError
