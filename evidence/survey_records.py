"""What the review desk knows of a survey run: its mosaics, their map previews and its findings files.

``nonsite survey`` writes one record per run into the surveys folder (``<id>.survey.json``), beside
the GeoJSON and GeoPackage it produced; the desk lists the records and draws each survey's
findings over the mosaic itself. A record names files; it seals nothing (the packs do).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

SUFFIX = ".survey.json"


@dataclass(frozen=True)
class MosaicRecord:
    path: str  # the GeoTIFF as the survey read it
    sha256: str
    date: str | None
    preview: str  # a reduced copy with overviews, for the map's zoomed-out tiles
    preview_gsd_m: float
    gsd_m: float


@dataclass(frozen=True)
class SurveyRecord:
    survey_id: str
    kind: str  # "objects" (one mosaic through the detectors) or "changes" (compared with the previous survey)
    mosaic: MosaicRecord
    previous: MosaicRecord | None
    bounds: tuple[float, float, float, float]  # west, south, east, north in degrees
    geojson: str
    geopackage: str
    findings: int
    packs: int

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.survey_id}{SUFFIX}"
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, path)
        return path

    @classmethod
    def read(cls, path: Path) -> SurveyRecord:
        raw = json.loads(path.read_text(encoding="utf-8"))
        previous = raw.pop("previous")
        return cls(**{**raw, "mosaic": MosaicRecord(**raw["mosaic"]), "previous": MosaicRecord(**previous) if previous else None,
                      "bounds": tuple(raw["bounds"])})


def survey_records(folder: Path | None) -> list[SurveyRecord]:
    """Every readable record in the folder, newest first; a damaged one is left out rather than breaking the list."""
    if folder is None or not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            records.append(SurveyRecord.read(path))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return records


def find_survey(folder: Path | None, survey_id: str) -> SurveyRecord | None:
    return next((r for r in survey_records(folder) if r.survey_id == survey_id), None)
