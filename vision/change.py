"""Change detection between a baseline and a new aerial image: what has been built since.

1. Registration: AKAZE features + RANSAC homography warp the baseline onto the new image
   (orthophotos that share a georeference are already aligned and skip this).
2. Per-pixel evidence (``FEATURES``): the cosine distance between the two images' feature maps
   from a COCO-trained YOLO backbone at strides 4 to 32 (structure rather than brightness, so a
   sunnier day moves them far less than a new roof does), the colour difference after histogram
   matching, a brightness-invariant local structure term, blurred context of those, and each side's
   own (histogram-matched) colour: a new roof on bare land differs from a field that merely ripened.
3. Decision: a small perceptron (``models/change/change_classifier.json``, trained with heavy
   augmentation on labelled pairs and with unchanged photometric copies, see
   ``nonsite.change_eval``) turns that evidence into a probability of change, compared with an
   absolute threshold. Nothing is normalised per image, so a window without change stays empty
   whatever its size. Morphological clean-up, then only regions of building size are kept.

The earlier unsupervised decision (per-image Otsu threshold on a fixed mix of deep and colour
distance) stays as ``unsupervised_mask``: the evaluation reports it beside the classifier.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .weights import weights_sha256

BACKBONE_LAYERS = (2, 4, 6, 9)  # YOLOv8 backbone outputs at strides 4, 8, 16, 32
UNSUPERVISED_LAYERS = (4, 6, 9)  # the ones the unsupervised decision was tuned with
SCALE = 1.5
COLOUR_SHARE = 0.3
DEEP_FLOOR = 0.12  # unsupervised decision: cosine distance under which nothing counts as changed
CONTEXT_SIGMA = 8.0  # px: a changed building changes its surroundings' evidence too
SMOOTH_SIGMA = 4.0  # px: the probability is smoothed before the threshold, so regions come out whole, not speckled
MIN_MATCHES = 12
FEATURES = ("deep_s4", "deep_s8", "deep_s16", "deep_s32", "lab_l", "lab_a", "lab_b", "structure",
            "context_deep", "context_colour", "context_structure",
            "before_l", "before_a", "before_b", "after_l", "after_a", "after_b")
CLASSIFIER = Path(__file__).resolve().parent.parent / "models" / "change" / "change_classifier.json"


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


def _structure_difference(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """1 - local correlation of the grey levels (SSIM's structure term): blind to brightness and contrast."""
    a, b = (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) for img in (before, after))
    mean = lambda x: cv2.GaussianBlur(x, (0, 0), 2.0)  # noqa: E731
    ma, mb = mean(a), mean(b)
    var_a, var_b, cov = mean(a * a) - ma * ma, mean(b * b) - mb * mb, mean(a * b) - ma * mb
    return 1 - (cov + 4) / (np.sqrt(np.maximum(var_a, 0) * np.maximum(var_b, 0)) + 4)


def pixel_features(deep: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(H, W, len(FEATURES)) evidence of change per pixel; ``deep`` holds the backbone distances."""
    matched = _match_histograms(before, after)
    lab_new, lab_old = (cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2LAB).astype(np.float32), (5, 5), 0) for img in (after, matched))
    lab = np.abs(lab_new - lab_old) / 255
    structure = _structure_difference(matched, after)
    context = lambda x: cv2.GaussianBlur(x, (0, 0), CONTEXT_SIGMA)  # noqa: E731
    colour = np.linalg.norm(lab, axis=2)
    extra = [context(deep.mean(2)), context(colour), context(structure)]
    return np.dstack([deep, lab, structure, *extra, lab_old / 255, lab_new / 255]).astype(np.float32)


def unsupervised_mask(features: np.ndarray) -> np.ndarray:
    """The earlier decision, kept for comparison: Otsu's threshold on a per-image min-max scaled mix of
    deep and colour distance, never below a floor. Per-image scaling flags something in every image."""
    deep = features[..., [BACKBONE_LAYERS.index(layer) for layer in UNSUPERVISED_LAYERS]].mean(2)
    lab = FEATURES.index("lab_l")
    colour = np.linalg.norm(features[..., lab:lab + 3], axis=2)
    score = (1 - COLOUR_SHARE) * deep / (deep.max() + 1e-6) + COLOUR_SHARE * colour / (colour.max() + 1e-6)
    scaled = cv2.normalize(score, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return (scaled > otsu) & (deep > DEEP_FLOOR)


@dataclass
class ChangeClassifier:
    """A one-hidden-layer perceptron over standardised ``FEATURES``, with its absolute threshold."""

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float
    threshold: float
    about: dict  # how it was trained and how it scored under cross-validation

    def probability(self, features: np.ndarray) -> np.ndarray:
        x = (features.reshape(-1, features.shape[-1]) - self.mean) / self.std
        logit = np.maximum(x @ self.w1 + self.b1, 0) @ self.w2 + self.b2
        return (1 / (1 + np.exp(-logit))).reshape(features.shape[:-1]).astype(np.float32)

    def score(self, features: np.ndarray) -> np.ndarray:
        """The change map of an (H, W, features) array: probability smoothed over a few pixels."""
        return cv2.GaussianBlur(self.probability(features), (0, 0), SMOOTH_SIGMA)

    def mask(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) > self.threshold

    def save(self, path: Path) -> None:
        arrays = {name: np.round(np.asarray(getattr(self, name), float), 6).tolist() for name in ("mean", "std", "w1", "b1", "w2")}
        body = {"features": list(FEATURES), **arrays, "b2": round(float(self.b2), 6), "threshold": round(self.threshold, 4), "about": self.about}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> ChangeClassifier:
        body = json.loads(path.read_text())
        if tuple(body["features"]) != FEATURES:
            raise ValueError(f"{path} was trained on other features: {body['features']}")
        arrays = {name: np.asarray(body[name], np.float32) for name in ("mean", "std", "w1", "b1", "w2")}
        return cls(**arrays, b2=float(body["b2"]), threshold=float(body["threshold"]), about=body["about"])


def clean_regions(raw: np.ndarray, min_area_px: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Opening drops speckle, closing fills roofs; regions under ``min_area_px`` are not buildings."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    cleaned = cv2.morphologyEx(cv2.morphologyEx(raw.astype(np.uint8), cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cleaned)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area_px
    regions = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, _ in stats[keep]]
    return keep[labels], regions


class ChangeEvidence:
    """The backbone half of the detector: per-pixel ``FEATURES`` of an aligned pair (what training needs)."""

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

    def deep_distances(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """(H, W, layers) cosine distances, computed at ``SCALE`` and averaged with a mirrored pass."""
        height, width = after.shape[:2]
        size = (int(width * SCALE) // 32 * 32 or 32, int(height * SCALE) // 32 * 32 or 32)
        total = np.zeros((height, width, len(BACKBONE_LAYERS)), np.float32)
        for flip in (False, True):
            a, b = (cv2.resize(img[:, ::-1] if flip else img, size, interpolation=cv2.INTER_CUBIC) for img in (before, after))
            fa, fb = self._features(a), self._features(b)
            for slot, index in enumerate(BACKBONE_LAYERS):
                distance = (1 - (fa[index] * fb[index]).sum(1))[0].numpy()
                distance = cv2.resize(distance, (width, height), interpolation=cv2.INTER_LINEAR)
                total[..., slot] += distance[:, ::-1] if flip else distance
        return total / 2

    def __call__(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        return pixel_features(self.deep_distances(before, after), before, after)


class ChangeDetector:
    def __init__(self, checkpoint: Path, classifier: Path = CLASSIFIER):
        self.evidence = ChangeEvidence(checkpoint)
        self.classifier = ChangeClassifier.load(classifier)
        # A detection must name everything that decided it: the backbone and the classifier on top.
        self.weights_sha256 = hashlib.sha256((self.evidence.weights_sha256 + weights_sha256(Path(classifier))).encode()).hexdigest()

    def detect(self, baseline: np.ndarray, new: np.ndarray, min_area_px: int = 64, aligned: bool = False) -> ChangeResult:
        warped, registered = (cv2.resize(baseline, (new.shape[1], new.shape[0])), True) if aligned else register(baseline, new)
        score = self.classifier.score(self.evidence(warped, new))
        mask, regions = clean_regions(score > self.classifier.threshold, min_area_px)
        return ChangeResult(mask, score, regions, registered, warped)


def mask_scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(true positive, false positive, false negative) pixel counts."""
    return int((predicted & truth).sum()), int((predicted & ~truth).sum()), int((~predicted & truth).sum())


def region_hits(predicted: np.ndarray, truth: np.ndarray, share: float = 0.3) -> tuple[int, int]:
    """(raised regions, of which real): what an officer sees. Real: at least ``share`` of it is changed truth."""
    count, labels = cv2.connectedComponents(predicted.astype(np.uint8))
    on_truth = np.bincount(labels.ravel(), weights=truth.ravel(), minlength=count)[1:]
    area = np.bincount(labels.ravel(), minlength=count)[1:]
    return count - 1, int((on_truth >= share * area).sum())
