"""Change detection between a baseline and a new aerial image: what has been built since.

1. Registration: AKAZE features + RANSAC homography warp the baseline onto the new image
   (orthophotos that share a georeference are already aligned and skip this).
2. Change map: the cosine distance between the two images' feature maps from a COCO-trained
   YOLO backbone (strides 8, 16, 32), which describe structure rather than brightness, so a
   sunnier day or another season moves them far less than a new roof does; plus a small share
   of colour difference after histogram matching. Computed at 1.5x scale and with a mirrored
   pass, averaged.
3. Decision: Otsu's threshold on the map (never below a floor, so an unchanged pair stays
   quiet), morphological clean-up, and only regions of building size are kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .weights import weights_sha256

BACKBONE_LAYERS = (4, 6, 9)  # YOLOv8 backbone outputs at strides 8, 16, 32
SCALE = 1.5
COLOUR_SHARE = 0.3
DEEP_FLOOR = 0.12  # cosine distance under which nothing counts as changed
MIN_MATCHES = 12


@dataclass
class ChangeResult:
    mask: np.ndarray  # bool, new image's pixels
    score: np.ndarray  # float32 change map in [0, 1]
    regions: list[tuple[int, int, int, int]]  # boxes (x1, y1, x2, y2) of kept regions
    registered: bool  # a homography was found (or was not needed)
    baseline_warped: np.ndarray


def register(baseline: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, bool]:
    """The baseline warped into the new image's pixels, and whether a reliable homography was found."""
    detector = cv2.AKAZE_create()
    gray = lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)  # noqa: E731
    kb, db = detector.detectAndCompute(gray(baseline), None)
    kn, dn = detector.detectAndCompute(gray(new), None)
    if db is None or dn is None or len(kb) < MIN_MATCHES or len(kn) < MIN_MATCHES:
        return cv2.resize(baseline, (new.shape[1], new.shape[0])), False
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(db, dn, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < 0.75 * n.distance]
    if len(good) < MIN_MATCHES:
        return cv2.resize(baseline, (new.shape[1], new.shape[0])), False
    src = np.float32([kb[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([kn[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    homography, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 4.0)
    if homography is None or inliers.sum() < MIN_MATCHES:
        return cv2.resize(baseline, (new.shape[1], new.shape[0])), False
    return cv2.warpPerspective(baseline, homography, (new.shape[1], new.shape[0]), borderMode=cv2.BORDER_REPLICATE), True


def _match_histograms(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Give ``source`` the colour distribution of ``reference`` (removes global lighting shifts)."""
    out = np.empty_like(source)
    for channel in range(3):
        values, inverse, counts = np.unique(source[..., channel].ravel(), return_inverse=True, return_counts=True)
        ref_values, ref_counts = np.unique(reference[..., channel].ravel(), return_counts=True)
        quantiles = np.cumsum(counts) / counts.sum()
        ref_quantiles = np.cumsum(ref_counts) / ref_counts.sum()
        out[..., channel] = np.interp(quantiles, ref_quantiles, ref_values)[inverse].reshape(source.shape[:2])
    return out


class ChangeDetector:
    def __init__(self, checkpoint: Path):
        import torch
        from ultralytics import YOLO

        self._torch = torch
        self.backbone = YOLO(str(checkpoint)).model.float().eval().model[: max(BACKBONE_LAYERS) + 1]
        self.weights_sha256 = weights_sha256(Path(checkpoint))

    def _features(self, image: np.ndarray) -> dict:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))).permute(2, 0, 1)[None].float() / 255
        outputs = {}
        with torch.no_grad():
            for index, layer in enumerate(self.backbone):
                x = layer(x)
                if index in BACKBONE_LAYERS:
                    outputs[index] = torch.nn.functional.normalize(x, dim=1)
        return outputs

    def _deep_distance(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        height, width = after.shape[:2]
        size = (int(width * SCALE) // 32 * 32 or 32, int(height * SCALE) // 32 * 32 or 32)
        total = np.zeros((height, width), np.float32)
        for flip in (False, True):
            a, b = (cv2.resize(img[:, ::-1] if flip else img, size, interpolation=cv2.INTER_CUBIC) for img in (before, after))
            fa, fb = self._features(a), self._features(b)
            for index in BACKBONE_LAYERS:
                distance = (1 - (fa[index] * fb[index]).sum(1))[0].numpy()
                distance = cv2.resize(distance, (width, height), interpolation=cv2.INTER_LINEAR)
                total += distance[:, ::-1] if flip else distance
        return total / (2 * len(BACKBONE_LAYERS))

    def detect(self, baseline: np.ndarray, new: np.ndarray, min_area_px: int = 64, aligned: bool = False) -> ChangeResult:
        warped, registered = (cv2.resize(baseline, (new.shape[1], new.shape[0])), True) if aligned else register(baseline, new)
        deep = self._deep_distance(warped, new)
        matched = _match_histograms(warped, new)
        lab_new, lab_old = (cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2LAB).astype(np.float32), (5, 5), 0) for img in (new, matched))
        colour = np.linalg.norm(lab_new - lab_old, axis=2)
        score = (1 - COLOUR_SHARE) * deep / (deep.max() + 1e-6) + COLOUR_SHARE * colour / (colour.max() + 1e-6)
        scaled = cv2.normalize(score, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        raw = (scaled > otsu) & (deep > DEEP_FLOOR)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        cleaned = cv2.morphologyEx(cv2.morphologyEx(raw.astype(np.uint8), cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(cleaned)
        mask = np.zeros(new.shape[:2], bool)
        regions = []
        for label in range(1, count):
            x, y, w, h, area = stats[label]
            if area >= min_area_px:
                mask |= labels == label
                regions.append((int(x), int(y), int(x + w), int(y + h)))
        return ChangeResult(mask, score.astype(np.float32), regions, registered, warped)


def mask_scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(true positive, false positive, false negative) pixel counts."""
    return int((predicted & truth).sum()), int((predicted & ~truth).sum()), int((~predicted & truth).sum())


def score_change_sets(detector: ChangeDetector, root: Path) -> dict[str, dict[str, float]]:
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
