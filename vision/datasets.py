"""YOLO-format dataset tools: validate, split deterministically, merge with a class mapping.

A dataset is a folder with ``images/``, ``labels/`` (one ``class cx cy w h`` line per box,
normalised) and ``classes.txt``. Splits never go at random: near-copies (Roboflow's augmented
triplets, consecutive video frames) must land on the same side, so they are grouped first.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class DatasetError(ValueError):
    """A labelled folder that cannot be read as one: the message names the folder or file and what is wrong."""


def dataset_images(folder: Path) -> list[Path]:
    images = folder / "images"
    if not images.is_dir():
        raise DatasetError(f"dataset {folder}: no images/ folder")
    return sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def label_path(image: Path) -> Path:
    return image.parent.parent / "labels" / f"{image.stem}.txt"


def read_classes(folder: Path) -> list[str]:
    path = folder / "classes.txt"
    if not path.is_file():
        raise DatasetError(f"dataset {folder}: no classes.txt")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class DatasetReport:
    folder: Path
    images: int = 0
    boxes: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_dataset(folder: Path) -> DatasetReport:
    """Every defect that would silently spoil training, one line each."""
    report = DatasetReport(folder)
    classes = read_classes(folder)
    seen_hashes: dict[str, Path] = {}
    for image in dataset_images(folder):
        report.images += 1
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        if digest in seen_hashes:
            report.problems.append(f"{image.name}: duplicate of {seen_hashes[digest].name} (same bytes)")
        seen_hashes.setdefault(digest, image)
        labels = label_path(image)
        if not labels.is_file():
            report.problems.append(f"{image.name}: missing label file {labels.name}")
            continue
        for number, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), 1):
            report.problems.extend(_check_line(labels.name, number, line, len(classes), report.boxes))
    for index, name in enumerate(classes):
        if report.boxes[index] == 0:
            report.problems.append(f"class {index} ({name}): no boxes in the whole dataset")
    return report


def _check_line(name: str, number: int, line: str, class_count: int, boxes: Counter) -> list[str]:
    parts = line.split()
    if not parts:
        return []
    try:
        cls, *coords = int(parts[0]), *map(float, parts[1:])
    except ValueError:
        return [f"{name}:{number}: not numbers: {line.strip()!r}"]
    if len(coords) != 4:
        return [f"{name}:{number}: expected 'class cx cy w h', got {len(parts)} values"]
    if not 0 <= cls < class_count:
        return [f"{name}:{number}: class {cls} out of range (classes.txt has {class_count})"]
    cx, cy, w, h = coords
    boxes[cls] += 1
    if w <= 0 or h <= 0 or cx - w / 2 < -1e-3 or cy - h / 2 < -1e-3 or cx + w / 2 > 1.001 or cy + h / 2 > 1.001:
        return [f"{name}:{number}: box out of range (cx={cx:.3f} cy={cy:.3f} w={w:.3f} h={h:.3f})"]
    return []


class SplitSpec(BaseModel):
    """How to split without leaking near-copies from train into val."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    by: Literal["name", "group", "sequence_tail"] = Field(
        default="name",
        description="name: hash of the file name; group: hash of a regex group 'group' (augmented copies of one "
        "source image); sequence_tail: the last frames of each sequence (regex groups 'seq' and 'frame').",
    )
    pattern: str | None = Field(default=None, description="Regex over the file name for 'group' and 'sequence_tail'.")
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    hold_out: str | None = Field(
        default=None,
        description="sequence_tail only: a regex over the 'seq' group; matching sequences go to neither train nor val "
        "but are kept whole for scoring on places the model never saw (a cross-street split).",
    )
    seed: str = Field(default="nonsite", description="Changes which groups land in val, deterministically.")


def _unit(key: str, seed: str) -> float:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12


def _sequences(images: list[Path], spec: SplitSpec) -> dict[str, list[tuple[int, Path]]]:
    regex = re.compile(spec.pattern)
    sequences: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for image in images:
        match = regex.search(image.name)
        if not match:
            raise ValueError(f"{image.name} does not match split pattern {spec.pattern!r}")
        sequences[match["seq"]].append((int(match["frame"]), image))
    return sequences


def held_out_images(images: list[Path], spec: SplitSpec) -> list[Path]:
    """The whole sequences ``spec.hold_out`` names: in neither split, for scoring on unseen places."""
    if spec.hold_out is None:
        return []
    if spec.by != "sequence_tail":
        raise ValueError("hold_out needs split by sequence_tail")
    held = re.compile(spec.hold_out)
    sequences = _sequences(images, spec)
    return sorted(image for seq, frames in sequences.items() if held.fullmatch(seq) for _, image in frames)


def split_images(images: list[Path], spec: SplitSpec) -> tuple[list[Path], list[Path]]:
    if spec.by != "name" and spec.pattern is None:
        raise ValueError(f"split by {spec.by} needs a pattern")
    if spec.hold_out is not None:
        held = set(held_out_images(images, spec))
        if not held:
            raise ValueError(f"hold_out {spec.hold_out!r} matches no sequence")
        images = [i for i in images if i not in held]
    regex = re.compile(spec.pattern) if spec.pattern else None
    if spec.by == "sequence_tail":
        val: set[Path] = set()
        for frames in _sequences(images, spec).values():
            numbers = sorted({n for n, _ in frames})
            cut = numbers[int(len(numbers) * (1 - spec.val_fraction))]
            val |= {image for n, image in frames if n >= cut}
        return [i for i in images if i not in val], [i for i in images if i in val]
    train, val_list = [], []
    for image in images:
        key = image.name
        if spec.by == "group":
            match = regex.search(image.name)
            if not match:
                raise ValueError(f"{image.name} does not match split pattern {spec.pattern!r}")
            key = match["group"]
        (val_list if _unit(key, spec.seed) < spec.val_fraction else train).append(image)
    return train, val_list


DOTA_HEADER = ("imagesource:", "gsd:")


def read_dota(labels: Path, classes: dict[str, str]) -> list[tuple[str, list[tuple[float, float]]]]:
    """DOTA oriented boxes (``x1 y1 ... x4 y4 class difficult``) of the classes mapped, as (class, 4 corners)."""
    objects = []
    for number, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts or line.startswith(DOTA_HEADER):
            continue
        if len(parts) < 9:
            raise DatasetError(f"{labels}:{number}: expected 'x1 y1 ... x4 y4 class', got {line.strip()!r}")
        if parts[8] in classes:
            xy = list(map(float, parts[:8]))
            objects.append((classes[parts[8]], list(zip(xy[0::2], xy[1::2]))))
    return objects


def merge_datasets(sources: list[tuple[Path, dict[str, str]]], out: Path) -> dict[str, int]:
    """Copy several datasets into one, renaming classes by each source's mapping (unmapped classes are dropped)."""
    names: list[str] = []
    for _, mapping in sources:
        names += [n for n in mapping.values() if n not in names]
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    for folder, mapping in sources:
        source_classes = read_classes(folder)
        for image in dataset_images(folder):
            stem = f"{folder.name}__{image.stem}"
            shutil.copy2(image, out / "images" / f"{stem}{image.suffix}")
            lines = []
            if label_path(image).is_file():
                for line in label_path(image).read_text().splitlines():
                    parts = line.split()
                    if parts and source_classes[int(parts[0])] in mapping:
                        target = names.index(mapping[source_classes[int(parts[0])]])
                        lines.append(" ".join([str(target), *parts[1:]]))
                        counts[names[target]] += 1
            (out / "labels" / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    (out / "classes.txt").write_text("\n".join(names) + "\n")
    return dict(counts)
