"""Open episodes on disk, so dwell clocks survive a restart of the service.

A rules engine keeps its dwell clocks in memory; without this store a restart would start every
parked car's clock over, and a car standing through the restart would get a second pack. The
fleet saves each camera's ``RuleEngine.open_episodes()`` now and then and at shutdown, and a
restarted camera loads it and hands it to ``RuleEngine.resume``.

One file per camera, ``<camera id>.zip``, replaced whole and durably (temp file, fsync, rename),
so a crash mid-save leaves the previous state, never a torn one. Like the evidence queue's spool
files it is a zip: ``episodes.json`` beside the key frames' pictures, stored losslessly and once
per frame however many key frames share it (a subject's ``last`` is often its ``threshold``).
The pictures matter: a resumed episode's pack shows its first-seen frame from before the restart.

A file that cannot be read (torn by a disk error, edited, from an unknown format) is logged,
naming the file, and treated as absent: the camera then starts its clocks over, which costs a
possible second pack but never the camera.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from nonsite.ingest import Frame
from nonsite.ingest.config import Identifier
from nonsite.rules import KeyFrame, TrackPoint
from nonsite.rules.engine import EngineState, SubjectState, WatchState

from .serial import detection_from, detection_json, frame_from, frame_json, moment, picture, plain, unplain, when, write_durably

log = logging.getLogger(__name__)

FORMAT = "nonsite.open-episodes/1"
SUFFIX = ".zip"
_DOCUMENT = "episodes.json"
_CAMERA_ID = TypeAdapter(Identifier)
_KEY_FRAMES = ("last", "streak_start", "dwell_from", "threshold")  # the SubjectState fields holding a KeyFrame


class EpisodeStore:
    """Each camera's open episodes in ``folder``: ``save`` replaces them, ``load`` reads them back, ``forget`` drops them."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Per camera, the stored picture of each key frame its last save held, by frame identity (the
        # frame is kept with it, so the identity cannot be reused). A parked car's episode holds
        # the same first-seen and threshold frames for minutes and is saved every 30 s: each PNG
        # (12-20 ms for a 854 x 480 frame) is made once, not at every save.
        self._pictures: dict[str, dict[int, tuple[Frame, str, bytes]]] = {}

    def path(self, camera_id: str) -> Path:
        """The camera's file. Camera ids are identifiers (letters, digits, '.', '_', '-', never starting
        with '.'); anything else, a path separator above all, is refused rather than written elsewhere."""
        try:
            _CAMERA_ID.validate_python(camera_id)
        except ValidationError as exc:
            raise ValueError(f"not a camera id: {camera_id!r}") from exc
        return self.folder / f"{camera_id}{SUFFIX}"

    def save(self, camera_id: str, state: EngineState, saved_at: datetime) -> Path:
        """Replace the camera's open episodes with ``state``; durable once this returns."""
        path = self.path(camera_id)
        known = self._pictures.get(camera_id, {})
        held: dict[int, tuple[Frame, str, bytes]] = {}

        def picture_of(frame: Frame) -> tuple[str, bytes]:
            entry = held[id(frame)] = known.get(id(frame)) or (frame, *picture(frame))
            return entry[1], entry[2]

        document = _dump(camera_id, state, saved_at, picture_of)
        self._pictures[camera_id] = held  # only the frames this save held: the cache never outgrows the episodes
        return write_durably(self.folder, path.name, document)

    def load(self, camera_id: str) -> tuple[EngineState, datetime] | None:
        """The camera's saved state and when it was saved; None when there is none or it cannot be read."""
        path = self.path(camera_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("open episodes of camera %s not resumed: cannot read %s: %s", camera_id, path, exc)
            return None
        try:
            return _load(data, camera_id)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, the camera starts afresh
            log.warning("open episodes of camera %s not resumed: %s is unreadable (%s: %s)",
                        camera_id, path, type(exc).__name__, exc)
            return None

    def forget(self, camera_id: str) -> None:
        """Drop the camera's saved state (the camera was removed, or its episodes must not come back)."""
        self._pictures.pop(camera_id, None)
        self.path(camera_id).unlink(missing_ok=True)


# -- the file ----------------------------------------------------------------------------------------

def _dump(camera_id: str, state: EngineState, saved_at: datetime, picture_of: Callable[[Frame], tuple[str, bytes]]) -> bytes:
    members: dict[str, bytes] = {}
    frames: list[dict] = []
    frame_index: dict[int, int] = {}  # id(Frame) -> position: one picture per frame, however many key frames share it

    def key_frame(key: KeyFrame) -> dict:
        if id(key.frame) not in frame_index:
            frame_index[id(key.frame)] = len(frames)
            frames.append(frame_json(key.frame, len(frames), members, picture_of))
        return {"frame": frame_index[id(key.frame)], "subject": [detection_json(d) for d in key.subject]}

    document = {
        "format": FORMAT, "camera_id": camera_id, "saved_at": when(saved_at),
        "watched_until": None if state.watched_until is None else when(state.watched_until),
        "watches": [{
            "rule_id": watch.rule_id, "zone_id": watch.zone_id, "recent": plain(watch.recent),
            "subjects": [_subject_json(subject, key_frame) for subject in watch.subjects],
        } for watch in state.watches],
        "frames": frames,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # pictures are compressed already
        archive.writestr(_DOCUMENT, json.dumps(document, ensure_ascii=False), zipfile.ZIP_DEFLATED)
        for member, data in members.items():
            archive.writestr(member, data)
    return buffer.getvalue()


def _load(data: bytes, camera_id: str) -> tuple[EngineState, datetime]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        document = json.loads(archive.read(_DOCUMENT))
        if document.get("format") != FORMAT:
            raise ValueError(f"not open episodes of format {FORMAT}: {document.get('format')!r}")
        if document["camera_id"] != camera_id:  # a file copied or renamed from another camera: not this view
            raise ValueError(f"it holds the open episodes of camera {document['camera_id']!r}")
        frames = [frame_from(facts, archive.read) for facts in document["frames"]]

    def key_frame(value: dict) -> KeyFrame:
        return KeyFrame(frames[value["frame"]], tuple(detection_from(d) for d in value["subject"]))

    watches = tuple(WatchState(
        watch["rule_id"], watch["zone_id"],
        tuple(_subject_from(subject, key_frame) for subject in watch["subjects"]),
        unplain(watch["recent"]),
    ) for watch in document["watches"])
    watched_until = None if document["watched_until"] is None else moment(document["watched_until"])
    return EngineState(watched_until, watches), moment(document["saved_at"])


def _subject_json(subject: SubjectState, key_frame: Callable[[KeyFrame], dict]) -> dict:
    """Every field of the subject: key frames by reference to the file's pictures, the rest as tagged JSON.

    Going over all fields (not a list of them) means a field added to ``SubjectState`` is saved
    too, or, if ``plain`` does not know its type, fails the save loudly instead of vanishing."""
    document = {}
    for name in (f.name for f in dataclasses.fields(SubjectState)):
        value = getattr(subject, name)
        if name in _KEY_FRAMES:
            document[name] = None if value is None else key_frame(value)
        elif name == "track_ids":
            document[name] = sorted(value)
        elif name == "track":
            document[name] = [plain((p.at, p.box, p.track_id)) for p in value]
        else:
            document[name] = plain(value)
    return document


def _subject_from(document: dict, key_frame: Callable[[dict], KeyFrame]) -> SubjectState:
    values = {}
    for name, value in document.items():
        if name in _KEY_FRAMES:
            values[name] = None if value is None else key_frame(value)
        elif name == "track_ids":
            values[name] = set(value)
        elif name == "track":
            values[name] = [TrackPoint(*unplain(p)) for p in value]
        else:
            values[name] = unplain(value)
    return SubjectState(**values)
