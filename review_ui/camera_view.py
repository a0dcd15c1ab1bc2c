"""A fixed camera's current view, for a recheck: the camera service's latest pictures, else the camera opened once.

When the camera service (``nonsite fleet``) runs the camera, it rewrites the camera's latest picture
in its status folder every 10 s (``ingest.health.StatusFolder``); ``CameraViews`` gathers those
pictures as they come until it holds ``looks`` of them from the last ``window_s``, so a recheck sees
the last minutes, not one moment. It never opens a camera the service runs: many cameras refuse a
second client, and a camera the service cannot reach will not answer a second try either; the
service's own state says why. A camera the service does not run is opened once, ``looks`` frames
are taken at its sample rate, and it is closed; a camera that gives nothing within
``open_timeout_s`` is reported by its id with its state and reason. Video files and image folders
are recordings: they have no current view.
"""
from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Literal

from nonsite.ingest import CameraHealth, Frame, LiveStream, StatusFolder, StatusUnreadable
from nonsite.ingest.decoding import ImageRefused, decode_picture
from nonsite.ingest.health import CameraState

from .sites import find_site


class NoCurrentView(Exception):
    """The camera's current view cannot be had now. ``code``: 'no_site' (no site file names the camera),
    'bad_site' (its file does not load), 'not_live' (a recording), 'no_frame' (the camera gave no picture:
    ``detail`` has its state and reason)."""

    def __init__(self, camera: str, code: str, detail: str = ""):
        super().__init__(f"camera {camera}: {code}" + (f" ({detail})" if detail else ""))
        self.camera, self.code, self.detail = camera, code, detail


@dataclass(frozen=True)
class View:
    """Recent pictures of one camera, oldest first, and where they came from."""

    camera: str
    frames: tuple[Frame, ...]
    via: Literal["fleet", "source"]  # the camera service's snapshots, or the camera opened for the recheck


@dataclass(frozen=True)
class _Snapshot:
    taken_at: datetime
    jpeg: bytes = field(repr=False)
    digest: str


class CameraViews:
    """Where rechecks get a camera's current view; one instance gathers the service's snapshots over the calls."""

    def __init__(self, sites_dir: Path, fleet_dir: Path | None, looks: int = 5, window_s: float = 300.0, fresh_s: float = 60.0,
                 open_timeout_s: float = 30.0):
        self.sites_dir = Path(sites_dir)
        self.folder = StatusFolder(fleet_dir) if fleet_dir is not None else None
        self.looks, self.window_s, self.fresh_s, self.open_timeout_s = looks, window_s, fresh_s, open_timeout_s
        self._held: dict[str, deque[_Snapshot]] = {}
        self._streams: set[LiveStream] = set()  # opened right now: ``close`` ends them at once
        self._lock = threading.Lock()

    def current(self, camera: str, now: datetime) -> View | None:
        """The camera's recent pictures; None while the service's snapshots are still being gathered (ask again
        after the next one is written). Raises NoCurrentView."""
        self._forget_before(now)
        health = self._in_fleet(camera, now)
        if health is None:
            return self._opened(camera)
        age = health.last_frame_age_s(now)
        if health.state != CameraState.live or age is None or age > self.fresh_s:
            raise NoCurrentView(camera, "no_frame", f"camera service: {health.state_in_words(now)}")
        return self._gathered(camera)

    def _in_fleet(self, camera: str, now: datetime) -> CameraHealth | None:
        """The camera's health as a running camera service reports it; None when no service runs it."""
        if self.folder is None or self.folder.is_stale(now):
            return None
        try:
            status = self.folder.read()
        except StatusUnreadable:
            return None
        return next((c for c in status.cameras if c.camera == camera), None) if status else None

    def _gathered(self, camera: str) -> View | None:
        jpeg, taken_at = self.folder.read_snapshot(camera), self.folder.snapshot_written(camera)
        if jpeg is None or taken_at is None:
            return None
        held = self._held.setdefault(camera, deque(maxlen=self.looks))
        digest = hashlib.sha256(jpeg).hexdigest()
        if not held or held[-1].digest != digest:  # the service rewrites an unchanged picture: one look, not two
            held.append(_Snapshot(taken_at, jpeg, digest))
        if len(held) < self.looks:
            return None
        path = str(self.folder.snapshot_path(camera))
        frames = []
        for seq, snapshot in enumerate(held):
            try:
                image = decode_picture(snapshot.jpeg)
            except ImageRefused as exc:
                raise NoCurrentView(camera, "no_frame", f"its snapshot cannot be decoded: {exc}") from exc
            frames.append(Frame(camera, seq, snapshot.taken_at, image, origin=path, encoded=snapshot.jpeg, time_source="file_time"))
        return View(camera, tuple(frames), "fleet")

    def _forget_before(self, now: datetime) -> None:
        for camera, held in list(self._held.items()):
            while held and (now - held[0].taken_at).total_seconds() > self.window_s:
                held.popleft()
            if not held:
                del self._held[camera]

    def _opened(self, camera: str) -> View:
        try:
            site = find_site(self.sites_dir, camera)
        except LookupError:
            raise NoCurrentView(camera, "no_site") from None
        if site.config is None:
            raise NoCurrentView(camera, "bad_site", site.error)
        if site.config.source.kind != "stream":
            raise NoCurrentView(camera, "not_live", site.config.source.kind)
        stream = LiveStream(site.config.source)
        with self._lock:
            self._streams.add(stream)
        state: list[str] = []  # the camera's state when the wait ran out: closing it makes it "stopped"

        def give_up() -> None:
            state.append(_state_of(stream))
            stream.close()

        timer = threading.Timer(self.open_timeout_s, give_up)
        timer.start()
        try:
            frames = list(islice(stream, self.looks))
        finally:
            timer.cancel()
            stream.close()
            with self._lock:
                self._streams.discard(stream)
        if not frames:
            raise NoCurrentView(camera, "no_frame", state[0] if state else _state_of(stream))
        return View(camera, tuple(frames), "source")

    def close(self) -> None:
        """End every camera opened right now (the rechecker is stopping): each gives what it has read so far."""
        with self._lock:
            for stream in self._streams:
                stream.close()


def _state_of(stream: LiveStream) -> str:
    return f"{stream.state}" + (f": {stream.reason}" if stream.reason else "")
