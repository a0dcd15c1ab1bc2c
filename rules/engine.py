"""Turn tracked detections into violations: zone membership, dwell clocks, windows, cooldowns.

One ``_ZoneWatch`` per (rule, zone). A parking watch follows each vehicle as its own subject;
spill-over and construction watches treat the zone itself (the shop, the site) as the subject,
so five chairs outside one shop make one pack, not five.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from nonsite.ingest import Frame
from nonsite.vision import Detection, box_iou

from .config import RuleSpec, SiteConfig, ZoneSpec
from .violation import KeyFrame, TrackPoint, Violation
from .windows import is_active
from .zones import contains, distance

_REASSOCIATE_IOU = 0.3
_REASSOCIATE_DIAGONALS = 0.5
_SAME_PLACE_IOU = 0.5


@dataclass
class _Subject:
    """One watched thing and the state of its current episode in the zone."""

    track_ids: set[int] = field(default_factory=set)
    last: KeyFrame | None = None
    in_streak: int = 0
    out_streak: int = 0
    streak_start: KeyFrame | None = None
    inside: bool = False
    dwell_from: KeyFrame | None = None
    anchor: tuple[float, float] | None = None
    threshold: KeyFrame | None = None
    raised: bool = False
    paused: bool = False  # outside the rule's windows: the clock restarts when they open
    track: list[TrackPoint] = field(default_factory=list)

    @property
    def last_seen_at(self) -> datetime:
        assert self.last is not None
        return self.last.at

    def start_dwell(self, key: KeyFrame) -> None:
        self.dwell_from = key
        self.anchor = _centre(key.subject)


def _centre(detections: tuple[Detection, ...]) -> tuple[float, float]:
    xs = [d.centre[0] for d in detections]
    ys = [d.centre[1] for d in detections]
    return sum(xs) / len(xs), sum(ys) / len(ys)


class _ZoneWatch:
    def __init__(self, rule: RuleSpec, zone: ZoneSpec, timezone: ZoneInfo):
        self.rule = rule
        self.zone = zone
        self.timezone = timezone
        self.subjects: list[_Subject] = []
        self.recent: list[tuple[datetime, tuple[float, float, float, float]]] = []

    # -- association -------------------------------------------------------------------------
    def update(self, frame: Frame, detections: list[Detection]) -> list[Violation]:
        wanted = [
            d for d in detections if d.is_one_of(self.rule.classes) and d.confidence >= self.rule.min_confidence
        ]
        observed: dict[int, tuple[Detection, ...]] = {}
        if self.rule.per_object:
            self._associate(wanted, observed)
        else:
            inside = tuple(d for d in wanted if contains(self.zone.polygon, d.bottom_centre))
            if inside:
                if not self.subjects:
                    self.subjects.append(_Subject())
                observed[id(self.subjects[0])] = inside
        finished: list[Violation] = []
        for subject in list(self.subjects):
            seen = observed.get(id(subject))
            if seen is not None:
                finished.extend(self._observe(subject, KeyFrame(frame, seen)))
            elif (frame.captured_at - subject.last_seen_at).total_seconds() > self.rule.grace_s:
                finished.extend(self._end_episode(subject))
                self.subjects.remove(subject)
        return finished

    def _associate(self, detections: list[Detection], observed: dict[int, tuple[Detection, ...]]) -> None:
        """Match by track id first; what is left continues a lost subject nearby, or starts one."""
        by_track = {t: s for s in self.subjects for t in s.track_ids}
        unmatched = []
        for detection in detections:
            subject = by_track.get(detection.track_id) if detection.track_id is not None else None
            if subject is not None and id(subject) not in observed:
                observed[id(subject)] = (detection,)
            else:
                unmatched.append(detection)
        for detection in unmatched:
            subject = self._lost_subject_near(detection, observed) or self._new_subject(detection)
            if subject is not None:
                if detection.track_id is not None:
                    subject.track_ids.add(detection.track_id)
                observed[id(subject)] = (detection,)

    def _lost_subject_near(self, detection: Detection, observed: dict[int, tuple[Detection, ...]]) -> _Subject | None:
        """An id switch or a short occlusion must not reset a parked car's clock."""
        for subject in self.subjects:
            if id(subject) in observed:
                continue
            previous = subject.last.subject[0]
            near = distance(previous.centre, detection.centre) <= _REASSOCIATE_DIAGONALS * previous.diagonal
            if near or box_iou(previous.box, detection.box) >= _REASSOCIATE_IOU:
                return subject
        return None

    def _new_subject(self, detection: Detection) -> _Subject | None:
        if not contains(self.zone.polygon, detection.bottom_centre):
            return None
        subject = _Subject()
        self.subjects.append(subject)
        return subject

    # -- one subject's episode -----------------------------------------------------------------
    def _observe(self, subject: _Subject, key: KeyFrame) -> list[Violation]:
        now = key.at
        subject.last = key
        subject.track.extend(TrackPoint(now, d.box, d.track_id) for d in key.subject)
        inside = self.rule.per_object is False or contains(self.zone.polygon, key.subject[0].bottom_centre)
        if inside:
            subject.in_streak, subject.out_streak = subject.in_streak + 1, 0
            if subject.in_streak == 1:
                subject.streak_start = key
            if not subject.inside and subject.in_streak >= self.zone.inertia:
                subject.inside = True
                subject.start_dwell(subject.streak_start or key)
        else:
            subject.out_streak, subject.in_streak = subject.out_streak + 1, 0
            if subject.inside and subject.out_streak >= self.zone.inertia:
                return self._end_episode(subject)
        if not subject.inside:
            return []
        if not subject.raised:
            self._restart_clock_if_needed(subject, key)
            if not subject.paused and (now - subject.dwell_from.at).total_seconds() >= self.rule.dwell_s:
                subject.raised = True
                if not self._in_cooldown(now, key):
                    subject.threshold = key
                    self.recent.append((now, key.subject[0].box))
        if subject.threshold is not None and (now - subject.threshold.at).total_seconds() >= self.rule.hold_s:
            return [self._finish(subject)]
        return []

    def _restart_clock_if_needed(self, subject: _Subject, key: KeyFrame) -> None:
        """Dwell only counts while the rule is active and (for parking) while the vehicle stands still."""
        local = key.at.astimezone(self.timezone)
        if not is_active(local, self.rule.windows, self.rule.except_windows):
            subject.paused = True
        elif subject.paused:
            subject.paused = False
            subject.start_dwell(key)
        elif self.rule.per_object:
            moved = distance(subject.anchor, _centre(key.subject))
            if moved > self.rule.max_motion * key.subject[0].diagonal:
                subject.start_dwell(key)

    def _in_cooldown(self, now: datetime, key: KeyFrame) -> bool:
        self.recent = [(t, b) for t, b in self.recent if (now - t).total_seconds() < self.rule.cooldown_s]
        if not self.rule.per_object:
            return bool(self.recent)
        return any(box_iou(b, key.subject[0].box) >= _SAME_PLACE_IOU for _, b in self.recent)

    def _finish(self, subject: _Subject) -> Violation:
        violation = Violation(self.rule, self.zone, subject.dwell_from, subject.threshold, subject.last, tuple(subject.track))
        subject.threshold = None
        subject.track = []
        return violation

    def _end_episode(self, subject: _Subject) -> list[Violation]:
        finished = [self._finish(subject)] if subject.threshold is not None else []
        subject.inside = subject.raised = subject.paused = False
        subject.in_streak = subject.out_streak = 0
        subject.track = []
        return finished

    def flush(self) -> list[Violation]:
        return [self._finish(s) for s in self.subjects if s.threshold is not None]


class RuleEngine:
    """All rules of one source; feed it every tracked frame in time order."""

    def __init__(self, config: SiteConfig):
        timezone = ZoneInfo(config.source.timezone)
        self.watches = [_ZoneWatch(rule, config.zone(z), timezone) for rule in config.rules for z in rule.zones]

    def update(self, frame: Frame, detections: list[Detection]) -> list[Violation]:
        return [v for watch in self.watches for v in watch.update(frame, detections)]

    def flush(self) -> list[Violation]:
        """Violations still waiting for their 'last seen' frame, e.g. when a file source ends."""
        return [v for watch in self.watches for v in watch.flush()]
