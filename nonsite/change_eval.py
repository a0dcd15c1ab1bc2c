"""``nonsite eval-change``: F1 and IoU of the change mask on before/after/mask pairs, per set."""
from __future__ import annotations

from pathlib import Path

import cv2
from rich.console import Console
from rich.table import Table

from vision.change import ChangeDetector, mask_scores
from vision.registry import locate

from .settings import Settings

BACKBONE = "yolov8n_coco_recovered.pt"


def change_detector(settings: Settings) -> ChangeDetector:
    if checkpoint := locate(BACKBONE, settings.registry.models_dirs):
        return ChangeDetector(checkpoint)
    raise FileNotFoundError(f"change detection needs {BACKBONE} in {', '.join(map(str, settings.registry.models_dirs))}")


def score_sets(detector: ChangeDetector, root: Path) -> dict[str, dict[str, float]]:
    """Pixel F1 and IoU pooled over each set's pairs (a set: a folder with before/, after/, mask/)."""
    results = {}
    for folder in sorted(p for p in root.iterdir() if (p / "before").is_dir()):
        tp = fp = fn = pairs = 0
        for before_path in sorted((folder / "before").iterdir()):
            before, after = cv2.imread(str(before_path)), cv2.imread(str(folder / "after" / before_path.name))
            truth = cv2.imread(str(folder / "mask" / before_path.name), cv2.IMREAD_GRAYSCALE) > 127
            result = detector.detect(before, after, aligned=True)
            a, b, c = mask_scores(result.mask, truth)
            tp, fp, fn, pairs = tp + a, fp + b, fn + c, pairs + 1
        results[folder.name] = {"pairs": pairs, "f1": 2 * tp / max(2 * tp + fp + fn, 1), "iou": tp / max(tp + fp + fn, 1),
                                "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1)}
    return results


def run_change_eval(settings: Settings, console: Console, root: Path) -> int:
    table = Table("set", "pairs", "F1", "IoU", "precision", "recall", title=f"change detection on {root}")
    for name, s in score_sets(change_detector(settings), root).items():
        table.add_row(name, str(s["pairs"]), f"{s['f1']:.3f}", f"{s['iou']:.3f}", f"{s['precision']:.3f}", f"{s['recall']:.3f}")
    console.print(table)
    return 0
