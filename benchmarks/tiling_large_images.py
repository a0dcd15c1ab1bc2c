"""Does tiling pay on large drone images? Full-frame vs tiled detection on 2x2 mosaics.

A drone photo is several times larger than the model's input, so objects shrink when the whole
frame is resized. The labelled chips in the shared folders are already model-sized; stitching
four held-out chips into one 1280x1280 picture recreates the large-image case with real labels.

    .venv/bin/python benchmarks/tiling_large_images.py
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from nonsite.evaluate import throughput_line, tile_throughput, val_images
from nonsite.settings import Settings
from nonsite.vision import Detector
from nonsite.vision.datasets import label_path, read_classes
from nonsite.vision.evaluation import evaluate
from nonsite.vision.tiling import TiledDetector

CASES = (("drone_cars_cats", "aerial_vehicle", "car"), ("vendors_aerial/train", "street_vendor", "street_vendor"))


def mosaics(source: Path, images: list[Path], out: Path) -> Path:
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    (out / "classes.txt").write_text("\n".join(read_classes(source)) + "\n")
    for number in range(len(images) // 4):
        quad = images[number * 4 : number * 4 + 4]
        tiles = [cv2.resize(cv2.imread(str(p)), (640, 640)) for p in quad]
        canvas = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
        lines = []
        for index, path in enumerate(quad):
            dx, dy = (index % 2) * 0.5, (index // 2) * 0.5
            for line in label_path(path).read_text().splitlines():
                cls, cx, cy, w, h = line.split()
                lines.append(f"{cls} {float(cx) / 2 + dx:.6f} {float(cy) / 2 + dy:.6f} {float(w) / 2:.6f} {float(h) / 2:.6f}")
        cv2.imwrite(str(out / "images" / f"mosaic_{number:03d}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
        (out / "labels" / f"mosaic_{number:03d}.txt").write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    settings = Settings()
    table = Table("data (held-out chips, 2x2 mosaics)", "model", "mode", "truth", "predictions", "precision", "recall", "AP50",
                  title="full frame vs tiled on large images (conf ≥ 0.25 for P/R)")
    notes = []
    with tempfile.TemporaryDirectory() as scratch:
        for folder_name, model, truth in CASES:
            source = settings.datasets_dir / folder_name
            held_out = val_images(Path("models/recipes") / f"{model}.yaml", source)[:64]
            folder = mosaics(source, held_out, Path(scratch) / model)
            manifest = settings.registry.manifest(model).model_copy(update={"conf": 0.05})
            detector = Detector(manifest, settings.registry.resolve_weights(manifest))
            # 640-pixel tiles, and tiles at the model's own input size (no shrinking at all)
            tilings = [TiledDetector(detector, size, 0.2) for size in sorted({640, manifest.imgsz})]
            for mode, detect in (("full frame", detector.detect), *((f"tiled {t.tile}/0.2", t.detect) for t in tilings)):
                s = evaluate(detect, folder, [truth], {truth})
                table.add_row(folder_name, model, mode, str(s.truths), str(s.predictions), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.ap50:.3f}")
            notes.append(f"{model}: " + throughput_line(tile_throughput(detector, tilings[-1], folder, 8)))
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note)


if __name__ == "__main__":
    main()
