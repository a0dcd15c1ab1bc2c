"""Wiring: one source's frames through detection, tracking, rules and evidence, in order."""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice

from nonsite.evidence import EvidenceSink, StoredPack
from nonsite.evidence.manifest import KEY_FRAMES
from nonsite.evidence.queue import EvidenceQueue, NotAccepted
from nonsite.ingest import Frame, FrameRing
from nonsite.rules import KeyFrame, RuleEngine, SiteConfig, Violation
from nonsite.vision import Detection, Detector, Tracker
from nonsite.vision.motion import MotionGate
from nonsite.vision.shared import FrameDropped

_EDGE = 0.03  # gating: a watched object this close to a rule's confidence threshold makes the model look again
_BLIND_PERIODS = 5  # a gap of this many sample periods (and at least _BLIND_MIN_S) between frames: the camera was away
_BLIND_MIN_S = 5.0

log = logging.getLogger(__name__)

PREFETCH_THREAD = "prefetch-"  # + the source's id: the thread reading a video or folder ahead of its pipeline


@dataclass
class RunSummary:
    frames: int = 0
    dropped: int = 0  # frames the shared model dropped unanswered (back-pressure): not analysed
    model_frames: int = 0  # frames the model looked at (fewer than frames with motion gating)
    detections: int = 0
    packs: list[StoredPack] = field(default_factory=list)
    detect_s: float = 0.0
    evidence_s: float = 0.0
    total_s: float = 0.0


def _batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    iterator = iter(frames)
    while batch := list(islice(iterator, size)):
        yield batch


def _prefetched(frames: Iterable[Frame], depth: int, name: str) -> Iterator[Frame]:
    """Decode the next frames on a helper thread while the model works on the current ones.

    The helper owns the source: when the consumer stops (done, an error, Ctrl-C) it signals the
    helper, which closes the source from its own thread and ends; the consumer waits for it, so
    no thread is left blocked with a source open."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def fill() -> None:
        try:
            for frame in frames:
                if not offer(frame):
                    break
        except BaseException as exc:  # handed to the consumer, which re-raises it
            offer(exc)
        finally:
            close = getattr(frames, "close", None)
            if close:
                close()
        offer(done)

    helper = threading.Thread(target=fill, name=name, daemon=True)
    helper.start()
    try:
        while (item := slots.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        helper.join(timeout=10)


def _in_frame_pixels(frame: Frame, found: list[Detection]) -> list[Detection]:
    """Boxes the model found on a sub-stream picture, in the main picture's pixels (zones, key frames)."""
    if frame.detect_image is None:
        return found
    (width, height), (small_h, small_w) = frame.size, frame.detect_image.shape[:2]
    return [d.scaled(width / small_w, height / small_h) for d in found]


class Pipeline:
    """Runs one ``SiteConfig``; several detectors' boxes are pooled before tracking."""

    def __init__(self, config: SiteConfig, detectors: list[Detector], sink: EvidenceSink, queue: EvidenceQueue | None = None):
        """With ``queue``, violations go to it (spooled, stored by its workers) and the frames never wait for
        evidence; ``run`` returns after the frames and ``summary.packs`` lists only packs stored inline."""
        self.config = config
        self.detectors = detectors
        self.sink = sink
        self.queue = queue
        self.tracker = Tracker(config.source.sample_fps, config.detection.tracker)
        self.engine = RuleEngine(config)
        # Key frames' full detections, for privacy copies, by (seq, capture time): a restarted stream
        # numbers its frames from 0 again, while a resumed episode's key frames keep the earlier run's numbers.
        self._seen: dict[tuple[int, datetime], list[Detection]] = {}
        self.watched_classes = {name for rule in config.rules for name in rule.classes}
        motion = config.detection.motion
        self.gate = MotionGate(motion) if motion else None
        self._last_looked: list[Detection] = []  # gating: what the model found the last time it looked
        self._model_frames = 0
        self.raised = 0  # violations handed to evidence
        # Streams and videos keep their recent frames for the packs' clips; a folder's pictures are no video.
        window_s = config.evidence.clip_before_s + config.evidence.clip_max_s
        self.ring = FrameRing(window_s) if config.source.kind in ("stream", "video") else None

    def run(self, frames: Iterable[Frame], on_frame=None) -> RunSummary:
        summary = RunSummary()
        started = time.perf_counter()
        model_frames_before = self._model_frames
        live = self.config.source.kind == "stream"
        batch_size = 1 if live else max(d.batch for d in self.detectors)
        source = frames if live else _prefetched(frames, depth=2 * batch_size, name=f"{PREFETCH_THREAD}{self.config.source.id}")
        with closing(source) if not live else nullcontext():  # stops the prefetch helper on any exit
            self._run_batches(source, batch_size, summary, on_frame)
        if not live:  # a file ended: finish what waits for its last-seen frame. A live camera's open
            self._store(self.engine.flush(), summary)  # episodes are not over: the service saves and resumes them
        summary.model_frames = self._model_frames - model_frames_before
        summary.total_s = time.perf_counter() - started
        return summary

    def _run_batches(self, source: Iterable[Frame], batch_size: int, summary: RunSummary, on_frame) -> None:
        if self.gate is None:
            batches = ([(frame, True) for frame in batch] for batch in _batches(source, batch_size))
        else:
            batches = self._gated_batches(source)
        for batch in batches:
            detect_started = time.perf_counter()
            try:
                per_frame = self._detect_looked(batch)
            except FrameDropped:  # the shared model had newer frames waiting: these are skipped, as a live camera's are
                summary.dropped += len(batch)
                continue
            summary.detect_s += time.perf_counter() - detect_started
            for (frame, looked), detections in zip(batch, per_frame):
                self._note_gap(frame)
                if self.ring is not None:
                    self.ring.add(frame)
                self._remember(frame, detections)
                watched = [d for d in detections if d.is_one_of(self.watched_classes)]
                tracked = self.tracker.update(watched, frame.size, repeated=not looked)
                summary.frames += 1
                summary.detections += len(detections)
                self._store(self.engine.update(frame, tracked), summary)
                self._forget_unheld()
                if on_frame:
                    on_frame(frame)

    def _note_gap(self, frame: Frame) -> None:
        """A long gap between two frames means the camera was away (an outage, a restart): the rules
        must not count it as time in which a parked car could have been seen and was not."""
        last = self.engine.watched_until  # the last frame, or the end of the time resumed episodes were away
        if last is None:
            return
        limit = max(_BLIND_MIN_S, _BLIND_PERIODS / self.config.source.sample_fps)
        if (frame.captured_at - last).total_seconds() > limit:
            self.engine.camera_blind(last, frame.captured_at)

    def _gated_batches(self, frames: Iterable[Frame]) -> Iterator[list[tuple[Frame, bool]]]:
        """Frames in order, one at a time, with the gate's verdict.

        The verdict on a frame depends on the model's answer on the last frame it looked at (a
        declined frame takes that answer; an answer on the edge of a threshold makes the gate look
        again), so each frame is judged only after that answer is in: gated frames go to the model
        one by one. Batching across frames is for files without gating; a camera service batches
        across cameras instead (``SharedDetector``)."""
        for frame in frames:
            yield [(frame, self.gate.look(frame.model_image, frame.captured_at, self._on_edge()))]

    def _on_edge(self) -> bool:
        """Whether the model's last answer had an object a rule judges (in its zone, or continuing its
        subject) within ``_EDGE`` of the rule's confidence threshold."""
        return self.engine.in_doubt(self._last_looked, _EDGE)

    def _detect_looked(self, batch: list[tuple[Frame, bool]]) -> list[list[Detection]]:
        """The model's detections on the frames it looks at; on the others (motion gating), those of
        the frame it last looked at: nothing moved, so whatever stood still is where it was, and the
        tracker and the dwell clocks carry on as if the model had looked."""
        found = iter(self._detect([frame for frame, look in batch if look]))
        per_frame = []
        for _, look in batch:
            if look:
                self._last_looked = next(found)
            per_frame.append(list(self._last_looked))
        return per_frame

    def _remember(self, frame: Frame, detections: list[Detection]) -> None:
        self._seen[frame.seq, frame.captured_at] = detections

    def _forget_unheld(self) -> None:
        """Keep the detections of the frames open episodes hold as key frames, and nothing else: a
        camera's memory stays bounded by its open episodes, not by how long it has run."""
        held = self.engine.held_frames()
        for key in [key for key in self._seen if key not in held]:
            del self._seen[key]

    def _detections_of(self, key: KeyFrame) -> list[Detection]:
        """What was detected on a key frame; one not remembered (an episode resumed after a restart) is detected again."""
        found = self._seen.get((key.frame.seq, key.frame.captured_at))
        return found if found is not None else self._detect([key.frame])[0]

    def _detect(self, batch: list[Frame]) -> list[list[Detection]]:
        if not batch:
            return []
        self._model_frames += len(batch)
        images = [f.model_image for f in batch]
        pooled: list[list[Detection]] = [[] for _ in batch]
        for detector in self.detectors:
            for slot, found in zip(pooled, detector.detect(images)):
                slot.extend(found)
        return [_in_frame_pixels(frame, found) for frame, found in zip(batch, pooled)]

    def _with_clip(self, violation: Violation) -> Violation:
        """The violation with the camera's frames from ``clip_before_s`` before first seen through last seen."""
        if self.ring is None:
            return violation
        start = violation.first_seen.at - timedelta(seconds=self.config.evidence.clip_before_s)
        return replace(violation, clip=self.ring.clip(start, violation.last_seen.at))

    def _store(self, violations: list[Violation], summary: RunSummary) -> None:
        """Hand violations to the queue (their key frames' detections resolved here: the memory of recent
        frames is this thread's); inline through the sink without a queue, or when the queue refuses
        one (full or stopped): slower, but a violation is never dropped."""
        started = time.perf_counter()
        for violation in map(self._with_clip, violations):
            self.raised += 1
            log.info("camera %s: violation %s in zone %s, dwell %.0f s: raising a pack", violation.source_id, violation.rule.id,
                     violation.zone.id, violation.dwell_s)
            if self.queue is not None:
                detections = {name: self._detections_of(getattr(violation, name)) for name in KEY_FRAMES}
                try:
                    self.queue.accept(violation, self.config.evidence, detections)
                    continue
                except NotAccepted:
                    pass
            summary.packs.append(self.sink.submit(violation, self.config.evidence, self._detections_of))
        summary.evidence_s += time.perf_counter() - started
