"""Keep one id per object across frames with Ultralytics' ByteTrack or BoT-SORT."""
from __future__ import annotations

import itertools
import math
import weakref
from types import SimpleNamespace
from typing import Literal

import numpy as np

from .detection import Detection


class Tracker:
    """Assigns ``track_id`` to the detections of consecutive frames of one source.

    ``lost_s`` is how long a vanished object is remembered before its id is retired; the
    rules stage adds its own, longer re-association on top of it for parked vehicles.
    """

    def __init__(self, sample_fps: float, method: Literal["bytetrack", "botsort"] = "bytetrack", lost_s: float = 10.0):
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker

        args = SimpleNamespace(
            tracker_type=method,
            track_high_thresh=0.25,
            track_low_thresh=0.1,
            new_track_thresh=0.25,
            track_buffer=max(1, math.ceil(lost_s * sample_fps)),  # frames a lost track is kept
            match_thresh=0.8,
            fuse_score=True,
            gmc_method="none",  # fixed cameras: no camera-motion compensation needed
            proximity_thresh=0.5,
            appearance_thresh=0.25,
            with_reid=False,
            model="auto",
        )
        self._tracker = (BOTSORT if method == "botsort" else BYTETracker)(args)
        self._class_ids: dict[str, int] = {}
        self._ids: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Ultralytics track -> this tracker's id
        self._counter = itertools.count(1)
        self._answer: list[Detection] = []  # the last update's tracked detections
        self._settled = False  # another update on the same detections would give the same answer
        self.updates = 0  # ByteTrack updates run (the frames ``repeated`` skipped are not)

    def update(self, detections: list[Detection], size: tuple[int, int], repeated: bool = False) -> list[Detection]:
        """The detections that belong to a confirmed track, each with its ``track_id``; ``size`` is the
        frame's (width, height). The picture itself is not needed: fixed cameras use no motion compensation
        and no appearance model, so a frame's pixels need not even be decoded for it.

        ``repeated``: these are the very detections of the last call, in the same order (motion
        gating kept the model's last answer for a picture where nothing moved). Once no track
        waits to be confirmed, updating on them again would only give the same tracks, so the last
        answer is returned and the frame is counted; a frame that confirms a new track or drops a
        lost one is updated for real, so both happen on the same frame as without gating. That
        skips most of a still camera's frames: the tracker was its largest per-frame cost after
        decoding (3.6 of 9 ms). A detection just over the model's threshold (0.25-0.3) never confirms
        a track, because ByteTrack weighs the match by the score: every update makes it a new
        tentative track again. So an update on a repeated answer that gave the same answer as the
        last settles the tracker too: the same input again gives the same result again. (On the
        car-park footage such faint cars kept 83 of 142 repeated frames updating.)"""
        if repeated and self._settled and not self._lost_track_expires():
            self._tracker.frame_id += 1  # the frame still passes: lost tracks age by it
            return list(self._answer)
        self.updates += 1
        from ultralytics.engine.results import Boxes

        class_ids = [self._class_ids.setdefault(d.label, len(self._class_ids)) for d in detections]
        data = np.array(
            [[*d.box, d.confidence, c] for d, c in zip(detections, class_ids)], dtype=np.float32
        ).reshape(-1, 6)
        self._tracker.update(Boxes(data, (size[1], size[0])), None)
        tracked = []
        for track in self._tracker.tracked_stracks:  # the rows update() returns, as the track objects behind them
            if track.is_activated:
                tracked.append(detections[int(track.idx)].with_track(self._own_id(track)))
        self._settled = len(tracked) == len(self._tracker.tracked_stracks) or (repeated and tracked == self._answer)
        self._answer = tracked
        return list(tracked)

    def _lost_track_expires(self) -> bool:
        """Whether the next frame drops a lost track (Ultralytics' rule): that frame is updated for real,
        so the track is gone on the frame it would be without gating and cannot take a returning car."""
        next_frame = self._tracker.frame_id + 1
        return any(next_frame - track.end_frame > self._tracker.max_frames_lost for track in self._tracker.lost_stracks)

    def _own_id(self, track) -> int:
        """This tracker's id for an Ultralytics track. Ultralytics numbers tracks with one counter for
        the whole process and resets it whenever any tracker is made, so with several cameras in one
        process (the fleet) a camera's restart would hand out ids that other cameras' tracks and
        dwell episodes still hold. The track object itself is stable for the track's life."""
        if track not in self._ids:
            self._ids[track] = next(self._counter)
        return self._ids[track]
