"""Export a trainable checkpoint to the formats the CPU runs fastest (OpenVINO) or widest (ONNX)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal


def export_weights(checkpoint: Path, target: Path, fmt: Literal["openvino", "onnx"] = "openvino", imgsz: int = 640) -> Path:
    """Write ``target`` (a '*_openvino_model/' folder or an '.onnx' file) from a '.pt' checkpoint.

    Ultralytics writes next to its input, so the checkpoint is copied to a scratch folder first:
    the source folder may be read-only (../shared) and must never receive build output.
    The export takes any batch and picture size (``dynamic``): a street camera's 16:9 frame then
    runs on a 448 x 640 canvas instead of 640 x 640 (``detector.letterbox_canvas``), and a batch
    across cameras is one inference.
    """
    from ultralytics import YOLO

    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / checkpoint.name
        shutil.copy2(checkpoint, local)
        produced = Path(YOLO(str(local)).export(format=fmt, imgsz=imgsz, half=False, int8=False, dynamic=True))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        shutil.move(str(produced), target)
    return target
