"""Drawing for annotated copies: the zone and the subject's boxes over a copy of the original."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from nonsite.vision import Detection

_ZONE = (0, 200, 255)
_SUBJECT = (0, 0, 255)


def annotate(image: np.ndarray, polygon: Sequence[tuple[float, float]], subject: Sequence[Detection], caption: str) -> np.ndarray:
    canvas = image.copy()
    points = np.array(polygon, dtype=np.int32).reshape(-1, 1, 2)
    overlay = canvas.copy()
    cv2.fillPoly(overlay, [points], _ZONE)
    canvas = cv2.addWeighted(overlay, 0.18, canvas, 0.82, 0)
    cv2.polylines(canvas, [points], True, _ZONE, 2, cv2.LINE_AA)
    scale = max(0.45, canvas.shape[1] / 1600)
    for detection in subject:
        x1, y1, x2, y2 = (int(round(v)) for v in detection.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _SUBJECT, 2, cv2.LINE_AA)
        label = f"{detection.class_name} {detection.confidence:.2f}" + (f" #{detection.track_id}" if detection.track_id is not None else "")
        _label(canvas, label, (x1, max(0, y1 - 4)), scale)
    _label(canvas, caption, (6, int(24 * scale / 0.45 * 0.9)), scale)
    return canvas


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    y = max(y, height + base)
    cv2.rectangle(canvas, (x, y - height - base), (x + width + 4, y + base // 2), (0, 0, 0), -1)
    cv2.putText(canvas, text, (x + 2, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def crop(image: np.ndarray, box: tuple[float, float, float, float], margin: float) -> np.ndarray:
    """The subject with some context around it, clipped to the frame."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    pad_x, pad_y = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(x1 - pad_x)), max(0, int(y1 - pad_y))
    right, bottom = min(width, int(x2 + pad_x) + 1), min(height, int(y2 + pad_y) + 1)
    return image[top:bottom, left:right]
