"""Turn tracked detections into violations: zone membership, dwell clocks, windows, cooldowns.

One ``_ZoneWatch`` per (rule, zone). A parking watch follows each vehicle as its own subject;
spill-over and construction watches treat the zone itself (the shop, the site) as the subject,
so five chairs outside one shop make one pack, not five.

Dwell clocks outlive gaps in the picture. ``camera_blind`` tells the engine the camera delivered
no frames for a while (a stream outage, the service stopped): that time does not count against a
subject's ``grace_s``, so a car standing through an outage continues its episode instead of
raising a second pack. ``open_episodes`` snapshots every watch's subjects and ``resume`` puts a
snapshot into a new engine after a restart, which is a blind time of its own.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from nonsite.ingest import Frame
from nonsite.vision import Detection, box_iou

from .config import RuleSpec, SiteConfig, ZoneSpec
from .violation import KeyFrame, TrackPoint, Violation
from .windows import is_active
from .zones import contains, distance

log = logging.getLogger(__name__)

_REASSOCIATE_IOU = 0.3
_REASSOCIATE_DIAGONALS = 0.5
_SAME_PLACE_IOU = 0.5
# A subject's track keeps at most this many points: a car parked all day at 1 fps would otherwise hold
# tens of thousands. Past the cap every other point is dropped, so a long track stays evenly thinned.
_TRACK_POINTS = 1024


@dataclass
class SubjectState:
    """One watched thing and the state of its current episode in the zone.

    The engine's live state and, copied, the unit of a snapshot (``open_episodes``): every field
    is a plain value, a ``KeyFrame`` or ``TrackPoint``s, so evidence can store it losslessly.
    """

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
    blind_s: float = 0.0  # of the time since last seen, how much the camera delivered no frames

    @property
    def last_seen_at(self) -> datetime:
        assert self.last is not None
        return self.last.at

    def unseen_s(self, now: datetime) -> float:
        """Seconds the camera could see the subject's place without seeing it: what ``grace_s`` is measured against.

        Blind time is left out because not seeing a car while no frames come says nothing about
        whether it left; counting it would end a parked car's episode at every outage longer than
        ``grace_s`` and raise a second pack for the same car when the stream is back."""
        return (now - self.last_seen_at).total_seconds() - self.blind_s

    def camera_blind(self, since: datetime, until: datetime) -> None:
        """Count the part of ``since``..``until`` after the subject was last seen as blind time."""
        start = max(since, self.last_seen_at)
        if until > start:
            self.blind_s += (until - start).total_seconds()

    def start_dwell(self, key: KeyFrame) -> None:
        self.dwell_from = key
        self.anchor = _centre(key.subject)


@dataclass(frozen=True)
class WatchState:
    """A snapshot of one (rule, zone) watch: its subjects and the places it raised violations at lately."""

    rule_id: str
    zone_id: str
    subjects: tuple[SubjectState, ...]
    recent: tuple[tuple[datetime, tuple[float, float, float, float]], ...]  # (threshold time, box): cooldowns


@dataclass(frozen=True)
class EngineState:
    """A snapshot of a ``RuleEngine``'s open episodes, to carry them over a restart (``resume``).

    ``watched_until`` is how far the engine had followed the camera when the snapshot was taken
    (its last frame, or the end of a blind time): from then until the resume the camera counts
    as blind."""

    watched_until: datetime | None
    watches: tuple[WatchState, ...]


def _centre(detections: tuple[Detection, ...]) -> tuple[float, float]:
    xs = [d.centre[0] for d in detections]
    ys = [d.centre[1] for d in detections]
    return sum(xs) / len(xs), sum(ys) / len(ys)


def _apart(previous: Detection, detection: Detection) -> float:
    """Centre distance in diagonals of the earlier box."""
    return distance(previous.centre, detection.centre) / max(previous.diagonal, 1e-9)


def _continues(previous: Detection, detection: Detection) -> bool:
    """Whether ``detection`` is close enough to a lost subject's last box to continue it."""
    return _apart(previous, detection) <= _REASSOCIATE_DIAGONALS or box_iou(previous.box, detection.box) >= _REASSOCIATE_IOU


def _copy(subject: SubjectState) -> SubjectState:
    """A subject that shares no mutable part with ``subject`` (key frames and track points are immutable)."""
    return replace(subject, track_ids=set(subject.track_ids), track=list(subject.track))


class _ZoneWatch:
    def __init__(self, rule: RuleSpec, zone: ZoneSpec, timezone: ZoneInfo, bays: list[ZoneSpec] = ()):
        self.rule = rule
        self.drawn = [zone, *bays]  # as configured; ``zone`` and ``bays`` are them fitted to the frames now arriving
        self.zone = zone
        self.bays = list(bays)
        self.size: tuple[int, int] | None = None
        self.timezone = timezone
        self.subjects: list[SubjectState] = []
        self.recent: list[tuple[datetime, tuple[float, float, float, float]]] = []

    def _fit(self, frame: Frame) -> None:
        """Scale the zone to the frame's size whenever that changes: a camera switched to another
        resolution, before or while running, keeps its zone over the same ground."""
        size = frame.size
        if size == self.size:
            return
        # drawn before sizes were recorded: the first frame's size is the drawn one
        self.drawn = [z if z.frame else z.model_copy(update={"frame": self.size or size}) for z in self.drawn]
        if self.size is not None:
            log.warning("camera %s: frames changed from %d x %d to %d x %d; zone %s scaled with them",
                        frame.source_id, *self.size, *size, self.zone.id)
        self.size = size
        self.zone, *self.bays = (z.fitted(size) for z in self.drawn)

    # -- association -------------------------------------------------------------------------
    def update(self, frame: Frame, detections: list[Detection]) -> list[Violation]:
        self._fit(frame)
        wanted = [d for d in detections if self._candidate(d) and d.confidence >= self.rule.min_confidence]
        observed: dict[int, tuple[Detection, ...]] = {}
        if self.rule.per_object:
            self._associate(wanted, observed)
        else:
            inside = tuple(d for d in wanted if contains(self.zone.polygon, d.bottom_centre))
            if inside:
                if not self.subjects:
                    self.subjects.append(SubjectState())
                observed[id(self.subjects[0])] = inside
        finished: list[Violation] = []
        for subject in list(self.subjects):
            seen = observed.get(id(subject))
            if seen is not None:
                finished.extend(self._observe(subject, KeyFrame(frame, seen)))
            elif subject.unseen_s(frame.captured_at) > self.rule.grace_s:
                finished.extend(self._end_episode(subject))
                self.subjects.remove(subject)
        return finished

    def _candidate(self, detection: Detection) -> bool:
        """Of the rule's classes and not in a marked bay (parked properly): what the rule would
        count, confidence aside."""
        return detection.is_one_of(self.rule.classes) and not any(contains(bay.polygon, detection.bottom_centre) for bay in self.bays)

    def in_doubt(self, detections: list[Detection], margin: float) -> bool:
        """Whether one of ``detections`` that this watch would judge has a confidence within
        ``margin`` of the rule's threshold: in the zone, or continuing one of its subjects. Only
        such an answer can turn into another violation when it flips; a car near the threshold
        across the street cannot."""
        return any(abs(d.confidence - self.rule.min_confidence) <= margin and self._candidate(d)
                   and (contains(self.zone.polygon, d.bottom_centre) or any(_continues(s.last.subject[0], d) for s in self.subjects))
                   for d in detections)

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
        for detection, subject in self._lost_subjects_near(unmatched, observed):
            if subject is None:
                subject = self._new_subject(detection)
                if subject is None:
                    continue
            if detection.track_id is not None:
                subject.track_ids.add(detection.track_id)
            observed[id(subject)] = (detection,)

    def _lost_subjects_near(self, detections: list[Detection], observed: dict[int, tuple[Detection, ...]]
                            ) -> list[tuple[Detection, SubjectState | None]]:
        """Each detection with the lost subject it continues (None: none), closest pairs first.

        An id switch or a short occlusion must not reset a parked car's clock. After a restart
        every subject is lost at once (``resume`` drops the old tracker's ids), so a whole row of
        parked cars is matched in one go: pairing the closest first keeps a car from taking its
        neighbour's clock merely because its box came first."""
        lost = [s for s in self.subjects if id(s) not in observed]
        pairs = []
        for d, detection in enumerate(detections):
            for s, subject in enumerate(lost):
                previous = subject.last.subject[0]
                if _continues(previous, detection):
                    pairs.append((-box_iou(previous.box, detection.box), _apart(previous, detection), d, s))
        continued: dict[int, SubjectState] = {}
        taken: set[int] = set()
        for _, _, d, s in sorted(pairs):
            if d not in continued and s not in taken:
                continued[d] = lost[s]
                taken.add(s)
        return [(detection, continued.get(d)) for d, detection in enumerate(detections)]

    def _new_subject(self, detection: Detection) -> SubjectState | None:
        if not contains(self.zone.polygon, detection.bottom_centre):
            return None
        subject = SubjectState()
        self.subjects.append(subject)
        return subject

    # -- one subject's episode -----------------------------------------------------------------
    def _observe(self, subject: SubjectState, key: KeyFrame) -> list[Violation]:
        """Thresholds are only ever crossed here, on a frame that sees the subject: blind time keeps
        the dwell clock running (the car stood there throughout) but cannot raise a violation alone."""
        now = key.at
        subject.last = key
        subject.blind_s = 0.0
        subject.track.extend(TrackPoint(now, d.box, d.track_id) for d in key.subject)
        if len(subject.track) > _TRACK_POINTS:
            subject.track = subject.track[::2]
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

    def _restart_clock_if_needed(self, subject: SubjectState, key: KeyFrame) -> None:
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

    def _finish(self, subject: SubjectState) -> Violation:
        violation = Violation(self.rule, self.zone, subject.dwell_from, subject.threshold, subject.last, tuple(subject.track))
        subject.threshold = None
        subject.track = []
        return violation

    def _end_episode(self, subject: SubjectState) -> list[Violation]:
        finished = [self._finish(subject)] if subject.threshold is not None else []
        subject.inside = subject.raised = subject.paused = False
        subject.in_streak = subject.out_streak = 0
        subject.track = []
        return finished

    def flush(self) -> list[Violation]:
        return [self._finish(s) for s in self.subjects if s.threshold is not None]

    # -- gaps and restarts ---------------------------------------------------------------------
    def camera_blind(self, since: datetime, until: datetime) -> None:
        for subject in self.subjects:
            subject.camera_blind(since, until)

    def snapshot(self) -> WatchState:
        return WatchState(self.rule.id, self.zone.id, tuple(_copy(s) for s in self.subjects), tuple(self.recent))

    def restore(self, state: WatchState) -> None:
        """The saved subjects without their track ids: a restarted tracker numbers its tracks afresh,
        so an old id would name some other car; position (``_lost_subjects_near``) finds each again."""
        self.subjects = [replace(_copy(s), track_ids=set()) for s in state.subjects]
        self.recent = list(state.recent)


class RuleEngine:
    """All rules of one source; feed it every tracked frame in time order."""

    def __init__(self, config: SiteConfig):
        timezone = ZoneInfo(config.source.timezone)
        self.watches = [_ZoneWatch(rule, config.zone(z), timezone, [config.zone(b) for b in rule.bays])
                        for rule in config.rules for z in rule.zones]
        self.watched_until: datetime | None = None  # the last frame, or the end of the last blind time

    def update(self, frame: Frame, detections: list[Detection]) -> list[Violation]:
        self._watched(frame.captured_at)
        return [v for watch in self.watches for v in watch.update(frame, detections)]

    def flush(self) -> list[Violation]:
        """Violations still waiting for their 'last seen' frame, e.g. when a file source ends."""
        return [v for watch in self.watches for v in watch.flush()]

    def in_doubt(self, detections: list[Detection], margin: float) -> bool:
        """Whether any rule would judge one of ``detections`` whose confidence is within ``margin``
        of that rule's threshold (see ``_ZoneWatch.in_doubt``); zones are as fitted to the last frame."""
        return any(watch.in_doubt(detections, margin) for watch in self.watches)

    def held_frames(self) -> set[tuple[int, datetime]]:
        """(seq, capture time) of every frame an open episode holds as a key frame: the only frames
        whose full detections a camera still needs (for the privacy copies of a future pack)."""
        return {(key.frame.seq, key.frame.captured_at) for watch in self.watches for subject in watch.subjects
                for key in (subject.last, subject.streak_start, subject.dwell_from, subject.threshold) if key is not None}

    def camera_blind(self, since: datetime, until: datetime) -> None:
        """The camera delivered no frames from ``since`` to ``until`` (a stream outage, the service stopped).

        That time does not count against ``grace_s``: a subject ends only after ``grace_s`` of time
        the camera could see without seeing it, so a car standing through an outage keeps its
        episode. The dwell clock does run on through it (``first_seen`` stays: the car was parked
        throughout, and the pack's times say when it was last and next seen), but a threshold is
        only crossed on a frame that sees the subject again, never by blind time alone. Time before
        the engine's ``watched_until`` (its last frame, or the end of an earlier blind time) is never
        counted, so overlapping or repeated calls count nothing twice."""
        if self.watched_until is not None:
            since = max(since, self.watched_until)
        for watch in self.watches:
            watch.camera_blind(since, until)
        self._watched(until)

    def _watched(self, until: datetime) -> None:
        self.watched_until = until if self.watched_until is None else max(self.watched_until, until)

    def open_episodes(self) -> EngineState:
        """A snapshot of every watch's subjects and cooldowns, independent of the engine from then on."""
        watches = tuple(w.snapshot() for w in self.watches if w.subjects or w.recent)
        return EngineState(self.watched_until, watches)

    def resume(self, state: EngineState, now: datetime) -> list[tuple[str, str]]:
        """Carry a snapshot over a restart; returns the (rule id, zone id) watches dropped.

        Call it on a new engine before its first frame. A watch's subjects come back only where
        the current config still has a rule and a zone of those ids: a config edit that removed
        the zone or the rule ends their episodes without a pack (even one past its threshold and
        waiting for ``hold_s``: that rule is no longer enforced there). A rule or zone edited under the
        same ids keeps them, and they go on under the new settings (dwell, grace, windows, the
        polygon at the next observation). The time from the snapshot's ``watched_until`` to ``now``
        is blind time, and subjects lose their track ids (the tracker restarted): the first frames
        find them again by position."""
        if self.watched_until is not None:
            raise RuntimeError("resume a snapshot into a new engine, before its first frame")
        watches = {(w.rule.id, w.zone.id): w for w in self.watches}
        dropped = []
        for saved in state.watches:
            watch = watches.get((saved.rule_id, saved.zone_id))
            if watch is None:
                dropped.append((saved.rule_id, saved.zone_id))
                continue
            watch.restore(saved)
        if dropped:
            log.warning("open episodes of %s dropped: the config no longer has that rule and zone",
                        ", ".join(f"{rule}/{zone}" for rule, zone in dropped))
        if state.watched_until is not None:
            self.camera_blind(state.watched_until, now)
        return dropped
