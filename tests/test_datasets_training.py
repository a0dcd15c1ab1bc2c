"""Dataset tools on broken folders, splits that never leak near-copies, and a smoke training run."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest
import yaml

from nonsite.cli import main
from nonsite.vision import ModelRegistry
from nonsite.vision.datasets import SplitSpec, dataset_images, merge_datasets, split_images, validate_dataset


def _copy_dataset(source: Path, target: Path, count: int) -> Path:
    (target / "images").mkdir(parents=True)
    (target / "labels").mkdir()
    shutil.copy(source / "classes.txt", target / "classes.txt")
    for image in dataset_images(source)[:count]:
        shutil.copy(image, target / "images" / image.name)
        shutil.copy(source / "labels" / f"{image.stem}.txt", target / "labels" / f"{image.stem}.txt")
    return target


def test_validation_reports_each_defect(tmp_path, datasets):
    folder = _copy_dataset(datasets / "excavators", tmp_path / "broken", 6)
    images = dataset_images(folder)
    (folder / "labels" / f"{images[0].stem}.txt").unlink()                               # missing label
    (folder / "labels" / f"{images[1].stem}.txt").write_text("0 0.95 0.5 0.3 0.2\n")      # box past the right edge
    (folder / "labels" / f"{images[2].stem}.txt").write_text("3 0.5 0.5 0.1 0.1\n")       # class not in classes.txt
    (folder / "labels" / f"{images[3].stem}.txt").write_text("0 0.5 0.5\n")               # too few values
    shutil.copy(images[4], folder / "images" / "copy-of-4.jpg")                           # duplicate bytes
    shutil.copy(folder / "labels" / f"{images[4].stem}.txt", folder / "labels" / "copy-of-4.txt")
    (folder / "classes.txt").write_text("excavator\nbulldozer\n")                         # a class nobody labelled
    report = validate_dataset(folder)
    text = "\n".join(report.problems)
    assert f"{images[0].name}: missing label file" in text
    assert f"{images[1].stem}.txt:1: box out of range" in text
    assert f"{images[2].stem}.txt:1: class 3 out of range" in text
    assert f"{images[3].stem}.txt:1: expected 'class cx cy w h'" in text
    assert "duplicate of" in text and "copy-of-4.jpg" in text
    assert "class 1 (bulldozer): no boxes" in text
    assert len(report.problems) == 6
    assert main(["dataset", "validate", str(folder)]) == 1


def test_vendor_split_keeps_augmented_triplets_together_and_is_deterministic(datasets):
    images = dataset_images(datasets / "vendors_aerial" / "train")
    spec = SplitSpec(by="group", pattern=r"^(?P<group>.+?)_png\.rf\.", val_fraction=0.2)
    train, val = split_images(images, spec)
    assert split_images(images, spec) == (train, val)
    source_of = lambda p: p.name.split("_png.rf.")[0]  # noqa: E731
    assert not {source_of(p) for p in train} & {source_of(p) for p in val}
    assert 0.1 < len(val) / len(images) < 0.3


def test_drone_split_takes_the_tail_of_each_sequence(datasets):
    images = dataset_images(datasets / "drone_cars_cats")
    spec = SplitSpec(by="sequence_tail", pattern=r"^(?P<seq>Drone2_\(|\d+_)(?P<frame>\d+)", val_fraction=0.2)
    train, val = split_images(images, spec)
    drone2_train = [int(p.name[8:-5]) for p in train if p.name.startswith("Drone2")]
    drone2_val = [int(p.name[8:-5]) for p in val if p.name.startswith("Drone2")]
    assert max(drone2_train) < min(drone2_val)  # one contiguous block: no neighbouring frame leaks
    assert len(train) + len(val) == len(images)


def test_merge_maps_classes_without_collisions(tmp_path, datasets):
    first = _copy_dataset(datasets / "excavators", tmp_path / "a", 2)
    second = _copy_dataset(datasets / "drone_cars_cats", tmp_path / "b", 2)
    counts = merge_datasets([(first, {"excavator": "excavator"}), (second, {"car": "car"})], tmp_path / "merged")
    assert (tmp_path / "merged" / "classes.txt").read_text().split() == ["excavator", "car"]
    assert counts["excavator"] == 2 and counts["car"] > 2
    assert validate_dataset(tmp_path / "merged").ok


def test_smoke_training_produces_a_model_the_registry_serves(tmp_path, datasets, settings):
    recipe = yaml.safe_load(Path("models/recipes/excavator.yaml").read_text())
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump({**recipe, "name": "excavator_smoke"}))
    weights, manifests = tmp_path / "weights", tmp_path / "manifests"
    code = main(["train", str(tmp_path / "smoke.yaml"), "--epochs", "1", "--imgsz", "64", "--images", "10",
                 "--runs", str(tmp_path / "runs"), "--weights-out", str(weights), "--manifests-out", str(manifests)])
    assert code == 0
    manifest = yaml.safe_load((manifests / "excavator_smoke.yaml").read_text())
    assert manifest["classes"] == ["excavator"] and set(manifest["metrics"]) >= {"map50", "precision", "recall"}
    assert len(manifest["provenance"]["data_sha256"]) == 64
    detector = ModelRegistry(manifests, [weights]).detector("excavator_smoke")
    assert Path(str(detector.weights)).name == "excavator_smoke_openvino_model"
    image = cv2.imread(str(dataset_images(datasets / "excavators")[0]))
    assert isinstance(detector.detect([image])[0], list)  # loads and runs; 1 epoch at 64 px finds little


def test_missing_base_checkpoint_is_named(tmp_path, settings):
    recipe = yaml.safe_load(Path("models/recipes/excavator.yaml").read_text())
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({**recipe, "base": "yolo99x.pt"}))
    with pytest.raises(FileNotFoundError, match="base checkpoint yolo99x.pt not found"):
        main(["train", str(tmp_path / "r.yaml"), "--epochs", "1", "--imgsz", "64", "--images", "4", "--runs", str(tmp_path)])
