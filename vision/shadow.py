"""Shadow mode: a candidate model looks at the live cameras beside the current one and raises nothing.

The promotion gate judges a candidate on pictures officers already decided, and those are the
pictures the current model raised packs on. What the candidate would see that the current model
never raised, or would miss that it did, shows only on live cameras. Here the current model's
answers for a camera's frame are handed to a ``ShadowRunner`` together with the frame; the
candidate looks at the same frame in its own thread, and where the two disagree (an object one of
them sees and the other does not, or sees as another class) the frame and both sets of boxes go to
the ``ShadowBook`` for officers to judge. Officers' judgements join the site evaluation set.

The shadow must never slow the cameras: it is offered frames only while the live model has nothing
waiting, takes at most one frame per camera every ``every_s`` seconds and keeps only the newest
waiting frame of each camera. A disagreement the camera showed recently (a parked car one model
sees and the other does not) is counted, not recorded again, and a camera records at most
``per_camera_hour`` disagreements an hour, so officers are not handed the same street all day.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from datetime import datetime, timezone

import cv2
import numpy as np

from .detection import Detection, box_iou
from .shadow_book import Disagreement, ShadowBook, ShadowBox
from .worker import Worker

log = logging.getLogger("nonsite.shadow")

SHADOW_THREAD = "shadow-"  # + model and version: a candidate's thread, and the fleet's thread loading one

MATCH_IOU = 0.5
_SIGNATURE_GRID = 32  # pixels: boxes this close count as the same disagreement again
_REMEMBERED = 8  # recent disagreements per camera a new one is compared with


def compare(current: Sequence[Detection], candidate: Sequence[Detection], iou: float = MATCH_IOU) -> list[ShadowBox]:
    """Every object of the violation families either model saw: pairs of the same class overlapping by
    ``iou`` or more are seen by both (the most overlapping first); the rest by one model only."""
    current = [d for d in current if d.categories]
    candidate = [d for d in candidate if d.categories]
    pairs = sorted(((box_iou(a.box, b.box), i, j) for i, a in enumerate(current) for j, b in enumerate(candidate)
                    if a.class_name == b.class_name), reverse=True)
    matched_current: dict[int, int] = {}
    matched_candidate: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < iou:
            break
        if i not in matched_current and j not in matched_candidate:
            matched_current[i] = j
            matched_candidate.add(j)
    boxes = []
    for i, d in enumerate(current):
        j = matched_current.get(i)
        boxes.append(ShadowBox(_rounded(d.box), d.class_name, "both" if j is not None else "current", d.categories, round(d.confidence, 3),
                               round(candidate[j].confidence, 3) if j is not None else None))
    boxes += [ShadowBox(_rounded(d.box), d.class_name, "candidate", d.categories, None, round(d.confidence, 3))
              for j, d in enumerate(candidate) if j not in matched_candidate]
    return boxes


def _rounded(box) -> tuple[float, float, float, float]:
    return tuple(round(float(v), 1) for v in box)


def _signature(boxes: list[ShadowBox]) -> frozenset:
    return frozenset((b.class_name, b.seen_by, *(round(v / _SIGNATURE_GRID) for v in b.box)) for b in boxes if b.seen_by != "both")


class ShadowRunner(Worker):
    """One candidate version of one model, in shadow beside the current version on every camera."""

    def __init__(self, detector, version: int, book: ShadowBook, every_s: float = 30.0, per_camera_hour: int = 6):
        super().__init__(f"{SHADOW_THREAD}{detector.name}-v{version}")
        self.detector = detector
        self.version = version
        self.book = book
        self.every_s = every_s
        self.per_camera_hour = per_camera_hour
        self.counts: Counter = Counter()  # compared, agreed, recorded, repeated, over_hourly, not_kept, failed
        self._last_taken: dict[str, float] = {}
        self._recent: dict[str, deque[frozenset]] = {}  # camera -> signatures of its latest disagreements
        self._recorded_at: dict[str, deque[float]] = {}  # camera -> when its disagreements of the last hour were recorded
        self._waiting: dict[str, tuple[np.ndarray, list[Detection], str]] = {}  # camera -> its newest frame not yet looked at

    @property
    def model(self) -> str:
        return self.detector.name

    def start(self) -> "ShadowRunner":
        log.info("shadow: %s v%d runs beside the current model, one frame per camera every %.0f s", self.model, self.version, self.every_s)
        return super().start()

    def offer(self, camera: str, image: np.ndarray, current: list[Detection], current_weights_sha256: str) -> None:
        """The current model's answer for a camera's frame; taken when the camera is due. Never blocks on the model."""
        now = time.monotonic()
        with self._ready:
            if now - self._last_taken.get(camera, -1e9) < self.every_s:
                return
            self._last_taken[camera] = now
            self._waiting[camera] = (image, list(current), current_weights_sha256)
            self._ready.notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._ready:
                while not self._waiting and not self._stop.is_set():
                    self._ready.wait(0.5)
                if self._stop.is_set():
                    return
                camera = next(iter(self._waiting))
                image, current, current_weights = self._waiting.pop(camera)
            try:
                self._compare(camera, image, current, current_weights)
            except Exception:  # a shadow's failure is its own: the cameras never hear of it
                self.counts["failed"] += 1
                log.exception("shadow: %s v%d failed on a frame of camera %s", self.model, self.version, camera)

    def _compare(self, camera: str, image: np.ndarray, current: list[Detection], current_weights: str) -> None:
        boxes = compare(current, self.detector.detect([image])[0])
        self.counts["compared"] += 1
        signature = _signature(boxes)
        if not signature:
            self.counts["agreed"] += 1
            return
        recent = self._recent.setdefault(camera, deque(maxlen=_REMEMBERED))
        if signature in recent:
            self.counts["repeated"] += 1
            return
        hour = self._recorded_at.setdefault(camera, deque())
        while hour and time.monotonic() - hour[0] > 3600:
            hour.popleft()
        if len(hour) >= self.per_camera_hour:
            self.counts["over_hourly"] += 1
            return
        recent.append(signature)
        hour.append(time.monotonic())
        jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        digest = hashlib.sha256(jpeg).hexdigest()
        record = Disagreement(digest[:20], self.model, self.version, self.detector.weights_sha256, camera,
                              datetime.now(timezone.utc).isoformat(timespec="seconds"), digest, (image.shape[1], image.shape[0]), tuple(boxes),
                              current_weights_sha256=current_weights)
        if self.book.record(record, jpeg):
            self.counts["recorded"] += 1
            log.info("shadow: %s v%d disagrees with the current model on camera %s (%d boxes disputed)", self.model, self.version, camera,
                     sum(b.seen_by != "both" for b in boxes))
        else:
            self.counts["not_kept"] += 1  # the same picture again, or the book is full
