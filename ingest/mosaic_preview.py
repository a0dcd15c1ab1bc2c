"""A reduced copy of an orthomosaic, with overviews, for drawing it on a map at every zoom.

A map zoomed out to a whole district asks for tiles that each cover millions of the mosaic's
pixels; read from the mosaic itself, every such tile would decode all of them. The preview is
the mosaic at most ``PREVIEW_SIDE`` pixels a side (8-bit RGB with an alpha band for the area
outside the survey, stretched as the survey read it) plus GDAL overviews, written once, window by
window, so its memory is one window whatever the mosaic's size. Zoomed in beyond the preview's
resolution the map reads the mosaic itself, where a tile covers few pixels.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .mosaic import Mosaic, window_grid

PREVIEW_SIDE = 4096
WINDOW = 1024
OVERVIEWS = (2, 4, 8, 16)


def write_preview(source: Path, target: Path, max_side: int = PREVIEW_SIDE) -> float:
    """Write the preview of ``source`` to ``target`` (replaced whole); returns its metres a pixel."""
    import rasterio
    from rasterio.enums import Resampling

    with Mosaic(source) as full:
        grid = full.grid.coarser(max(1.0, max(full.width, full.height) / max_side))
    partial = target.with_name(target.stem + ".partial.tif")
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": 4, "dtype": "uint8", "crs": grid.crs,
               "transform": grid.transform, "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
               "photometric": "RGB", "alpha": "YES"}
    with Mosaic(source, grid) as reduced, rasterio.open(partial, "w", **profile) as out:
        for window in window_grid(grid.width, grid.height, WINDOW, 0):
            pixels = reduced.read(window)
            if pixels is None:
                continue
            x0, y0, x1, y1 = window.core
            rgba = np.concatenate([pixels.image[:, :, ::-1].transpose(2, 0, 1), (pixels.valid[None] * 255).astype(np.uint8)])
            out.write(rgba, window=rasterio.windows.Window(x0, y0, x1 - x0, y1 - y0))
        gsd = reduced.metres_per_pixel()
    with rasterio.open(partial, "r+") as out:
        out.build_overviews([f for f in OVERVIEWS if max(grid.width, grid.height) / f >= 256], Resampling.average)
    os.replace(partial, target)
    return gsd
