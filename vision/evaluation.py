"""Precision, recall and AP50 of any detector on a labelled YOLO-format folder."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .datasets import DatasetError, dataset_images, label_path, read_classes
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
    hits: list[tuple[float, bool]] = field(default_factory=list, repr=False)  # (confidence, matched a labelled box) per prediction


def label_box(values: list[float], width: int, height: int) -> tuple[float, float, float, float] | None:
    """The pixel box of one label line's coordinates: a box (cx cy w h) or a segmentation polygon
    (x1 y1 x2 y2 ..., its bounding box), all normalised; None when they are neither."""
    if len(values) == 4:
        cx, cy, w, h = values
        return (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height
    if len(values) >= 6 and len(values) % 2 == 0:
        xs, ys = values[0::2], values[1::2]
        return min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height
    return None


def ground_truth(image: Path, width: int, height: int, wanted: set[int]) -> list[tuple[float, float, float, float]] | None:
    """The image's labelled boxes of the wanted classes; None when it has no label file."""
    path = label_path(image)
    if not path.is_file():
        return None
    boxes = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls, values = int(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            raise DatasetError(f"{path}:{number}: not a label line (class, then numbers): {line[:80]!r}") from None
        box = label_box(values, width, height)
        if box is None:
            raise DatasetError(f"{path}:{number}: {len(values)} numbers are neither a box (cx cy w h) nor a polygon (x1 y1 x2 y2 ...)")
        if cls in wanted:
            boxes.append(box)
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
    unknown = [c for c in truth_classes if c not in names]
    if unknown:
        raise DatasetError(f"dataset {folder}: no class {', '.join(map(repr, unknown))} in classes.txt (it has {', '.join(names)})")
    wanted = {names.index(c) for c in truth_classes}
    images = (images or dataset_images(folder))[:limit]
    if not images:
        raise DatasetError(f"dataset {folder}: no images to score")
    labelled = 0
    hits: list[tuple[float, bool]] = []
    truths = 0
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        pictures = [cv2.imread(str(p)) for p in chunk]
        if unreadable := [p.name for p, picture in zip(chunk, pictures) if picture is None]:
            raise DatasetError(f"dataset {folder}: not a readable image: {', '.join(unreadable)}")
        for path, picture, found in zip(chunk, pictures, detect(pictures)):
            gts = ground_truth(path, picture.shape[1], picture.shape[0], wanted)
            if gts is None:
                gts = []  # an image without a label file has no objects (YOLO's convention for negatives)
            else:
                labelled += 1
            truths += len(gts)
            taken = [False] * len(gts)
            for det in sorted((d for d in found if d.is_one_of(predicted_classes)), key=lambda d: -d.confidence):
                ious = [0.0 if taken[i] else box_iou(det.box, gt) for i, gt in enumerate(gts)]
                best = int(np.argmax(ious)) if ious else -1
                hit = best >= 0 and ious[best] >= 0.5
                if hit:
                    taken[best] = True
                hits.append((det.confidence, hit))
    if not labelled:
        raise DatasetError(f"dataset {folder}: none of the {len(images)} images has a label file in labels/: nothing to score against")
    operating = [hit for confidence, hit in hits if confidence >= min_confidence]
    matched = sum(operating)
    return Scores(len(images), truths, len(operating), matched / len(operating) if operating else 0.0,
                  matched / truths if truths else 0.0, average_precision(hits, truths), time.perf_counter() - started, hits)
