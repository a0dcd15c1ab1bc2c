"""Multi-scale detection on real drone frames with the real aerial model: tile sizes chosen from the
ground sampling distance show a car at the size the model learnt; a car cut by tile borders
comes out as one box, never as parts or duplicates; a flight records the sizes it used."""
from __future__ import annotations

import json

import cv2
import yaml

from nonsite.cli import main
from nonsite.evidence import MANIFEST
from nonsite.ingest.geo import NadirCamera, sensor_width_mm
from nonsite.vision import box_iou
from nonsite.vision.evaluation import ground_truth
from nonsite.vision.multiscale import MultiScaleDetector, tile_sizes_for
from nonsite.vision.tiling import _overlap_of_smaller, tile_grid

from .test_batch import ALT, LAT, LON, _config, _flight, _zones_over_right_half


def test_tiles_chosen_from_the_ground_sampling_distance_show_a_car_at_its_learnt_size(registry):
    manifest = registry.manifest("aerial_vehicle")
    for altitude in (40.0, 80.0, 120.0):
        gsd = NadirCamera(LAT, LON, altitude, 4.5, sensor_width_mm(4.5, 24), 4000, 3000).metres_per_pixel
        finest, *_ = tile_sizes_for(gsd, manifest.object_m, manifest.object_px, manifest.imgsz, 4000, 3000)
        at_model = manifest.object_m / gsd * manifest.imgsz / finest
        assert abs(at_model - manifest.object_px) / manifest.object_px < 0.02, (altitude, finest, at_model)
    # higher flights need smaller tiles: the same car covers fewer pixels of the photo
    sizes = [tile_sizes_for(NadirCamera(LAT, LON, a, 4.5, sensor_width_mm(4.5, 24), 4000, 3000).metres_per_pixel,
                            manifest.object_m, manifest.object_px, manifest.imgsz, 4000, 3000)[0] for a in (40.0, 120.0)]
    assert sizes[0] > sizes[1]


def test_a_car_cut_by_tile_borders_comes_out_as_one_box(datasets, registry):
    detector = registry.detector("aerial_vehicle")
    multi = MultiScaleDetector(detector, (320,), overlap=0.2)  # tiles smaller than the cars: many are cut in every tile
    frames = sorted((datasets / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[-10:]
    images = [cv2.resize(cv2.imread(str(p)), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC) for p in frames]
    tiles = tile_grid(1280, 1280, 320, 0.2)
    cut, found_once, duplicates = 0, 0, 0
    for path, image, boxes in zip(frames, images, multi.detect(images)):
        truths = ground_truth(path, 1280, 1280, {0})
        for truth in truths:
            if any(x0 <= truth[0] and y0 <= truth[1] and truth[2] <= x1 and truth[3] <= y1 for x0, y0, x1, y1 in tiles):
                continue  # some tile holds it whole
            cut += 1
            found_once += sum(box_iou(b.box, truth) >= 0.5 for b in boxes) == 1
        duplicates += sum(_overlap_of_smaller(a.box, b.box) >= 0.5 for i, a in enumerate(boxes) for b in boxes[i + 1:])
    print(f"\n[multi-scale] {cut} labelled cars cut by every 320 px tile; {found_once} came out as exactly one box; "
          f"{duplicates} overlapping pairs")
    assert cut >= 5 and found_once >= 0.8 * cut and duplicates == 0


def test_a_multi_scale_flight_records_the_tile_sizes_its_altitude_asked_for(tmp_path, datasets, settings, registry):
    frames = sorted((datasets / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[-2:]
    flight = _flight(tmp_path / "flight-ms", frames, scale=2.0, altitude=ALT * 2)
    _zones_over_right_half(tmp_path / "zones.geojson", 1280, 1280, ALT * 2)
    config = _config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**raw, "multi_scale": True}))
    assert main(["batch", str(flight), "--config", str(config)]) == 0
    rows = [r for r in settings.open_index().rows() if r.source_id == "flight-ms"]
    assert rows
    manifest = registry.manifest("aerial_vehicle")
    gsd = NadirCamera(LAT, LON, ALT * 2, 4.5, sensor_width_mm(4.5, 24), 1280, 1280).metres_per_pixel
    expected = tile_sizes_for(gsd, manifest.object_m, manifest.object_px, manifest.imgsz, 1280, 1280)
    for row in rows:
        tiles = json.loads(settings.open_store().read(row.pack_id, MANIFEST))["drone"]["tiles"]
        assert tiles["scales"] == expected and tiles["grid"] == 1 + sum(len(tile_grid(1280, 1280, s, 0.2)) for s in expected)
