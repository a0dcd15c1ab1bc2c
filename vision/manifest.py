"""Model manifests: what a detector is, where its weights may be, and what its classes mean.

A manifest is YAML in ``models/``; the registry reads it, finds the first weight file that
exists in the models directory, and builds a ``Detector``. Adding a model is adding a file.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

VIOLATION_CATEGORIES = ("illegal_parking", "spillover_business", "street_vending", "construction_activity", "suspected_new_structure")


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    name: str = Field(min_length=1, description="Registry name; rules and detections refer to the model by it.")
    description: str = ""
    weights: list[str] = Field(
        min_length=1,
        description="Weight file candidates in order of preference, relative to the models directory "
        "(a '*_openvino_model/' folder, an .onnx or a .pt). A bare official name such as 'yolo11n.pt' "
        "may also be fetched by Ultralytics when the machine is online.",
    )
    build_from: str | None = Field(
        default=None,
        description="Trainable checkpoint the first weight candidate is exported from by `nonsite models --build` "
        "(OpenVINO when the candidate ends in '_openvino_model/', else ONNX).",
    )
    imgsz: int = Field(default=640, ge=32, le=4096, description="Inference size in pixels (long side).")
    conf: float = Field(default=0.25, gt=0, lt=1, description="Confidence floor for keeping a box.")
    iou: float = Field(default=0.7, gt=0, lt=1, description="NMS IoU threshold.")
    agnostic_nms: bool = Field(
        default=True, description="One box per object across classes (COCO often calls a van both 'bus' and 'truck')."
    )
    classes: list[str] | None = Field(default=None, description="Class names by index; read from the weights when absent.")
    categories: dict[str, list[str]] = Field(
        default_factory=dict, description="Violation category -> model class names that can raise it."
    )
    object_m: float | None = Field(default=None, gt=0, description=(
        "Real long side, in metres, of the object the model is mostly for (a car: 4.6): with a picture's ground "
        "sampling distance, multi-scale detection picks tile sizes that show it at ``object_px``."))
    object_px: float | None = Field(default=None, gt=0, description=(
        "Median long side, in pixels at ``imgsz``, of that object in the training labels: the size the model learnt."))
    metrics: dict[str, float] = Field(default_factory=dict, description="Validation metrics of trained models.")
    licence: str = "AGPL-3.0"
    provenance: dict[str, str | int | float] = Field(default_factory=dict, description="How a trained model was made (hashes, sizes).")

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(VIOLATION_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown violation categories {unknown}; known: {list(VIOLATION_CATEGORIES)}")
        return value

    def categories_of(self, class_name: str) -> tuple[str, ...]:
        return tuple(cat for cat, names in self.categories.items() if class_name in names)


class ManifestError(ValueError):
    """A manifest file that is missing or does not describe a usable model."""


def load_manifest(path: Path) -> ModelManifest:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"model manifest {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"model manifest {path}: not valid YAML: {exc}") from exc
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ManifestError(f"model manifest {path}: {problems}") from exc
