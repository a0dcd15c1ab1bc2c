"""A new drone flight compared with a baseline flight of the same area: changes become detections.

Each new picture is paired with the baseline picture taken nearest to it (by GPS, within
``MAX_PAIR_DISTANCE_M``, else by file name); the change detector's regions come back as
``suspected_new_structure`` detections, each with the files and facts an officer needs to judge
it (the baseline crop and frame, the change mask).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2

from nonsite.ingest.flight import FlightImage, read_flight
from nonsite.ingest.geo import displacement

from .change import ChangeDetector
from .detection import Detection

MAX_PAIR_DISTANCE_M = 30.0
CHANGE_CLASS = "new_structure"


@dataclass(frozen=True)
class FoundChange:
    """One changed region: its detection, the files to seal beside it, and what it was compared with."""

    detection: Detection
    files: dict[str, bytes]
    facts: dict


def _jpeg(image) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


class BaselineFlight:
    def __init__(self, detector: ChangeDetector, location: str, timezone: str, min_structure_m2: float):
        self.detector = detector
        self.min_structure_m2 = min_structure_m2
        self.pictures = [p for p in read_flight(location, timezone) if isinstance(p, FlightImage)]
        self.name = Path(location.rstrip("/")).stem

    def partner(self, picture: FlightImage) -> FlightImage | None:
        by_name = next((p for p in self.pictures if Path(p.name).name == Path(picture.name).name), None)
        if picture.lat is None:
            return by_name
        located = [(abs(complex(*displacement(p.lon, p.lat, picture.lon, picture.lat))), p) for p in self.pictures if p.lat is not None]
        near = min(located, key=lambda pair: pair[0], default=(None, None))
        return near[1] if near[0] is not None and near[0] <= MAX_PAIR_DISTANCE_M else by_name

    def changes(self, picture: FlightImage, metres_per_pixel: float | None) -> list[FoundChange]:
        partner = self.partner(picture)
        if partner is None:
            return []
        gsd = metres_per_pixel or 0.1
        result = self.detector.detect(partner.image, picture.image, min_area_px=int(self.min_structure_m2 / gsd**2))
        found = []
        for x1, y1, x2, y2 in result.regions:
            box = (float(x1), float(y1), float(x2), float(y2))
            score = float(result.score[y1:y2, x1:x2].mean())
            files = {"baseline/crop.jpg": _jpeg(result.baseline_warped[y1:y2, x1:x2]), "baseline/key_frame.jpg": _jpeg(result.baseline_warped),
                     "change/mask.png": cv2.imencode(".png", (result.mask * 255).astype("uint8"))[1].tobytes()}
            facts = {"baseline_flight": self.name, "baseline_image": partner.name, "baseline_sha256": partner.sha256,
                     "registered": result.registered, "region_px": [x1, y1, x2, y2], "mean_change_score": round(score, 4)}
            detection = Detection(box, score, CHANGE_CLASS, ("suspected_new_structure",), "change", self.detector.weights_sha256)
            found.append(FoundChange(detection, files, facts))
        return found
