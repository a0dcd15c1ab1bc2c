"""Rules over geo-referenced drone images: GeoJSON zones instead of pixel polygons, one look per image.

A drone photo is a single observation, so there is no dwell clock: a vehicle standing in a
no-parking street, a stall in a no-vending area or machinery on a protected plot is reported
from the image it appears in (time windows still apply to the capture time). Repeat flights
give the persistence an officer needs.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nonsite.ingest import Frame
from nonsite.ingest.config import TimeZoneName
from nonsite.vision import Detection

from .config import EvidenceSpec, RuleSpec, ShopRecord, ZoneSpec
from .loader import ConfigError
from .violation import KeyFrame, Violation
from .windows import is_active
from .zones import contains


class FlightConfig(BaseModel):
    """What ``nonsite batch`` checks on a flight."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    zones: str = Field(description="GeoJSON file of polygons (properties: id, and shop or site where relevant).")
    rules: list[RuleSpec] = Field(min_length=1)
    models: list[str] = Field(default_factory=lambda: ["aerial_vehicle"], min_length=1)
    tile: int = Field(default=640, ge=64, le=4096, description="Tile size in pixels for large images.")
    overlap: float = Field(default=0.2, ge=0, lt=1)
    multi_scale: bool = Field(default=False, description=(
        "Full frame plus tiles at two sizes chosen per picture from its ground sampling distance, so objects reach the "
        "model at the size it learnt whatever the flight height (models with object_m/object_px in their manifest; "
        "others, and pictures without a georeference, use tile and 2 x tile), fused across scales."))
    min_structure_m2: float = Field(default=20.0, gt=0, description="Smallest change kept as a possible new structure.")
    timezone: TimeZoneName = "Asia/Shanghai"
    flight_time: datetime | None = Field(
        default=None, description="When the flight took place, for pictures without a readable EXIF capture time "
        "(as the operator states it; packs record that the time came from the operator). Without it such pictures are skipped.")
    device: str = "cpu"
    evidence: EvidenceSpec = Field(default_factory=EvidenceSpec)


def read_geo_features(path: Path) -> list[dict]:
    """The features of a GeoJSON file or of a GeoPackage's first layer, as GeoJSON-like dicts in WGS-84
    (a GeoPackage in a projected CRS, as land-use plots usually are, is reprojected)."""
    path = Path(path)
    if path.suffix.lower() == ".gpkg":
        return _geopackage_features(path)
    try:
        collection = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    features = list(collection.get("features", []))
    named = ((collection.get("crs") or {}).get("properties") or {}).get("name")  # the 2008 GeoJSON crs member, as QGIS still writes it
    if named and not any(tag in named for tag in ("CRS84", "EPSG::4326", "EPSG:4326")):
        features = [_to_wgs84(path, named, f) for f in features]
    return features


def _to_wgs84(path: Path, crs: str, feature: dict) -> dict:
    from rasterio.errors import CRSError
    from rasterio.warp import transform_geom

    try:
        return {**feature, "geometry": transform_geom(crs, "EPSG:4326", feature["geometry"])} if feature.get("geometry") else feature
    except (CRSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: its CRS {crs} cannot be turned into longitude and latitude ({exc})") from exc


def _geopackage_features(path: Path) -> list[dict]:
    import pyogrio
    import shapely
    from rasterio.warp import transform_geom

    try:
        meta, _fids, geometries, fields = pyogrio.raw.read(path)
    except Exception as exc:  # pyogrio raises its own DataSourceError / DataLayerError and GDAL's errors
        raise ConfigError(f"{path}: not a readable GeoPackage ({exc})") from exc
    if not meta.get("crs"):
        raise ConfigError(f"{path}: the layer states no CRS, so its coordinates cannot be placed; set it (QGIS: Set Layer CRS) and save again")
    features = []
    for number, wkb in enumerate(geometries):
        geometry = shapely.geometry.mapping(shapely.from_wkb(wkb)) if wkb is not None else {}
        if geometry and meta["crs"] != "EPSG:4326":
            geometry = transform_geom(meta["crs"], "EPSG:4326", geometry)
        properties = {name: (values[number].item() if hasattr(values[number], "item") else values[number])
                      for name, values in zip(meta["fields"], fields)}
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    return features


def load_geo_zones(path: Path) -> list[ZoneSpec]:
    """GeoJSON or GeoPackage polygons as zones whose corners are (lon, lat)."""
    zones = []
    for number, feature in enumerate(read_geo_features(path)):
        geometry, properties = feature.get("geometry") or {}, feature.get("properties") or {}
        if geometry.get("type") != "Polygon":
            raise ConfigError(f"{path}: feature {number} is a {geometry.get('type')}, zones must be Polygons "
                              "(split a MultiPolygon into one feature per part, each with its own id)")
        corners = [p[:2] for ring in geometry.get("coordinates", []) for p in ring]
        if not all(len(p) == 2 and abs(p[0]) <= 180 and abs(p[1]) <= 90 for p in corners):
            raise ConfigError(f"{path}: feature {number} has coordinates that are not longitude and latitude "
                              "(a projected file without its CRS?)")
        shop = properties.get("shop")
        try:
            zones.append(ZoneSpec(id=str(properties.get("id", f"zone-{number}")), polygon=[tuple(p[:2]) for p in geometry["coordinates"][0]],
                                  inertia=1, shop=ShopRecord(**shop) if shop else None, site=properties.get("site")))
        except (ValidationError, TypeError, IndexError) as exc:
            raise ConfigError(f"{path}: feature {number} is not a usable zone ({exc})") from exc
    if not zones:
        raise ConfigError(f"{path}: no polygon features")
    if repeated := sorted({z.id for z in zones if sum(other.id == z.id for other in zones) > 1}):
        raise ConfigError(f"{path}: ids {repeated} name more than one polygon; each zone or parcel needs its own id")
    return zones


def check_image(
    config: FlightConfig, zones: list[ZoneSpec], frame: Frame, detections: list[Detection],
    to_pixel: Callable[[float, float], tuple[float, float]], extras: dict, section: str = "drone",
) -> list[Violation]:
    """Violations in one geo-referenced image; ``to_pixel`` draws the geo zones onto it. ``extras`` go to the
    pack's ``section`` (``drone`` for a picture, ``survey`` for a crop of an orthomosaic)."""
    moment = frame.captured_at.astimezone(ZoneInfo(config.timezone))
    by_id = {z.id: z for z in zones}
    found: list[Violation] = []
    for rule in config.rules:
        if not is_active(moment, rule.windows, rule.except_windows):
            continue
        for zone_id in rule.zones:
            zone = by_id[zone_id]
            hits = tuple(
                d for d in detections
                if d.ground and d.is_one_of(rule.classes) and d.confidence >= rule.min_confidence and contains(zone.polygon, d.ground)
                and not any(contains(by_id[bay].polygon, d.ground) for bay in rule.bays)  # in a marked bay: parked properly
            )
            if not hits:
                continue
            drawn = zone.model_copy(update={"polygon": [to_pixel(lon, lat) for lon, lat in zone.polygon]})
            zone_facts = {"geo_polygon": [list(p) for p in zone.polygon]}
            for group in ([(d,) for d in hits] if rule.per_object else [hits]):
                key = KeyFrame(frame, group)
                facts = {**extras, "subject_ground": [list(d.ground) for d in group], "zone_geo": zone_facts}
                found.append(Violation(rule, drawn, key, key, key, extras={section: facts}))
    return found


def check_rules_fit(config: FlightConfig, zones: list[ZoneSpec]) -> None:
    known = {z.id for z in zones}
    for rule in config.rules:
        missing = sorted(set(rule.zones) - known)
        if missing:
            raise ConfigError(f"rule {rule.id!r} watches zones {missing} that the GeoJSON does not have (it has {sorted(known)})")
        if missing := sorted(set(rule.bays) - known):
            raise ConfigError(f"rule {rule.id!r} names bays {missing} that the GeoJSON does not have (it has {sorted(known)})")
