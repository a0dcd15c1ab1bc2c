"""``nonsite survey MOSAIC``: an orthomosaic of any size through tiled detection, window by window, to GeoJSON.

The mosaic is never decoded whole (``ingest.mosaic``): memory is one window plus the model, whatever
the file's size. Each window is read with a margin of at least twice the largest object the models
look for (from their manifests' ``object_m`` and the mosaic's ground sampling distance) and at least
the tile overlap; inside it the tiled detector cuts, runs and merges as it does for drone photos
(``TiledDetector``, whose ``merge_boxes`` joins parts cut by tile borders). Across windows no merging
state is kept: a detection belongs to the window whose core (the grid cell the margin widens) holds
its centre. Cores do not overlap, so a car seen by two windows is reported once, and because the
margin is wider than half of any object, the window that owns a car sees it whole.

Resumable by window: the findings of a finished window are appended to a journal beside the GeoJSON,
then the window is marked done in the database (``FlightProgress``, keyed by a digest of the mosaic's
SHA-256, the window and the models). A rerun skips windows marked done and takes their findings from
the journal, last entry per window; a crash between the two steps only repeats that window.

Findings go to GeoJSON and a GeoPackage (points in WGS-84, with the mosaic's own CRS coordinates and
pixel box), each tied to the mosaic by its streamed SHA-256. Packs come from comparing two surveys
(``survey_compare``): an object in one survey is not yet a violation of a plot's rules.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nonsite.evidence.flights import FlightProgress
from nonsite.evidence.gis import write_findings
from nonsite.evidence.survey_records import MosaicRecord, SurveyRecord, check_survey_id
from nonsite.ingest.mosaic import Mosaic, MosaicWindow, WindowPixels, file_sha256, window_grid
from nonsite.ingest.mosaic_preview import write_preview
from nonsite.vision.tiling import TiledDetector

from .settings import Settings

T = TypeVar("T")
CORE_TILES = 4  # a window's core is this many tiles a side: few windows, each a few tens of megabytes


@dataclass(frozen=True)
class SurveyFinding:
    """One object found in the mosaic: its box in mosaic pixels and its centre on the ground."""

    window: int
    box: tuple[float, float, float, float]
    label: str
    confidence: float
    crs_xy: tuple[float, float]
    lonlat: tuple[float, float]


@dataclass
class SurveySummary:
    survey_id: str
    windows: int = 0
    resumed: int = 0
    empty: int = 0
    core: int = 0
    margin: int = 0
    findings: list[SurveyFinding] = field(default_factory=list)
    geojson: Path | None = None
    geopackage: Path | None = None


def window_size(detectors: Sequence[TiledDetector], metres_per_pixel: float) -> tuple[int, int]:
    """(core, margin) in pixels: the margin holds twice the largest object any model looks for, and the tile overlap."""
    largest_px = max((d.detector.manifest.object_m or 0.0) for d in detectors) / metres_per_pixel
    margin = math.ceil(max(max(d.tile * d.overlap for d in detectors), 2 * largest_px))
    return max(CORE_TILES * max(d.tile for d in detectors), 2 * margin), margin


def window_key(mosaic_sha256: str, window: MosaicWindow, detectors: Sequence[TiledDetector]) -> str:
    """What makes a window's findings what they are: the same file, window and models give the same key."""
    facts = {"mosaic": mosaic_sha256, "read": window.read, "core": window.core,
             "models": [(d.name, d.detector.weights_sha256, d.tile, d.overlap) for d in detectors]}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


class Journal:
    """Each finished window's findings, one JSON line per window, flushed to disk before the window is marked done."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, key: str, findings: Sequence) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"key": key, "findings": [asdict(f) for f in findings]}) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def read(self, keys: set[str], parse: Callable[[dict], T]) -> dict[str, list[T]]:
        """Findings of the windows with these keys, each made by ``parse`` from its JSON; a window journalled
        twice (redone after a crash) counts once."""
        found: dict[str, list[T]] = {}
        if not self.path.exists():
            return found
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by the crash: that window is not marked done, and is redone
            if entry["key"] in keys:
                found[entry["key"]] = [parse(f) for f in entry["findings"]]
        return found


@dataclass(frozen=True)
class WindowJob:
    """A pass over a mosaic's windows: what to call each window's work, its journal, and how to redo or describe it."""

    survey_id: str
    title: str
    journal: str  # the journal's file is ``<survey_id>.<journal>.jsonl``
    windows: Sequence[MosaicWindow]
    keys: Sequence[str]  # what makes each window's findings what they are (files, window, models)
    parse: Callable[[dict], object]  # a journalled finding from its JSON
    analyse: Callable[[MosaicWindow], list | None]  # a window's findings; None where the mosaic has no data there
    describe: Callable[[MosaicWindow], str]


@dataclass
class WindowOutcome:
    found: list = field(default_factory=list)  # every window's findings, in window order
    resumed: int = 0
    empty: int = 0


def each_window(settings: Settings, console: Console, job: WindowJob) -> WindowOutcome:
    """Every window not done before, with progress; each finished window journalled, then marked done."""
    progress = FlightProgress(settings.open_index().engine, job.survey_id)
    journal = Journal(settings.data_dir / "surveys" / f"{job.survey_id}.{job.journal}.jsonl")
    done = journal.read(set(job.keys) & progress.done, job.parse)
    outcome = WindowOutcome()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(job.title, total=len(job.windows))
        for window, key in zip(job.windows, job.keys):
            if key in done:
                outcome.resumed += 1
            else:
                found = job.analyse(window)
                outcome.empty += found is None
                done[key] = found or []
                journal.append(key, done[key])
                progress.mark_done(key, job.describe(window), len(done[key]))
            bar.advance(task)
    outcome.found = [f for key in job.keys for f in done[key]]
    return outcome


def _read_finding(entry: dict) -> SurveyFinding:
    return SurveyFinding(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()})


def find_in_window(mosaic: Mosaic, pixels: WindowPixels, detectors: Sequence[TiledDetector]) -> list[SurveyFinding]:
    """Detections of every model in one window, in mosaic pixels, kept only where the window owns their centre."""
    x0, y0 = pixels.window.read[:2]
    owned = []
    for detector in detectors:
        for d in detector.detect([pixels.image])[0]:
            box = (d.box[0] + x0, d.box[1] + y0, d.box[2] + x0, d.box[3] + y0)
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            if pixels.window.owns(*centre):
                owned.append((box, centre, d))
    centres = [centre for _, centre, _ in owned]
    return [SurveyFinding(pixels.window.index, box, d.label, d.confidence, crs_xy, lonlat)
            for (box, _, d), crs_xy, lonlat in zip(owned, mosaic.to_crs(centres), mosaic.to_lonlat(centres))]


def _features(mosaic: Mosaic, mosaic_sha256: str, findings: Sequence[SurveyFinding]) -> list[dict]:
    return [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(f.lonlat)},
         "properties": {"label": f.label, "confidence": round(f.confidence, 4), "box_px": [round(v, 1) for v in f.box],
                        "crs": mosaic.crs, "crs_xy": list(f.crs_xy), "window": f.window, "mosaic": mosaic.path.name,
                        "mosaic_sha256": mosaic_sha256}}
        for f in findings
    ]


def mosaic_record(settings: Settings, path: Path, sha256: str) -> MosaicRecord:
    """The mosaic's entry in the survey's record, with its map preview (made once per file: named by its hash)."""
    preview = settings.data_dir / "surveys" / "previews" / f"{sha256[:16]}.tif"
    preview.parent.mkdir(parents=True, exist_ok=True)
    with Mosaic(path) as mosaic:
        date, gsd, stretch = mosaic.capture_date(), mosaic.metres_per_pixel(), mosaic.stretch()
    if not preview.exists():
        write_preview(path, preview)
    with Mosaic(preview) as reduced:
        preview_gsd = reduced.metres_per_pixel()
    facts = Path(path).stat()
    return MosaicRecord(str(Path(path).resolve()), sha256, facts.st_size, facts.st_mtime_ns, date, str(preview), round(preview_gsd, 4),
                        round(gsd, 4), stretch)


def lonlat_bounds(mosaic: Mosaic) -> tuple[float, float, float, float]:
    corners = mosaic.to_lonlat([(0, 0), (mosaic.width, 0), (0, mosaic.height), (mosaic.width, mosaic.height)])
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    return min(lons), min(lats), max(lons), max(lats)


def run_survey(settings: Settings, console: Console, mosaic_path: Path, models: Sequence[str], tile: int = 640, overlap: float = 0.2,
               survey_id: str | None = None, device: str = "cpu", core: int | None = None) -> SurveySummary:
    """Every window of the mosaic not done before, through the models; the findings of all windows as GeoJSON.
    ``core`` overrides the window core size (tests and small machines); the margin always follows the models."""
    survey_id = check_survey_id(survey_id or Path(mosaic_path).stem)
    summary = SurveySummary(survey_id)
    with Mosaic(mosaic_path) as mosaic:
        mosaic_sha256 = file_sha256(mosaic.path)
        detectors = [TiledDetector(settings.registry.detector(name, device), tile, overlap) for name in models]
        summary.core, summary.margin = window_size(detectors, mosaic.metres_per_pixel())
        windows = window_grid(mosaic.width, mosaic.height, core or summary.core, summary.margin)
        summary.windows = len(windows)
        keys = [window_key(mosaic_sha256, window, detectors) for window in windows]

        def analyse(window: MosaicWindow) -> list[SurveyFinding] | None:
            pixels = mosaic.read(window)
            return find_in_window(mosaic, pixels, detectors) if pixels is not None else None

        outcome = each_window(settings, console, WindowJob(survey_id, f"survey {survey_id} (windows)", "windows", windows, keys,
                                                           _read_finding, analyse, lambda w: f"{mosaic.path.name} window {w.index} {w.core}"))
        summary.resumed, summary.empty, summary.findings = outcome.resumed, outcome.empty, outcome.found
        summary.geojson, summary.geopackage = write_findings(settings.data_dir / "surveys" / survey_id,
                                                             _features(mosaic, mosaic_sha256, summary.findings), "objects")
        SurveyRecord(survey_id, "objects", mosaic_record(settings, mosaic.path, mosaic_sha256), None,
                     lonlat_bounds(mosaic), str(summary.geojson), str(summary.geopackage), len(summary.findings), 0
                     ).write(settings.data_dir / "surveys")
    return summary
