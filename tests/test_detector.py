"""The real default model on real frames: it finds what an officer sees, and names its weights."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import pytest

from nonsite.vision import ManifestError, ModelNotFoundError, ModelRegistry, Tracker

SIZE = (854, 480)  # (width, height) of the car-park frames, as the tracker is told it

def test_default_model_finds_the_parked_cars(coco, parking_frames):
    images = [cv2.imread(str(p)) for p in parking_frames[:3]]
    results = coco.detect(images)
    assert len(results) == 3
    for detections in results:
        cars = [d for d in detections if d.class_name == "car"]
        assert len(cars) >= 20  # the lot holds ~30 visible cars; a blind model finds a handful
        assert all("illegal_parking" in d.categories for d in cars)
        assert all(d.model == "coco" and len(d.weights_sha256) == 64 for d in detections)


def test_umbrellas_on_a_plaza_are_spillover_objects(coco, datasets):
    chip = next((datasets / "vendors_aerial" / "train" / "images").glob("tunja_resample_clip_chip_6_35_png.rf.6ec093c2*"))
    detections = coco.detect([cv2.imread(str(chip))])[0]
    umbrellas = [d for d in detections if d.class_name == "umbrella" and d.confidence >= 0.4]
    assert len(umbrellas) >= 2
    assert all("spillover_business" in d.categories for d in umbrellas)


def _iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _same_cars(found, wanted, min_confidence=0.5) -> float:
    """Share of the clear cars in ``wanted`` that ``found`` has in the same place."""
    clear = [d.box for d in wanted if d.class_name == "car" and d.confidence >= min_confidence]
    boxes = [d.box for d in found if d.class_name == "car"]
    return sum(any(_iou(c, b) >= 0.8 for b in boxes) for c in clear) / len(clear)


def test_a_street_camera_frame_runs_on_a_bordered_canvas_and_finds_the_same_cars(registry, parking_frames):
    """The default export takes any size: a 16:9 frame runs on 448 x 640 (a border kept above and
    below it) instead of the square 640 x 640, and the clear cars come out where the square canvas
    puts them, in the frame's own pixels. A 4:3 picture runs on its own canvas, and batched with the
    16:9 frame it changes nothing in the frame's answer."""
    from nonsite.vision import Detector

    manifest = registry.manifest("coco")
    weights = registry.resolve_weights(manifest)
    frame = cv2.imread(str(parking_frames[0]))
    detector = Detector(manifest, weights, threads=1)
    assert detector.any_size
    bordered = detector.detect([frame])[0]
    assert list(detector.model.predictor.imgsz) == [448, 640]
    wanted = detector._to_detections(detector.model.predict([frame], imgsz=640, rect=False, verbose=False, conf=manifest.conf)[0])
    assert sum(d.class_name == "car" for d in wanted) >= 20
    assert _same_cars(bordered, wanted) >= 0.95

    left = frame[:, :640].copy()  # 4:3, the left part of the same frame
    narrower = detector.detect([left])[0]
    assert list(detector.model.predictor.imgsz) == [576, 640]  # 480 + 2 x 40 px of border, to the stride
    assert _same_cars(narrower, [d for d in wanted if d.box[2] < 620]) >= 0.9
    for found, alone in zip(detector.detect([frame, left, frame]), (bordered, narrower, bordered), strict=True):
        assert [d.class_name for d in found] == [d.class_name for d in alone]
        assert [d.confidence for d in found] == pytest.approx([d.confidence for d in alone], abs=1e-3)
        assert [v for d in found for v in d.box] == pytest.approx([v for d in alone for v in d.box], abs=0.5)


def test_a_fixed_size_export_gets_its_own_size(registry, parking_frames):
    from nonsite.vision import Detector

    manifest = registry.manifest("coco").model_copy(update={"weights": ["yolo11n_int8_openvino_model/"]})
    detector = Detector(manifest, registry.resolve_weights(manifest))
    frame = cv2.imread(str(parking_frames[0]))
    assert not detector.any_size and detector.canvas(frame) == (640, 640)
    assert sum(d.class_name == "car" for d in detector.detect([frame])[0]) >= 15
    assert list(detector.model.predictor.imgsz) == [640, 640]


@pytest.mark.parametrize("weights", ["yolov8n_int8.onnx", "yolo11n_int8_openvino_model/"])
def test_every_weight_format_runs_through_the_same_facade(registry, parking_frames, weights):
    from nonsite.vision import Detector

    manifest = registry.manifest("coco").model_copy(update={"weights": [weights]})
    detector = Detector(manifest, registry.resolve_weights(manifest))
    found = detector.detect([cv2.imread(str(parking_frames[0]))] * 2)
    assert len(found) == 2 and sum(d.class_name == "car" for d in found[0]) >= 15


def test_a_model_pinned_to_one_inference_thread_gives_the_same_answers(registry, parking_frames):
    """The camera service runs its shared OpenVINO models on one inference thread (Ultralytics compiles
    them for every core): the pin must take, hold across calls, and change no box or score."""
    from nonsite.vision import Detector

    manifest = registry.manifest("coco").model_copy(update={"weights": ["yolo11n_int8_openvino_model/"]})
    weights = registry.resolve_weights(manifest)
    images = [cv2.imread(str(p)) for p in parking_frames[:2]]
    every_core, pinned = Detector(manifest, weights), Detector(manifest, weights, threads=1)
    assert pinned.inference_threads is None  # compiled only with the first call
    expected = every_core.detect(images)
    for answer in (pinned.detect(images), pinned.detect(images)):
        assert pinned.inference_threads == 1
        for found, wanted in zip(answer, expected, strict=True):
            assert [d.class_name for d in found] == [d.class_name for d in wanted] and len(found) >= 15
            assert [d.confidence for d in found] == pytest.approx([d.confidence for d in wanted], abs=1e-3)
            assert [v for d in found for v in d.box] == pytest.approx([v for d in wanted for v in d.box], abs=0.5)


def test_tracker_keeps_ids_across_frames_of_a_fixed_camera(coco, parking_frames):
    tracker = Tracker(sample_fps=1)
    ids_per_frame = []
    for path in parking_frames[:5]:
        image = cv2.imread(str(path))
        assert (image.shape[1], image.shape[0]) == SIZE
        ids_per_frame.append({d.track_id for d in tracker.update(coco.detect([image])[0], SIZE)})
    stable = ids_per_frame[1] & ids_per_frame[-1]
    assert len(stable) >= 15  # parked cars keep their id from the 2nd frame to the 5th


@pytest.mark.parametrize("lost_s", [10, 2])  # 2: lost tracks expire while the answer repeats
def test_a_repeated_answer_gives_the_tracks_a_full_update_would(coco, parking_frames, lost_s):
    """Motion gating repeats the model's last answer on still pictures; the tracker may skip the
    work only where the result is the same: new tracks are still confirmed, ids never differ."""
    found = [coco.detect([cv2.imread(str(path))])[0] for path in parking_frames[:4]]
    played = [0, 0, 0, 1, 1, 1, 1, 3, 3, 2, 2, 2]  # frame 3 before 2: cars come and go
    full, skipping = Tracker(sample_fps=1, lost_s=lost_s), Tracker(sample_fps=1, lost_s=lost_s)
    for step, number in enumerate(played):
        repeated = step > 0 and played[step - 1] == number
        expected = [(d.box, d.track_id) for d in full.update(found[number], SIZE)]
        assert [(d.box, d.track_id) for d in skipping.update(found[number], SIZE, repeated=repeated)] == expected, step
        assert expected


def test_a_faint_car_the_tracker_never_confirms_does_not_keep_a_still_camera_updating(coco, parking_frames):
    """A detection just over the model's threshold never confirms a track (ByteTrack weighs the match
    by the score), so every update starts it again as a tentative one. On a repeated answer the
    tracker must still settle after an update that changed nothing, and give what a full update gives."""
    image = cv2.imread(str(parking_frames[1]))
    found = coco.detect([image])[0]
    width, height = SIZE
    free = next((x, y) for y in range(0, height - 40, 20) for x in range(0, width - 60, 20)
                if not any(d.box[0] < x + 60 and x < d.box[2] and d.box[1] < y + 40 and y < d.box[3] for d in found))
    faint = replace(found[0], box=(float(free[0]), float(free[1]), free[0] + 60.0, free[1] + 40.0), confidence=0.26)
    answer = [*found, faint]
    full, skipping = Tracker(sample_fps=1), Tracker(sample_fps=1)
    full.update(found, SIZE), skipping.update(found, SIZE)  # the first frame confirms every track at once
    for step in range(10):
        expected = [(d.box, d.track_id) for d in full.update(answer, SIZE)]
        assert [(d.box, d.track_id) for d in skipping.update(answer, SIZE, repeated=step > 0)] == expected, step
        assert faint.box not in [box for box, _ in expected]  # never confirmed
    assert full.updates == 11 and skipping.updates <= 3  # the first frame, the look with the faint car, one that changed nothing


def test_a_fixed_size_export_built_here_before_is_built_again_for_any_size(tmp_path, monkeypatch, parking_frames):
    """A machine that built its exports before they took any size would run the same manifest
    differently from a fresh one: ``make models`` builds such an export again. Exports it did not
    build (the shared INT8 files) are left alone."""
    import shutil

    from .conftest import MODELS

    monkeypatch.setenv("YOLO_OFFLINE", "True")
    (tmp_path / "lot.yaml").write_text("name: lot\nweights: [lot_openvino_model/]\nbuild_from: yolov8n_coco_recovered.pt\n")
    built = tmp_path / "weights"
    shutil.copytree(MODELS / "yolo11n_int8_openvino_model", built / "lot_openvino_model")  # a fixed 640 x 640 export
    registry = ModelRegistry(tmp_path, [built, MODELS])
    assert [name for name, _ in registry.build_missing(built)] == ["lot"]
    detector = registry.detector("lot")
    assert detector.any_size and detector.canvas(cv2.imread(str(parking_frames[0]))) == (448, 640)
    assert registry.build_missing(built) == []  # built once
    shared = ModelRegistry(tmp_path, [MODELS])
    (tmp_path / "lot.yaml").write_text("name: lot\nweights: [yolo11n_int8_openvino_model/]\nbuild_from: yolov8n_coco_recovered.pt\n")
    assert shared.build_missing(built) == []  # not built here: left as it is


def test_missing_weights_name_the_manifest_the_folder_and_what_to_put_there(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "True")
    (tmp_path / "nightwatch.yaml").write_text("name: nightwatch\nweights: [nightwatch_openvino_model/, nightwatch.onnx]\n")
    registry = ModelRegistry(tmp_path, [tmp_path / "weights"])
    with pytest.raises(ModelNotFoundError) as caught:
        registry.detector("nightwatch")
    message = str(caught.value)
    assert "nightwatch.yaml" in message and str(tmp_path / "weights") in message and "nightwatch.onnx" in message


def test_unknown_model_and_bad_manifest_are_named(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: broken\nweights: []\ncategories: {parking: [car]}\n")
    registry = ModelRegistry(tmp_path, [Path(tmp_path)])
    with pytest.raises(ManifestError, match="no model manifest named 'nope'"):
        registry.manifest("nope")
    with pytest.raises(ManifestError, match=r"broken.yaml: .*weights.*categories.*unknown violation categories"):
        registry.manifest("broken")
