"""Plates rendered in a CJK font, read back by the OCR; and the plate becomes the case subject."""
from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from nonsite.vision.plates import LETTERS, PROVINCES, TextReader, normalise_plate, plate_format

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"


def plates(count: int, seed: int = 7) -> list[str]:
    """A fixed mix of standard (blue, 7 characters) and new-energy (green, 8) plates."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        head = rng.choice(PROVINCES) + rng.choice(LETTERS)
        if n % 3 == 2:
            tail = rng.choice("DF") + rng.choice(LETTERS + "0123456789") + "".join(rng.choices("0123456789", k=4))
        else:
            tail = "".join(rng.choices(LETTERS + "0123456789", k=4)) + rng.choice("0123456789")
        out.append(head + tail)
    return out


def render(text: str, height: int = 120) -> np.ndarray:
    new_energy = len(text) == 8
    font = ImageFont.truetype(FONT, int(height * 0.55), index=0)
    label = f"{text[:2]}·{text[2:]}"
    width = int(font.getlength(label)) + height // 3
    image = Image.new("RGB", (width, height), (110, 200, 130) if new_energy else (25, 70, 180))
    draw = ImageDraw.Draw(image)
    draw.rectangle([3, 3, width - 4, height - 4], outline=(250, 250, 250), width=3)
    draw.text((height // 6, height // 10), label, font=font, fill=(10, 10, 10) if new_energy else (250, 250, 250))
    return cv2.cvtColor(np.array(image), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def reader():
    if not Path(FONT).exists():
        pytest.fail("fonts-noto-cjk is not installed (make test installs it)")
    return TextReader()


@pytest.mark.parametrize("text,expected", [("沪A·12345", "standard"), ("京B D12345", "new_energy"), ("粤Z·8A9F7", "standard"),
                                           ("浙A12345D", "new_energy"), ("沪I12345", None), ("AB12345", None), ("沪A1234", None),
                                           ("京AO1234", "standard")])
def test_plate_formats(text, expected):
    assert plate_format(normalise_plate(text)) == expected


def test_rendered_plates_are_read(reader, parking_frames):
    car = cv2.imread(str(parking_frames[0]))[380:480, 470:600]  # a real car's rear from the car-park camera
    truth = plates(20)
    correct = 0
    for n, text in enumerate(truth):
        plate = render(text)
        if n % 2:  # half of them fixed on a real car, at the size a close camera sees
            scene = cv2.resize(car, (plate.shape[1] * 2, plate.shape[1] * 2 * car.shape[0] // car.shape[1]))
            y, x = scene.shape[0] - plate.shape[0] - 10, (scene.shape[1] - plate.shape[1]) // 2
            scene[y : y + plate.shape[0], x : x + plate.shape[1]] = plate
            plate = scene
        reading = reader.plate(plate)
        correct += bool(reading and reading.text == text and reading.valid)
    accuracy = correct / len(truth)
    print(f"\nplate OCR accuracy on {len(truth)} rendered plates: {accuracy:.2f}")
    assert accuracy >= 0.9


def test_a_parked_vehicle_pack_carries_its_plate_and_is_linked_by_it(reader, settings, tmp_path):
    import ultralytics

    from nonsite.ingest import open_source
    from nonsite.rules import SiteConfig
    from nonsite.runner import build_pipeline

    bus = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    plate = render("苏E5G6H8", height=70)
    y, x = 690, 330
    bus[y : y + plate.shape[0], x : x + plate.shape[1]] = plate  # a plate on the bus front
    cv2.imwrite(str(tmp_path / "bus-plate.jpg"), bus)
    config = SiteConfig.model_validate({
        "source": {"id": "cam-busstop", "kind": "folder", "uri": str(tmp_path / "bus-plate.jpg"), "repeat": 8,
                   "frame_interval_s": 30, "start_time": "2026-11-23T10:00:00"},
        "zones": [{"id": "bus-stop-clearway", "polygon": [[0, 500], [810, 500], [810, 1080], [0, 1080]]}],
        "rules": [{"id": "clearway", "kind": "illegal_parking", "zones": ["bus-stop-clearway"], "classes": ["bus"], "dwell_s": 120, "hold_s": 30}],
    })
    summary = build_pipeline(config, settings).run(open_source(config.source))
    assert len(summary.packs) == 1
    import json

    manifest = json.loads(settings.open_store().read(summary.packs[0].pack_id, "manifest.json"))
    assert manifest["plate"]["text"] == "苏E5G6H8" and manifest["plate"]["valid"]
    assert manifest["subject_key"] == "vehicle:plate:苏E5G6H8"
