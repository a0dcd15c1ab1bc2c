"""``nonsite batch FLIGHT``: every image of a drone flight through tiled detection, geo rules and packs.

Resumable: each image is recorded by its SHA-256 once its packs are stored, and pack ids are
deterministic, so a rerun after a crash or Ctrl-C finishes the rest without duplicates.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

from ingest import Frame, GeoPoint
from ingest.flight import FlightImage, Skipped, read_flight
from rules.drone import FlightConfig, check_image, check_rules_fit, load_geo_zones
from rules.evidence import MANIFEST, build_pack
from vision.tiling import TiledDetector, tile_grid

from .settings import Settings

progress_metadata = MetaData()
flight_images = Table(
    "flight_images", progress_metadata,
    Column("flight_id", String(128), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("name", String(512), nullable=False),
    Column("packs", Integer, nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=False),
)


@dataclass
class BatchSummary:
    flight_id: str
    images: int = 0
    resumed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    new_packs: int = 0
    geojson: Path | None = None


def _attach_ground(detections, geo_model):
    return [replace(d, ground=geo_model.to_ground(*d.centre)) for d in detections]


def _drone_facts(flight_id: str, picture: FlightImage, tiled: TiledDetector, geo_model) -> dict:
    height, width = picture.image.shape[:2]
    return {
        "flight_id": flight_id, "image": picture.name, "image_sha256": picture.sha256,
        "gps": {"lat": picture.lat, "lon": picture.lon, "altitude_m": picture.altitude_m, "relative_altitude_m": picture.relative_altitude_m},
        "gimbal": {"yaw_deg": picture.gimbal_yaw, "pitch_deg": picture.gimbal_pitch}, "camera": picture.camera,
        "focal_mm": picture.focal_mm, "geo_model": type(geo_model).__name__, "geo_approximate": geo_model.approximate,
        "tiles": {"size": tiled.tile, "overlap": tiled.overlap, "grid": len(tile_grid(width, height, tiled.tile, tiled.overlap))},
    }


def run_batch(settings: Settings, console: Console, flight: str, config: FlightConfig, flight_id: str | None = None,
              baseline: str | None = None) -> BatchSummary:
    zones = load_geo_zones(Path(config.zones))
    check_rules_fit(config, zones)
    flight_id = flight_id or Path(flight.rstrip("/")).stem or "flight"
    detectors = [TiledDetector(settings.registry.detector(name, config.device), config.tile, config.overlap) for name in config.models]
    store, index = settings.open_store(), settings.open_index()
    changes = BaselineComparison(settings, baseline, config) if baseline else None
    progress_metadata.create_all(index.engine)
    with index.engine.connect() as conn:
        done = set(conn.execute(select(flight_images.c.sha256).where(flight_images.c.flight_id == flight_id)).scalars())
    summary = BatchSummary(flight_id)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"flight {flight_id}", total=None)
        for seq, item in enumerate(read_flight(flight, config.timezone, settings.s3_client() if flight.startswith("s3://") else None)):
            bar.advance(task)
            if isinstance(item, Skipped):
                console.print(f"[yellow]skipped[/] {item.name}: {item.reason}", highlight=False)
                summary.skipped.append(item)
                continue
            summary.images += 1
            if item.sha256 in done:
                summary.resumed += 1
                continue
            summary.new_packs += _process(item, seq, flight_id, config, zones, detectors, store, index, summary, changes,
                                          settings.signer, settings.credentials)
            with index.engine.begin() as conn:
                try:
                    conn.execute(insert(flight_images).values(flight_id=flight_id, sha256=item.sha256, name=item.name,
                                                              packs=summary.new_packs, done_at=datetime.now(timezone.utc)))
                except IntegrityError:
                    pass  # the same picture twice in one flight
            done.add(item.sha256)
    summary.geojson = write_geojson(settings, flight_id)
    return summary


def _process(picture, seq, flight_id, config, zones, detectors, store, index, summary, changes, signer, credentials) -> int:
    geo_model = picture.geo_model
    if geo_model is None:
        summary.skipped.append(Skipped(picture.name, "no georeference (GPS + altitude + focal length, or GeoTIFF)"))
        return 0
    detections = [d for detector in detectors for d in detector.detect([picture.image])[0]]
    attachments: dict[tuple, dict[str, bytes]] = {}
    if changes is not None:
        found, attachments = changes.compare(picture, geo_model)
        detections += found
    captured = picture.captured_at or datetime.now(timezone.utc)
    frame = Frame(flight_id, seq, captured, picture.image, GeoPoint(picture.lat, picture.lon, picture.altitude_m) if picture.lat else None,
                  picture.camera, picture.name)
    facts = _drone_facts(flight_id, picture, detectors[0], geo_model)
    stored = 0
    for violation in check_image(config, zones, frame, _attach_ground(detections, geo_model), geo_model.to_pixel, facts):
        extra = attachments.get(violation.threshold.subject[0].box)
        if extra:
            violation = replace(violation, attachments=extra["files"], extras={**violation.extras, "change": extra["facts"]})
        pack = build_pack(violation, config.evidence, signer=signer, credentials=credentials)
        stored += store.put(pack)
        index.add(pack, datetime.now(timezone.utc))
    return stored


class BaselineComparison:
    """Pairs each new image with the baseline flight's nearest one and turns changes into detections."""

    MAX_PAIR_DISTANCE_M = 30.0

    def __init__(self, settings: Settings, baseline: str, config: FlightConfig):
        from .change_eval import change_detector

        self.detector = change_detector(settings)
        self.config = config
        self.pictures = [p for p in read_flight(baseline, config.timezone) if isinstance(p, FlightImage)]
        self.name = Path(baseline.rstrip("/")).stem

    def _partner(self, picture: FlightImage) -> FlightImage | None:
        from ingest.geo import displacement

        by_name = next((p for p in self.pictures if Path(p.name).name == Path(picture.name).name), None)
        if picture.lat is None:
            return by_name
        located = [(abs(complex(*displacement(p.lon, p.lat, picture.lon, picture.lat))), p) for p in self.pictures if p.lat is not None]
        near = min(located, key=lambda pair: pair[0], default=(None, None))
        return near[1] if near[0] is not None and near[0] <= self.MAX_PAIR_DISTANCE_M else by_name

    def compare(self, picture: FlightImage, geo_model) -> tuple[list, dict]:
        import cv2

        from vision import Detection

        partner = self._partner(picture)
        if partner is None:
            return [], {}
        gsd = getattr(geo_model, "metres_per_pixel", None) or 0.1
        result = self.detector.detect(partner.image, picture.image, min_area_px=int(self.config.min_structure_m2 / gsd**2))
        found, files = [], {}
        for x1, y1, x2, y2 in result.regions:
            box = (float(x1), float(y1), float(x2), float(y2))
            score = float(result.score[y1:y2, x1:x2].mean())
            found.append(Detection(box, score, "new_structure", ("suspected_new_structure",), "change", self.detector.checkpoint))
            encode = lambda img: cv2.imencode(".jpg", img)[1].tobytes()  # noqa: E731
            files[box] = {
                "files": {"baseline/crop.jpg": encode(result.baseline_warped[y1:y2, x1:x2]),
                          "baseline/key_frame.jpg": encode(result.baseline_warped),
                          "change/mask.png": cv2.imencode(".png", (result.mask * 255).astype("uint8"))[1].tobytes()},
                "facts": {"baseline_flight": self.name, "baseline_image": partner.name, "baseline_sha256": partner.sha256,
                          "registered": result.registered, "region_px": [x1, y1, x2, y2], "mean_change_score": round(score, 4)},
            }
        return found, files


def write_geojson(settings: Settings, flight_id: str) -> Path:
    """Every pack of the flight as GeoJSON points (one per subject), for GIS tools and the map."""
    store, index = settings.open_store(), settings.open_index()
    features = []
    for row in index.rows():
        if row.source_id != flight_id:
            continue
        manifest = json.loads(store.read(row.pack_id, MANIFEST))
        drone = manifest.get("drone") or {}
        for lon, lat in drone.get("subject_ground", []):
            features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                             "properties": {"pack_id": row.pack_id, "category": row.category, "rule": row.rule_id, "zone": row.zone_id,
                                            "image": drone.get("image"), "approximate": drone.get("geo_approximate"),
                                            "status": row.status}})
    path = settings.data_dir / "flights" / f"{flight_id}.geojson"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=1))
    return path
