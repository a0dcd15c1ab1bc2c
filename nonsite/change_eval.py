"""``nonsite eval-change``: F1 and IoU of the change mask on before/after/mask pairs, per set."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from nonsite.vision.change import ChangeDetector, score_change_sets
from nonsite.vision.weights import locate

from .settings import Settings

BACKBONE = "yolov8n_coco_recovered.pt"


def change_detector(settings: Settings) -> ChangeDetector:
    if checkpoint := locate(BACKBONE, settings.registry.models_dirs):
        return ChangeDetector(checkpoint)
    raise FileNotFoundError(f"change detection needs {BACKBONE} in {', '.join(map(str, settings.registry.models_dirs))}")


def run_change_eval(settings: Settings, console: Console, root: Path) -> int:
    table = Table("set", "pairs", "F1", "IoU", "precision", "recall", title=f"change detection on {root}")
    for name, s in score_change_sets(change_detector(settings), root).items():
        table.add_row(name, str(s["pairs"]), f"{s['f1']:.3f}", f"{s['iou']:.3f}", f"{s['precision']:.3f}", f"{s['recall']:.3f}")
    console.print(table)
    return 0
