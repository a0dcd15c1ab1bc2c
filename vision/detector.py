"""One ``Detector`` facade over every weight format Ultralytics runs (.pt, ONNX, OpenVINO)."""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import cached_property, partial
from pathlib import Path

import numpy as np

from .detection import Detection
from .manifest import ModelManifest
from .weights import export_metadata, takes_any_size, weights_sha256

log = logging.getLogger(__name__)

BORDER = 1 / 16  # of imgsz: the least grey border kept beside a picture's short side


def letterbox_canvas(size: tuple[int, int], imgsz: int, stride: int = 32, border: float = BORDER) -> tuple[int, int]:
    """(height, width) of the canvas a (height, width) picture is letterboxed onto, for a model that takes any size.

    The picture is scaled so that its long side is ``imgsz``, as on the square canvas; its short side
    keeps a grey border of at least ``imgsz * border`` each way, rounded up to the stride, and never
    more than the square (a picture nearly square gets the square). A 16:9 street camera then runs on
    448 x 640 instead of 640 x 640: about 30 % less model time. The border is why not the tightest
    canvas (384 x 640, as Ultralytics' ``rect`` gives): without it the model missed cars cut by the
    frame's lower edge, 639 vs 649 of 686 occupied car-park bays, against 647 with it
    (``benchmarks/model_choice.py``).
    """
    square = math.ceil(imgsz / stride) * stride  # as Ultralytics rounds imgsz
    height, width = size
    if not height or not width:
        return square, square  # Ultralytics names the empty picture
    scale = imgsz / max(height, width)
    return (min(square, math.ceil((height * scale + 2 * imgsz * border) / stride) * stride),
            min(square, math.ceil((width * scale + 2 * imgsz * border) / stride) * stride))


class Detector:
    """Runs a YOLO model on batches of BGR images and labels each box with its categories."""

    def __init__(self, manifest: ModelManifest, weights: Path | str, device: str = "cpu", batch: int = 4, threads: int | None = None):
        from ultralytics import YOLO

        self.manifest = manifest
        self.weights = weights
        self.device = device
        self.threads = threads  # OpenVINO inference threads; None: Ultralytics' choice (every core)
        self._pinned = False
        self.model = YOLO(str(weights), task="detect")
        resolved = Path(self.model.ckpt_path) if getattr(self.model, "ckpt_path", None) else Path(str(weights))
        self.weights_sha256 = weights_sha256(resolved if resolved.exists() else Path(str(weights)))
        shape = self._input_shape()
        # Exports with a fixed batch of one (most INT8 ONNX files) must be fed image by image.
        self.batch = batch if not isinstance(shape[0], int) or shape[0] > 1 else 1
        # Exports of a fixed picture size get that size; the others each picture's own canvas (``letterbox_canvas``).
        self.any_size = not isinstance(shape[2], int) and not isinstance(shape[3], int)

    def _input_shape(self) -> list:
        """(batch, channels, height, width) the weights take, a name where any size goes: a checkpoint takes
        any, an ONNX file says, an OpenVINO export says in its Ultralytics metadata (``dynamic``)."""
        path = Path(str(self.weights))
        if path.suffix == ".onnx":
            import onnxruntime as ort

            return list(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape)
        if (metadata := export_metadata(path)) is not None:
            if not takes_any_size(metadata):
                return ["batch", 3, *metadata.get("imgsz", [self.manifest.imgsz] * 2)]  # Ultralytics feeds it any batch
        elif path.suffix != ".pt":
            return [1, 3, self.manifest.imgsz, self.manifest.imgsz]  # a format not looked into: as a fixed export
        return ["batch", 3, "height", "width"]

    @property
    def name(self) -> str:
        return self.manifest.name

    @cached_property
    def names(self) -> dict[int, str]:
        """The model's class names by number. Ultralytics answers for an export not yet used by loading and
        compiling its backend again on every ask (80 asks, one per COCO class, took 30 s), so this asks once."""
        return dict(self.model.names)

    def canvas(self, image: np.ndarray) -> tuple[int, int]:
        """(height, width) the model sees ``image`` letterboxed onto."""
        if self.any_size:
            return letterbox_canvas(image.shape[:2], self.manifest.imgsz)
        return self.manifest.imgsz, self.manifest.imgsz

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections for each image, in the order given. Images are batched only with others of the same
        canvas, so an image's answer never depends on what else the call (or the shared detector) held."""
        results: list[list[Detection]] = [[] for _ in images]
        by_canvas: dict[tuple[int, int], list[int]] = {}
        for number, image in enumerate(images):
            by_canvas.setdefault(self.canvas(image), []).append(number)
        for canvas, numbers in by_canvas.items():
            for start in range(0, len(numbers), self.batch):
                chunk = numbers[start : start + self.batch]
                predictions = self.model.predict(
                    [images[n] for n in chunk], imgsz=canvas, rect=False, conf=self.manifest.conf, iou=self.manifest.iou,
                    agnostic_nms=self.manifest.agnostic_nms, device=self.device, verbose=False,
                )
                for number, prediction in zip(chunk, predictions, strict=True):
                    results[number] = self._to_detections(prediction)
                if self.threads and not self._pinned:  # once, after the first call has compiled the model
                    self._pinned = True
                    if self.inference_threads not in (None, self.threads):
                        self._pin_threads()
        return results

    @property
    def _openvino(self):
        """Ultralytics' OpenVINO backend of this model once its predictor exists, else None."""
        backend = getattr(getattr(getattr(self.model, "predictor", None), "model", None), "backend", None)
        return backend if hasattr(backend, "ov_compiled_model") else None

    @property
    def inference_threads(self) -> int | None:
        """How many threads the compiled OpenVINO model infers on (None: not an OpenVINO model, or not loaded yet)."""
        backend = self._openvino
        return int(backend.ov_compiled_model.get_property("INFERENCE_NUM_THREADS")) if backend else None

    def _pin_threads(self) -> None:
        """Compile the OpenVINO model again for ``threads`` inference threads (Ultralytics compiles it for
        the lowest latency, on every core, and offers no setting). In the camera service one model
        serves every camera while the cameras' own threads keep the cores busy; there OpenVINO's
        second worker cost more CPU than it saved: 10.7 vs 9.4 ms per camera-second in an
        8-camera fleet. Later recompiles (a model reshaped per input) keep the setting."""
        backend = self._openvino
        compile_model = backend.compile_model
        backend.compile_model = partial(compile_model.func, device_name=compile_model.keywords["device_name"],
                                        config={**compile_model.keywords["config"], "INFERENCE_NUM_THREADS": self.threads})
        folder = Path(str(self.weights))
        xml = folder if folder.is_file() else next(folder.glob("*.xml"))
        backend.ov_compiled_model = backend.compile_model(compile_model.func.__self__.read_model(str(xml)))

    def _class_name(self, names: dict[int, str], index: int) -> str:
        if self.manifest.classes and index < len(self.manifest.classes):
            return self.manifest.classes[index]
        return names[index]

    def _to_detections(self, prediction) -> list[Detection]:
        boxes = prediction.boxes
        xyxy = boxes.xyxy.cpu().numpy()
        confs = boxes.conf.cpu().numpy()
        classes = boxes.cls.cpu().numpy().astype(int)
        out = []
        for box, conf, cls in zip(xyxy, confs, classes):
            class_name = self._class_name(prediction.names, int(cls))
            out.append(
                Detection(
                    box=tuple(float(v) for v in box),
                    confidence=float(conf),
                    class_name=class_name,
                    categories=self.manifest.categories_of(class_name),
                    model=self.manifest.name,
                    weights_sha256=self.weights_sha256,
                )
            )
        return out
