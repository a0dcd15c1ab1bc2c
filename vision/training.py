"""``nonsite train RECIPE``: fine-tune a COCO checkpoint on a domain dataset, evaluate, export, register.

A recipe (``models/recipes/*.yaml``) is all a new detector needs: data, split, base checkpoint,
image size, epochs, augmentation and the violation categories its classes raise. The result
is a manifest in ``models/`` that the registry serves at once.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from .datasets import SplitSpec, dataset_images, label_path, read_classes, split_images, validate_dataset
from .export import export_weights
from .training_data import DotaTiles, write_training_folder
from .weights import locate

log = logging.getLogger(__name__)
MAX_WEIGHTS_MB = 15


class TrainRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, description="Model name in the registry.")
    description: str = ""
    dataset: str = Field(description="YOLO-format folder; '{datasets}' stands for NONSITE_DATASETS_DIR.")
    split: SplitSpec = Field(default_factory=SplitSpec)
    base: str = Field(default="yolov8n_coco_recovered.pt", description="COCO-pretrained checkpoint in the models dirs.")
    imgsz: int = Field(default=320, ge=32, le=1920)
    epochs: int = Field(default=10, ge=1, le=1000)
    batch: int = Field(default=16, ge=1, le=512)
    freeze: int = Field(default=0, ge=0, le=24, description="Backbone layers kept frozen (cheaper CPU training).")
    augment: dict[str, int | float] = Field(default_factory=dict, description="Ultralytics augmentation settings (degrees, scale, flipud, hsv_v, mosaic, copy_paste, close_mosaic, ...).")
    weather: float = Field(default=0.0, ge=0, le=1, description="Share of training images given blur, haze, rain, dusk, noise or JPEG blocks (vision/weather.py).")
    extra: list[DotaTiles] = Field(default_factory=list, description="Training-only sources beside the dataset (never in val).")
    categories: dict[str, list[str]] = Field(default_factory=dict, description="Violation category -> classes of this model.")
    conf: float = Field(default=0.25, gt=0, lt=1, description="Confidence floor written into the manifest.")
    object_m: float | None = Field(default=None, gt=0, description="Typical real size of the objects (metres), for multi-scale tiling by ground sampling distance.")
    data_licence: str = ""
    fraction_images: int | None = Field(default=None, ge=2, description="Use only the first N images (smoke runs).")


@dataclass
class TrainResult:
    name: str
    manifest_path: Path
    weights: Path
    metrics: dict[str, float]
    train_images: int
    val_images: int
    seconds: float


def _sha256_of(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _write_split(workdir: Path, dataset: Path, recipe: TrainRecipe, datasets_dir: Path) -> tuple[Path, list[Path], list[Path], list[Path]]:
    """The run's own folder: the split's images linked, labels as polygons (so copy-paste has outlines), extras cut in."""
    images = dataset_images(dataset)
    if recipe.fraction_images:
        images = images[: recipe.fraction_images]
    train, val = split_images(images, recipe.split)
    if not train or not val:
        raise ValueError(f"recipe {recipe.name}: split gave {len(train)} train and {len(val)} val images")
    classes = read_classes(dataset)
    train_list, val_list, extra_files = write_training_folder(workdir, train, val, recipe.extra, classes, datasets_dir)
    (workdir / "train.txt").write_text("\n".join(map(str, train_list)) + "\n")
    (workdir / "val.txt").write_text("\n".join(map(str, val_list)) + "\n")
    data = {"path": str(workdir.resolve()), "train": "train.txt", "val": "val.txt", "names": dict(enumerate(classes))}
    (workdir / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return workdir / "data.yaml", train, extra_files, val


def learnt_size(images: list[Path], imgsz: int) -> float:
    """Median longer side of the boxes as the model saw them (image letterboxed to ``imgsz``), in pixels."""
    from PIL import Image

    sides = []
    for image in images:
        labels = label_path(image)
        if not labels.is_file():
            continue
        width, height = Image.open(image).size
        scale = imgsz / max(width, height)
        for line in labels.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 5:
                sides.append(max(float(parts[3]) * width, float(parts[4]) * height) * scale)
    if not sides:
        raise ValueError("no boxes in the training split to measure the learnt object size from")
    return round(float(statistics.median(sides)), 1)


def find_checkpoint(name: str, models_dirs: list[Path]) -> Path:
    if found := locate(name, models_dirs):
        return found
    raise FileNotFoundError(f"base checkpoint {name} not found in {', '.join(map(str, models_dirs))}")


def weather_trainer(p: float):
    """Ultralytics' detection trainer with ``Weather`` last before formatting, also after mosaic closes."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from .weather import Weather

    def add_weather(dataset) -> None:
        if p > 0:
            dataset.transforms.insert(len(dataset.transforms.transforms) - 1, Weather(p))

    class WeatherTrainer(DetectionTrainer):
        def build_dataset(self, img_path, mode="train", batch=None):
            dataset = super().build_dataset(img_path, mode, batch)
            if mode == "train":
                add_weather(dataset)
            return dataset

        def _close_dataloader_mosaic(self):
            super()._close_dataloader_mosaic()
            add_weather(self.train_loader.dataset)

    return WeatherTrainer


def train_recipe(
    recipe: TrainRecipe, datasets_dir: Path, models_dirs: list[Path], weights_out: Path, manifests_out: Path,
    runs_dir: Path, device: str = "cpu", resume: bool = False,
) -> TrainResult:
    from ultralytics import YOLO

    started = time.perf_counter()
    dataset = Path(recipe.dataset.replace("{datasets}", str(datasets_dir)))
    report = validate_dataset(dataset)
    for problem in report.problems[:20]:
        log.warning("dataset %s: %s", dataset, problem)
    workdir = runs_dir / recipe.name
    data_yaml, dataset_train, tiles, val = _write_split(workdir / "data", dataset, recipe, datasets_dir)
    train = dataset_train + tiles
    last = workdir / "train" / "weights" / "last.pt"
    trainer = weather_trainer(recipe.weather)
    if resume and last.is_file():
        model = YOLO(str(last))
        model.train(resume=True, trainer=trainer)
    else:
        model = YOLO(str(find_checkpoint(recipe.base, models_dirs)))
        model.train(
            data=str(data_yaml), imgsz=recipe.imgsz, epochs=recipe.epochs, batch=recipe.batch, freeze=recipe.freeze or None,
            device=device, workers=2, project=str(workdir), name="train", exist_ok=True, seed=0, deterministic=True,
            plots=False, verbose=False, trainer=trainer, **recipe.augment,
        )
    best = workdir / "train" / "weights" / "best.pt"
    metrics = YOLO(str(best)).val(data=str(data_yaml), imgsz=recipe.imgsz, split="val", device=device, plots=False, verbose=False)
    result_metrics = {
        "map50": round(float(metrics.box.map50), 4), "map50_95": round(float(metrics.box.map), 4),
        "precision": round(float(metrics.box.mp), 4), "recall": round(float(metrics.box.mr), 4),
        "inference_ms_per_image": round(float(metrics.speed["inference"]), 2),
    }
    weights_out.mkdir(parents=True, exist_ok=True)
    target = weights_out / f"{recipe.name}.pt"
    shutil.copy2(best, target)
    size_mb = target.stat().st_size / 2**20
    if size_mb > MAX_WEIGHTS_MB:
        raise ValueError(f"{target} is {size_mb:.1f} MB, over the {MAX_WEIGHTS_MB} MB limit for committed weights")
    export_weights(target, weights_out / f"{recipe.name}_openvino_model", "openvino", recipe.imgsz)
    manifest = {
        "name": recipe.name,
        "description": recipe.description,
        "weights": [f"{recipe.name}_openvino_model/", f"{recipe.name}.pt"],
        "build_from": f"{recipe.name}.pt",
        "imgsz": recipe.imgsz,
        "conf": recipe.conf,
        "classes": read_classes(dataset),
        "categories": recipe.categories,
        **({"object_m": recipe.object_m, "object_px": learnt_size(dataset_train, recipe.imgsz)} if recipe.object_m else {}),
        "metrics": result_metrics,
        "licence": f"AGPL-3.0 (weights); data: {recipe.data_licence}",
        "provenance": {
            "recipe_sha256": hashlib.sha256(recipe.model_dump_json().encode()).hexdigest(),
            "data_sha256": _sha256_of(sorted(train + val) + [label_path(p) for p in sorted(train + val) if label_path(p).is_file()]),
            "train_images": len(train), "val_images": len(val), "base": recipe.base, "device": device,
            "training_seconds": round(time.perf_counter() - started, 1),
        },
    }
    manifests_out.mkdir(parents=True, exist_ok=True)
    manifest_path = manifests_out / f"{recipe.name}.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
    return TrainResult(recipe.name, manifest_path, target, result_metrics, len(train), len(val), time.perf_counter() - started)
