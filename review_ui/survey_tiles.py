"""Map tiles (web mercator z/x/y, 256 pixels) cut from a survey's own GeoTIFF: no basemap, no internet.

A tile is the mosaic resampled onto the tile's grid by GDAL's warper. Zoomed out, where a tile's
pixel covers at least a preview pixel, it comes from the survey's reduced preview and its overviews
(``ingest.mosaic_preview``); zoomed in, from the mosaic itself, where a tile touches only a few of
its blocks. Each tile opens and closes its file in the thread that serves it (rasterio datasets and
GDAL's settings are not shared across the desk's worker threads); opening a GeoTIFF costs milliseconds.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from nonsite.evidence.survey_records import MosaicRecord
from nonsite.ingest.mosaic import Grid, Mosaic

TILE = 256
WEB_MERCATOR_HALF = 20037508.342789244  # metres from the origin to the edge of the web mercator square
MAX_ZOOM = 24


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the tile in EPSG:3857 metres."""
    size = 2 * WEB_MERCATOR_HALF / 2 ** z
    west, north = -WEB_MERCATOR_HALF + x * size, WEB_MERCATOR_HALF - y * size
    return west, north - size, west + size, north


def tile_ground_m(z: int, lat: float) -> float:
    """Ground metres one tile pixel covers at this latitude."""
    return 2 * WEB_MERCATOR_HALF / (TILE * 2 ** z) * math.cos(math.radians(lat))


def survey_tile(record: MosaicRecord, z: int, x: int, y: int, lat: float) -> bytes | None:
    """The tile as PNG with transparency outside the survey; None where the survey has no pixel in it."""
    from rasterio.transform import from_bounds

    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2 ** z and 0 <= y < 2 ** z):
        return None
    grid = Grid("EPSG:3857", from_bounds(*tile_bounds(z, x, y), TILE, TILE), TILE, TILE)
    zoomed_out = tile_ground_m(z, lat) >= record.preview_gsd_m
    with Mosaic(record.preview) if zoomed_out else Mosaic(record.path, stretch=record.stretch) as mosaic:
        pixels = mosaic.read_on(grid)
    if pixels is None:
        return None
    rgba = np.dstack([pixels.image, (pixels.valid * 255).astype(np.uint8)])
    return cv2.imencode(".png", rgba)[1].tobytes()
