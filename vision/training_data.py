"""A training run's own data folder: the split's images linked, every box as an outline, extra sources cut in.

Ultralytics pastes objects from one picture into another (copy-paste) only when labels carry
outlines, so boxes are written as four-corner polygons and DOTA's oriented boxes keep their
true corners. Extra sources are for training only: a DOTA picture is cut along a band of rows,
the band's tiles go into training, and the rest of the picture stays unseen for scoring
(``dota_band(..., held_out=True)``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .datasets import DatasetError, label_path, read_dota
from .tiling import tile_grid

Corners = list[tuple[float, float]]


class DotaTiles(BaseModel):
    """Objects of one DOTA-labelled aerial picture, cut into upscaled tiles for training."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    image: str = Field(description="The picture; '{datasets}' stands for NONSITE_DATASETS_DIR. Labels: ../labelTxt/STEM.txt.")
    classes: dict[str, str] = Field(min_length=1, description="DOTA class -> the recipe's class.")
    train_rows: tuple[float, float] = Field(default=(0.0, 1.0), description="Band of the picture's height used for training (fractions); the rest is held out.")
    tile: int = Field(default=208, ge=32)
    overlap: float = Field(default=0.25, ge=0, lt=1)
    upscale: float = Field(default=1.0, gt=0, le=8, description="So objects reach the model near the size it learns them at.")
    repeat: int = Field(default=1, ge=1, le=20, description="Times each tile is listed, for a source much smaller than the dataset.")


def dota_band(spec: DotaTiles, datasets_dir: Path, held_out: bool) -> tuple[np.ndarray, list[tuple[str, Corners]], str]:
    """The training band (or the held-out rest) of the picture, with the objects whose centre lies in it."""
    path = Path(spec.image.replace("{datasets}", str(datasets_dir)))
    image = cv2.imread(str(path))
    if image is None:
        raise DatasetError(f"{path}: not a readable image")
    height = image.shape[0]
    top, bottom = (round(f * height) for f in spec.train_rows)
    if held_out:
        if top == 0 and bottom < height:
            top, bottom = bottom, height
        elif bottom == height and top > 0:
            top, bottom = 0, top
        else:
            raise DatasetError(f"{path}: train_rows {spec.train_rows} leave no single held-out band")
    objects = []
    for name, corners in read_dota(path.parent.parent / "labelTxt" / f"{path.stem}.txt", spec.classes):
        centre_y = sum(y for _, y in corners) / 4
        if top <= centre_y < bottom:
            objects.append((name, [(x, min(max(y, top), bottom) - top) for x, y in corners]))
    return image[top:bottom], objects, f"{path.stem}_rows{top}-{bottom}"


def _outline_line(class_label: str, corners: Corners) -> str:
    """A YOLO outline label line from corners already normalised to the picture (clipped to it)."""
    return " ".join([class_label, *(f"{min(max(v, 0.0), 1.0):.6f}" for corner in corners for v in corner)])


def _box_as_polygon(line: str) -> str:
    parts = line.split()
    if len(parts) != 5:
        return line
    cls, cx, cy, w, h = parts[0], *map(float, parts[1:])
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    return _outline_line(cls, [(x1, y1), (x2, y1), (x2, y2), (x1, y2)])


def _cut_tiles(spec: DotaTiles, datasets_dir: Path, classes: list[str], images: Path, labels: Path) -> list[Path]:
    band, objects, stem = dota_band(spec, datasets_dir, held_out=False)
    unknown = {name for name, _ in objects} - set(classes)
    if unknown:
        raise DatasetError(f"{spec.image}: classes {sorted(unknown)} are not the dataset's {classes}")
    tiles = []
    for x0, y0, x1, y1 in tile_grid(band.shape[1], band.shape[0], spec.tile, spec.overlap):
        tw, th = x1 - x0, y1 - y0
        lines = []
        for name, corners in objects:
            xs, ys = [x - x0 for x, _ in corners], [y - y0 for _, y in corners]
            area = (max(xs) - min(xs)) * (max(ys) - min(ys))
            inside = max(0.0, min(max(xs), tw) - max(min(xs), 0)) * max(0.0, min(max(ys), th) - max(min(ys), 0))
            if area > 0 and inside / area >= 0.5:  # at least half of it in the tile: a part the model can learn from
                lines.append(_outline_line(str(classes.index(name)), [(x / tw, y / th) for x, y in zip(xs, ys)]))
        target = images / f"dota__{stem}__{x0}_{y0}.png"
        crop = band[y0:y1, x0:x1]
        cv2.imwrite(str(target), cv2.resize(crop, None, fx=spec.upscale, fy=spec.upscale, interpolation=cv2.INTER_CUBIC))
        (labels / f"{target.stem}.txt").write_text("".join(f"{line}\n" for line in lines))
        tiles.append(target)
    return tiles


def write_training_folder(
    folder: Path, train: list[Path], val: list[Path], extras: list[DotaTiles], classes: list[str], datasets_dir: Path,
) -> tuple[list[Path], list[Path], list[Path]]:
    """Fill ``folder`` anew; return the train list (tiles repeated), the val list and the tile files."""
    images, labels = folder / "images", folder / "labels"
    for sub in (images, labels):
        shutil.rmtree(sub, ignore_errors=True)
        sub.mkdir(parents=True)
    for cache in folder.glob("*.cache"):
        cache.unlink()
    linked: dict[Path, Path] = {}
    for image in train + val:
        target = images / image.name
        target.symlink_to(image.resolve())
        source = label_path(image)
        lines = source.read_text(encoding="utf-8").splitlines() if source.is_file() else []
        (labels / f"{image.stem}.txt").write_text("".join(f"{_box_as_polygon(line)}\n" for line in lines if line.strip()))
        linked[image] = target.absolute()
    tiles: list[Path] = []
    train_list = [linked[image] for image in train]
    for spec in extras:
        cut = _cut_tiles(spec, datasets_dir, classes, images, labels)
        tiles += cut
        train_list += [tile.absolute() for tile in cut] * spec.repeat
    return train_list, [linked[image] for image in val], tiles
