"""Vision: detectors behind one facade, the model registry, and multi-object tracking."""
from .datasets import DatasetError
from .detection import Detection, box_iou
from .detector import Detector
from .manifest import VIOLATION_CATEGORIES, ManifestError, ModelManifest, load_manifest
from .registry import ModelNotFoundError, ModelRegistry
from .tracker import Tracker
from .weights import locate, weights_sha256

__all__ = [
    "VIOLATION_CATEGORIES", "DatasetError", "Detection", "Detector", "ManifestError", "ModelManifest", "ModelNotFoundError",
    "ModelRegistry", "Tracker", "box_iou", "load_manifest", "locate", "weights_sha256",
]
