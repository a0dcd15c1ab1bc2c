"""Wiring: one source's frames through detection, tracking, rules and evidence, in order."""
from __future__ import annotations

import queue
from collections import OrderedDict
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from nonsite.evidence import EvidenceSink, StoredPack
from nonsite.ingest import Frame
from nonsite.rules import KeyFrame, RuleEngine, SiteConfig, Violation
from nonsite.vision import Detection, Detector, Tracker

_REMEMBERED_FRAMES = 3600  # an hour at 1 fps: covers key frames of any sensible dwell


@dataclass
class RunSummary:
    frames: int = 0
    detections: int = 0
    packs: list[StoredPack] = field(default_factory=list)
    detect_s: float = 0.0
    evidence_s: float = 0.0
    total_s: float = 0.0


def _batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    iterator = iter(frames)
    while batch := list(islice(iterator, size)):
        yield batch


def _prefetched(frames: Iterable[Frame], depth: int) -> Iterator[Frame]:
    """Decode the next frames on a helper thread while the model works on the current ones."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def fill() -> None:
        try:
            for frame in frames:
                slots.put(frame)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            slots.put(exc)
        slots.put(done)

    threading.Thread(target=fill, name="prefetch", daemon=True).start()
    while (item := slots.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


class Pipeline:
    """Runs one ``SiteConfig``; several detectors' boxes are pooled before tracking."""

    def __init__(self, config: SiteConfig, detectors: list[Detector], sink: EvidenceSink):
        self.config = config
        self.detectors = detectors
        self.sink = sink
        self.tracker = Tracker(config.source.sample_fps, config.detection.tracker)
        self.engine = RuleEngine(config)
        self._seen: OrderedDict[int, list[Detection]] = OrderedDict()  # recent frames' full detections, for privacy copies
        self.watched_classes = {name for rule in config.rules for name in rule.classes}

    def run(self, frames: Iterable[Frame], on_frame=None) -> RunSummary:
        summary = RunSummary()
        started = time.perf_counter()
        live = self.config.source.kind == "stream"
        batch_size = 1 if live else max(d.batch for d in self.detectors)
        source = frames if live else _prefetched(frames, depth=2 * batch_size)
        for batch in _batches(source, batch_size):
            detect_started = time.perf_counter()
            per_frame = self._detect(batch)
            summary.detect_s += time.perf_counter() - detect_started
            for frame, detections in zip(batch, per_frame):
                self._remember(frame.seq, detections)
                watched = [d for d in detections if d.is_one_of(self.watched_classes)]
                tracked = self.tracker.update(watched, frame.image)
                summary.frames += 1
                summary.detections += len(detections)
                self._store(self.engine.update(frame, tracked), summary)
                if on_frame:
                    on_frame(frame)
        self._store(self.engine.flush(), summary)
        summary.total_s = time.perf_counter() - started
        return summary

    def _remember(self, seq: int, detections: list[Detection]) -> None:
        self._seen[seq] = detections
        while len(self._seen) > _REMEMBERED_FRAMES:
            self._seen.popitem(last=False)

    def _detections_of(self, key: KeyFrame) -> list[Detection]:
        """What was detected on a key frame; frames older than the memory are detected again."""
        found = self._seen.get(key.frame.seq)
        return found if found is not None else self._detect([key.frame])[0]

    def _detect(self, batch: list[Frame]) -> list[list[Detection]]:
        images = [f.image for f in batch]
        pooled: list[list[Detection]] = [[] for _ in batch]
        for detector in self.detectors:
            for slot, found in zip(pooled, detector.detect(images)):
                slot.extend(found)
        return pooled

    def _store(self, violations: list[Violation], summary: RunSummary) -> None:
        started = time.perf_counter()
        for violation in violations:
            summary.packs.append(self.sink.submit(violation, self.config.evidence, self._detections_of))
        summary.evidence_s += time.perf_counter() - started
