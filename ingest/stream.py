"""Frames from a live stream (RTSP/HTTP): always the newest one, reconnecting when it dies.

A reader thread decodes continuously and keeps only the latest picture, so a slow detector
never builds up a backlog: latency stays one frame, and stale frames are dropped by design.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from .config import SourceSpec
from .frame import Frame, GeoPoint

log = logging.getLogger(__name__)

_OPEN_TIMEOUT_MS = 5000
_READ_TIMEOUT_MS = 5000


def without_credentials(uri: str) -> str:
    """The stream's address as packs may record it: user name and password removed."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))


class LiveStream:
    """Iterate to get the newest frame at ``sample_fps``; ``close()`` ends the iteration."""

    def __init__(self, spec: SourceSpec, first_backoff_s: float = 0.5):
        self.spec = spec
        self.first_backoff_s = first_backoff_s
        self.reconnects = 0
        self.dropped = 0
        self._latest: np.ndarray | None = None
        self._fresh = threading.Condition()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_forever, name=f"stream-{spec.id}", daemon=True)

    def _open(self) -> cv2.VideoCapture | None:
        capture = cv2.VideoCapture(
            self.spec.uri,
            cv2.CAP_FFMPEG,
            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, _READ_TIMEOUT_MS],
        )
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _read_forever(self) -> None:
        backoff = self.first_backoff_s
        while not self._stop.is_set():
            capture = self._open()
            if capture is None:
                log.warning("stream %s: cannot connect to %s; retrying in %.1f s", self.spec.id, self.spec.uri, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.spec.reconnect_max_s)
                continue
            log.info("stream %s: connected", self.spec.id)
            backoff = self.first_backoff_s
            while not self._stop.is_set():
                ok, image = capture.read()
                if not ok or image is None:
                    break
                with self._fresh:
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = image
                    self._fresh.notify_all()
            capture.release()
            if not self._stop.is_set():
                self.reconnects += 1
                log.warning("stream %s: stream ended or died; reconnecting", self.spec.id)

    def __iter__(self) -> Iterator[Frame]:
        self._reader.start()
        period = 1.0 / self.spec.sample_fps
        geo = GeoPoint(self.spec.lat, self.spec.lon) if self.spec.lat is not None else None
        zone = ZoneInfo(self.spec.timezone)
        seq = 0
        next_due = time.monotonic()
        while not self._stop.is_set():
            with self._fresh:
                self._fresh.wait_for(lambda: self._latest is not None or self._stop.is_set(), timeout=1.0)
                image, self._latest = self._latest, None
            if image is None:
                continue
            yield Frame(self.spec.id, seq, datetime.now(zone), image, geo, self.spec.camera, without_credentials(self.spec.uri),
                        time_source="stream_clock")
            seq += 1
            next_due += period
            self._stop.wait(max(0.0, next_due - time.monotonic()))
            next_due = max(next_due, time.monotonic())

    def close(self) -> None:
        self._stop.set()
        with self._fresh:
            self._fresh.notify_all()
        if self._reader.is_alive():
            self._reader.join(timeout=_READ_TIMEOUT_MS / 1000 + 1)
