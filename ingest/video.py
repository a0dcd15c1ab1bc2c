"""Frames from a video file, sampled at the configured rate with times from the file's clock."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import cv2

from .clock import from_timestamp, parse_local_time
from .config import SourceSpec
from .errors import SourceError
from .frame import Frame, GeoPoint

log = logging.getLogger(__name__)


def read_video(spec: SourceSpec) -> Iterator[Frame]:
    path = Path(spec.uri)
    if not path.is_file():
        raise SourceError(f"source {spec.id!r}: video file {path} does not exist")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f"source {spec.id!r}: cannot decode video {path} (not a video, or codec missing)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(fps / spec.sample_fps))
    start = parse_local_time(spec.start_time, spec.timezone) if spec.start_time else from_timestamp(path.stat().st_mtime, spec.timezone)
    geo = GeoPoint(spec.lat, spec.lon) if spec.lat is not None else None
    index = seq = 0
    try:
        while True:
            if not capture.grab():
                return
            if index % step == 0:
                ok, image = capture.retrieve()
                if ok and image is not None:
                    yield Frame(spec.id, seq, start + timedelta(seconds=index / fps), image, geo, spec.camera, f"{path}#{index}",
                                time_source="video_position")
                    seq += 1
                else:
                    log.warning("source %s: frame %d of %s could not be decoded; skipped", spec.id, index, path)
            index += 1
    finally:
        capture.release()
