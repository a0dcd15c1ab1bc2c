"""Drone metadata read from files the test writes, geo round trips, and tiles merged across borders."""
from __future__ import annotations

import zipfile
from datetime import datetime
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from nonsite.ingest.flight import Skipped, read_flight
from nonsite.ingest.geo import NadirCamera, Orthophoto, offset
from nonsite.vision.detection import Detection
from nonsite.vision.tiling import TiledDetector, merge_boxes, tile_grid

from .flightkit import write_drone_jpeg, write_geotiff

WHEN = datetime(2026, 11, 23, 10, 15, 0)


@pytest.fixture()
def drone_frame(datasets):
    return sorted((datasets / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[0]


def test_exif_and_dji_xmp_are_read(tmp_path, drone_frame):
    write_drone_jpeg(drone_frame, tmp_path / "DJI_0001.JPG", 31.230416, 121.473701, 52.3, 40.0, -12.5, -89.9, WHEN)
    (tmp_path / "notes.txt").write_text("pilot log")
    (tmp_path / "DJI_0002.JPG").write_bytes(b"\xff\xd8 broken")
    items = list(read_flight(str(tmp_path)))
    images = [i for i in items if not isinstance(i, Skipped)]
    skipped = {i.name: i.reason for i in items if isinstance(i, Skipped)}
    assert skipped == {"DJI_0002.JPG": "not a picture in a known format (JPEG, PNG, TIFF, BMP, WebP)",
                       "notes.txt": "not an image file"}
    (picture,) = images
    assert picture.lat == pytest.approx(31.230416, abs=1e-6) and picture.lon == pytest.approx(121.473701, abs=1e-6)
    assert picture.altitude_m == pytest.approx(52.3) and picture.relative_altitude_m == pytest.approx(40.0)
    assert picture.gimbal_yaw == pytest.approx(-12.5) and picture.gimbal_pitch == pytest.approx(-89.9)
    assert picture.captured_at == WHEN.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert picture.camera == "DJI FC3582" and picture.focal_mm == pytest.approx(4.5) and picture.focal_35mm == 24
    model = picture.geo_model
    assert isinstance(model, NadirCamera) and not model.approximate
    assert model.metres_per_pixel == pytest.approx(40.0 * (36 * 4.5 / 24) / (4.5 * 640))


def test_a_zip_flight_reads_the_same(tmp_path, drone_frame):
    photo = write_drone_jpeg(drone_frame, tmp_path / "DJI_0001.JPG", 31.23, 121.47, 50, 40, 0, -90, WHEN)
    with zipfile.ZipFile(tmp_path / "flight.zip", "w") as archive:
        archive.write(photo, "flight/DJI_0001.JPG")
    (picture,) = read_flight(str(tmp_path / "flight.zip"))
    assert picture.name == "flight/DJI_0001.JPG" and picture.relative_altitude_m == 40


def test_geotiff_orthophoto_georeference(tmp_path, drone_frame):
    image = cv2.imread(str(drone_frame))
    write_geotiff(image, tmp_path / "ortho.tif", west=121.47, north=31.24, degrees_per_pixel=1e-6)
    (picture,) = read_flight(str(tmp_path))
    model = picture.geo_model
    assert isinstance(model, Orthophoto)
    lon, lat = model.to_ground(100, 200)
    assert lon == pytest.approx(121.47 + 100e-6) and lat == pytest.approx(31.24 - 200e-6)


@pytest.mark.parametrize("yaw", [0.0, 37.0, -120.0])
def test_nadir_projection_round_trips_and_scales(yaw):
    camera = NadirCamera(31.23, 121.47, 40.0, 4.5, 6.75, 4000, 3000, yaw_deg=yaw)
    for x, y in ((0, 0), (4000, 3000), (1234.5, 2222.2), (2000, 1500)):
        assert camera.to_pixel(*camera.to_ground(x, y)) == pytest.approx((x, y), abs=1e-6)
    assert camera.to_ground(2000, 1500) == pytest.approx((121.47, 31.23))  # the centre is below the drone
    east, _ = offset(121.47, 31.23, camera.metres_per_pixel * 1000, 0)
    if yaw == 0.0:  # 1000 px to the right of centre is 1000 * GSD metres east
        assert camera.to_ground(3000, 1500)[0] == pytest.approx(east)
    assert NadirCamera(31.23, 121.47, 40.0, 4.5, 6.75, 4000, 3000, pitch_deg=-60).approximate


def test_tile_grid_covers_the_image_with_overlap():
    tiles = tile_grid(1500, 1000, 640, 0.2)
    assert tiles[0] == (0, 0, 640, 640) and tiles[-1] == (860, 360, 1500, 1000)
    covered = np.zeros((1000, 1500), bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert tile_grid(300, 200, 640, 0.2) == [(0, 0, 300, 200)]


def test_parts_of_one_object_on_a_border_merge_into_one_box():
    left = Detection((580, 100, 640, 160), 0.8, "car", ("illegal_parking",), "m", "0" * 64)
    right = Detection((600, 102, 700, 158), 0.7, "car", ("illegal_parking",), "m", "0" * 64)
    other = Detection((900, 100, 960, 160), 0.6, "car", ("illegal_parking",), "m", "0" * 64)
    merged = merge_boxes([left, right, other])
    assert len(merged) == 2
    assert merged[0].box == (580, 100, 700, 160) and merged[0].confidence == 0.8


def test_a_real_bus_across_a_tile_border_is_found_once(registry):
    from pathlib import Path

    import ultralytics

    bus = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))[230:930, 0:810]  # the bus
    canvas = np.full((1100, 1400, 3), 110, np.uint8)
    canvas[200:900, 300:1110] = bus  # tiles of 800 with 25% overlap start at 0 and 600: the bus straddles both
    tiled = TiledDetector(registry.detector("coco"), tile=800, overlap=0.25)
    buses = [d for d in tiled.detect([canvas])[0] if d.class_name == "bus"]
    assert len(buses) == 1, [d.box for d in buses]
    x1, y1, x2, y2 = buses[0].box
    assert x1 < 400 and x2 > 1000  # one box spanning the border, not two halves


def test_the_example_flight_config_is_valid_and_uses_the_domain_models():
    from pathlib import Path

    from nonsite.rules import load_config
    from nonsite.rules.drone import FlightConfig, check_rules_fit, load_geo_zones

    config = load_config(Path("examples/flight/flight.yaml"), FlightConfig)
    check_rules_fit(config, load_geo_zones(Path("examples/flight") / config.zones))
    assert set(config.models) == {"aerial_vehicle", "street_vendor", "excavator"}


def test_nonsite_eval_prints_full_frame_and_tiled_scores(datasets, settings, capsys):
    from nonsite.cli import main

    capsys.readouterr()
    assert main(["eval", str(datasets / "drone_cars_cats"), "--model", "aerial_vehicle", "--classes", "car", "--limit", "4",
                 "--val-of", "models/recipes/aerial_vehicle.yaml"]) == 0
    out = capsys.readouterr().out
    full = next(line for line in out.splitlines() if "full frame" in line)
    assert "tiled 640px" in out and "throughput: tiled" in out
    recall = float(full.split("│")[6])
    assert recall > 0.8  # the aerial model sees the held-out cars
