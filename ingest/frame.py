"""The value every source produces: one decoded picture with where and when it was taken."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from .h264 import EncodedPicture


@dataclass(frozen=True)
class GeoPoint:
    """WGS-84 position of the camera (or the drone) when the frame was taken."""

    lat: float
    lon: float
    alt_m: float | None = None


@dataclass(frozen=True)
class Frame:
    """A BGR picture from one source.

    ``seq`` counts frames *emitted* by the source (after sampling), so gaps in it never
    mean lost frames; ``captured_at`` is timezone-aware and is what every dwell timer uses.
    ``picture`` is the decoded picture, or a camera's key frame as sent (``EncodedPicture``: the
    main stream of a camera whose sub-stream the model watches), which ``image`` decodes the
    first time something needs its pixels; ``size`` never decodes.
    """

    source_id: str
    seq: int
    captured_at: datetime
    picture: np.ndarray | EncodedPicture = field(repr=False)
    geo: GeoPoint | None = None
    camera: str | None = None
    origin: str | None = None  # file path, URL or other locator of the raw picture
    encoded: bytes | None = field(default=None, repr=False)  # the picture's bytes exactly as received (files); None for decoded stream frames
    time_source: str = "unknown"  # where captured_at came from: exif, file_name, frame_number, interval, stream_clock, video_position, operator
    # What the model looks at when it is not ``image``: the camera's low-resolution sub-stream at the
    # same moment. Boxes found on it are scaled to ``image``, whose pixels zones are drawn in.
    detect_image: np.ndarray | None = field(default=None, repr=False)
    # The camera's own H.264 key frame that ``image`` is decoded from (Annex B, with the stream's
    # parameter sets: it decodes alone), when a stream read at key frames only sent one: the clip
    # ring keeps these bytes as sent instead of encoding the picture again.
    key_frame_h264: bytes | None = field(default=None, repr=False)
    # Why ``image`` is not the camera's own picture (the main stream's key frame did not decode and the
    # sub-stream picture stands in for it); None when it is. Set by ``image`` the first time it decodes.
    stand_in: str | None = None

    @cached_property
    def image(self) -> np.ndarray:
        """The picture's pixels (decoded here, once, when the source handed its key frame on as sent); the
        sub-stream picture, scaled, when that key frame does not decode (``stand_in``)."""
        if not self.undecoded:
            return self.picture
        try:
            return self.picture.decode()
        except ValueError as exc:
            if self.detect_image is None:
                raise
            # The frame is frozen for everyone else; it learns only here, once, what its pixels are.
            object.__setattr__(self, "stand_in", f"{exc}; the sub-stream picture the model analysed, scaled to {self.size[0]} x {self.size[1]}")
            return cv2.resize(self.detect_image, self.size, interpolation=cv2.INTER_LINEAR)

    @property
    def undecoded(self) -> bool:
        """Whether the source handed the picture on as sent, so that its pixels cost a decode."""
        return not isinstance(self.picture, np.ndarray)

    @property
    def model_image(self) -> np.ndarray:
        """The picture detection and motion gating use."""
        return self.image if self.detect_image is None else self.detect_image

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        if self.undecoded:
            return self.picture.size
        height, width = self.picture.shape[:2]
        return width, height
