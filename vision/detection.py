"""The value detection hands downstream: one box, what it is, and which model said so."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Detection:
    """An object in one frame, in pixel coordinates of that frame (x1, y1, x2, y2)."""

    box: tuple[float, float, float, float]
    confidence: float
    class_name: str
    categories: tuple[str, ...]
    model: str
    weights_sha256: str
    track_id: int | None = None
    ground: tuple[float, float] | None = None  # (lon, lat) of the box centre, for geo-referenced imagery

    @property
    def label(self) -> str:
        """'model:class', unique when several detectors share a class name (COCO 'car' vs aerial 'car')."""
        return f"{self.model}:{self.class_name}"

    def is_one_of(self, classes) -> bool:
        """Rules name classes plainly ('car': any model) or qualified ('aerial_vehicle:car')."""
        return self.class_name in classes or self.label in classes

    @property
    def bottom_centre(self) -> tuple[float, float]:
        """Where the object touches the ground: the point zones are tested with."""
        x1, _, x2, y2 = self.box
        return (x1 + x2) / 2.0, y2

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0

    @property
    def diagonal(self) -> float:
        x1, y1, x2, y2 = self.box
        return float(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5)

    def with_track(self, track_id: int) -> "Detection":
        return replace(self, track_id=track_id)

    def scaled(self, sx: float, sy: float) -> "Detection":
        """The box in another picture's pixels: a sub-stream's detection on the main stream's frame."""
        x1, y1, x2, y2 = self.box
        return replace(self, box=(x1 * sx, y1 * sy, x2 * sx, y2 * sy))


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
