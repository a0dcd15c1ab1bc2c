"""A drone flight's progress and findings: which images are done, and the flight's packs as GeoJSON.

Progress is recorded per image by its SHA-256 once its packs are stored, so a rerun after a
crash or Ctrl-C resumes without duplicates (pack ids are deterministic too). The GeoJSON is
written from the index, whose rows keep each pack's ground positions.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from .index import PackIndex
from .schema import flight_images


class FlightProgress:
    def __init__(self, engine: Engine, flight_id: str):
        self.engine = engine
        self.flight_id = flight_id
        with engine.connect() as conn:
            self.done = set(conn.execute(select(flight_images.c.sha256).where(flight_images.c.flight_id == flight_id)).scalars())

    def mark_done(self, sha256: str, name: str, packs: int) -> None:
        with self.engine.begin() as conn:
            try:
                conn.execute(insert(flight_images).values(flight_id=self.flight_id, sha256=sha256, name=name, packs=packs,
                                                          done_at=datetime.now(timezone.utc)))
            except IntegrityError:
                pass  # the same picture twice in one flight
        self.done.add(sha256)


def write_geojson(index: PackIndex, flight_id: str, path: Path) -> Path:
    """Every pack of the flight as GeoJSON points (one per subject), for GIS tools and the map."""
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
         "properties": {"pack_id": row.pack_id, "category": row.category, "rule": row.rule_id, "zone": row.zone_id,
                        "threshold_at": row.threshold_at.isoformat(), "approximate": bool(row.places_approximate), "status": row.status}}
        for row in index.rows(source_id=flight_id) for lon, lat in row.places or []
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=1))
    return path
