"""Multi-scale detection for drone pictures: the full frame plus tiles at several sizes, fused.

A model finds objects best at the size it learnt them. From a drone that size depends on the
flight height and the lens, so one tile size serves one altitude only. Knowing the picture's
ground sampling distance (metres per pixel) and the real size of the object (a car is ~4.6 m),
the tile that shows it at the learnt size is ``object_m / gsd * imgsz / object_px`` pixels wide;
a second, larger tile and the full frame catch what is bigger or nearer than typical. Every crop
of every scale goes through the model in one batched call.

Within one scale, parts of an object cut by tile borders are joined (``merge_boxes``, SAHI's
NMM idea). Across scales the same object is found several times with slightly different boxes:
they are fused as in weighted boxes fusion (coordinates averaged, weighted by confidence), but the
fused confidence is the best one, not the mean: scales are complementary here (a small car is seen
only by the finest tiles), and averaging would punish exactly the objects multi-scale is for.
Last, a part that a finer scale found inside the whole object another scale saw is absorbed
into it, as SAHI does across slices and the full frame (``merge_boxes`` over every scale).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .detection import Detection, box_iou
from .detector import Detector
from .tiling import merge_boxes, tile_grid

_SPREAD = 1.6  # the second tile size, as a multiple of the one that shows the typical object at its learnt size


def tile_sizes_for(gsd_m: float, object_m: float, object_px: float, imgsz: int, width: int, height: int) -> list[int]:
    """Tile sizes (pixels) that show an object of ``object_m`` metres at about ``object_px`` at the model's
    input, and a larger one; none that would be the whole picture anyway (the full frame is always run)."""
    learnt = object_m / gsd_m * imgsz / object_px
    sizes = {max(imgsz // 2, round(size)) for size in (learnt, learnt * _SPREAD)}
    return sorted(size for size in sizes if size < max(width, height))


def fuse(per_scale: Sequence[Sequence[Detection]], iou: float = 0.55) -> list[Detection]:
    """One box per object across scales: boxes of a label overlapping at ``iou`` are averaged
    (weighted by confidence); the fused box keeps the best confidence and its detection's fields."""
    clusters: list[list[Detection]] = []
    boxes: list[tuple[float, float, float, float]] = []
    for detection in sorted((d for found in per_scale for d in found), key=lambda d: -d.confidence):
        for index, cluster in enumerate(clusters):
            if cluster[0].label == detection.label and box_iou(boxes[index], detection.box) >= iou:
                cluster.append(detection)
                weight = sum(d.confidence for d in cluster)
                boxes[index] = tuple(sum(d.box[k] * d.confidence for d in cluster) / weight for k in range(4))
                break
        else:
            clusters.append([detection])
            boxes.append(detection.box)
    return [replace(cluster[0], box=box) for cluster, box in zip(clusters, boxes)]


class MultiScaleDetector:
    """Wraps a ``Detector``: full frame plus tiles of ``tile_sizes`` (or sizes from the ground sampling
    distance, per picture), one batched model call, parts joined per scale, scales fused."""

    def __init__(self, detector: Detector, tile_sizes: Sequence[int] = (640, 1280), overlap: float = 0.2,
                 merge_threshold: float = 0.5, fusion_iou: float = 0.55):
        self.detector = detector
        self.tile_sizes = list(tile_sizes)
        self.overlap = overlap
        self.merge_threshold = merge_threshold
        self.fusion_iou = fusion_iou
        self.tiles_run = 0

    @property
    def name(self) -> str:
        return self.detector.name

    def sizes(self, image: np.ndarray, gsd_m: float | None) -> list[int]:
        """The tile sizes for one picture: from its ground sampling distance when it and the model's
        learnt object size are known, else the configured ones."""
        height, width = image.shape[:2]
        manifest = self.detector.manifest
        if gsd_m and manifest.object_m and manifest.object_px:
            return tile_sizes_for(gsd_m, manifest.object_m, manifest.object_px, manifest.imgsz, width, height)
        return [size for size in self.tile_sizes if size < max(width, height)]

    def detect(self, images: Sequence[np.ndarray], gsd_m: Sequence[float | None] | None = None) -> list[list[Detection]]:
        crops, owners = [], []  # owner: (image, scale, x0, y0); scale 0 is the full frame
        for index, image in enumerate(images):
            height, width = image.shape[:2]
            crops.append(image)
            owners.append((index, 0, 0, 0))
            for scale, size in enumerate(self.sizes(image, gsd_m[index] if gsd_m else None), 1):
                for x0, y0, x1, y1 in tile_grid(width, height, size, self.overlap):
                    crops.append(image[y0:y1, x0:x1])
                    owners.append((index, scale, x0, y0))
        self.tiles_run += len(crops)
        found: dict[tuple[int, int], list[Detection]] = {}
        for (index, scale, x0, y0), detections in zip(owners, self.detector.detect(crops)):
            found.setdefault((index, scale), []).extend(
                replace(d, box=(d.box[0] + x0, d.box[1] + y0, d.box[2] + x0, d.box[3] + y0)) for d in detections)
        return [merge_boxes(fuse([merge_boxes(found[key], self.merge_threshold) for key in sorted(found) if key[0] == index],
                                 self.fusion_iou), self.merge_threshold)
                for index in range(len(images))]
