"""Frames from a folder of images, in natural order, timed by EXIF, by file name or by interval."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from .clock import from_timestamp, parse_compact_time, parse_exif_time, parse_local_time
from .config import SourceSpec
from .decoding import ImageRefused, decode_picture
from .errors import SourceError
from .frame import Frame, GeoPoint

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_DATETIME = 306


def natural_key(path: Path) -> list:
    """Sort 'frame-2' before 'frame-10', as a person would."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path, pattern: str | None = None) -> list[Path]:
    paths = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if pattern:
        regex = re.compile(pattern)
        frame_of = {p: regex.search(p.name) for p in paths}
        paths = [p for p in paths if frame_of[p]]
        if frame_of and all("frame" in m.groupdict() for m in frame_of.values() if m):
            return sorted(paths, key=lambda p: int(frame_of[p]["frame"]))
    return sorted(paths, key=natural_key)


def exif_time(path: Path, tz: str) -> datetime | None:
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            text = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
    except Exception:  # unreadable EXIF is no reason to drop the picture
        return None
    return parse_exif_time(text, tz) if isinstance(text, str) else None


class _FolderClock:
    """Decides each image's capture time: pattern, then EXIF, then start + n * interval."""

    def __init__(self, spec: SourceSpec, first: Path):
        self.spec = spec
        self.regex = re.compile(spec.time_pattern) if spec.time_pattern else None
        self.start = (
            parse_local_time(spec.start_time, spec.timezone)
            if spec.start_time
            else from_timestamp(first.stat().st_mtime, spec.timezone)
        )
        self.interval = spec.frame_interval_s or 1.0 / spec.sample_fps

    def time_of(self, path: Path, position: int) -> tuple[datetime, str]:
        """The capture time and where it came from (recorded in every pack)."""
        if self.regex and (match := self.regex.search(path.name)):
            groups = match.groupdict()
            if groups.get("ts"):
                return parse_compact_time(groups["ts"], self.spec.timezone), "file_name"
            if groups.get("frame"):
                return self.start + timedelta(seconds=int(groups["frame"]) / self.spec.video_fps), "frame_number"
        if self.spec.frame_interval_s is None and (stamp := exif_time(path, self.spec.timezone)):
            return stamp, "exif"
        return self.start + timedelta(seconds=position * self.interval), "interval"


def decode_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR; ``ImageRefused`` says why it cannot be used."""
    return decode_picture(path.read_bytes())


def read_folder(spec: SourceSpec) -> Iterator[Frame]:
    folder = Path(spec.uri)
    if folder.is_file():  # one picture replayed: a fixed camera's still scene
        paths = [folder]
    elif folder.is_dir():
        paths = list_images(folder, spec.time_pattern)
    else:
        raise SourceError(f"source {spec.id!r}: image folder {folder} does not exist")
    if not paths:
        raise SourceError(f"source {spec.id!r}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    clock = _FolderClock(spec, paths[0])
    geo = GeoPoint(spec.lat, spec.lon) if spec.lat is not None else None
    timed = sorted(((*clock.time_of(p, i), i, p) for i, p in enumerate(paths)), key=lambda item: (item[0], item[2]))
    times = [t for t, _, _, _ in timed]
    sources = [source for _, source, _, _ in timed]
    paths = [p for _, _, _, p in timed]
    span = (times[-1] - times[0]) + timedelta(seconds=clock.interval)
    seq = 0
    last_emitted: datetime | None = None
    min_gap = timedelta(seconds=1.0 / spec.sample_fps) * 0.999
    for lap in range(spec.repeat):
        for path, base_time, time_source in zip(paths, times, sources):
            captured_at = base_time + span * lap
            if last_emitted is not None and captured_at - last_emitted < min_gap:
                continue  # sampling: faster than the configured rate
            data = path.read_bytes()
            try:
                image = decode_picture(data)
            except ImageRefused as exc:
                log.warning("source %s: %s skipped: %s", spec.id, path, exc)
                continue
            yield Frame(spec.id, seq, captured_at, image, geo, spec.camera, str(path), encoded=data, time_source=time_source)
            seq += 1
            last_emitted = captured_at
