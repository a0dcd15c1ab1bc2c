"""Change detection on the shared pairs, against floors measured here and justified, and quiet on unchanged windows."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from nonsite.change_eval import CROSS_VALIDATED, OLD, SHIPPED, change_detector, compare, load_pairs
from nonsite.vision.change import register


@pytest.fixture(scope="module")
def detector(datasets):
    from nonsite.settings import Settings

    return change_detector(Settings(datasets_dir=datasets))


@pytest.fixture(scope="module")
def scores(detector, datasets):
    return compare(detector.evidence, load_pairs(datasets / "change_pairs"), detector.classifier)


def _mosaic(paths: list[Path], tile: int, across: int) -> np.ndarray:
    """An orthomosaic-sized window (``tile * across`` pixels square) of real imagery, tiles repeated as needed."""
    tiles = [cv2.resize(cv2.imread(str(p)), (tile, tile)) for p in paths]
    return np.vstack([np.hstack([tiles[(row * across + col) % len(tiles)] for col in range(across)]) for row in range(across)])


def test_cross_validated_scores_beat_the_old_method(scores):
    # Leave-one-pair-out (no pair scored by a classifier that saw it), measured: DSIFN F1 0.60 IoU 0.43,
    # LEVIR F1 0.43 IoU 0.27, region precision 0.46 and 0.29. The old per-image Otsu method scores
    # F1 0.51 / 0.39, IoU 0.34 / 0.24, region precision 0.32 / 0.20 on the same pairs. The floors sit
    # between the two, so a change that loses the classifier's advantage fails.
    new, old = scores[CROSS_VALIDATED], scores[OLD]
    assert old["DSIFN"]["f1"] < 0.52 and old["LEVIR"]["f1"] < 0.40
    assert new["DSIFN"]["f1"] >= 0.55 and new["DSIFN"]["iou"] >= 0.38 and new["DSIFN"]["region_precision"] >= 0.38
    assert new["LEVIR"]["f1"] >= 0.41 and new["LEVIR"]["iou"] >= 0.25 and new["LEVIR"]["region_precision"] >= 0.24


def test_the_shipped_classifier_scores_as_trained(scores, detector):
    # Trained on these very pairs (in-sample: DSIFN F1 0.69, LEVIR 0.51 when measured), so it must do at
    # least as well as cross-validation; far less means the file and the features have drifted apart.
    shipped = scores[SHIPPED]
    assert shipped["DSIFN"]["f1"] >= 0.62 and shipped["LEVIR"]["f1"] >= 0.45
    assert detector.classifier.about["leave_one_pair_out"]["DSIFN"]["pairs"] == 10


def test_unchanged_large_windows_raise_nothing(detector, datasets):
    # Windows of an orthomosaic are mostly unchanged; an absolute threshold must leave them empty,
    # whatever the light of the second flight or a pixel of misregistration.
    drone = _mosaic(sorted((datasets / "drone_cars_cats" / "images").glob("*.jpg"))[::40][:4], 512, 2)
    levir = _mosaic(sorted((datasets / "change_pairs" / "LEVIR" / "before").glob("*.png")), 256, 4)
    brighter = np.clip(drone.astype(np.float32) * 1.15 + 5, 0, 255).astype(np.uint8)
    gamma = (255 * (drone / 255.0) ** 0.8).astype(np.uint8)
    shifted = np.roll(levir, 1, axis=1)
    for before, after in ((drone, brighter), (drone, gamma), (levir, levir), (levir, shifted)):
        assert before.shape == (1024, 1024, 3)
        result = detector.detect(before, after, aligned=True)
        assert result.mask.mean() < 0.002 and not result.regions


def test_lighting_alone_is_not_a_change(detector, datasets):
    before = cv2.imread(str(datasets / "change_pairs" / "LEVIR" / "before" / "test_2_0000_0000.png"))
    darker = np.clip(before.astype(np.float32) * 0.6 + 10, 0, 255).astype(np.uint8)  # late afternoon light
    gamma = (255 * (before / 255.0) ** 1.6).astype(np.uint8)
    for changed_light in (darker, gamma):
        assert detector.detect(before, changed_light, aligned=True).mask.mean() < 0.02


def test_registration_undoes_a_camera_shift(datasets):
    image = cv2.imread(str(sorted((datasets / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[0]))
    shift = np.float32([[1, 0, 23], [0, 1, -17]])
    moved = cv2.warpAffine(image, shift, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    warped, ok = register(image, moved)
    assert ok
    inner = (slice(60, -60), slice(60, -60))
    assert np.abs(warped[inner].astype(int) - moved[inner].astype(int)).mean() < 6
