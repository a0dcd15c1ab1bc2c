"""One model instance for every camera of a service: frames are detected in batches across cameras.

A bureau's cameras each need the model about once a second; loading the model once per camera
costs memory per camera and runs batch-of-one inferences. Here every camera hands the frames it
wants detected to one ``SharedDetector``: a worker collects what is waiting (up to ``max_batch``,
waiting at most ``gather_s`` for a batch to fill), runs each model once on the whole batch, and
answers each camera through a future (as Frigate's detector process serves its cameras).

The queue is bounded: when frames arrive faster than the model can look, the OLDEST waiting frame
is dropped, counted against its camera, and its future fails with ``FrameDropped``; a live camera
only ever wants its newest frame, and a backlog would make every answer late.
"""
from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from .detection import Detection
from .worker import Worker

SHARED_DETECTOR_THREAD = "shared-detector"


class FrameDropped(RuntimeError):
    """The frame waited while newer ones arrived and was dropped unanswered (back-pressure)."""


@dataclass
class _Waiting:
    camera: str
    image: np.ndarray
    future: Future = field(default_factory=Future)


@dataclass
class DetectorStats:
    """What the shared model did: frames per camera asked, answered and dropped; batches and their sizes."""

    submitted: Counter = field(default_factory=Counter)
    detected: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    batches: int = 0
    batched_frames: int = 0
    model_s: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.batched_frames / self.batches if self.batches else 0.0


class SharedDetector(Worker):
    def __init__(self, detectors: Sequence, capacity: int = 32, max_batch: int = 8, gather_s: float = 0.02):
        super().__init__(SHARED_DETECTOR_THREAD)
        self.detectors = list(detectors)
        self.capacity = capacity
        self.max_batch = max_batch
        self.gather_s = gather_s
        self.stats = DetectorStats()
        self.shadows: dict[str, object] = {}  # model name -> a ``vision.shadow.ShadowRunner`` shown that model's answers
        self._waiting: deque[_Waiting] = deque()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in hand; frames still waiting are answered with ``FrameDropped``."""
        super().stop(timeout)
        with self._ready:
            while self._waiting:
                self._waiting.popleft().future.set_exception(FrameDropped("the detector stopped"))

    def submit(self, camera: str, image: np.ndarray) -> Future:
        """Queue a frame; the future gives its detections from every model. Never blocks."""
        item = _Waiting(camera, image)
        with self._ready:
            if self._stop.is_set():
                item.future.set_exception(FrameDropped("the detector stopped"))
                return item.future
            self.stats.submitted[camera] += 1
            if len(self._waiting) >= self.capacity:
                oldest = self._waiting.popleft()
                self.stats.dropped[oldest.camera] += 1
                oldest.future.set_exception(FrameDropped(f"{oldest.camera}: dropped, {self.capacity} newer frames were waiting"))
            self._waiting.append(item)
            self._ready.notify()
        return item.future

    def pending(self) -> int:
        with self._ready:
            return len(self._waiting)

    def _gather(self) -> list[_Waiting]:
        """The frames for the next batch: wait for one, then give others ``gather_s`` to join it."""
        with self._ready:
            while not self._waiting and not self._stop.is_set():
                self._ready.wait(0.5)
            if self._stop.is_set():
                return []
            deadline = time.monotonic() + self.gather_s
            while len(self._waiting) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                self._ready.wait(left)
            return [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._gather()
            if batch:
                self._detect(batch)

    def _detect(self, batch: list[_Waiting]) -> None:
        started = time.perf_counter()
        try:
            pooled: list[list[Detection]] = [[] for _ in batch]
            for detector in self.detectors:  # each model once per batch, across cameras
                answers = detector.detect([item.image for item in batch])
                for slot, found in zip(pooled, answers):
                    slot.extend(found)
                if (shadow := self.shadows.get(detector.name)) is not None and not self._waiting:  # only while the live model keeps up
                    for item, found in zip(batch, answers):
                        shadow.offer(item.camera, item.image, found, detector.weights_sha256)
        except Exception as exc:  # the cameras hear of it; the worker carries on with the next batch
            for item in batch:
                item.future.set_exception(exc)
            return
        with self._ready:  # the counters are read by status pages from other threads
            self.stats.model_s += time.perf_counter() - started
            self.stats.batches += 1
            self.stats.batched_frames += len(batch)
            self.stats.detected.update(item.camera for item in batch)
        for item, found in zip(batch, pooled):
            item.future.set_result(found)

    def for_camera(self, camera: str) -> "CameraDetector":
        """What one camera's pipeline calls in place of its own model."""
        return CameraDetector(self, camera)


class CameraDetector:
    """One camera's view of the shared model: ``detect`` queues the camera's frames and waits for
    the answers, so the camera's pipeline code is the same with a shared model as with its own.
    ``latencies_s`` keeps the recent waits (queue plus model), for the camera's health."""

    batch = 1  # a live camera hands over one frame at a time; the batching happens across cameras

    def __init__(self, shared: SharedDetector, camera: str, remembered: int = 50):
        self.shared = shared
        self.camera = camera
        self.latencies_s: deque[float] = deque(maxlen=remembered)

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections per image; raises ``FrameDropped`` when the shared queue dropped one of them."""
        started = time.perf_counter()
        futures = [self.shared.submit(self.camera, image) for image in images]
        found = [future.result() for future in futures]
        self.latencies_s.append(time.perf_counter() - started)
        return found

    def mean_latency_ms(self) -> float | None:
        recent = list(self.latencies_s)
        return 1000 * sum(recent) / len(recent) if recent else None
