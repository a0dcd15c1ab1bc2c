"""`nonsite eval` on what it is given: segmentation-polygon labels are scored (the real car-park
folder labels each bay as a polygon), scores come as JSON for scripts, and a folder it cannot read
is refused with the reason, never scored as zero truths."""
from __future__ import annotations

import json
import shutil

import pytest

from nonsite.cli import main


def _occupied_bays(folder, count: int) -> int:
    labels = sorted((folder / "labels").glob("*.txt"))
    images = sorted(p.stem for p in (folder / "images").iterdir())[:count]
    return sum(line.split()[0] == "1" for path in labels if path.stem in images for line in path.read_text().splitlines() if line.strip())


def test_polygon_labels_are_scored_and_printed_as_json(datasets, settings, capsys):
    folder = datasets / "parking_lot_cctv"
    first = sorted((folder / "labels").glob("*.txt"))[0]
    assert len(first.read_text().splitlines()[0].split()) > 5  # polygons, not boxes
    capsys.readouterr()
    assert main(["eval", str(folder), "--model", "coco", "--classes", "occupied", "--predict", "car", "--limit", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["modes"]) == {"full_frame", "tiled", "multi_scale"}
    expected = _occupied_bays(folder, 3)
    for scores in report["modes"].values():
        assert scores["images"] == 3 and scores["truths"] == expected > 0  # every occupied bay, from its polygon
        assert 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1 and 0 <= scores["ap50"] <= 1
        assert scores["predictions"] > 0
    assert report["truth_classes"] == ["occupied"] and report["predicted_classes"] == ["car"]
    assert report["throughput"]["tiles"] > 0


@pytest.fixture()
def broken(tmp_path, datasets):
    """A copy of two real car-park frames with their labels, to break in one way per test."""
    source = datasets / "parking_lot_cctv"
    folder = tmp_path / "lot"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    shutil.copy(source / "classes.txt", folder)
    for image in sorted((source / "images").iterdir())[:2]:
        shutil.copy(image, folder / "images")
        shutil.copy(source / "labels" / f"{image.stem}.txt", folder / "labels")
    return folder


@pytest.mark.parametrize("damage, says", [
    (lambda f: shutil.rmtree(f / "labels"), "none of the 2 images has a label file"),
    (lambda f: (f / "classes.txt").write_text("empty\nfull\n"), "no class 'occupied' in classes.txt (it has empty, full)"),
    (lambda f: next((f / "labels").iterdir()).write_text("1 0.5 0.5\n"), ":1: 2 numbers are neither a box"),
    (lambda f: next((f / "labels").iterdir()).write_text("car 0.5 0.5 0.1 0.1\n"), ":1: not a label line"),
    (lambda f: next((f / "images").iterdir()).write_bytes(b"not a picture"), "not a readable image"),
    (lambda f: shutil.rmtree(f / "images"), "no images/ folder"),
], ids=["no labels", "unknown class", "short line", "class name", "broken image", "no images"])
def test_a_folder_it_cannot_read_is_refused_with_the_reason(broken, settings, capsys, damage, says):
    damage(broken)
    capsys.readouterr()
    assert main(["eval", str(broken), "--model", "coco", "--classes", "occupied", "--predict", "car"]) == 2
    assert says.replace(" ", "") in "".join(capsys.readouterr().out.split())  # as printed, wrapped or not
