"""Evidence off the frame path: violations wait in a durable queue and workers turn them into packs.

Building, signing and storing a pack takes 0.3-1.3 s, and many seconds while S3 is down, so a
camera pipeline that did it inline would stop looking at its frames meanwhile. ``EvidenceQueue``
takes a violation, writes it to a spool folder (one file per violation, fsynced and renamed into
place) and returns at once; its own worker threads call ``EvidenceSink.submit`` and remove the
file only after ``submit`` returned. A violation is *accepted* once its file is in the folder, so
nothing accepted is lost by a crash, a kill or a stop: the next queue on the folder re-queues the
files it finds before anything new. The sink is idempotent (the same violation always gets the
same pack id and is never stored twice), so a violation that was mid-``submit`` when the process
died is simply submitted again. Build the restarted sink the way ``Settings.sink`` does, with
``sink.repair()`` first: it indexes a pack a crash left stored but not yet indexed.

Each spool file is a plain zip archive: ``violation.json`` (rule, zone and evidence specs, the key
frames' facts, subject boxes and full detections, the track, extras) beside the key frames'
pictures, stored losslessly (the bytes the source delivered when they decode to exactly the
analysed picture, PNG otherwise) and the attachments, byte for byte. Rebuilt, the violation is
equal to the one accepted, so the pack is the one an inline ``submit`` would have made.

Back-pressure: ``capacity`` bounds the violations accepted and not yet stored (the disk backlog).
When it is reached, ``accept`` waits up to ``wait_s`` for room and then raises ``QueueFull``; the
violation is *not* accepted and the caller keeps it (the pipeline then stores it inline, slower
but never dropped). A failing ``submit`` is retried with exponential backoff, never dropped, and
other violations go on meanwhile.
"""
from __future__ import annotations

import fcntl
import heapq
import io
import itertools
import json
import logging
import threading
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from nonsite.ingest import Clip, ClipFrame
from nonsite.rules import EvidenceSpec, KeyFrame, RuleSpec, TrackPoint, Violation, ZoneSpec
from nonsite.vision import Detection

from .manifest import KEY_FRAMES
from .pack import pack_id_for
from .serial import detection_from, detection_json, frame_from, frame_json, moment, plain, unplain, when, write_durably

log = logging.getLogger(__name__)

WORKER_THREAD = "evidence-"  # + its number: the queue's workers

FORMAT = "nonsite.queued-violation/1"
SUFFIX = ".zip"
_LOCK = ".lock"


class NotAccepted(RuntimeError):
    """The queue did not take the violation: nothing was written, the caller still holds it."""


class QueueFull(NotAccepted):
    """``capacity`` violations are waiting for the sink (back-pressure)."""


class QueueClosed(NotAccepted):
    """The queue is stopped."""


# -- the spool file ----------------------------------------------------------------------------------

def _clip_member(position: int, codec: str) -> str:
    """A clip frame's name in the spool file (files written before key frames were kept hold only JPEGs)."""
    return f"clip/{position}.{'jpg' if codec == 'jpeg' else codec}"


def dump_violation(violation: Violation, spec: EvidenceSpec, detections: Mapping[str, Sequence[Detection]]) -> bytes:
    """The spool file's bytes: a zip of ``violation.json`` and the pictures, attachments and clip frames it names."""
    members: dict[str, bytes] = {}
    frames: list[dict] = []
    frame_index: dict[int, int] = {}  # id(Frame) -> position: key frames often share a picture
    key_frames = {}
    for name in KEY_FRAMES:
        key: KeyFrame = getattr(violation, name)
        frame = key.frame
        if id(frame) not in frame_index:
            frame_index[id(frame)] = len(frames)
            frames.append(frame_json(frame, len(frames), members))
        key_frames[name] = {"frame": frame_index[id(frame)], "subject": [detection_json(d) for d in key.subject],
                            "detections": [detection_json(d) for d in detections[name]]}
    attachments = {}
    for position, (path, data) in enumerate(violation.attachments.items()):
        attachments[path] = f"attachments/{position}"
        members[f"attachments/{position}"] = bytes(data)
    clip = None
    if violation.clip is not None:  # its frames as kept: the worker makes the pack's video from them
        members.update((_clip_member(position, kept.codec), kept.data) for position, kept in enumerate(violation.clip.frames))
        clip = {"fps": violation.clip.fps, "frames": [when(kept.at) for kept in violation.clip.frames],
                "codecs": [kept.codec for kept in violation.clip.frames], "checked": [kept.checked for kept in violation.clip.frames]}
    document = {
        "format": FORMAT, "pack_id": pack_id_for(violation), "spec": spec.model_dump(mode="json"),
        "rule": violation.rule.model_dump(mode="json"), "zone": violation.zone.model_dump(mode="json"),
        "frames": frames, "key_frames": key_frames,
        "track": [{"at": when(p.at), "box": [float(v) for v in p.box], "track_id": p.track_id} for p in violation.track],
        "extras": plain(violation.extras), "attachments": attachments, "clip": clip,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # pictures are compressed already
        archive.writestr("violation.json", json.dumps(document, ensure_ascii=False), zipfile.ZIP_DEFLATED)
        for member, data in members.items():
            archive.writestr(member, data)
    return buffer.getvalue()


def load_violation(data: bytes) -> tuple[Violation, EvidenceSpec, dict[str, list[Detection]]]:
    """The violation, evidence spec and key-frame detections a spool file holds."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        document = json.loads(archive.read("violation.json"))
        if document.get("format") != FORMAT:
            raise ValueError(f"not a queued violation of format {FORMAT}: {document.get('format')!r}")
        frames = [frame_from(facts, archive.read) for facts in document["frames"]]
        keys, detections = {}, {}
        for name, facts in document["key_frames"].items():
            keys[name] = KeyFrame(frames[facts["frame"]], tuple(detection_from(d) for d in facts["subject"]))
            detections[name] = [detection_from(d) for d in facts["detections"]]
        attachments = {path: archive.read(member) for path, member in document["attachments"].items()}
        kept = document.get("clip")  # None without one, and in files written before clips
        clip = None if kept is None else Clip(kept["fps"], tuple(
            ClipFrame(moment(at), archive.read(_clip_member(position, codec)), codec, checked)
            for position, (at, codec, checked) in enumerate(zip(
                kept["frames"], kept.get("codecs") or ["jpeg"] * len(kept["frames"]),
                kept.get("checked") or [False] * len(kept["frames"]), strict=True))))  # files before "checked": look at each
    violation = Violation(
        RuleSpec.model_validate(document["rule"]), ZoneSpec.model_validate(document["zone"]), **keys,
        track=tuple(TrackPoint(moment(p["at"]), tuple(p["box"]), p["track_id"]) for p in document["track"]),
        extras=unplain(document["extras"]), attachments=attachments, clip=clip,
    )
    if pack_id_for(violation) != document["pack_id"]:
        raise ValueError(f"queued violation for pack {document['pack_id']} rebuilds as pack {pack_id_for(violation)}")
    return violation, EvidenceSpec.model_validate(document["spec"]), detections


def _lookup(violation: Violation, detections: dict[str, list[Detection]]):
    """The sink's ``detections_of``: the stored detections of a key frame (found by identity, else by frame number)."""
    keys = [getattr(violation, name) for name in KEY_FRAMES]
    by_key = {id(key): detections[name] for name, key in zip(KEY_FRAMES, keys)}
    by_seq = {key.frame.seq: detections[name] for name, key in zip(KEY_FRAMES, keys)}
    return lambda key: by_key[id(key)] if id(key) in by_key else by_seq[key.frame.seq]


# -- the queue -------------------------------------------------------------------------------------

class EvidenceQueue:
    """Violations accepted durably, stored by ``workers`` threads through ``sink``; one queue per folder.

    ``EvidenceQueue(sink, folder).start()``; ``accept`` from the frame path; ``stop`` at shutdown.
    Counters: ``accepted`` (by this queue), ``recovered`` (found in the folder at start),
    ``stored``, ``failed`` (submit attempts that raised) and ``pending`` (not yet stored).
    With ``workers`` > 1 the workers share ``sink``, which must then be safe to call from several threads.
    """

    def __init__(self, sink, folder: Path, workers: int = 1, capacity: int = 256, wait_s: float = 2.0,
                 first_backoff_s: float = 1.0, max_backoff_s: float = 60.0):
        if workers < 1 or capacity < 1:
            raise ValueError("an evidence queue needs at least one worker and room for one violation")
        self.sink = sink
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.workers = workers
        self.capacity = capacity
        self.wait_s = wait_s
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.accepted = self.recovered = self.stored = self.failed = 0
        self._cv = threading.Condition()
        self._due: list[tuple[float, int, Path]] = []  # (monotonic time it may be tried, arrival order, file)
        self._order = itertools.count()
        self._attempts: dict[Path, int] = {}
        self._pending = 0
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._lock_handle = self._lock_folder()
        for leftover in self.folder.glob(f".*{SUFFIX}.tmp"):  # never renamed into place: never acknowledged
            leftover.unlink()
        with self._cv:
            for path in sorted(self.folder.glob(f"*{SUFFIX}")):  # names start with the accept time: oldest first
                self._push(path, 0.0)
                self._pending += 1
                self.recovered += 1
        if self.recovered:
            log.warning("evidence queue %s: %d violations left by an earlier run are queued first", self.folder, self.recovered)

    def _lock_folder(self):
        """Two queues on one folder would submit the same violations twice; the OS drops the lock when the process dies."""
        handle = (self.folder / _LOCK).open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(f"another evidence queue is working on {self.folder}") from None
        return handle

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> "EvidenceQueue":
        with self._cv:
            if self._closed:
                raise QueueClosed("a stopped evidence queue cannot start again; make a new one on the folder")
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"{WORKER_THREAD}{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return self

    def accept(self, violation: Violation, spec: EvidenceSpec, detections: Mapping[str, Sequence[Detection]],
               timeout: float | None = None) -> str:
        """Spool the violation durably and queue it; returns its pack id as soon as the file is in place.

        ``detections``: everything detected on each key frame, by key-frame name (``first_seen``,
        ``threshold``, ``last_seen``), resolved by the caller. Raises ``QueueFull`` when no room
        opens within ``timeout`` (default ``wait_s``) and ``QueueClosed`` after ``stop``; then
        nothing was accepted."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._closed or self._pending < self.capacity,
                                     self.wait_s if timeout is None else timeout):
                log.warning("evidence queue %s full (%d waiting for the sink)", self.folder, self._pending)
                raise QueueFull(f"{self._pending} violations are waiting for the evidence sink")
            if self._closed:
                raise QueueClosed("the evidence queue is stopped")
            self._pending += 1  # the room is ours while the file is written
        try:
            pack_id = pack_id_for(violation)
            path = write_durably(self.folder, f"{time.time_ns():020d}-{pack_id}{SUFFIX}", dump_violation(violation, spec, detections))
        except BaseException:
            with self._cv:
                self._pending -= 1
                self._cv.notify_all()
            raise
        with self._cv:
            self.accepted += 1
            self._push(path, 0.0)
        return pack_id

    def _push(self, path: Path, due: float) -> None:
        heapq.heappush(self._due, (due, next(self._order), path))
        self._cv.notify_all()

    def _take(self) -> Path | None:
        """The next file whose time has come; None once the queue stops (what is not taken stays on disk)."""
        with self._cv:
            while not self._closed:
                wait = None
                if self._due:
                    wait = self._due[0][0] - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._due)[2]
                self._cv.wait(wait)
        return None

    def _work(self) -> None:
        while (path := self._take()) is not None:
            try:
                violation, spec, detections = load_violation(path.read_bytes())
                self.sink.submit(violation, spec, _lookup(violation, detections))
            except Exception:  # noqa: BLE001 - whatever failed, the file stays and is tried again later
                with self._cv:
                    self.failed += 1
                    attempts = self._attempts[path] = self._attempts.get(path, 0) + 1
                    backoff = min(self.first_backoff_s * 2 ** (attempts - 1), self.max_backoff_s)
                    self._push(path, time.monotonic() + backoff)
                log.exception("evidence queue: storing %s failed (attempt %d); next try in %.0f s", path.name, attempts, backoff)
                continue
            try:
                path.unlink()  # only now: the pack is stored and indexed
            except OSError as exc:  # left in place, it is submitted again at the next start, which stores nothing twice
                log.warning("evidence queue: cannot remove %s after storing it: %s", path.name, exc)
            with self._cv:
                self._attempts.pop(path, None)
                self.stored += 1
                self._pending -= 1
                self._cv.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every accepted violation is stored; False on timeout or when the queue stopped first."""
        with self._cv:
            return self._cv.wait_for(lambda: self._pending == 0 or self._closed, timeout) and self._pending == 0

    def stop(self, timeout: float | None = None) -> bool:
        """Take no new work; workers finish the violation they hold; the rest stays on disk for the next start.

        True when every worker ended within ``timeout``; the folder is then free for a new queue."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        ended = not any(thread.is_alive() for thread in self._threads)
        if ended and self._lock_handle is not None:
            self._lock_handle.close()  # releases the folder lock
            self._lock_handle = None
        return ended

    def __enter__(self) -> "EvidenceQueue":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
