"""``nonsite eval-change``: how well change detection finds what was built, per set of before/after/mask pairs.

The labelled pairs are few (15), so the change classifier is judged by leave-one-pair-out
cross-validation: each pair is scored by a classifier trained on the other pairs only. The
earlier unsupervised decision is scored beside it on the same pairs. Besides pixel F1 / IoU the
table gives region precision: the share of raised regions that are real changes, which is what
an officer sees.

``nonsite eval-change --train FOLDER`` rebuilds the shipped classifier from every pair
(deterministic seed) and records its cross-validated scores in the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from nonsite.vision.change import (
    CLASSIFIER,
    FEATURES,
    ChangeClassifier,
    ChangeDetector,
    ChangeEvidence,
    clean_regions,
    mask_scores,
    region_hits,
    unsupervised_mask,
)
from nonsite.vision.weights import locate

from .settings import Settings

BACKBONE = "yolov8n_coco_recovered.pt"
SEED = 17
AUGMENTS = 6  # labelled copies per pair: a random flip/rotation, lighting jitter on one side, sides swapped half the time
SAMPLES = 1000  # pixels drawn from each copy
PRECISION_MARGIN = 0.05  # added to the best-F1 cut: an officer is better served by fewer, surer regions
HIDDEN = 16
STEPS = 300
MIN_AREA_PX = 64
OLD, CROSS_VALIDATED, SHIPPED = "old: Otsu per image", "new: leave-one-pair-out", "new: shipped, in-sample"


def backbone(settings: Settings) -> Path:
    if checkpoint := locate(BACKBONE, settings.registry.models_dirs):
        return checkpoint
    raise FileNotFoundError(f"change detection needs {BACKBONE} in {', '.join(map(str, settings.registry.models_dirs))}")


def change_detector(settings: Settings) -> ChangeDetector:
    return ChangeDetector(backbone(settings))


@dataclass
class Pair:
    set: str
    name: str
    before: np.ndarray
    after: np.ndarray
    truth: np.ndarray  # bool


def load_pairs(root: Path) -> list[Pair]:
    """Every pair of every set (a set: a folder with before/, after/, mask/; mask 255 = changed)."""
    pairs = []
    for folder in sorted(p for p in root.iterdir() if (p / "before").is_dir()):
        for path in sorted((folder / "before").iterdir()):
            truth = cv2.imread(str(folder / "mask" / path.name), cv2.IMREAD_GRAYSCALE) > 127
            pairs.append(Pair(folder.name, path.name, cv2.imread(str(path)), cv2.imread(str(folder / "after" / path.name)), truth))
    return pairs


def _dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations: roofs seen from above have no up."""
    return np.ascontiguousarray(np.rot90(image[:, ::-1] if k >= 4 else image, k % 4))


def _relight(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another day's light and camera: gain, offset, gamma, slight blur and up to 1 px of misregistration."""
    x = (image.astype(np.float32) / 255) ** rng.uniform(0.7, 1.5) * rng.uniform(0.6, 1.3) + rng.uniform(-0.08, 0.08)
    x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.0))
    x = cv2.warpAffine(x, np.float32([[1, 0, rng.uniform(-1, 1)], [0, 1, rng.uniform(-1, 1)]]), x.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def _copies(pair: Pair, rng: np.random.Generator):
    """Augmented (before, after, truth) copies of a labelled pair, then each side against a relit copy of
    itself with nothing changed: those teach the classifier that light alone is no change."""
    for _ in range(AUGMENTS):
        k = int(rng.integers(8))
        before, after, truth = (_dihedral(x, k) for x in (pair.before, pair.after, pair.truth))
        before, after = (_relight(before, rng), after) if rng.random() < 0.5 else (before, _relight(after, rng))
        yield (after, before, truth) if rng.random() < 0.5 else (before, after, truth)
    for image in (pair.before, pair.after):
        yield image, _relight(image, rng), np.zeros_like(pair.truth)


def training_samples(evidence: ChangeEvidence, pair: Pair, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of pixels drawn from the pair's augmented copies."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for before, after, truth in _copies(pair, rng):
        features = evidence(before, after).reshape(-1, len(FEATURES))
        pick = rng.choice(len(features), SAMPLES, replace=False)
        xs.append(features[pick])
        ys.append(truth.ravel()[pick])
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


def _best_threshold(probability: np.ndarray, labels: np.ndarray) -> float:
    """The probability cut with the best F1 on the training pixels, raised by ``PRECISION_MARGIN``."""
    cuts = np.linspace(0.2, 0.8, 25)
    positive = labels > 0.5
    f1 = [2 * (p & positive).sum() / max(p.sum() + positive.sum(), 1) for p in (probability[:, None] > cuts).T]
    return float(cuts[int(np.argmax(f1))]) + PRECISION_MARGIN


def fit_classifier(x: np.ndarray, y: np.ndarray, seed: int = SEED, about: dict | None = None) -> ChangeClassifier:
    """A tiny perceptron fitted full-batch with Adam: 15 pairs cannot support more parameters than this."""
    import torch

    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    inputs, targets = torch.from_numpy((x - mean) / std), torch.from_numpy(y)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-4)
    for _ in range(STEPS):
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(inputs)[:, 0], targets)
        loss.backward()
        optimiser.step()
    w1, b1, w2, b2 = (p.detach().numpy() for p in net.parameters())
    classifier = ChangeClassifier(mean, std, w1.T, b1, w2[0], float(b2[0]), 0.5, about or {})
    classifier.threshold = _best_threshold(classifier.probability(x[:, None, :])[:, 0], y)
    return classifier


@dataclass
class Tally:
    pairs: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    regions: int = 0
    real_regions: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        tp, fp, fn = mask_scores(predicted, truth)
        regions, real = region_hits(predicted, truth)
        self.pairs, self.tp, self.fp, self.fn = self.pairs + 1, self.tp + tp, self.fp + fp, self.fn + fn
        self.regions, self.real_regions = self.regions + regions, self.real_regions + real

    def scores(self) -> dict[str, float]:
        """Pixel scores pooled over the set's pairs, and region precision over all its raised regions."""
        tp, fp, fn = self.tp, self.fp, self.fn
        return {"pairs": self.pairs, "f1": 2 * tp / max(2 * tp + fp + fn, 1), "iou": tp / max(tp + fp + fn, 1),
                "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
                "region_precision": self.real_regions / max(self.regions, 1), "regions": self.regions}


def _per_set(pairs: list[Pair], masks: list[np.ndarray]) -> dict[str, dict[str, float]]:
    tallies: dict[str, Tally] = {}
    for pair, mask in zip(pairs, masks):
        tallies.setdefault(pair.set, Tally()).add(mask, pair.truth)
    return {name: tally.scores() for name, tally in tallies.items()}


def _fit_all(samples: list[tuple[np.ndarray, np.ndarray]], about: dict | None = None) -> ChangeClassifier:
    return fit_classifier(np.concatenate([x for x, _ in samples]), np.concatenate([y for _, y in samples]), about=about)


def compare(evidence: ChangeEvidence, pairs: list[Pair], shipped: ChangeClassifier | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Per method, per set scores: the unsupervised decision, the classifier under leave-one-pair-out
    cross-validation, and the shipped classifier if given (trained on these very pairs, so in-sample)."""
    features = [evidence(p.before, p.after) for p in pairs]
    samples = [training_samples(evidence, p, SEED + i) for i, p in enumerate(pairs)]
    held_out = [_fit_all(samples[:i] + samples[i + 1:]).mask(f) for i, f in enumerate(features)]
    decisions = {OLD: [unsupervised_mask(f) for f in features], CROSS_VALIDATED: held_out}
    if shipped:
        decisions[SHIPPED] = [shipped.mask(f) for f in features]
    return {method: _per_set(pairs, [clean_regions(m, MIN_AREA_PX)[0] for m in masks]) for method, masks in decisions.items()}


def train_shipped(settings: Settings, root: Path, path: Path = CLASSIFIER) -> ChangeClassifier:
    """Retrain the shipped classifier on every pair; its file records how, and the cross-validated scores."""
    evidence = ChangeEvidence(backbone(settings))
    pairs = load_pairs(root)
    cv = compare(evidence, pairs)[CROSS_VALIDATED]
    samples = [training_samples(evidence, p, SEED + i) for i, p in enumerate(pairs)]
    about = {"trained_on": [f"{p.set}/{p.name}" for p in pairs], "seed": SEED, "augmented_copies": AUGMENTS,
             "samples_per_copy": SAMPLES, "hidden": HIDDEN, "steps": STEPS,
             "leave_one_pair_out": {name: {k: round(v, 3) for k, v in s.items()} for name, s in cv.items()}}
    classifier = _fit_all(samples, about)
    classifier.save(path)
    return classifier


def run_change_eval(settings: Settings, console: Console, root: Path) -> int:
    columns = ("F1", "IoU", "precision", "recall", "region precision", "regions")
    table = Table("method", "set", "pairs", *columns, title=f"change detection on {root}")
    detector = change_detector(settings)
    for method, sets in compare(detector.evidence, load_pairs(root), detector.classifier).items():
        for name, s in sets.items():
            values = [f"{s[k]:.3f}" for k in ("f1", "iou", "precision", "recall", "region_precision")]
            table.add_row(method, name, str(s["pairs"]), *values, str(s["regions"]))
    console.print(table)
    return 0
