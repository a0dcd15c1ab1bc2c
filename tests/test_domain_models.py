"""The project's own detectors find their class on real images they were not trained on."""
from __future__ import annotations

from pathlib import Path

import pytest

from nonsite.rules import load_config
from nonsite.vision.datasets import dataset_images, split_images
from nonsite.vision.evaluation import evaluate
from nonsite.vision.training import TrainRecipe


def _val_images(recipe_name: str, datasets: Path) -> tuple[Path, list[Path]]:
    recipe = load_config(Path("models/recipes") / f"{recipe_name}.yaml", TrainRecipe)
    folder = Path(recipe.dataset.replace("{datasets}", str(datasets)))
    return folder, split_images(dataset_images(folder), recipe.split)[1]


@pytest.mark.parametrize("model,truth,floor_recall,floor_precision", [
    # floors sit well under what `nonsite train` measured on the same val split (see models/*.yaml)
    ("excavator", "excavator", 0.8, 0.8),
    ("aerial_vehicle", "car", 0.8, 0.8),
    ("street_vendor", "street_vendor", 0.4, 0.4),
])
def test_domain_model_finds_its_class_on_its_val_split(registry, datasets, model, truth, floor_recall, floor_precision):
    folder, val = _val_images(model, datasets)
    detector = registry.detector(model)
    scores = evaluate(detector.detect, folder, [truth], {truth}, images=val[:40])
    assert scores.recall >= floor_recall and scores.precision >= floor_precision, scores


def test_every_domain_model_is_registered_with_its_categories(registry):
    expected = {"aerial_vehicle": "illegal_parking", "street_vendor": "spillover_business", "excavator": "construction_activity"}
    for name, category in expected.items():
        manifest = registry.manifest(name)
        assert category in manifest.categories
        assert {"map50", "precision", "recall"} <= set(manifest.metrics)
        weights = registry.resolve_weights(manifest)
        size = sum(p.stat().st_size for p in Path(weights).rglob("*")) if Path(weights).is_dir() else Path(weights).stat().st_size
        assert size < 15 * 2**20
