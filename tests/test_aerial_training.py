"""Training the aerial model for other places: held-out places, DOTA tiles, outlines for copy-paste, weather."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from nonsite.cli import main
from nonsite.rules import load_config
from nonsite.vision.datasets import SplitSpec, dataset_images, held_out_images, label_path, read_dota, split_images
from nonsite.vision.training import TrainRecipe, weather_trainer
from nonsite.vision.training_data import dota_band, write_training_folder
from nonsite.vision.weather import EFFECTS, Weather

RECIPE = Path("models/recipes/aerial_vehicle.yaml")
VEHICLES = {"small-vehicle": "car", "large-vehicle": "car"}


@pytest.fixture(scope="module")
def recipe() -> TrainRecipe:
    return load_config(RECIPE, TrainRecipe)


def _sequence(image: Path) -> str:
    return re.match(r"^(Drone2_\(|\d+_)", image.name).group(1)


def test_held_out_places_are_in_neither_split(datasets, recipe):
    images = dataset_images(datasets / "drone_cars_cats")
    train, val = split_images(images, recipe.split)
    held = held_out_images(images, recipe.split)
    assert {_sequence(i) for i in held} == {"2_", "7_", "9_"}
    assert not set(held) & (set(train) | set(val))
    assert len(train) + len(val) + len(held) == len(images)
    assert {_sequence(i) for i in val} == {_sequence(i) for i in train}  # every other place still has its tail in val
    with pytest.raises(ValueError, match="matches no sequence"):
        split_images(images, recipe.split.model_copy(update={"hold_out": "42_"}))
    with pytest.raises(ValueError, match="needs split by sequence_tail"):
        held_out_images(images, SplitSpec(by="name", hold_out="2_"))


def test_dota_band_and_its_held_out_rest_share_no_vehicle(datasets, recipe):
    (spec,) = recipe.extra
    everything = read_dota(datasets / "dota_example" / "labelTxt" / "P1888.txt", VEHICLES)
    band, trained, _ = dota_band(spec, datasets, held_out=False)
    rest, held, stem = dota_band(spec, datasets, held_out=True)
    assert len(trained) + len(held) == len(everything) == 64
    assert len(trained) > 20 and len(held) > 20
    assert band.shape[0] + rest.shape[0] == cv2.imread(str(datasets / "dota_example" / "images" / "P1888.png")).shape[0]
    assert all(0 <= y <= rest.shape[0] for _, corners in held for _, y in corners)
    assert stem.startswith("P1888_rows")


def test_training_folder_keeps_every_box_as_an_outline_and_cuts_the_band_into_tiles(tmp_path, datasets, recipe):
    images = dataset_images(datasets / "drone_cars_cats")
    train, val = split_images(images, recipe.split)
    train_list, val_list, tiles = write_training_folder(tmp_path, train, val, recipe.extra, ["car"], datasets)
    assert len(val_list) == len(val) and not set(val_list) & set(tiles)
    assert len(train_list) == len(train) + recipe.extra[0].repeat * len(tiles)
    for original, linked in zip(val[:20], val_list[:20]):
        assert linked.resolve() == original.resolve()
        boxes = [list(map(float, line.split()[1:])) for line in label_path(original).read_text().splitlines()]
        outlines = [list(map(float, line.split()[1:])) for line in label_path(linked).read_text().splitlines()]
        assert len(boxes) == len(outlines) and all(len(o) == 8 for o in outlines)
        for (cx, cy, w, h), o in zip(boxes, outlines):  # the outline's bounding box is the label's box (clipped to the image)
            assert min(o[0::2]) == pytest.approx(max(cx - w / 2, 0), abs=1e-5)
            assert max(o[1::2]) == pytest.approx(min(cy + h / 2, 1), abs=1e-5)
    tile_boxes = sum(len(label_path(t).read_text().splitlines()) for t in tiles)
    assert tile_boxes >= 29  # each of the band's vehicles lies at least half inside some overlapping tile
    tile = cv2.imread(str(tiles[0]))
    assert tile.shape[:2] == (round(208 * recipe.extra[0].upscale),) * 2
    oriented = [list(map(float, line.split()[1:])) for t in tiles for line in label_path(t).read_text().splitlines()]
    assert any(len({round(x, 4) for x in o[0::2]}) == 4 for o in oriented)  # DOTA's rotated corners, not a box


def test_weather_changes_pixels_never_the_labels(datasets):
    frame = cv2.imread(str(dataset_images(datasets / "drone_cars_cats")[0]))
    rng = np.random.default_rng(3)
    for effect in EFFECTS:
        changed = effect(frame.copy(), rng)
        assert changed.shape == frame.shape and changed.dtype == np.uint8
        assert np.abs(changed.astype(int) - frame).mean() > 1.0, effect.__name__
    boxes = np.array([[0.5, 0.5, 0.1, 0.1]])
    labels = Weather(1.0)({"img": frame.copy(), "bboxes": boxes.copy()})
    assert not np.array_equal(labels["img"], frame) and np.array_equal(labels["bboxes"], boxes)
    assert np.array_equal(Weather(0.0)({"img": frame.copy()})["img"], frame)
    with pytest.raises(ValueError, match="within 0..1"):
        Weather(1.5)


def test_weather_joins_the_training_pipeline(tmp_path, datasets, settings, recipe):
    images = dataset_images(datasets / "drone_cars_cats")[:40]
    train_list, val_list, _ = write_training_folder(tmp_path, images[:30], images[30:], [], ["car"], datasets)
    (tmp_path / "train.txt").write_text("".join(f"{p}\n" for p in train_list))
    (tmp_path / "val.txt").write_text("".join(f"{p}\n" for p in val_list))
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"path": str(tmp_path), "train": "train.txt", "val": "val.txt", "names": {0: "car"}}))
    trainer = weather_trainer(0.4)(overrides={
        "model": str(settings.models_dir / "yolov8n_coco_recovered.pt"), "data": str(tmp_path / "data.yaml"), "imgsz": 64,
        "epochs": 1, "device": "cpu", "project": str(tmp_path), "name": "t", "plots": False, **recipe.augment})
    trainer.model = trainer.get_model(cfg="yolov8n.yaml", verbose=False)
    dataset = trainer.build_dataset(str(tmp_path / "train.txt"), "train", batch=8)
    names = [type(t).__name__ for t in dataset.transforms.transforms]
    assert names[-2:] == ["Weather", "Format"]
    assert [type(t).__name__ for t in trainer.build_dataset(str(tmp_path / "val.txt"), "val", batch=8).transforms.transforms][-1] == "Format"
    item = dataset[0]
    assert item["img"].shape[1:] == (64, 64) and len(item["bboxes"]) > 0


def test_aerial_recipe_trains_with_tiles_and_records_the_learnt_car_size(tmp_path, datasets, settings, recipe):
    weights, manifests = tmp_path / "weights", tmp_path / "manifests"
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump({**yaml.safe_load(RECIPE.read_text()), "name": "aerial_smoke"}))
    code = main(["train", str(tmp_path / "smoke.yaml"), "--epochs", "1", "--imgsz", "64", "--images", "100",
                 "--base", "yolov8n_coco_recovered.pt", "--runs", str(tmp_path / "runs"),
                 "--weights-out", str(weights), "--manifests-out", str(manifests)])
    assert code == 0
    manifest = yaml.safe_load((manifests / "aerial_smoke.yaml").read_text())
    assert manifest["provenance"]["base"] == "yolov8n_coco_recovered.pt"
    first = dataset_images(datasets / "drone_cars_cats")[:100]
    train, val = split_images(first, recipe.split)
    tiles = sorted((tmp_path / "runs" / "aerial_smoke" / "data" / "images").glob("dota__*.png"))
    assert tiles and manifest["provenance"]["train_images"] == len(train) + len(tiles)
    assert manifest["provenance"]["val_images"] == len(val)
    assert manifest["object_m"] == 4.6
    sides = [max(float(w), float(h)) * 64 for image in train for _, _, _, w, h in
             (line.split() for line in label_path(image).read_text().splitlines())]
    assert manifest["object_px"] == pytest.approx(float(np.median(sides)), abs=0.06)  # 640 px chips: scale 64/640
