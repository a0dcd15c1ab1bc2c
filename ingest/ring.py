"""The last minutes of a camera, kept compressed, so a violation's pack can carry a clip of it.

A violation is only known once its subject has stood long enough, by which time the frames of the
moment it arrived are gone from every other stage. ``FrameRing`` keeps a compressed copy of each
sampled frame of a stream or video for ``seconds`` (by capture time), so the clip can start before
the subject was first seen.

Where a stream read at key frames only sent the picture as an H.264 key frame
(``Frame.key_frame_h264``), the ring keeps those bytes as sent: nothing is encoded on the frame
path, and the clip is made of the camera's own pictures (``evidence.clips`` packs them into the MP4
without encoding them again). Other frames, and pictures wider than ``max_width``, are downscaled to
``max_width`` and encoded as JPEG at ``quality``: a real 854 x 480 car-park frame is 70-90 KB either
way, so the default window of a site (10 s before + 300 s, at 1 fps) holds 22-28 MB per camera. A key
frame the reader did not decode at all (a sub-stream camera's main stream) is kept as sent whatever
its width: decoding a 1080p key frame only to shrink it costs 35 ms, more than everything else the
camera does in that second; the budget below then holds fewer seconds (a 1080p key frame of ~260 KB
a second: about 3 minutes).
``max_bytes`` (48 MB by default) bounds the memory whatever the frame rate, size or scene: past it
the oldest frames go first, so the clips of a fast-sampled camera are shorter. A clip shares the
ring's bytes; it copies none.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import cv2
import numpy as np

from .frame import Frame
from .h264 import decode_key_frame, parameter_sets


@dataclass(frozen=True)
class ClipFrame:
    """One sampled frame of a clip: when it was captured, and its picture (``codec``: "jpeg", or "h264"
    for a key frame as the camera sent it, which decodes alone). ``checked`` is False for a key frame
    nobody has decoded yet (a sub-stream camera's main stream): whether it arrived whole is not known."""

    at: datetime
    data: bytes = field(repr=False)
    codec: Literal["jpeg", "h264"] = "jpeg"
    checked: bool = True

    def picture(self) -> np.ndarray:
        """An H.264 key frame decoded (BGR); ``ValueError`` when it does not decode."""
        return decode_key_frame(self.data, f"the clip frame of {self.at.isoformat()}")

    def as_jpeg(self, quality: int = 90) -> bytes:
        """The picture as a JPEG: its own bytes, or its key frame decoded and encoded (``ValueError`` when it
        does not decode)."""
        if self.codec == "jpeg":
            return self.data
        ok, data = cv2.imencode(".jpg", self.picture(), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError(f"cannot encode the clip frame of {self.at.isoformat()} as JPEG")
        return data.tobytes()

    def parameter_sets(self) -> bytes:
        """An H.264 key frame's SPS and PPS units (its picture size and coding settings); empty for a JPEG."""
        return parameter_sets(self.data) if self.codec == "h264" else b""


@dataclass(frozen=True)
class Clip:
    """Consecutive sampled frames of one camera, in capture order, to be played at ``fps``."""

    fps: float
    frames: tuple[ClipFrame, ...]

    @property
    def started_at(self) -> datetime:
        return self.frames[0].at

    @property
    def ended_at(self) -> datetime:
        return self.frames[-1].at


def _even_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """At most ``max_width`` wide, the aspect kept, both sides even: H.264 in 4:2:0 needs even sides."""
    scale = min(1.0, max_width / width)
    return max(2, int(width * scale) // 2 * 2), max(2, round(height * scale / 2) * 2)


class FrameRing:
    """The sampled frames of the last ``seconds`` of one camera, of at most ``max_bytes`` in all.

    Frames must be added in capture order (as every source emits them)."""

    def __init__(self, seconds: float, max_width: int = 960, quality: int = 80, max_bytes: int = 48 << 20):
        if seconds < 0 or max_width < 2 or max_bytes < 1:
            raise ValueError("a frame ring needs seconds >= 0, max_width >= 2 and max_bytes >= 1")
        self.seconds = seconds
        self.max_width = max_width
        self.quality = quality
        self.max_bytes = max_bytes
        self._frames: deque[ClipFrame] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def held_bytes(self) -> int:
        """The bytes held now (never more than ``max_bytes``)."""
        return self._bytes

    def add(self, frame: Frame) -> None:
        """Keep the frame's key frame as sent, or a JPEG copy; drop what is older than ``seconds`` before it,
        or over the budget."""
        if frame.key_frame_h264 is not None and (frame.size[0] <= self.max_width or frame.undecoded):
            kept = ClipFrame(frame.captured_at, frame.key_frame_h264, "h264", checked=not frame.undecoded)
        else:
            kept = ClipFrame(frame.captured_at, self._jpeg(frame.image))
        self._frames.append(kept)
        self._bytes += len(kept.data)
        oldest_kept = frame.captured_at - timedelta(seconds=self.seconds)
        while self._frames and (self._bytes > self.max_bytes or self._frames[0].at < oldest_kept):
            self._bytes -= len(self._frames.popleft().data)

    def _jpeg(self, image: np.ndarray) -> bytes:
        height, width = image.shape[:2]
        size = _even_size(width, height, self.max_width)
        if size != (width, height):
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError(f"cannot encode a {width} x {height} frame as JPEG")
        return data.tobytes()

    def clip(self, start: datetime, end: datetime) -> Clip | None:
        """The kept frames captured from ``start`` to ``end`` (both included), or None when fewer than two
        are kept (the start may be gone already when the episode lasted longer than the ring's window).

        The clip plays at the rate the frames were sampled at, measured from their capture times, so it
        lasts as long as the moment it shows even where a video's sampling step rounds the configured
        rate (25 fps sampled at 10 fps gives every 2nd frame: 12.5 fps) or a stream dropped frames."""
        frames = tuple(f for f in self._frames if start <= f.at <= end)
        span = (frames[-1].at - frames[0].at).total_seconds() if len(frames) >= 2 else 0.0
        return Clip((len(frames) - 1) / span, frames) if span > 0 else None
