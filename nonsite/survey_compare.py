"""``nonsite survey NEW --previous OLD --config survey.yaml``: two orthomosaics of one area compared by their georeference.

No feature matching: both mosaics are read through GDAL's warper onto one grid, the new mosaic's
own extent and CRS at ``CHANGE_GSD_M`` a pixel (or its own pixel size when that is coarser), so a
survey delivered in another CRS or at another resolution lines up pixel for pixel. 0.5 m is the
scale the change model learnt on (LEVIR / DSIFN tiles); a building's footprint is still tens of
pixels there, and a 60 000 pixel mosaic at 5 cm is a 6 000 pixel grid, compared window by window.
Pixels outside either survey are never compared. A region belongs to the window whose core holds its
top-left-most pixel (the first in raster order): every window that sees a region whole finds the same
pixel, so a region narrower than the margin is reported once, by one window. One wider than the margin
(64 m) cannot be seen whole by any window and is reported in parts, one per window that holds a part's
first pixel.

Each changed region whose centre a window owns becomes one finding: its outline and area on the
ground, crops of both surveys at up to the mosaics' own resolution (``MAX_CROP_SIDE``), the kind
of change (``vision.change_kinds``, with the project's detectors run on the new crop) and the
parcel it falls in. The flight config's rules say which kinds count where (e.g. any new structure
on farmland, rooftop additions in residential plots): a kind a parcel's rule names becomes a pack
through the evidence sink, like a drone picture's finding; the others are still listed in the GIS
outputs, without a pack.

Resumable by window, as ``nonsite survey`` is: a window's findings are journalled, then marked done;
pack ids are deterministic, so a window redone after a crash stores nothing twice.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
from rich.console import Console

from nonsite.evidence.gis import write_findings
from nonsite.evidence.survey_records import SurveyRecord, check_survey_id
from nonsite.ingest import Frame
from nonsite.ingest.geo import Orthophoto
from nonsite.ingest.mosaic import Grid, Mosaic, MosaicRefused, MosaicWindow, WindowPixels, file_sha256, window_grid
from nonsite.rules.drone import FlightConfig, check_image, check_rules_fit, load_geo_zones, read_geo_features
from nonsite.rules.loader import ConfigError
from nonsite.rules.zones import contains
from nonsite.vision import Detection
from nonsite.vision.change import ChangeDetector
from nonsite.vision.change_kinds import classify_change
from nonsite.vision.tiling import TiledDetector

from .settings import Settings
from .survey import WindowJob, each_window, lonlat_bounds, mosaic_record

CHANGE_GSD_M = 0.5
CHANGE_CORE, CHANGE_MARGIN = 512, 128  # change-grid pixels: 256 m cores, read 64 m wider so a factory is seen whole
MAX_PREVIOUS_GSD_M = 4 * CHANGE_GSD_M  # a coarser previous survey cannot show what changed at the change scale
MAX_CROP_SIDE = 1600
CONTEXT = 0.5  # the crops show this share of the region's size around it, at least CONTEXT_MIN_M
CONTEXT_MIN_M = 10.0
MIN_SCALE_SHARE = 0.33  # an object detector runs on a crop that shows its objects at least this share of the size it learnt


@dataclass(frozen=True)
class SurveyChange:
    """One changed region: where, how large, what kind, and the pack raised for it (None: no rule counts this kind there)."""

    window: int
    region_px: tuple[int, int, int, int]
    footprint: list[tuple[float, float]]
    centre: tuple[float, float]
    area_m2: float
    score: float
    kind: str
    basis: str
    values: dict  # the figures behind the basis (``vision.change_kinds.BASIS``), and the region's surface cover
    parcel: str | None
    parcel_use: str | None
    pack_ids: list[str] = field(default_factory=list)


@dataclass
class CompareSummary:
    survey_id: str
    windows: int = 0
    resumed: int = 0
    outside: int = 0  # windows where the two surveys do not overlap
    change_gsd_m: float = 0.0
    changes: list[SurveyChange] = field(default_factory=list)
    new_packs: int = 0
    geojson: Path | None = None
    geopackage: Path | None = None


@dataclass(frozen=True)
class _Surveys:
    """The two files, by name and hash, and the dates they were flown."""

    new: Path
    new_sha256: str
    new_date: str | None
    previous: Path
    previous_sha256: str
    previous_date: str | None


def change_grid(mosaic: Mosaic) -> Grid:
    """The new mosaic's extent at ``CHANGE_GSD_M`` a pixel, or at its own pixel size where that is coarser."""
    return mosaic.grid.coarser(max(1.0, CHANGE_GSD_M / mosaic.metres_per_pixel()))


def survey_time(config: FlightConfig, mosaic: Mosaic) -> tuple[datetime, str]:
    """When the new survey was flown, and where that came from: the GeoTIFF's own date (at noon), else the config's
    flight_time. Where both are given they must name the same day: a config left over from another survey would
    otherwise date every pack wrongly."""
    zone = ZoneInfo(config.timezone)
    stated = config.flight_time.replace(tzinfo=config.flight_time.tzinfo or zone) if config.flight_time else None
    date = mosaic.capture_date()
    if date and stated and stated.astimezone(zone).date().isoformat() != date:
        raise ConfigError(f"{mosaic.path.name}: the GeoTIFF is dated {date} but the config's flight_time says "
                          f"{stated.astimezone(zone).date()}; remove flight_time or correct it")
    if date:
        return stated or datetime.combine(datetime.fromisoformat(date).date(), time(12), zone), "geotiff"
    if stated:
        return stated, "operator"
    raise ConfigError(f"{mosaic.path.name}: the GeoTIFF states no date (TIFFTAG_DATETIME); give the survey's date as flight_time "
                      "in the config")


def check_pair(new: Mosaic, previous: Mosaic, new_date: str | None, previous_date: str | None) -> tuple[int, int, int, int]:
    """Refuse a pair that cannot be compared (order of dates, no overlap, a far coarser previous survey); the
    previous survey's footprint as a box of the change grid's pixels."""
    from rasterio.warp import transform_bounds

    if new_date and previous_date and new_date <= previous_date:
        raise ConfigError(f"{new.path.name} ({new_date}) is not later than {previous.path.name} ({previous_date}): the previous "
                          "survey comes second (--previous OLD)")
    if (gsd := previous.native_metres_per_pixel()) > MAX_PREVIOUS_GSD_M:
        raise MosaicRefused(f"{previous.path.name}: {gsd:.2f} m a pixel, coarser than {MAX_PREVIOUS_GSD_M} m: it cannot show "
                            "changes of the size a survey compares")
    west, south, east, north = transform_bounds(previous.source.crs, new.dataset.crs, *previous.source.bounds)
    inverse = ~new.dataset.transform
    xs, ys = zip(*(inverse @ corner for corner in ((west, south), (west, north), (east, south), (east, north))))
    box = (max(0, int(min(xs))), max(0, int(min(ys))), min(new.width, int(np.ceil(max(xs)))), min(new.height, int(np.ceil(max(ys)))))
    if box[0] >= box[2] or box[1] >= box[3]:
        raise MosaicRefused(f"{previous.path.name} does not overlap {new.path.name}: not a previous survey of the same area")
    return box


def _meets(window: MosaicWindow, box: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = window.read
    return x0 < box[2] and box[0] < x1 and y0 < box[3] and box[1] < y1


def fine_enough(detector: TiledDetector, metres_per_pixel: float) -> bool:
    """Whether a crop at this ground sampling distance shows the model's objects at a size it can find: a car
    is 9 pixels on 0.5 m satellite imagery, where an aerial vehicle model finds only noise. A model whose
    manifest states no object size (one trained on ground-level photos) is never run on survey crops."""
    manifest = detector.detector.manifest
    if not (manifest.object_m and manifest.object_px):
        return False
    return manifest.object_m / metres_per_pixel >= MIN_SCALE_SHARE * manifest.object_px


def _crop_grid(grid: Grid, box: tuple[int, int, int, int], per_change_px: float) -> Grid:
    """A crop around ``box`` (change-grid pixels) with ``per_change_px`` crop pixels to each change-grid pixel."""
    from rasterio.transform import Affine

    x0, y0, x1, y1 = box
    return Grid(grid.crs, grid.transform @ Affine.translation(x0, y0) @ Affine.scale(1 / per_change_px),
                max(1, round((x1 - x0) * per_change_px)), max(1, round((y1 - y0) * per_change_px)))


def _lonlat_affine(mosaic: Mosaic, grid: Grid) -> Orthophoto:
    """The crop's pixels to WGS-84 degrees, as an affine fitted on its corners (exact for a CRS in degrees,
    within centimetres over a crop of a few hundred metres in a projected one)."""
    corners = [(0, 0), (grid.width, 0), (0, grid.height)]
    crs_points = [tuple(grid.transform @ corner) for corner in corners]
    (lon0, lat0), (lon1, lat1), (lon2, lat2) = mosaic.crs_to_lonlat(crs_points)
    a, d = (lon1 - lon0) / grid.width, (lat1 - lat0) / grid.width
    b, e = (lon2 - lon0) / grid.height, (lat2 - lat0) / grid.height
    return Orthophoto((a, b, lon0, d, e, lat0))


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


class SurveyComparison:
    """The two surveys on one grid, the models, the parcels and the sink: compares one window at a time."""

    def __init__(self, settings: Settings, config: FlightConfig, survey_id: str, new: Mosaic, previous: Mosaic,
                 surveys: _Surveys, detector: ChangeDetector):
        self.config, self.survey_id, self.new, self.previous, self.surveys = config, survey_id, new, previous, surveys
        self.detector = detector
        self.zones = load_geo_zones(Path(config.zones))
        check_rules_fit(config, self.zones)
        self._check_parcels_meet(lonlat_bounds(new))
        self.parcels_sha256 = file_sha256(Path(config.zones))
        self.uses = {str((f.get("properties") or {}).get("id", f"zone-{n}")): (f.get("properties") or {}).get("use")
                     for n, f in enumerate(read_geo_features(Path(config.zones)))}
        self.objects = [TiledDetector(settings.registry.detector(name, config.device), config.tile, config.overlap) for name in config.models]
        self.sink = settings.sink
        self.captured, self.time_source = survey_time(config, new)
        self.gsd = new.metres_per_pixel()  # of the change grid
        self.native_per_change = self.gsd / new.native_metres_per_pixel()
        self.new_packs = 0  # packs stored for the first time by this run (a window redone stores nothing twice)

    def _check_parcels_meet(self, bounds: tuple[float, float, float, float]) -> None:
        """A parcels file that lies elsewhere (another district, or metres taken for degrees) would raise nothing, silently."""
        west, south, east, north = bounds
        if not any(west <= lon <= east and south <= lat <= north for zone in self.zones for lon, lat in zone.polygon) and not any(
                contains(zone.polygon, corner) for zone in self.zones for corner in ((west, south), (east, north))):
            raise ConfigError(f"{self.config.zones}: no parcel meets the survey's area ({west:.5f}, {south:.5f}) to ({east:.5f}, "
                              f"{north:.5f}); wrong file, or coordinates that are not longitude and latitude")

    def key(self, window: MosaicWindow) -> str:
        """What makes a window's findings what they are: both files, the window, the models and the rules."""
        facts = {"new": self.surveys.new_sha256, "previous": self.surveys.previous_sha256, "read": window.read, "core": window.core,
                 "change": self.detector.weights_sha256, "models": [(d.name, d.detector.weights_sha256) for d in self.objects],
                 "config": self.config.model_dump(mode="json"), "parcels": self.parcels_sha256}
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()

    def compare(self, window: MosaicWindow) -> list[SurveyChange] | None:
        """The changes this window owns; None where the surveys do not overlap in it."""
        after, before = self.new.read(window), self.previous.read(window)
        if after is None or before is None:
            return None
        both = after.valid & before.valid
        result = self.detector.detect(before.image, after.image, min_area_px=max(1, int(self.config.min_structure_m2 / self.gsd ** 2)),
                                      aligned=True)
        count, labels, stats, _ = cv2.connectedComponentsWithStats((result.mask & both).astype(np.uint8))
        x0, y0 = window.read[:2]
        changes = []
        for label in range(1, count):
            if stats[label, cv2.CC_STAT_AREA] * self.gsd ** 2 < self.config.min_structure_m2:
                continue
            region = labels == label
            rows, cols = np.nonzero(region)  # in raster order: the first is the region's top-left-most pixel
            if not window.owns(cols[0] + x0, rows[0] + y0):
                continue
            changes.append(self._region(window, region, stats[label], float(result.score[region].mean())))
        return changes

    def _region(self, window: MosaicWindow, region: np.ndarray, stat: np.ndarray, score: float) -> SurveyChange:
        x0, y0 = window.read[:2]
        left, top, width, height = (int(v) for v in stat[:4])
        pad = max(CONTEXT * max(width, height), CONTEXT_MIN_M / self.gsd)
        box = (max(0, int(left - pad)), max(0, int(top - pad)), min(region.shape[1], int(left + width + pad)),
               min(region.shape[0], int(top + height + pad)))
        per_change_px = min(self.native_per_change, MAX_CROP_SIDE / max(box[2] - box[0], box[3] - box[1]))
        grid = _crop_grid(self.new.grid, (box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0), per_change_px)
        new_crop, old_crop = self.new.read_on(grid), self.previous.read_on(grid)
        mask = cv2.resize(region[box[1]:box[3], box[0]:box[2]].astype(np.uint8), (grid.width, grid.height),
                          interpolation=cv2.INTER_NEAREST) > 0
        crop_gsd = self.gsd / per_change_px
        found = [d for detector in self.objects if fine_enough(detector, crop_gsd) for d in detector.detect([new_crop.image])[0]]
        kind = classify_change(old_crop.image, new_crop.image, mask, found)
        contour = max(cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0], key=cv2.contourArea)
        outline = [(float(x + x0), float(y + y0)) for x, y in cv2.approxPolyDP(contour, 1.0, True)[:, 0]]
        footprint = self.new.to_lonlat(outline + outline[:1])
        rows, cols = np.nonzero(region)
        centre = self.new.to_lonlat([(float(cols.mean()) + x0, float(rows.mean()) + y0)])[0]
        full = self.new.to_source_pixels([(left + x0, top + y0), (left + width + x0, top + height + y0)])
        region_px = (round(full[0][0]), round(full[0][1]), round(full[1][0]), round(full[1][1]))
        change = SurveyChange(window.index, region_px, footprint, centre, round(float(region.sum()) * self.gsd ** 2, 1), round(score, 4),
                              kind.kind, kind.basis, kind.values, None, None)
        return self._raise(change, window, grid, new_crop, old_crop, mask, found)

    def _raise(self, change: SurveyChange, window: MosaicWindow, grid: Grid, new_crop: WindowPixels, old_crop: WindowPixels,
               mask: np.ndarray, found: list[Detection]) -> SurveyChange:
        """Packs for the rules that count this kind in the parcel the change falls in."""
        geo = _lonlat_affine(self.new, grid)
        rows, cols = np.nonzero(mask)
        box = (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
        subject = Detection(box, change.score, change.kind, ("suspected_new_structure",), "change", self.detector.weights_sha256,
                            ground=change.centre)
        frame = Frame(self.survey_id, change.window, self.captured, new_crop.image, None, None,
                      f"{self.surveys.new.name} window {change.window} {list(change.region_px)}", time_source=self.time_source)
        facts = {"survey_id": self.survey_id, "mosaic": self.surveys.new.name, "mosaic_sha256": self.surveys.new_sha256,
                 "survey_date": self.surveys.new_date, "previous_mosaic": self.surveys.previous.name,
                 "previous_sha256": self.surveys.previous_sha256, "previous_date": self.surveys.previous_date, "crs": self.new.crs,
                 "window": change.window, "region_px": change.region_px, "crop_grid": (*tuple(grid.transform)[:6], grid.width, grid.height),
                 "change_gsd_m": round(self.gsd, 4), "area_m2": change.area_m2, "change_score": change.score,
                 "footprint": change.footprint, "kind": change.kind, "kind_basis": change.basis,
                 "kind_values": change.values, "change_grid": (*tuple(self.new.dataset.transform)[:6], self.new.width, self.new.height),
                 "window_read": window.read, "stretch": self.new.stretch(), "previous_stretch": self.previous.stretch()}
        attachments = {"baseline/crop.png": _png(old_crop.image), "change/mask.png": _png(mask.astype(np.uint8) * 255)}
        parcel = next((zone.id for zone in self.zones if contains(zone.polygon, change.centre)), None)
        pack_ids = []
        for violation in check_image(self.config, self.zones, frame, [subject], geo.to_pixel, facts, section="survey"):
            survey = {**violation.extras["survey"], "parcel_use": self.uses.get(violation.zone.id)}
            violation = replace(violation, attachments=attachments, extras={"survey": survey})
            stored = self.sink.submit(violation, self.config.evidence, lambda _key: found)
            self.new_packs += stored.new
            pack_ids.append(stored.pack_id)
        return SurveyChange(**{**asdict(change), "parcel": parcel, "parcel_use": self.uses.get(parcel), "pack_ids": pack_ids})


def _features(summary: CompareSummary, surveys: _Surveys) -> list[dict]:
    return [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in c.footprint]]},
             "properties": {"kind": c.kind, "kind_basis": c.basis, "kind_values": c.values, "area_m2": c.area_m2, "change_score": c.score,
                            "parcel": c.parcel, "parcel_use": c.parcel_use, "pack_id": ",".join(c.pack_ids) or None,
                            "survey_id": summary.survey_id, "survey_date": surveys.new_date, "previous_date": surveys.previous_date,
                            "mosaic": surveys.new.name, "mosaic_sha256": surveys.new_sha256, "previous_mosaic": surveys.previous.name,
                            "previous_sha256": surveys.previous_sha256, "window": c.window, "region_px": list(c.region_px)}}
            for c in summary.changes]


def _read_change(entry: dict) -> SurveyChange:
    return SurveyChange(**{k: (tuple(v) if k in ("region_px", "centre") else [tuple(p) for p in v] if k == "footprint" else v)
                           for k, v in entry.items()})


def compare_surveys(settings: Settings, console: Console, new_path: Path, previous_path: Path, config: FlightConfig,
                    detector: ChangeDetector, survey_id: str | None = None, core: int | None = None) -> CompareSummary:
    """Every window of the change grid not done before; all changes as GeoJSON and GeoPackage."""
    survey_id = check_survey_id(survey_id or f"{Path(new_path).stem}-vs-{Path(previous_path).stem}")
    summary = CompareSummary(survey_id)
    with Mosaic(new_path) as probe:
        grid = change_grid(probe)
    with Mosaic(new_path, grid) as new, Mosaic(previous_path, grid) as previous:
        overlap = check_pair(new, previous, new.capture_date(), previous.capture_date())
        surveys = _Surveys(new.path, file_sha256(new.path), new.capture_date(), previous.path, file_sha256(previous.path),
                           previous.capture_date())
        comparison = SurveyComparison(settings, config, survey_id, new, previous, surveys, detector)
        summary.change_gsd_m = comparison.gsd
        windows = window_grid(grid.width, grid.height, core or CHANGE_CORE, CHANGE_MARGIN)
        summary.windows = len(windows)
        keys = [comparison.key(window) for window in windows]

        def analyse(window: MosaicWindow) -> list[SurveyChange] | None:
            return comparison.compare(window) if _meets(window, overlap) else None

        outcome = each_window(settings, console, WindowJob(
            survey_id, f"survey {survey_id} vs previous (windows)", "changes", windows, keys, _read_change, analyse,
            lambda w: f"{new.path.name} vs {previous.path.name} window {w.index} {w.core}"))
        summary.resumed, summary.outside, summary.changes = outcome.resumed, outcome.empty, outcome.found
        summary.new_packs = comparison.new_packs
        summary.geojson, summary.geopackage = write_findings(settings.data_dir / "surveys" / f"{survey_id}.changes", _features(summary, surveys),
                                                             "changes")
        SurveyRecord(survey_id, "changes", mosaic_record(settings, surveys.new, surveys.new_sha256),
                     mosaic_record(settings, surveys.previous, surveys.previous_sha256), lonlat_bounds(new),
                     str(summary.geojson), str(summary.geopackage), len(summary.changes), sum(len(c.pack_ids) for c in summary.changes)
                     ).write(settings.data_dir / "surveys")
    return summary
