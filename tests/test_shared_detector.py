"""Several cameras, one model: frames from three real car-park cameras are detected in shared batches
with the same boxes as alone, and a flood of frames is bounded by dropping the oldest."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

import cv2
import pytest

from nonsite.vision.shared import FrameDropped, SharedDetector


@pytest.fixture(scope="module")
def frames(parking_frames):
    return [cv2.imread(str(p)) for p in parking_frames[:9]]


def test_three_cameras_share_batches_and_get_the_boxes_they_would_get_alone(coco, frames):
    alone = coco.detect(frames)
    shared = SharedDetector([coco], max_batch=6, gather_s=0.2).start()
    try:
        cameras = {f"cam-{n}": frames[n::3] for n in range(3)}
        with ThreadPoolExecutor(max_workers=3) as pool:
            asked = {name: list(pool.map(lambda image, name=name: shared.submit(name, image), images)) for name, images in cameras.items()}
        answers = {name: [f.result(timeout=120) for f in futures] for name, futures in asked.items()}
    finally:
        shared.stop()
    for n, name in enumerate(cameras):
        for got, expected in zip(answers[name], alone[n::3]):
            assert [(d.class_name, round(d.confidence, 2)) for d in got] == [(d.class_name, round(d.confidence, 2)) for d in expected]
            assert all(abs(a - b) < 1.0 for g, e in zip(got, expected) for a, b in zip(g.box, e.box))
    stats = shared.stats
    print(f"\n{sum(stats.detected.values())} frames from 3 cameras in {stats.batches} batches (mean {stats.mean_batch:.1f})")
    assert sum(stats.detected.values()) == 9 and stats.batches < 9 and stats.mean_batch > 1
    assert not stats.dropped


def test_a_flood_is_bounded_by_dropping_the_oldest_frames(coco, frames):
    shared = SharedDetector([coco], capacity=4, max_batch=2, gather_s=0.0)  # not started: frames pile up
    futures = [shared.submit("cam-busy", frames[i % len(frames)]) for i in range(12)]
    assert shared.pending() == 4 and shared.stats.dropped["cam-busy"] == 8
    assert all(isinstance(f.exception(timeout=0), FrameDropped) for f in futures[:8])
    shared.start()
    done, _ = wait(futures[8:], timeout=120)
    shared.stop()
    assert len(done) == 4 and all(f.exception() is None for f in futures[8:])
    assert shared.stats.detected["cam-busy"] == 4 and shared.stats.submitted["cam-busy"] == 12
