"""Precision, recall and AP50 of any detector on a labelled YOLO-format folder."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .datasets import dataset_images, label_path, read_classes
from .detection import Detection, box_iou


@dataclass
class Scores:
    images: int
    truths: int
    predictions: int
    precision: float
    recall: float
    ap50: float
    seconds: float


def ground_truth(image: Path, width: int, height: int, wanted: set[int]) -> list[tuple[float, float, float, float]]:
    boxes = []
    path = label_path(image)
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 5 and int(parts[0]) in wanted:
                cx, cy, w, h = (float(v) for v in parts[1:])
                boxes.append(((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
    return boxes


def average_precision(hits: list[tuple[float, bool]], truths: int) -> float:
    """All-point interpolated area under the precision-recall curve (VOC 2010+ / COCO style)."""
    if truths == 0 or not hits:
        return 0.0
    ordered = sorted(hits, key=lambda h: -h[0])
    tp = np.cumsum([1 if hit else 0 for _, hit in ordered])
    fp = np.cumsum([0 if hit else 1 for _, hit in ordered])
    recall = np.concatenate([[0.0], tp / truths, [1.0]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def evaluate(
    detect: Callable[[Sequence[np.ndarray]], list[list[Detection]]], folder: Path, truth_classes: list[str],
    predicted_classes: set[str], batch: int = 8, min_confidence: float = 0.25, limit: int | None = None,
    images: list[Path] | None = None,
) -> Scores:
    """Greedy IoU >= 0.5 matching, highest confidence first; unmatched predictions are false positives.

    AP50 uses every prediction the detector returns (run it with a low floor); precision and
    recall are those of the predictions at or above ``min_confidence``, the operating point.
    """
    import time

    names = read_classes(folder)
    wanted = {names.index(c) for c in truth_classes if c in names}
    images = (images or dataset_images(folder))[:limit]
    hits: list[tuple[float, bool]] = []
    truths = 0
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        pictures = [cv2.imread(str(p)) for p in chunk]
        for path, picture, found in zip(chunk, pictures, detect(pictures)):
            gts = ground_truth(path, picture.shape[1], picture.shape[0], wanted)
            truths += len(gts)
            taken = [False] * len(gts)
            for det in sorted((d for d in found if d.is_one_of(predicted_classes)), key=lambda d: -d.confidence):
                ious = [0.0 if taken[i] else box_iou(det.box, gt) for i, gt in enumerate(gts)]
                best = int(np.argmax(ious)) if ious else -1
                hit = best >= 0 and ious[best] >= 0.5
                if hit:
                    taken[best] = True
                hits.append((det.confidence, hit))
    operating = [hit for confidence, hit in hits if confidence >= min_confidence]
    matched = sum(operating)
    return Scores(len(images), truths, len(operating), matched / len(operating) if operating else 0.0,
                  matched / truths if truths else 0.0, average_precision(hits, truths), time.perf_counter() - started)
