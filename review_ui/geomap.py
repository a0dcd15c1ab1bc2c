"""Packs on a map without any tile server: a plain longitude/latitude grid drawn as SVG."""
from __future__ import annotations

import math

from nonsite.evidence import PackIndex

from .labels import CATEGORY_COLOURS


def pack_points(index: PackIndex, limit: int = 2000) -> list[dict]:
    """Ground positions of packs, from the index: drone subjects, or the camera's own position."""
    return [{"pack_id": row.pack_id, "lon": lon, "lat": lat, "category": row.category, "status": row.status,
             "source": row.source_id, "approximate": bool(row.places_approximate)}
            for row in index.rows()[:limit] for lon, lat in row.places or []]


def _step(span: float) -> float:
    raw = span / 6 or 1e-4
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def svg_map(points: list[dict], width: int = 900, height: int = 600) -> dict:
    """Screen positions of the points and the grid lines, in an equirectangular frame around them."""
    if not points:
        return {"points": [], "grid": [], "width": width, "height": height}
    lons, lats = [p["lon"] for p in points], [p["lat"] for p in points]
    pad_lon = (max(lons) - min(lons)) * 0.1 or 5e-4
    pad_lat = (max(lats) - min(lats)) * 0.1 or 5e-4
    west, east, south, north = min(lons) - pad_lon, max(lons) + pad_lon, min(lats) - pad_lat, max(lats) + pad_lat
    x = lambda lon: (lon - west) / (east - west) * width  # noqa: E731
    y = lambda lat: (north - lat) / (north - south) * height  # noqa: E731
    grid = []
    step = _step(east - west)
    value = math.ceil(west / step) * step
    while value <= east:
        grid.append({"x1": x(value), "y1": 0, "x2": x(value), "y2": height, "label": f"{value:.5f}°E", "lx": x(value) + 2, "ly": height - 4})
        value += step
    step = _step(north - south)
    value = math.ceil(south / step) * step
    while value <= north:
        grid.append({"x1": 0, "y1": y(value), "x2": width, "y2": y(value), "label": f"{value:.5f}°N", "lx": 2, "ly": y(value) - 2})
        value += step
    drawn = [{**p, "x": x(p["lon"]), "y": y(p["lat"]), "colour": CATEGORY_COLOURS.get(p["category"], "#333")} for p in points]
    return {"points": drawn, "grid": grid, "width": width, "height": height}
