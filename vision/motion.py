"""Motion gating: a cheap per-camera test of whether the model needs to look at a frame at all.

Most fixed-camera frames show a scene that has not changed since the model last looked, and the
model's answer would be the one it already gave. OpenCV background subtraction on a small grey
copy of the frame costs well under a millisecond; the detector costs tens to hundreds. The gate
asks for the model when enough of the watched picture changed, and in any case every
``recheck_s``, so that a parked car keeps being confirmed (and its dwell clock keeps a fresh
box) while nothing moves: Frigate's stationary-object re-check.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

RelativePoint = tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]

# How quickly the background absorbs a change, in seconds of footage rather than in frames, so a
# camera sampled at 1 fps and one replayed every 5 s behave alike: a car that stopped is background
# again a frame or two later (the model has looked at it by then), while a moving object keeps
# changing pixels every frame. The rate is per frame, 1 - exp(-gap / _ABSORB_S), kept below 1
# because OpenCV reads a rate of 1 as "start the model afresh" and then calls every pixel moving.
_ABSORB_S = 2.0
_RATE_BOUNDS = (0.005, 0.9)
# MOG2's own threshold (squared distance in variances) on the blurred grey frame.
_VAR_THRESHOLD = 16
_OPEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))  # drops speckle: sensor noise, JPEG blocks


class MotionSpec(BaseModel):
    """When the model must look at a camera's frame (``detection.motion`` of a site config)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    width: int = Field(default=320, ge=64, le=1920, description="Largest width in pixels of the downscaled copy motion is measured on "
        "(the frame shrunk by a whole factor).")
    min_changed: float = Field(
        default=0.002, gt=0, le=1, description="Share of the watched (unmasked) pixels that must change for the model to look."
    )
    recheck_s: float = Field(
        default=30, gt=0, le=3600,
        description="The model looks at least this often even when nothing moves, so parked objects stay confirmed.",
    )
    mask: list[Annotated[list[RelativePoint], Field(min_length=3)]] = Field(
        default_factory=list,
        description="Polygons, corners [x, y] as shares (0..1) of the frame's width and height, where motion is ignored "
        "(a timestamp overlay, trees in the wind).",
    )


class MotionGate:
    """Decides, frame by frame for one camera, whether the model must look.

    Every frame updates the background model, looked at or not; ``frames`` counts the frames
    seen and ``looked`` those the gate sent to the model."""

    def __init__(self, spec: MotionSpec):
        self.spec = spec
        self.frames = 0
        self.looked = 0
        self.changed = 0.0  # share of watched pixels that changed on the last frame
        self._subtractor = None
        self._size: tuple[int, int] | None = None
        self._watched: np.ndarray | None = None  # 255 where motion counts
        self._watched_pixels = 0
        self._last_at: datetime | None = None
        self._looked_at: datetime | None = None
        self._looked_small: np.ndarray | None = None  # the picture the model last looked at, as the gate sees it

    def look(self, image: np.ndarray, at: datetime, on_edge: bool = False) -> bool:
        """True on the first frame, when ``min_changed`` of the watched picture moved, or when the
        model last looked ``recheck_s`` or more ago (by ``at``, the frame's capture time).

        ``on_edge``: the model's last answer had an object a rule judges (in its zone) right at
        the rule's confidence threshold. Such an answer can flip on a picture the background model calls unchanged (two
        video frames 1/30 s apart: a car at 0.400 on one, 0.414 on the next), so the model then
        looks at every picture that is not identical to the one it last saw."""
        small = self._prepare(image)
        first = self._subtractor is None
        if first:
            # Shadow detection stays off: on a grey frame MOG2 calls any darker-but-similar pixel a
            # shadow, and a grey car arriving on light asphalt is exactly that.
            self._subtractor = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=_VAR_THRESHOLD, detectShadows=False)
        moving = self._subtractor.apply(small, learningRate=self._rate(at))
        moving = cv2.morphologyEx(cv2.bitwise_and(moving, self._watched), cv2.MORPH_OPEN, _OPEN)
        self.changed = cv2.countNonZero(moving) / self._watched_pixels if self._watched_pixels else 0.0
        self.frames += 1
        self._last_at = at
        due = self._looked_at is None or (at - self._looked_at).total_seconds() >= self.spec.recheck_s
        if first or due or self.changed >= self.spec.min_changed or (on_edge and self._differs(small)):
            self.looked += 1
            self._looked_at = at
            self._looked_small = small
            return True
        return False

    def _differs(self, small: np.ndarray) -> bool:
        """Whether ``small`` is not the very picture the model last looked at (compared only on the edge case)."""
        looked = self._looked_small
        return looked is None or small.shape != looked.shape or bool(np.any(small != looked))

    def _rate(self, at: datetime) -> float:
        if self._last_at is None:
            return _RATE_BOUNDS[1]
        gap = max(0.0, (at - self._last_at).total_seconds())
        return min(max(1.0 - math.exp(-gap / _ABSORB_S), _RATE_BOUNDS[0]), _RATE_BOUNDS[1])

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        """The small, grey, blurred copy; a change of frame size (a camera reconfigured) starts over.

        The copy is the frame shrunk by a whole factor (at most ``spec.width`` wide), after cutting
        the last few columns or rows that do not fill a block of that factor: OpenCV averages whole
        blocks several times faster than fractional ones (854 -> 284 px: 0.2 ms, 854 -> 320: 0.8 ms,
        measured), which on a gated camera was the largest part of the gate's cost."""
        height, width = image.shape[:2]
        factor = max(1, math.ceil(width / self.spec.width))
        size = (width // factor, max(1, height // factor))
        if size != self._size:
            self._size, self._subtractor, self._looked_at = size, None, None
            self._watched = self._mask(size)
            self._watched_pixels = cv2.countNonZero(self._watched)
        whole = image[: size[1] * factor, : size[0] * factor]
        grey = whole if whole.ndim == 2 else cv2.cvtColor(whole, cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), (5, 5), 0)

    def _mask(self, size: tuple[int, int]) -> np.ndarray:
        width, height = size
        watched = np.full((height, width), 255, np.uint8)
        for polygon in self.spec.mask:
            corners = np.array([[round(x * width), round(y * height)] for x, y in polygon], np.int32)
            cv2.fillPoly(watched, [corners], 0)
        return watched
