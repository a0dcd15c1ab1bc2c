"""``nonsite batch FLIGHT``: wiring a drone flight through tiled detection, geo rules and the evidence sink.

Resumable: each image is marked done by its SHA-256 once its packs are stored (``FlightProgress``),
and pack ids are deterministic, so a rerun after a crash or Ctrl-C finishes the rest without
duplicates. The same holds on a Ray cluster (``--ray``), where the pictures are analysed by
workers on every node and this process only reads, hashes and records them.

Each picture also rechecks the drone cases whose rectification deadline has passed and whose site it
shows (``review_ui.flight_recheck``): wherever the picture is analysed, here or on a worker, with the
models already loaded for the flight where the pack used the same ones.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nonsite.evidence import EvidenceSink
from nonsite.evidence.flights import FlightProgress, write_geojson
from nonsite.ingest import Frame, GeoPoint
from nonsite.ingest.flight import FlightImage, Skipped, flight_pictures, read_picture
from nonsite.review_ui.flight_recheck import FlightPicture, FlightRechecks
from nonsite.review_ui.recheck import LoadedModels
from nonsite.rules.drone import FlightConfig, check_image, check_rules_fit, load_geo_zones
from nonsite.vision.baseline import BaselineFlight
from nonsite.vision.multiscale import MultiScaleDetector
from nonsite.vision.tiling import TiledDetector, tile_grid

from .settings import Settings


@dataclass(frozen=True)
class Picture:
    """One picture of the flight still to analyse: its bytes as received and their SHA-256."""

    name: str
    data: bytes = field(repr=False)
    sha256: str
    seq: int


@dataclass
class BatchSummary:
    flight_id: str
    images: int = 0
    resumed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    new_packs: int = 0
    geojson: Path | None = None


def _tiling_facts(detector: TiledDetector | MultiScaleDetector, picture: FlightImage, gsd_m: float | None) -> dict:
    """How the picture was cut for the model, as its packs record it."""
    height, width = picture.image.shape[:2]
    if isinstance(detector, MultiScaleDetector):
        sizes = detector.sizes(picture.image, gsd_m)
        return {"size": min(sizes, default=max(width, height)), "scales": sizes, "overlap": detector.overlap,
                "grid": 1 + sum(len(tile_grid(width, height, size, detector.overlap)) for size in sizes)}
    return {"size": detector.tile, "overlap": detector.overlap, "grid": len(tile_grid(width, height, detector.tile, detector.overlap))}


def _drone_facts(flight_id: str, picture: FlightImage, tiling: dict, geo_model) -> dict:
    return {
        "flight_id": flight_id, "image": picture.name, "image_sha256": picture.sha256,
        "gps": {"lat": picture.lat, "lon": picture.lon, "altitude_m": picture.altitude_m, "relative_altitude_m": picture.relative_altitude_m},
        "gimbal": {"yaw_deg": picture.gimbal_yaw, "pitch_deg": picture.gimbal_pitch}, "camera": picture.camera,
        "focal_mm": picture.focal_mm, "geo_model": type(geo_model).__name__, "geo_approximate": geo_model.approximate,
        "tiles": tiling,
    }


class FlightRun:
    """One flight's images, one after another, into the evidence sink."""

    def __init__(self, settings: Settings, config: FlightConfig, flight_id: str, baseline: str | None):
        self.config = config
        self.flight_id = flight_id
        self.flight_time = config.flight_time.replace(tzinfo=config.flight_time.tzinfo or ZoneInfo(config.timezone)) if config.flight_time else None
        self.zones = load_geo_zones(Path(config.zones))
        check_rules_fit(config, self.zones)
        loaded = LoadedModels(settings.registry, config.device)  # the flight's models, and the rechecked packs' models
        models = [loaded(name) for name in config.models]
        self.detectors = ([MultiScaleDetector(model, (config.tile, 2 * config.tile), config.overlap) for model in models]
                          if config.multi_scale else [TiledDetector(model, config.tile, config.overlap) for model in models])
        self.sink: EvidenceSink = settings.sink
        self.rechecks = FlightRechecks(settings.open_index().engine, settings.open_store(), loaded, datetime.now(timezone.utc))
        self.baseline = None
        if baseline:
            from .change_eval import change_detector

            self.baseline = BaselineFlight(change_detector(settings), baseline, config.timezone, config.min_structure_m2)

    def process_file(self, name: str, data: bytes, seq: int) -> int | Skipped:
        """New packs from one picture file, or why it cannot be used."""
        picture = read_picture(name, data, self.config.timezone)
        return picture if isinstance(picture, Skipped) else self.process(picture, seq)

    def process(self, picture: FlightImage, seq: int) -> int | Skipped:
        """New packs from one picture, or why it cannot be used."""
        geo_model = picture.geo_model
        if geo_model is None:
            return Skipped(picture.name, "no georeference (GPS + altitude + focal length, or GeoTIFF)")
        captured, time_source = (picture.captured_at, "exif") if picture.captured_at else (self.flight_time, "operator")
        if captured is None:
            return Skipped(picture.name, "no capture time (EXIF DateTimeOriginal missing or unreadable); "
                                         "state the flight's time as flight_time in the flight config")
        gsd_m = getattr(geo_model, "metres_per_pixel", None)
        detections = [d for detector in self.detectors for d in
                      (detector.detect([picture.image], [gsd_m]) if isinstance(detector, MultiScaleDetector)
                       else detector.detect([picture.image]))[0]]
        changes = self.baseline.changes(picture, getattr(geo_model, "metres_per_pixel", None)) if self.baseline else []
        by_box = {change.detection.box: change for change in changes}
        located = [replace(d, ground=geo_model.to_ground(*d.centre)) for d in [*detections, *(c.detection for c in changes)]]
        frame = Frame(self.flight_id, seq, captured, picture.image,
                      GeoPoint(picture.lat, picture.lon, picture.altitude_m) if picture.lat is not None else None, picture.camera,
                      picture.name, encoded=picture.data, time_source=time_source)
        facts = _drone_facts(self.flight_id, picture, _tiling_facts(self.detectors[0], picture, gsd_m), geo_model)
        stored = 0
        for violation in check_image(self.config, self.zones, frame, located, geo_model.to_pixel, facts):
            change = by_box.get(violation.threshold.subject[0].box)
            if change is not None:
                violation = replace(violation, attachments=change.files, extras={**violation.extras, "change": change.facts})
            stored += self.sink.submit(violation, self.config.evidence, lambda _key: detections).new
        self.rechecks.look(FlightPicture(frame, geo_model, picture.sha256))
        return stored


def _analysed_here(run: FlightRun, todo: Iterable[Picture]) -> Iterator[tuple[Picture, int | Skipped]]:
    for picture in todo:
        yield picture, run.process_file(picture.name, picture.data, picture.seq)


Analyse = Callable[[Iterable[Picture]], Iterator[tuple[Picture, "int | Skipped"]]]


def default_flight_id(flight: str) -> str:
    return Path(flight.rstrip("/")).stem or "flight"


def run_batch(settings: Settings, console: Console, flight: str, config: FlightConfig, flight_id: str | None = None,
              baseline: str | None = None, analyse: Analyse | None = None) -> BatchSummary:
    """The flight's pictures analysed here, or by ``analyse`` (workers on a cluster), and recorded as done."""
    flight_id = flight_id or default_flight_id(flight)
    check_rules_fit(config, load_geo_zones(Path(config.zones)))  # a config that cannot work fails before any model loads
    index = settings.open_index()
    progress = FlightProgress(index.engine, flight_id)
    summary = BatchSummary(flight_id)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"flight {flight_id}", total=None)

        def skip(item: Skipped) -> None:
            bar.advance(task)
            console.print(f"[yellow]skipped[/] {item.name}: {item.reason}", highlight=False)
            summary.skipped.append(item)

        def todo() -> Iterator[Picture]:
            for seq, item in enumerate(flight_pictures(flight, settings.s3_client() if flight.startswith("s3://") else None)):
                if isinstance(item, Skipped):
                    skip(item)
                    continue
                name, data = item
                picture = Picture(name, data, hashlib.sha256(data).hexdigest(), seq)
                summary.images += 1
                if picture.sha256 in progress.done:
                    summary.resumed += 1
                    bar.advance(task)
                    continue
                yield picture

        analyse = analyse or (lambda pictures: _analysed_here(FlightRun(settings, config, flight_id, baseline), pictures))
        outcomes = analyse(todo())
        for picture, outcome in outcomes:
            if isinstance(outcome, Skipped):
                skip(outcome)
                continue
            bar.advance(task)
            summary.new_packs += outcome
            progress.mark_done(picture.sha256, picture.name, outcome)
    summary.geojson = write_geojson(index, flight_id, settings.data_dir / "flights" / f"{flight_id}.geojson")
    return summary
