"""``nonsite eval``: full frame, tiled and multi-scale detection on any labelled YOLO folder, and tile throughput."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import cv2
from rich.console import Console
from rich.table import Table

from nonsite.vision import Detector
from nonsite.vision.datasets import dataset_images
from nonsite.vision.evaluation import evaluate
from nonsite.vision.multiscale import MultiScaleDetector
from nonsite.vision.tiling import TiledDetector, tile_grid

from .settings import Settings

AP_FLOOR = 0.05  # predictions kept for the precision-recall curve


def val_images(recipe_path: Path, folder: Path) -> list[Path]:
    """The held-out images of a training recipe's split, so a model is not scored on what it learnt."""
    from nonsite.rules import load_config
    from nonsite.vision.datasets import split_images
    from nonsite.vision.training import TrainRecipe

    recipe = load_config(recipe_path, TrainRecipe)
    return split_images(dataset_images(folder), recipe.split)[1]


def run_eval(settings: Settings, console: Console, folder: Path, model: str, truth: list[str], predict: list[str],
             tile: int, overlap: float, limit: int | None, min_confidence: float, recipe: Path | None = None,
             as_json: bool = False) -> int:
    manifest = settings.registry.manifest(model).model_copy(update={"conf": AP_FLOOR})
    detector = Detector(manifest, settings.registry.resolve_weights(manifest))
    tiled = TiledDetector(detector, tile, overlap)
    predicted = set(predict or truth)
    images = val_images(recipe, folder) if recipe else None
    which = f"val split of {recipe.name}" if recipe else "all images"
    multi = MultiScaleDetector(detector, (tile, 2 * tile), overlap)
    modes = {"full_frame": ("full frame", detector.detect), "tiled": (f"tiled {tile}px, overlap {overlap:.0%}", tiled.detect),
             "multi_scale": (f"multi-scale: full frame + {tile}px + {2 * tile}px, fused", multi.detect)}
    scores = {key: evaluate(detect, folder, truth, predicted, limit=limit, min_confidence=min_confidence, images=images)
              for key, (_, detect) in modes.items()}
    speed = tile_throughput(detector, tiled, folder, limit)
    if as_json:
        print(json.dumps({
            "model": model, "folder": str(folder), "images": which, "truth_classes": truth, "predicted_classes": sorted(predicted),
            "operating_confidence": min_confidence, "tile": tile, "overlap": overlap,
            "modes": {key: {"label": modes[key][0], **asdict(s)} for key, s in scores.items()}, "throughput": speed,
        }, indent=1))
        return 0
    table = Table(title=f"{model} on {folder} ({which}; {', '.join(truth)}), operating point conf ≥ {min_confidence}")
    for column in ("mode", "images", "truth boxes", "predictions", "precision", "recall", "AP50", "seconds"):
        table.add_column(column)
    for key, s in scores.items():
        table.add_row(modes[key][0], str(s.images), str(s.truths), str(s.predictions), f"{s.precision:.3f}", f"{s.recall:.3f}",
                      f"{s.ap50:.3f}", f"{s.seconds:.1f}")
    console.print(table)
    console.print(throughput_line(speed))
    return 0


def throughput_line(speed: dict) -> str:
    return (f"throughput: tiled {speed['tiled_tiles_per_s']:.1f} tiles/s, raw model batched {speed['raw_tiles_per_s']:.1f} tiles/s, "
            f"ratio {speed['ratio']:.3f} ({speed['tiles']} tiles)")


def tile_throughput(detector: Detector, tiled: TiledDetector, folder: Path, limit: int | None) -> dict:
    """Tiles per second through the tiled path vs the raw model on the same tiles, batched, in one run."""
    images = [cv2.imread(str(p)) for p in dataset_images(folder)[: min(limit or 16, 16)]]
    crops = [img[y0:y1, x0:x1] for img in images for x0, y0, x1, y1 in tile_grid(img.shape[1], img.shape[0], tiled.tile, tiled.overlap)]
    detector.detect(crops[: detector.batch])
    started = time.perf_counter()
    detector.detect(crops)
    raw = len(crops) / (time.perf_counter() - started)
    tiled.tiles_run = 0
    started = time.perf_counter()
    tiled.detect(images)
    through = tiled.tiles_run / (time.perf_counter() - started)
    return {"tiled_tiles_per_s": through, "raw_tiles_per_s": raw, "ratio": through / raw, "tiles": len(crops)}
