"""Which COCO weights should be the default? Share of occupied bays found, and time per frame.

Runs every candidate of the ``coco`` manifest that exists on the same car-park CCTV frames
(``parking_lot_cctv``: polygons per bay, 1 = occupied). A bay counts as found when a vehicle
box's centre lies inside the bay polygon, or the bay's centroid lies inside the box.
Then the default weights on three canvases for these 854 x 480 frames: the square one, the tightest
one (Ultralytics' ``rect``) and the bordered one the detector uses (``letterbox_canvas``), with the
CPU time per frame on one thread, as the camera service runs the model.

    .venv/bin/python benchmarks/model_choice.py
"""
from __future__ import annotations

import time
from functools import partial

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from nonsite.ingest import list_images
from nonsite.rules.zones import contains
from nonsite.settings import Settings
from nonsite.vision import Detector
from nonsite.vision.detector import letterbox_canvas
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


def bays_found(folder, paths, images, results) -> tuple[int, int]:
    hits = total = 0
    for image_path, image, boxes in zip(paths, images, results):
        bays = occupied_bays(folder / "labels" / f"{image_path.stem}.txt", image.shape[1], image.shape[0])
        hits += sum(found(bay, boxes) for bay in bays)
        total += len(bays)
    return hits, total


def vehicle_boxes(prediction) -> list[tuple[float, ...]]:
    return [tuple(box) for box, cls in zip(prediction.boxes.xyxy.cpu().numpy(), prediction.boxes.cls.cpu().numpy())
            if prediction.names[int(cls)] in VEHICLES]


def canvases(manifest, path, folder, paths, images) -> Table:
    """The default weights on the square, the tightest and the bordered canvas (one OpenVINO thread)."""
    detector = Detector(manifest, path, threads=1) if path else None
    if detector is None or not detector.any_size:
        raise SystemExit(f"{manifest.weights[0]}: missing here or an export of one picture size: `make models` builds it")
    detector.detect(images[:1])
    table = Table(title=f"{path.name} on {images[0].shape[1]} x {images[0].shape[0]} frames, by canvas")
    for column in ("canvas", "height x width", "occupied bays found", "CPU ms / frame, 1 thread"):
        table.add_column(column)
    for label, canvas in (("square", (manifest.imgsz, manifest.imgsz)), ("tightest (Ultralytics' rect)", letterbox_canvas(images[0].shape[:2], manifest.imgsz, border=0)),
                          ("bordered (the detector's)", detector.canvas(images[0]))):
        predict = partial(detector.model.predict, imgsz=canvas, rect=False, conf=manifest.conf, iou=manifest.iou,
                          agnostic_nms=manifest.agnostic_nms, verbose=False)
        predict(images[:1])
        started = time.process_time()
        predictions = [predict([image])[0] for image in images]
        elapsed = (time.process_time() - started) / len(images)
        hits, total = bays_found(folder, paths, images, [vehicle_boxes(p) for p in predictions])
        table.add_row(label, f"{canvas[0]} x {canvas[1]}", f"{hits / total:.3f} ({hits}/{total})", f"{elapsed * 1000:.0f}")
    return table


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
        hits, total = bays_found(folder, paths, images, [[d.box for d in found if d.class_name in VEHICLES] for found in results])
        table.add_row(candidate, f"{hits / total:.3f} ({hits}/{total})", f"{elapsed * 1000:.0f}")
    Console().print(table)
    Console().print(canvases(manifest, locate(manifest.weights[0], settings.registry.models_dirs), folder, paths, images))


if __name__ == "__main__":
    main()
