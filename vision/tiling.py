"""Tiled detection for large aerial images: overlapping tiles, batched, merged across borders.

Small objects seen from the air vanish when a 4000-pixel photo is shrunk to the model's input;
cutting it into tiles keeps them large enough. An object on a tile border is seen twice, in
parts; greedy non-maximum merging (SAHI's NMM idea: overlap measured against the smaller box)
joins the parts into one box instead of keeping two.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .detection import Detection
from .detector import Detector


def tile_grid(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Tiles (x0, y0, x1, y1) covering the image, the last row and column flush with its edges."""
    step = max(1, int(tile * (1 - overlap)))

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        points = list(range(0, length - tile, step))
        return points + [length - tile]

    return [(x, y, min(x + tile, width), min(y + tile, height)) for y in starts(height) for x in starts(width)]


def _overlap_of_smaller(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def merge_boxes(detections: Sequence[Detection], threshold: float = 0.5) -> list[Detection]:
    """Greedy merge per class, highest confidence first, repeated until nothing more merges:
    a union box that grew may now cover another part of the same object."""
    merged = list(detections)
    while True:
        again = _merge_pass(merged, threshold)
        if len(again) == len(merged):
            return again
        merged = again


def _merge_pass(detections: Sequence[Detection], threshold: float) -> list[Detection]:
    merged: list[Detection] = []
    for detection in sorted(detections, key=lambda d: d.confidence, reverse=True):
        for index, kept in enumerate(merged):
            if kept.label == detection.label and _overlap_of_smaller(kept.box, detection.box) >= threshold:
                union = (min(kept.box[0], detection.box[0]), min(kept.box[1], detection.box[1]),
                         max(kept.box[2], detection.box[2]), max(kept.box[3], detection.box[3]))
                merged[index] = replace(kept, box=union)
                break
        else:
            merged.append(detection)
    return merged


class TiledDetector:
    """Wraps a ``Detector``: cut, batch every tile of every image through it, shift back, merge."""

    def __init__(self, detector: Detector, tile: int = 640, overlap: float = 0.2, merge_threshold: float = 0.5):
        self.detector = detector
        self.tile = tile
        self.overlap = overlap
        self.merge_threshold = merge_threshold
        self.tiles_run = 0

    @property
    def name(self) -> str:
        return self.detector.name

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        crops, owners = [], []
        for index, image in enumerate(images):
            height, width = image.shape[:2]
            for x0, y0, x1, y1 in tile_grid(width, height, self.tile, self.overlap):
                crops.append(image[y0:y1, x0:x1])
                owners.append((index, x0, y0))
        self.tiles_run += len(crops)
        per_image: list[list[Detection]] = [[] for _ in images]
        for (index, x0, y0), found in zip(owners, self.detector.detect(crops)):
            per_image[index].extend(
                replace(d, box=(d.box[0] + x0, d.box[1] + y0, d.box[2] + x0, d.box[3] + y0)) for d in found
            )
        return [merge_boxes(found, self.merge_threshold) for found in per_image]
