"""How aerial vehicle models do on imagery unlike their training: full frame, tiled and multi-scale.

Every set is one the ``aerial_vehicle`` recipe keeps out of training:

* own street, val: the tail of each frame sequence of ``drone_cars_cats`` (the recipe's val split);
* unseen places: the sequences the recipe holds out whole (``split.hold_out``: other intersections);
* DOTA P1888, held-out band: the rows of the satellite bus park below the band the recipe trains on
  (DOTA oriented boxes of small and large vehicles, as axis-aligned boxes);
* oblique terrain2: an elevated oblique street photo (COCO json, cars).

The model shipped before 2026-12-06 (yolov8n, mild augmentation; give it as a candidate folder made
from git history) was trained before the hold-out existed: it saw the first 80 % of the "unseen
places" sequences, so its figures there are not cross-street ones. Scores come from
nonsite's own evaluation (greedy IoU 0.5; P/R at the model's own confidence floor, its manifest's
``conf``; AP50 over every prediction down to 0.05).

    .venv/bin/python benchmarks/aerial_generalisation.py [--candidate DIR ...] [--json OUT]

``--candidate DIR`` adds a freshly trained model: DIR holds its manifest and ``weights/``
(``nonsite train ... --manifests-out DIR --weights-out DIR/weights``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import cv2
from rich.console import Console
from rich.table import Table

from nonsite.rules import load_config
from nonsite.settings import Settings
from nonsite.vision import Detector
from nonsite.vision.datasets import dataset_images, held_out_images, split_images
from nonsite.vision.evaluation import evaluate
from nonsite.vision.multiscale import MultiScaleDetector
from nonsite.vision.registry import ModelRegistry
from nonsite.vision.tiling import TiledDetector
from nonsite.vision.training import TrainRecipe
from nonsite.vision.training_data import dota_band

RECIPE = Path(__file__).resolve().parent.parent / "models" / "recipes" / "aerial_vehicle.yaml"
Box = tuple[float, float, float, float]


def _yolo_folder(root: Path, name: str, items: list[tuple[str, object, list[Box]]]) -> Path:
    """A one-class YOLO folder from (file name, picture path or pixels, boxes in pixels)."""
    folder = root / name
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    (folder / "classes.txt").write_text("car\n")
    for file_name, picture, boxes in items:
        target = folder / "images" / file_name
        if isinstance(picture, Path):
            shutil.copy(picture, target)
        else:
            cv2.imwrite(str(target), picture)
        height, width = cv2.imread(str(target)).shape[:2]
        lines = [f"0 {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
                 for x1, y1, x2, y2 in boxes]
        (folder / "labels" / f"{target.stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    return folder


def held_out_sets(root: Path, datasets: Path) -> list[tuple[str, Path, list[Path] | None, bool]]:
    """(name, folder, images or None for all, whether to tile) for every set the recipe never trains on."""
    recipe = load_config(RECIPE, TrainRecipe)
    cars = Path(recipe.dataset.replace("{datasets}", str(datasets)))
    images = dataset_images(cars)
    _, val = split_images(images, recipe.split)
    sets = [("own street, val", cars, val, False), ("unseen places", cars, held_out_images(images, recipe.split), False)]
    for spec in recipe.extra:
        band, objects, stem = dota_band(spec, datasets, held_out=True)
        boxes = [(min(x for x, _ in c), min(y for _, y in c), max(x for x, _ in c), max(y for _, y in c)) for _, c in objects]
        sets.append((f"DOTA {stem}", _yolo_folder(root, f"dota_{stem}", [(f"{stem}.png", band, boxes)]), None, True))
    coco = json.loads((datasets / "oblique_samples" / "terrain2_coco.json").read_text())
    boxes = [(x, y, x + w, y + h) for x, y, w, h in (a["bbox"] for a in coco["annotations"])]
    oblique = _yolo_folder(root, "oblique_terrain2", [("terrain2.png", datasets / "oblique_samples" / "terrain2.png", boxes)])
    return sets + [("oblique terrain2", oblique, None, True)]


def detectors(settings: Settings, candidates: list[Path]) -> list[tuple[str, Detector, set[str], float]]:
    """(label, detector returning everything down to 0.05, classes that count as a vehicle, the model's own floor)."""
    found = []
    registries = [(settings.registry, "shipped", True)] + [(ModelRegistry(f, [f / "weights"]), f.name, False) for f in candidates]
    for registry, origin, shipped in registries:
        for name, predict in (("aerial_vehicle", {"car"}), ("coco", {"car", "truck", "bus"})):
            if name not in registry.names():
                continue
            manifest = registry.manifest(name)
            detector = Detector(manifest.model_copy(update={"conf": 0.05}), registry.resolve_weights(manifest, shipped=shipped))
            found.append((f"{name} ({origin}, conf {manifest.conf})", detector, predict, manifest.conf))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", type=Path, action="append", default=[], help="folder with a trained model's manifest and weights/")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    settings = Settings()
    table = Table("data", "model", "mode", "truth", "predictions", "precision", "recall", "AP50",
                  title="vehicles from the air, on sets the aerial recipe never trains on (P/R at each model's conf floor)")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        sets = held_out_sets(Path(scratch), settings.datasets_dir)
        for model, detector, predict, floor in detectors(settings, args.candidate):
            for data, folder, images, tile in sets:
                modes = [("full frame", detector.detect)]
                if tile:
                    modes += [("tiled 416/0.25", TiledDetector(detector, 416, 0.25).detect),
                              ("tiled 208/0.25 (2x up)", TiledDetector(detector, 208, 0.25).detect)]
                modes.append(("multi-scale: full + 208 + 416, fused", MultiScaleDetector(detector, (208, 416), 0.25).detect))
                for mode, detect in modes:
                    s = evaluate(detect, folder, ["car"], predict, images=images, min_confidence=floor)
                    rows.append({"data": data, "model": model, "mode": mode, "images": s.images, "truth": s.truths,
                                 "predictions": s.predictions, "precision": round(s.precision, 4),
                                 "recall": round(s.recall, 4), "ap50": round(s.ap50, 4)})
                    table.add_row(data, model, mode, str(s.truths), str(s.predictions), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.ap50:.3f}")
                table.add_section()
    Console(width=160).print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
