"""Reading Chinese number plates (and shop signs) with an OCR that ships its own models.

RapidOCR bundles PP-OCR detection and recognition models for Chinese text as ONNX files, so
nothing is fetched at run time. Plate text is normalised (no separator dot, no spaces, upper
case) and checked against the national formats before anything relies on it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # I and O are never used
_STANDARD = re.compile(rf"^[{PROVINCES}][{LETTERS}][{LETTERS}0-9]{{4}}[{LETTERS}0-9挂学警港澳]$")
_NEW_ENERGY = re.compile(rf"^[{PROVINCES}][{LETTERS}](?:[DF][{LETTERS}0-9][0-9]{{4}}|[0-9]{{5}}[DF])$")
_LOOKALIKES = str.maketrans({"O": "0", "I": "1"})


def normalise_plate(text: str) -> str:
    cleaned = re.sub(r"[\s·•\.\-_:：]", "", text).upper()
    if len(cleaned) > 2:  # after the province and the issuing letter, O and I can only be digits
        cleaned = cleaned[:2] + cleaned[2:].translate(_LOOKALIKES)
    return cleaned


def plate_format(text: str) -> str | None:
    """'standard' (7 characters), 'new_energy' (8 characters), or None when it is not a valid plate."""
    if _NEW_ENERGY.match(text):
        return "new_energy"
    if _STANDARD.match(text):
        return "standard"
    return None


@dataclass(frozen=True)
class PlateReading:
    text: str
    confidence: float
    format: str | None

    @property
    def valid(self) -> bool:
        return self.format is not None


@cache
def _shared_engine():
    """One OCR engine per process: loading its models takes a second or two."""
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


class TextReader:
    """OCR over BGR images."""

    @property
    def _engine(self):
        return _shared_engine()

    def _boxes(self, image: np.ndarray, min_confidence: float) -> list[tuple[np.ndarray, str, float]]:
        result, _ = self._engine(image)
        return [(np.array(box, dtype=float), text, float(score)) for box, text, score in (result or []) if float(score) >= min_confidence]

    def lines(self, image: np.ndarray, min_confidence: float = 0.5) -> list[tuple[str, float]]:
        """Text lines: pieces side by side on one baseline are joined left to right (a plate's
        '沪A' and '12345' either side of its dot come back from the detector as two pieces)."""
        pieces = sorted(self._boxes(image, min_confidence), key=lambda p: p[0][:, 0].min())
        rows: list[list[tuple[np.ndarray, str, float]]] = []
        for piece in pieces:
            centre, height = piece[0][:, 1].mean(), np.ptp(piece[0][:, 1])
            row = next((r for r in rows if abs(r[-1][0][:, 1].mean() - centre) < 0.5 * max(height, 1)), None)
            if row is None:
                rows.append([piece])
            else:
                row.append(piece)
        return [self._read_row(image, row) for row in rows]

    def _read_row(self, image: np.ndarray, row: list[tuple[np.ndarray, str, float]]) -> tuple[str, float]:
        """Recognise the whole row again as one line from the full-resolution crop: overlapping
        pieces are not read twice, and detail lost when the detector shrank the image comes back."""
        points = np.concatenate([p[0] for p in row])
        pad = 0.15 * np.ptp(points[:, 1])
        x1, y1 = np.maximum(points.min(0) - pad, 0).astype(int)
        x2, y2 = np.minimum(points.max(0) + pad, [image.shape[1], image.shape[0]]).astype(int)
        result, _ = self._engine(image[y1:y2, x1:x2], use_det=False, use_cls=False, use_rec=True)
        if not result:
            return "".join(p[1] for p in row), min(p[2] for p in row)
        text, score = result[0][0], float(result[0][1])
        return text, score

    def plate(self, image: np.ndarray) -> PlateReading | None:
        """The best plate-shaped text in the image (a vehicle crop), valid formats first."""
        readings = []
        for text, score in self.lines(image, 0.3):
            candidate = normalise_plate(text)
            readings.append(PlateReading(candidate, score, plate_format(candidate)))
        if not readings:
            return None
        return max(readings, key=lambda r: (r.valid, r.confidence))
