"""Change detection on the shared before/after pairs, against floors measured here and justified."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from nonsite.change_eval import change_detector
from nonsite.vision.change import register, score_change_sets


@pytest.fixture(scope="module")
def detector(datasets):
    from nonsite.settings import Settings

    return change_detector(Settings(datasets_dir=datasets))


def test_scores_on_the_shared_pairs_beat_their_floors(detector, datasets):
    # Measured with this method: DSIFN F1 0.51, LEVIR F1 0.39. A plain colour difference after
    # histogram matching (the classic pixel method) scores 0.34 and 0.30 on the same pairs; the
    # floors sit between the two, so losing the deep features' advantage fails the test.
    scores = score_change_sets(detector, datasets / "change_pairs")
    assert scores["DSIFN"]["f1"] >= 0.45 and scores["DSIFN"]["iou"] >= 0.29
    assert scores["LEVIR"]["f1"] >= 0.35 and scores["LEVIR"]["iou"] >= 0.21


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
