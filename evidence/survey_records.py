"""What the review desk knows of a survey run: its mosaics, their map previews and its findings files.

``nonsite survey`` writes one record per run into the surveys folder (``<id>.survey.json``), beside
the GeoJSON and GeoPackage it produced; the desk lists the records and draws each survey's
findings over the mosaic itself. A record names files; it seals nothing (the packs do).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from nonsite.rules.loader import ConfigError

SUFFIX = ".survey.json"
SURVEY_ID = r"^\w[\w.-]{0,119}$"  # letters of any script, digits, '_', '.', '-': a file name and a URL segment as it is


def check_survey_id(survey_id: str) -> str:
    """The id names the survey's files and its page: refuse what could leave the surveys folder or break the address."""
    if not re.fullmatch(SURVEY_ID, survey_id) or ".." in survey_id:
        raise ConfigError(f"survey id {survey_id!r}: use letters, digits, '_', '.' and '-' only (up to 120; pass --survey-id)")
    return survey_id


@dataclass(frozen=True)
class MosaicRecord:
    path: str  # the GeoTIFF as the survey read it
    sha256: str
    size: int  # with mtime_ns: the map refuses a file that is no longer the one surveyed (hashing gigabytes per tile is not an option)
    mtime_ns: int
    date: str | None
    preview: str  # a reduced copy with overviews, for the map's zoomed-out tiles
    preview_gsd_m: float
    gsd_m: float
    stretch: list[tuple[float, float]] | None  # a 16-bit mosaic's stretch, measured once

    def unchanged(self) -> bool:
        try:
            facts = os.stat(self.path)
        except OSError:
            return False
        return facts.st_size == self.size and facts.st_mtime_ns == self.mtime_ns


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
    """The survey's own record file (every map tile asks, so no other record is read); None if absent or damaged."""
    if folder is None:
        return None
    try:
        record = SurveyRecord.read(folder / f"{check_survey_id(survey_id)}{SUFFIX}")
    except (OSError, ValueError, TypeError, KeyError, ConfigError):
        return None
    return record if record.survey_id == survey_id else None
