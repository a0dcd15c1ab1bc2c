"""Frames from a live camera (RTSP/HTTP): always the newest one, at the sample rate, with a state.

A reader thread pulls the stream continuously (a camera's server drops a client that stops
reading, and only a drained stream gives the newest picture) but turns a packet into a picture
only when one is due: ``grab`` takes the next frame off the wire, and only the sampled ones are
converted and copied out with ``retrieve``. The consumer takes the latest picture, so a slow
detector never builds a backlog: latency stays one frame and stale frames are dropped (counted).

The reader says where it stands (``state``: starting, live, reconnecting since T, failed: reason)
and why. When a live connection drops it asks the camera every ``_PROBE_S`` (an RTSP DESCRIBE or
an HTTP GET read to its headers) and reconnects as soon as it answers, so a camera that returns is read again within seconds instead
of after the full backoff. When opening fails, ``probe.diagnose`` names the cause: a camera that
is down (refused, timed out) is retried with backoff; a misconfigured one (404, password refused,
unknown host, not a video) is reported as failed and tried again only every ``_MISCONFIGURED_RETRY_S``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from .config import SourceSpec
from .frame import Frame, GeoPoint
from .health import CameraState
from .probe import Diagnosis, diagnose, without_credentials

log = logging.getLogger(__name__)

_OPEN_TIMEOUT_MS = 5000
_READ_TIMEOUT_MS = 5000
_PROBE_S = 1.0  # while a dropped camera is away: how often to knock
_MISCONFIGURED_RETRY_S = 60.0  # a wrong address is looked at again this often (someone may fix the camera)
_UNDECODABLE_OPENS = 3  # the server answers but OpenCV cannot open its stream this often in a row: not a video
_OPEN_LOCK = threading.Lock()  # OpenCV reads its FFmpeg options from the environment when a capture opens


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LiveStream:
    """Iterate to get the newest frame at ``sample_fps``; ``close()`` ends the iteration.

    The counters and the state are read by the service's health page from other threads; each
    is a single value written by the reader thread alone."""

    def __init__(self, spec: SourceSpec, first_backoff_s: float = 0.5):
        self.spec = spec
        self.first_backoff_s = first_backoff_s
        self.address = without_credentials(spec.uri)
        self.state = CameraState.starting
        self.since = _now()
        self.reason: str | None = None
        self.misconfigured = False
        self.frames_read = 0  # pictures taken off the stream at the sample rate
        self.decode_errors = 0
        self.reconnects = 0
        self.dropped = 0  # sampled pictures replaced by a newer one before the consumer took them
        self.last_frame_at: datetime | None = None
        self._was_live = False
        self.frames_grabbed = 0  # frames taken off the wire, sampled or not
        self._latest: tuple[np.ndarray, datetime] | None = None  # the newest sampled picture and when it was grabbed
        self._fresh = threading.Condition()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_forever, name=f"camera-{spec.id}", daemon=True)

    # -- state -------------------------------------------------------------------------------
    def _enter(self, state: CameraState, reason: str | None = None, misconfigured: bool = False) -> None:
        if (state, reason) == (self.state, self.reason):
            return
        self.state, self.reason, self.misconfigured, self.since = state, reason, misconfigured, _now()
        if state == CameraState.live:
            log.info("camera %s: connected to %s", self.spec.id, self.address)
        elif state == CameraState.failed:
            log.error("camera %s: misconfigured, %s", self.spec.id, reason)
        elif state == CameraState.reconnecting:
            log.warning("camera %s: lost (%s); reconnecting", self.spec.id, reason)

    # -- the reader thread -------------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture | None:
        options = f"rtsp_transport;{self.spec.rtsp_transport}"
        with _OPEN_LOCK:
            previous = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options
            try:
                capture = cv2.VideoCapture(
                    self.spec.uri, cv2.CAP_FFMPEG,
                    [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, _READ_TIMEOUT_MS],
                )
            finally:
                if previous is None:
                    os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
                else:
                    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = previous
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _wait_after_failure(self, backoff: float, failed_opens: int) -> None:
        """Classify why opening failed, enter the matching state and wait before the next try:
        ask the camera every ``_PROBE_S`` while it is merely away (reopening as soon as it answers,
        at most ``backoff`` later), or wait the long retry period when the address itself is wrong.
        An address that worked earlier in this run is never called wrong: a relay answers 404 for
        a camera that is off, and that camera will be back."""
        found = diagnose(self.spec.uri)
        if found.ok and failed_opens >= _UNDECODABLE_OPENS and not self._was_live:
            found = Diagnosis(False, "not a video: the address answers but sends no stream OpenCV can decode", True)
        elif found.ok:
            found = Diagnosis(False, "the camera answers but its stream did not open")
        if found.misconfigured and not self._was_live:
            self._enter(CameraState.failed, found.reason, True)
            self._stop.wait(_MISCONFIGURED_RETRY_S)
            return
        self._enter(CameraState.reconnecting, found.reason)
        deadline = time.monotonic() + backoff
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._stop.wait(min(_PROBE_S, max(0.0, deadline - time.monotonic()))):
                return
            if diagnose(self.spec.uri, timeout_s=_PROBE_S).ok:
                return

    def _read_forever(self) -> None:
        backoff, failed_opens = self.first_backoff_s, 0
        while not self._stop.is_set():
            capture = self._open()
            if capture is None:
                failed_opens += 1
                self._wait_after_failure(backoff, failed_opens)
                backoff = min(backoff * 2, self.spec.reconnect_max_s)
                continue
            backoff, failed_opens, self._was_live = self.first_backoff_s, 0, True
            self._enter(CameraState.live)
            try:
                self._read_until_lost(capture)
            finally:
                capture.release()
            if not self._stop.is_set():
                self.reconnects += 1
                self._enter(CameraState.reconnecting, "the stream ended or stopped sending")
        self._enter(CameraState.stopped)

    def _read_until_lost(self, capture: cv2.VideoCapture) -> None:
        """Grab every frame the camera sends; convert only those due at the sample rate."""
        period = 1.0 / self.spec.sample_fps
        next_due = time.monotonic()
        while not self._stop.is_set():
            if not capture.grab():
                return
            self.frames_grabbed += 1
            if time.monotonic() < next_due:
                continue
            next_due = max(next_due + period, time.monotonic())
            ok, image = capture.retrieve()
            if not ok or image is None:
                self.decode_errors += 1
                continue
            self.frames_read += 1
            self.last_frame_at = _now()
            with self._fresh:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = (image, self.last_frame_at)
                self._fresh.notify_all()

    # -- the consumer ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        self._reader.start()
        geo = GeoPoint(self.spec.lat, self.spec.lon) if self.spec.lat is not None else None
        zone = ZoneInfo(self.spec.timezone)
        seq = 0
        while not self._stop.is_set():
            with self._fresh:
                self._fresh.wait_for(lambda: self._latest is not None or self._stop.is_set(), timeout=1.0)
                latest, self._latest = self._latest, None
            if latest is None:
                continue
            image, grabbed_at = latest
            yield Frame(self.spec.id, seq, grabbed_at.astimezone(zone), image, geo, self.spec.camera, self.address,
                        time_source="stream_clock")
            seq += 1

    def alive(self) -> bool:
        """False once the reader thread has ended (stopped, or died of an error it did not expect)."""
        return self._reader.is_alive()

    def close(self) -> None:
        self._stop.set()
        with self._fresh:
            self._fresh.notify_all()
        if self._reader.is_alive():
            self._reader.join(timeout=_READ_TIMEOUT_MS / 1000 + 1)
