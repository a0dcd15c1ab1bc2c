"""Privacy copies: key frames with bystanders and uninvolved plates blurred, the subject left clear.

Originals stay sealed in the pack. What goes to the public or to the offender is the disclosure
copy: every person who is not the subject is pixelated whole (faces included), and so is the
plate area of every other vehicle (the lower middle of its box, where plates sit from street
and CCTV angles). Nothing inside the subject's own boxes is touched.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import cv2
import numpy as np

from nonsite.rules import KeyFrame, Violation
from nonsite.vision import Detection, box_iou

from .pack import KEY_FRAMES

PERSON = "person"
VEHICLES = {"car", "truck", "bus", "motorcycle", "bicycle"}
BLOCK = 12  # pixelation cell: coarse enough that nobody is recognisable


def _pixelate(image: np.ndarray, box: tuple[int, int, int, int]) -> None:
    x1, y1, x2, y2 = box
    region = image[y1:y2, x1:x2]
    if region.size == 0:
        return
    small = cv2.resize(region, (max(1, (x2 - x1) // BLOCK), max(1, (y2 - y1) // BLOCK)), interpolation=cv2.INTER_AREA)
    image[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)


def _clip(box, width, height) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return max(0, int(x1)), max(0, int(y1)), min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))


def plate_area(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    return x1 + 0.2 * width, y1 + 0.6 * height, x2 - 0.2 * width, y2


def disclosure_image(image: np.ndarray, subject: Sequence[Detection], others: Sequence[Detection]) -> np.ndarray:
    out = image.copy()
    height, width = image.shape[:2]
    keep = np.zeros((height, width), bool)
    for detection in subject:
        x1, y1, x2, y2 = _clip(detection.box, width, height)
        keep[y1:y2, x1:x2] = True
    for detection in others:
        if any(box_iou(detection.box, s.box) > 0.5 for s in subject):
            continue  # the subject itself, seen again
        if detection.class_name == PERSON:
            _pixelate(out, _clip(detection.box, width, height))
        elif detection.class_name in VEHICLES:
            _pixelate(out, _clip(plate_area(detection.box), width, height))
    out[keep] = image[keep]
    return out


def add_disclosure_copies(violation: Violation, detections_of: Callable[[KeyFrame], list[Detection]], quality: int = 90) -> Violation:
    """``detections_of`` gives everything detected on a key frame (persons and vehicles included)."""
    keys = [getattr(violation, name) for name in KEY_FRAMES]
    found = [detections_of(key) for key in keys]
    files = dict(violation.attachments)
    blurred = {}
    for name, key, others in zip(KEY_FRAMES, keys, found):
        bystanders = [d for d in others if d.class_name == PERSON or d.class_name in VEHICLES]
        files[f"disclosure/{name}.jpg"] = cv2.imencode(".jpg", disclosure_image(key.frame.image, key.subject, bystanders),
                                                       [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        blurred[name] = {"persons": sum(d.class_name == PERSON for d in bystanders),
                         "other_vehicle_plates": sum(d.class_name in VEHICLES and not any(box_iou(d.box, s.box) > 0.5 for s in key.subject)
                                                     for d in bystanders)}
    return replace(violation, attachments=files, extras={**violation.extras, "disclosure": blurred})
