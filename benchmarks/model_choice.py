"""Which COCO weights should be the default? Share of occupied bays found, and time per frame.

Runs every candidate of the ``coco`` manifest that exists on the same car-park CCTV frames
(``parking_lot_cctv``: polygons per bay, 1 = occupied). A bay counts as found when a vehicle
box's centre lies inside the bay polygon, or the bay's centroid lies inside the box.

    .venv/bin/python benchmarks/model_choice.py
"""
from __future__ import annotations

import time

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from nonsite.ingest import list_images
from nonsite.rules.zones import contains
from nonsite.settings import Settings
from nonsite.vision import Detector
from nonsite.vision.weights import locate

VEHICLES = {"car", "truck", "bus", "motorcycle"}


def occupied_bays(label_path, width, height):
    bays = []
    for line in label_path.read_text().splitlines():
        values = line.split()
        if values and values[0] == "1":
            xy = np.array(values[1:], dtype=float).reshape(-1, 2) * (width, height)
            bays.append([tuple(p) for p in xy])
    return bays


def found(bay, boxes):
    cx, cy = np.mean([p[0] for p in bay]), np.mean([p[1] for p in bay])
    for x1, y1, x2, y2 in boxes:
        if contains(bay, ((x1 + x2) / 2, (y1 + y2) / 2)) or (x1 <= cx <= x2 and y1 <= cy <= y2):
            return True
    return False


def main() -> None:
    settings = Settings()
    folder = settings.datasets_dir / "parking_lot_cctv"
    paths = list_images(folder / "images")
    images = [cv2.imread(str(p)) for p in paths]
    manifest = settings.registry.manifest("coco")
    table = Table(title=f"coco weights on {len(images)} car-park CCTV frames")
    for column in ("weights", "occupied bays found", "ms / frame (batched)"):
        table.add_column(column)
    for candidate in manifest.weights:
        path = locate(candidate, settings.registry.models_dirs)
        if path is None:
            continue
        detector = Detector(manifest, path)
        detector.detect(images[:2])
        started = time.perf_counter()
        results = detector.detect(images)
        elapsed = (time.perf_counter() - started) / len(images)
        hits = total = 0
        for image_path, image, detections in zip(paths, images, results):
            boxes = [d.box for d in detections if d.class_name in VEHICLES]
            bays = occupied_bays(folder / "labels" / f"{image_path.stem}.txt", image.shape[1], image.shape[0])
            hits += sum(found(bay, boxes) for bay in bays)
            total += len(bays)
        table.add_row(candidate, f"{hits / total:.3f} ({hits}/{total})", f"{elapsed * 1000:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
