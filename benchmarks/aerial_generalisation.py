"""How the aerial vehicle model does on imagery unlike its training run: full frame, tiled and multi-scale.

Converts the labelled vehicles of ``dota_example/`` (DOTA oriented boxes: small-vehicle and
large-vehicle, as axis-aligned boxes) and ``oblique_samples/terrain2`` (COCO json, cars) into
YOLO folders, and scores ``aerial_vehicle`` and ``coco`` on them with nonsite's own evaluation.

    .venv/bin/python benchmarks/aerial_generalisation.py
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import cv2
from rich.console import Console
from rich.table import Table

from nonsite.settings import Settings
from nonsite.vision import Detector
from nonsite.vision.evaluation import evaluate
from nonsite.vision.multiscale import MultiScaleDetector
from nonsite.vision.tiling import TiledDetector

DOTA_VEHICLES = {"small-vehicle", "large-vehicle"}


def _yolo_folder(root: Path, name: str, items: list[tuple[Path, list[tuple[float, float, float, float]]]]) -> Path:
    folder = root / name
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    (folder / "classes.txt").write_text("car\n")
    for image_path, boxes in items:
        height, width = cv2.imread(str(image_path)).shape[:2]
        shutil.copy(image_path, folder / "images" / image_path.name)
        lines = [f"0 {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
                 for x1, y1, x2, y2 in boxes]
        (folder / "labels" / f"{image_path.stem}.txt").write_text("\n".join(lines) + "\n")
    return folder


def dota(root: Path, datasets: Path) -> Path:
    items = []
    for image in sorted((datasets / "dota_example" / "images").glob("*.png")):
        boxes = []
        for line in (datasets / "dota_example" / "labelTxt" / f"{image.stem}.txt").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 9 and parts[8] in DOTA_VEHICLES:
                xs, ys = [float(v) for v in parts[0:8:2]], [float(v) for v in parts[1:8:2]]
                boxes.append((min(xs), min(ys), max(xs), max(ys)))
        items.append((image, boxes))
    return _yolo_folder(root, "dota_vehicles", items)


def oblique(root: Path, datasets: Path) -> Path:
    coco = json.loads((datasets / "oblique_samples" / "terrain2_coco.json").read_text())
    boxes = [(x, y, x + w, y + h) for x, y, w, h in (a["bbox"] for a in coco["annotations"])]
    return _yolo_folder(root, "oblique_cars", [(datasets / "oblique_samples" / "terrain2.png", boxes)])


def main() -> None:
    settings = Settings()
    table = Table("data", "model", "mode", "truth", "predictions", "precision", "recall", "AP50",
                  title="vehicles from the air, away from the training run (conf ≥ 0.25 for P/R)")
    with tempfile.TemporaryDirectory() as scratch:
        for folder in (dota(Path(scratch), settings.datasets_dir), oblique(Path(scratch), settings.datasets_dir)):
            for model, predict in (("aerial_vehicle", {"car"}), ("coco", {"car", "truck", "bus"})):
                manifest = settings.registry.manifest(model).model_copy(update={"conf": 0.05})
                detector = Detector(manifest, settings.registry.resolve_weights(manifest))
                modes = (("full frame", detector.detect), ("tiled 416/0.25", TiledDetector(detector, 416, 0.25).detect),
                         ("tiled 208/0.25 (2x up)", TiledDetector(detector, 208, 0.25).detect),
                         ("multi-scale: full + 208 + 416, fused", MultiScaleDetector(detector, (208, 416), 0.25).detect))
                for mode, detect in modes:
                    s = evaluate(detect, folder, ["car"], predict)
                    table.add_row(folder.name, model, mode, str(s.truths), str(s.predictions), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.ap50:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
