"""Find a model's weights through its manifest and the models directory, or say what is missing."""
from __future__ import annotations

import os
from pathlib import Path

from .manifest import ManifestError, ModelManifest, load_manifest
from .model_store import ModelLine
from .weights import export_metadata, locate, takes_any_size


class ModelNotFoundError(FileNotFoundError):
    """No weight file of a manifest exists locally and none can be fetched."""


def _online() -> bool:
    if os.environ.get("YOLO_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    from ultralytics.utils import is_online

    return is_online()


class ModelRegistry:
    """Manifests from ``manifests_dir``; weights from the deployment's promoted version of a model (``deployment_dir``,
    see ``model_store``), else from the first of ``models_dirs`` that holds them."""

    def __init__(self, manifests_dir: Path, models_dirs: list[Path], deployment_dir: Path | None = None):
        self.manifests_dir = Path(manifests_dir)
        self.models_dirs = [Path(d) for d in models_dirs]
        self.deployment_dir = deployment_dir

    def line(self, name: str) -> ModelLine | None:
        """The deployment's versions of the named model; None without a deployment folder."""
        return ModelLine(self.deployment_dir, name) if self.deployment_dir is not None else None

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.manifests_dir.glob("*.yaml"))

    def available(self) -> list[str]:
        """The models whose weights are on this machine: what a cluster may place here without a download."""
        return [name for name in self.names() if any(locate(c, self.models_dirs) for c in self.manifest(name).weights)]

    def manifest_path(self, name: str) -> Path:
        return self.manifests_dir / f"{name}.yaml"

    def manifest(self, name: str) -> ModelManifest:
        path = self.manifest_path(name)
        if not path.is_file():
            raise ManifestError(f"no model manifest named {name!r} in {self.manifests_dir} (known: {', '.join(self.names()) or 'none'})")
        return load_manifest(path)

    def resolve_weights(self, manifest: ModelManifest, shipped: bool = False) -> Path | str:
        """The deployment's promoted weights (unless ``shipped``), else the manifest's first candidate that exists
        locally, else an official name Ultralytics can fetch online."""
        line = self.line(manifest.name)
        if not shipped and line is not None and (promoted := line.current_weights()) is not None:
            return promoted
        for candidate in manifest.weights:
            if found := locate(candidate, self.models_dirs):
                return found
        fetchable = [c for c in manifest.weights if "/" not in c.rstrip("/") and c.endswith(".pt")]
        if fetchable and _online():
            return fetchable[0]
        raise ModelNotFoundError(
            f"model {manifest.name!r} (manifest {self.manifest_path(manifest.name)}): none of its weights "
            f"{manifest.weights} exists in {', '.join(str(d.resolve()) for d in self.models_dirs)} and the machine "
            "is offline. Put one of them there, or point NONSITE_MODELS_DIR at the folder that holds them."
        )

    def build_missing(self, target_dir: Path) -> list[tuple[str, Path]]:
        """Export each manifest's preferred weights from its ``build_from`` checkpoint when absent."""
        from .export import export_weights

        built = []
        for name in self.names():
            manifest = self.manifest(name)
            preferred = manifest.weights[0].rstrip("/")
            found = locate(preferred, self.models_dirs)
            if not manifest.build_from or (found and not _built_for_one_size(found, target_dir)):
                continue
            checkpoint = locate(manifest.build_from, self.models_dirs)
            if checkpoint is None:
                continue  # the later candidates serve instead
            fmt = "openvino" if preferred.endswith("_openvino_model") else "onnx"
            built.append((name, export_weights(checkpoint, target_dir / preferred, fmt, manifest.imgsz)))
        return built

    def detector(self, name: str, device: str = "cpu", weights: Path | None = None, threads: int | None = None):
        """A ready ``Detector`` for the named manifest: its current weights, or ``weights`` (a candidate being judged);
        ``threads``: OpenVINO inference threads (None: every core)."""
        from .detector import Detector

        manifest = self.manifest(name)
        return Detector(manifest, weights or self.resolve_weights(manifest), device=device, threads=threads)


def _built_for_one_size(path: Path, target_dir: Path) -> bool:
    """An OpenVINO export this machine built before exports took any picture size (``export_weights``):
    built again, so that the same manifest runs the same way on every machine."""
    metadata = export_metadata(path) if path.parent.resolve() == target_dir.resolve() else None
    return metadata is not None and not takes_any_size(metadata)
