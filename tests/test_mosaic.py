"""Orthomosaics read window by window: real drone chips stitched onto georeferenced GeoTIFFs (projected CRS
and EPSG:4326, 8-bit and 16-bit RGBA, one too large to decode whole), found at their ground positions,
within the memory bound, and resumed after a crash without duplicates."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform as reproject
from rasterio.windows import Window
from rich.console import Console

from nonsite.evidence.flights import FlightProgress
from nonsite.ingest.decoding import ImageRefused, picture_size
from nonsite.ingest.geo import displacement
from nonsite.ingest.mosaic import Mosaic, MosaicRefused
from nonsite.survey import run_survey
from nonsite.vision.tiling import TiledDetector

UTM_51N, GSD = "EPSG:32651", 0.05  # Shanghai's UTM zone; 5 cm per pixel, about the chips' own scale
WEST, NORTH = 355_000.0, 3_457_000.0
LON, LAT = 121.47, 31.23
MEMORY_BOUND = 2 << 30  # peak RSS of a survey, whatever the mosaic's size
QUIET = Console(quiet=True)
_CAR_HALF_PX = 50  # half a car's length (4.5 m) at GSD


def _chips(datasets: Path, count: int) -> list[tuple[np.ndarray, list[tuple[float, float]]]]:
    """Real drone chips (the held-out tail of the sequence) and their labelled cars' centres, each with whether it lies wholly inside."""
    folder = datasets / "drone_cars_cats"
    chips = []
    for path in sorted((folder / "images").glob("Drone2_*.jpg"))[-count:]:
        image = cv2.imread(str(path))
        height, width = image.shape[:2]
        cars = []
        for line in (folder / "labels" / f"{path.stem}.txt").read_text().split("\n"):
            if line.strip():
                _, cx, cy, w, h = map(float, line.split())
                whole = cx - w / 2 > 0.01 and cy - h / 2 > 0.01 and cx + w / 2 < 0.99 and cy + h / 2 < 0.99
                cars.append((cx * width, cy * height, whole))
        chips.append((image, cars))
    return chips


def _write_mosaic(path: Path, width: int, height: int, crs: str, transform, placements, dtype: str = "uint8", alpha: bool = False) -> list:
    """A tiled, sparse GeoTIFF written window by window: chips pasted at (x, y), the rest nodata (value 0, or alpha 0);
    16-bit chips are scaled as a 16-bit camera would record them. Returns the pasted cars: mosaic pixel centre and wholeness."""
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 4 if alpha else 3, "dtype": dtype, "crs": crs,
               "transform": transform, "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
               "sparse_ok": True, "photometric": "RGB"}
    profile.update({"alpha": "YES"} if alpha else {"nodata": 0})
    cars = []
    with rasterio.open(path, "w", **profile) as out:
        for (image, chip_cars), (x, y) in placements:
            rgb = image[:, :, ::-1].transpose(2, 0, 1)
            bands = rgb.astype(np.uint16) * 180 + 2000 if dtype == "uint16" else np.maximum(rgb, 1)  # 0 is nodata
            if alpha:
                bands = np.concatenate([bands, np.full((1, *bands.shape[1:]), 65535 if dtype == "uint16" else 255, dtype)])
            out.write(bands.astype(dtype), window=Window(x, y, image.shape[1], image.shape[0]))
            cars.extend((x + cx, y + cy, whole) for cx, cy, whole in chip_cars)
    return cars


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(*displacement(*a, *b))


def _cut_by_a_chip_edge(finding, transform, placements) -> bool:
    """Whether the finding stands where a pasted chip's edge cuts through a car: the datasets label some cars the
    picture's border cuts and not others, so such a finding is neither required nor refused."""
    column, row = ~transform * finding.crs_xy
    return any(x <= column <= x + image.shape[1] and y <= row <= y + image.shape[0]
               and min(column - x, x + image.shape[1] - column, row - y, y + image.shape[0] - row) < _CAR_HALF_PX
               for (image, _), (x, y) in placements)


def _check_found_at_cars(findings, cars, within_m: float = 1.5, recall: float = 0.7, edges=None) -> None:
    """Every car found stands on a labelled car; most cars wholly pasted are found; none twice. ``cars``: (lon, lat, whole);
    ``edges``: (transform, placements) of the mosaic, to leave aside findings on cars a chip's edge cuts."""
    found = [f for f in findings if f.label.endswith(":car") and f.confidence >= 0.5]  # what a parking rule would act on
    assert found
    if edges is not None:
        found = [f for f in found if not _cut_by_a_chip_edge(f, *edges)]
    matched = []
    for finding in found:
        distance, nearest = min((_metres(finding.lonlat, car[:2]), index) for index, car in enumerate(cars))
        assert distance < within_m, finding
        matched.append(nearest)
    assert len(matched) == len(set(matched)), "a car was reported twice"
    whole = [index for index, car in enumerate(cars) if car[2]]
    assert len(set(matched) & set(whole)) >= recall * len(whole), (len(set(matched) & set(whole)), len(whole))


def _lonlat(cars, transform, crs: str = UTM_51N) -> list[tuple[float, float, bool]]:
    """Pasted cars (mosaic x, y, whole) as (lon, lat, whole)."""
    xs, ys = zip(*(transform @ car[:2] for car in cars))
    lons, lats = reproject(crs, "EPSG:4326", list(xs), list(ys))
    return [(lon, lat, car[2]) for lon, lat, car in zip(lons, lats, cars)]


def test_a_projected_8bit_mosaic_is_found_window_by_window_at_the_ground_positions(tmp_path, datasets, settings):
    chips = _chips(datasets, 3)
    transform = from_origin(WEST, NORTH, GSD, GSD)
    # the middle chip straddles the border of the two windows' cores (x = 1024): its cars must come out once
    placements = list(zip(chips, [(0, 0), (700, 300), (1400, 50)]))
    cars = _write_mosaic(tmp_path / "district.tif", 2048, 1024, UTM_51N, transform, placements)
    summary = run_survey(settings, QUIET, tmp_path / "district.tif", ["aerial_vehicle"], core=1024)
    assert summary.windows == 2 and summary.resumed == 0 and summary.margin >= 2 * 4.6 / GSD
    _check_found_at_cars(summary.findings, _lonlat(cars, transform), edges=(transform, placements))
    for finding in summary.findings:  # the mosaic's own CRS coordinates agree with its transform
        cx, cy = (finding.box[0] + finding.box[2]) / 2, (finding.box[1] + finding.box[3]) / 2
        assert finding.crs_xy == pytest.approx(transform @ (cx, cy))
    geojson = json.loads(summary.geojson.read_text())
    assert len(geojson["features"]) == len(summary.findings)
    assert {f["properties"]["crs"] for f in geojson["features"]} == {UTM_51N}


def test_a_16bit_rgba_mosaic_in_degrees_is_stretched_and_located(tmp_path, datasets, settings):
    chips = _chips(datasets, 2)
    degrees = GSD / 111_320
    transform = from_origin(LON, LAT, degrees, degrees)
    placements = list(zip(chips, [(0, 0), (700, 40)]))
    cars = _write_mosaic(tmp_path / "ortho16.tif", 1400, 700, "EPSG:4326", transform, placements, "uint16", alpha=True)
    with Mosaic(tmp_path / "ortho16.tif") as mosaic:
        assert mosaic.bands == [1, 2, 3]  # the alpha band is the mask, not a colour
        low, high = mosaic.stretch()[0]
        assert 2000 <= low < high <= 2000 + 255 * 180
    summary = run_survey(settings, QUIET, tmp_path / "ortho16.tif", ["aerial_vehicle"], core=1024)
    _check_found_at_cars(summary.findings, _lonlat(cars, transform, "EPSG:4326"), edges=(transform, placements))


def test_unreadable_by_windows_or_unreferenced_mosaics_are_refused_with_the_reason(tmp_path):
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as out:
        out.write(np.zeros((3, 64, 64), np.uint8))
    with pytest.raises(MosaicRefused, match="no georeference"):
        Mosaic(plain)
    huge_blocks = tmp_path / "huge_blocks.tif"  # one block is decoded whole: 4096 x 4096 x 3 x 16 bits is 96 MiB
    with rasterio.open(huge_blocks, "w", driver="GTiff", width=8192, height=8192, count=3, dtype="uint16", crs=UTM_51N,
                       transform=from_origin(WEST, NORTH, GSD, GSD), tiled=True, blockxsize=4096, blockysize=4096, sparse_ok=True):
        pass
    with pytest.raises(MosaicRefused, match="cannot be read by windows"):
        Mosaic(huge_blocks)
    grey = tmp_path / "grey.tif"
    with rasterio.open(grey, "w", driver="GTiff", width=64, height=64, count=1, dtype="float32", crs=UTM_51N,
                       transform=from_origin(WEST, NORTH, GSD, GSD)) as out:
        out.write(np.zeros((1, 64, 64), np.float32))
    with pytest.raises(MosaicRefused, match="1 band"):
        Mosaic(grey)


def test_a_crash_mid_mosaic_resumes_without_duplicates(tmp_path, datasets, settings, monkeypatch):
    chips = _chips(datasets, 3)
    _write_mosaic(tmp_path / "d.tif", 2048, 1024, UTM_51N, from_origin(WEST, NORTH, GSD, GSD), zip(chips, [(0, 0), (700, 300), (1400, 50)]))
    whole = run_survey(settings, QUIET, tmp_path / "d.tif", ["aerial_vehicle"], survey_id="uninterrupted", core=512)
    assert whole.windows == 8

    marked = []
    original = FlightProgress.mark_done

    def crash_on_third(self, *args):
        if len(marked) == 2:  # the third window's findings are journalled, but the process dies before it is marked done
            raise KeyboardInterrupt
        marked.append(args)
        original(self, *args)

    monkeypatch.setattr(FlightProgress, "mark_done", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_survey(settings, QUIET, tmp_path / "d.tif", ["aerial_vehicle"], survey_id="crashed", core=512)
    monkeypatch.setattr(FlightProgress, "mark_done", original)
    windows_run = []
    detect = TiledDetector.detect
    monkeypatch.setattr(TiledDetector, "detect", lambda self, images: windows_run.append(1) or detect(self, images))
    resumed = run_survey(settings, QUIET, tmp_path / "d.tif", ["aerial_vehicle"], survey_id="crashed", core=512)
    assert resumed.resumed == 2 and len(windows_run) == 8 - 2 - resumed.empty
    assert sorted((f.box, f.label) for f in resumed.findings) == sorted((f.box, f.label) for f in whole.findings)
    assert len(json.loads(resumed.geojson.read_text())["features"]) == len(whole.findings)
    assert len(FlightProgress(settings.open_index().engine, "crashed").done) == 8


def test_a_mosaic_too_large_to_decode_whole_runs_within_the_memory_bound(tmp_path, datasets, settings):
    side = 40_000
    assert side * side * 3 > MEMORY_BOUND  # 4.8 GB decoded whole
    chips = _chips(datasets, 3)
    transform = from_origin(WEST, NORTH, GSD, GSD)
    big = tmp_path / "district_40k.tif"
    # the second chip straddles the border of two window cores (x = 12 800)
    cars = _write_mosaic(big, side, side, UTM_51N, transform, zip(chips, [(11_800, 9_000), (12_500, 9_000), (31_000, 27_000)]))
    with pytest.raises(ImageRefused, match="MP limit"):  # a whole decode is still refused by the pixel cap
        picture_size(big.read_bytes())
    # The survey's own high-water mark: VmHWM belongs to the process's memory after exec, where getrusage's ru_maxrss
    # keeps the larger of it and the forking parent's (pytest's, gigabytes late in the suite).
    script = ("import re, sys; from nonsite.cli import main; code = main(sys.argv[1:]); "
              "print('MAXRSS_KB', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); sys.exit(code)")
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", script, "survey", str(big)], env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    peak = int(run.stdout.split("MAXRSS_KB")[1].split()[0]) * 1024
    summary = " ".join(run.stdout.split()[:-2])
    print(f"\n40000 x 40000 mosaic in {time.monotonic() - started:.0f} s: peak RSS {peak / 2**20:.0f} MiB (bound {MEMORY_BOUND >> 20} MiB); {summary}")
    assert peak < MEMORY_BOUND
    features = json.loads((settings.data_dir / "surveys" / "district_40k.geojson").read_text())["features"]
    _check_found_at_cars([SimpleNamespace(label=f["properties"]["label"], confidence=f["properties"]["confidence"],
                                          lonlat=tuple(f["geometry"]["coordinates"])) for f in features], _lonlat(cars, transform))
