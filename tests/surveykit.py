"""Two surveys of one district built from the real satellite change pairs: the previous one from the pairs'
"before" tiles in UTM, the new one with some tiles replaced by their "after" tiles (real new buildings and
coloured-steel roofs), reprojected to EPSG:4326 and stored as 16-bit, as another contractor might deliver it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject, transform_bounds

UTM_51N, TILE, GSD = "EPSG:32651", 256, 0.5  # the pairs' tiles are about 0.5 m a pixel
WEST, NORTH = 355_000.0, 3_457_000.0
COLUMNS, ROWS = 4, 3
CHANGED = {1: ("LEVIR", "test_2_0000_0000.png"), 4: ("DSIFN", "0_2.png"), 6: ("LEVIR", "test_121_0768_0256.png"),
           9: ("DSIFN", "2_4.png"), 11: ("DSIFN", "8_3.png")}  # tile number (row-major) -> the pair pasted there


@dataclass(frozen=True)
class SurveyPair:
    previous: Path
    new: Path
    truth: np.ndarray  # changed pixels on the previous survey's UTM grid
    changed_tiles: dict[int, tuple[int, int, int, int]]  # tile number -> (x0, y0, x1, y1) on that grid
    transform: object  # the previous survey's (UTM) transform


def _pairs(datasets: Path) -> list[tuple[str, str]]:
    root = datasets / "change_pairs"
    return [(s, p.name) for s in ("LEVIR", "DSIFN") for p in sorted((root / s / "before").iterdir())]


def _tile(datasets: Path, kind: str, pair: tuple[str, str]) -> np.ndarray:
    flag = cv2.IMREAD_GRAYSCALE if kind == "mask" else cv2.IMREAD_COLOR
    return cv2.imread(str(datasets / "change_pairs" / pair[0] / kind / pair[1]), flag)


def build_surveys(datasets: Path, folder: Path) -> SurveyPair:
    unchanged = [p for p in _pairs(datasets) if p not in CHANGED.values()]
    width, height = COLUMNS * TILE, ROWS * TILE
    before, after = np.zeros((height, width, 3), np.uint8), np.zeros((height, width, 3), np.uint8)
    truth = np.zeros((height, width), bool)
    changed_tiles = {}
    for number in range(COLUMNS * ROWS):
        y0, x0 = (number // COLUMNS) * TILE, (number % COLUMNS) * TILE
        pair = CHANGED.get(number) or unchanged.pop(0)
        before[y0:y0 + TILE, x0:x0 + TILE] = _tile(datasets, "before", pair)
        after[y0:y0 + TILE, x0:x0 + TILE] = _tile(datasets, "after" if number in CHANGED else "before", pair)
        if number in CHANGED:
            truth[y0:y0 + TILE, x0:x0 + TILE] = _tile(datasets, "mask", pair) > 127
            changed_tiles[number] = (x0, y0, x0 + TILE, y0 + TILE)
    transform = from_origin(WEST, NORTH, GSD, GSD)
    previous = folder / "district_2026q2.tif"
    with rasterio.open(previous, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs=UTM_51N, transform=transform,
                       tiled=True, blockxsize=256, blockysize=256, photometric="RGB", compress="deflate") as out:
        out.write(np.maximum(before, 1)[:, :, ::-1].transpose(2, 0, 1))
        out.update_tags(TIFFTAG_DATETIME="2026:06:15 10:00:00")
    new = folder / "district_2026q4.tif"
    bounds = (WEST, NORTH - height * GSD, WEST + width * GSD, NORTH)
    dst_transform, dst_width, dst_height = calculate_default_transform(UTM_51N, "EPSG:4326", width, height, *bounds)
    rgb16 = (after[:, :, ::-1].transpose(2, 0, 1).astype(np.uint16) * 200 + 1000)
    with rasterio.open(new, "w", driver="GTiff", width=dst_width, height=dst_height, count=3, dtype="uint16", crs="EPSG:4326",
                       transform=dst_transform, tiled=True, blockxsize=256, blockysize=256, photometric="RGB", nodata=0,
                       compress="deflate") as out:
        warped = np.zeros((3, dst_height, dst_width), np.uint16)
        reproject(rgb16, warped, src_transform=transform, src_crs=UTM_51N, dst_transform=dst_transform, dst_crs="EPSG:4326",
                  resampling=Resampling.bilinear, src_nodata=0, dst_nodata=0)
        out.write(warped)
        out.update_tags(TIFFTAG_DATETIME="2026:11:20 10:30:00")
    return SurveyPair(previous, new, truth, changed_tiles, transform)


def write_parcels(path: Path) -> Path:
    """Two land-use plots in WGS-84: farmland on the western half of the district, residential on the eastern."""
    width, height = COLUMNS * TILE * GSD, ROWS * TILE * GSD
    def plot(x0: float, x1: float) -> list[list[float]]:
        west, south, east, north = transform_bounds(UTM_51N, "EPSG:4326", WEST + x0, NORTH - height, WEST + x1, NORTH)
        return [[west, south], [east, south], [east, north], [west, north], [west, south]]
    features = [{"type": "Feature", "properties": {"id": plot_id, "use": use}, "geometry": {"type": "Polygon", "coordinates": [plot(x0, x1)]}}
                for plot_id, use, x0, x1 in (("plot-farm-01", "farmland", 0, width / 2), ("plot-res-02", "residential", width / 2, width))]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def survey_config(folder: Path, parcels: Path) -> Path:
    """Any new structure counts on farmland; on residential plots rooftop additions and coloured-steel roofs do."""
    config = folder / "survey.yaml"
    config.write_text(f"""zones: {parcels}
models: [aerial_vehicle, excavator]
min_structure_m2: 40
rules:
  - {{id: farmland-building, kind: suspected_new_structure, zones: [plot-farm-01], min_confidence: 0.01,
     classes: [new_structure, coloured_steel_roof, rooftop_addition, bare_soil, vehicles_machinery]}}
  - {{id: residential-additions, kind: suspected_new_structure, zones: [plot-res-02], min_confidence: 0.01,
     classes: [rooftop_addition, coloured_steel_roof]}}
""")
    return config
