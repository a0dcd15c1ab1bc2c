"""Motion gating on real car-park footage: far fewer model calls, the same violations."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import cv2
import pytest
from pydantic import ValidationError

from nonsite.ingest import decode_image, open_source
from nonsite.rules import SiteConfig
from nonsite.runner import build_pipeline
from nonsite.vision.motion import MotionGate, MotionSpec

from .conftest import WHOLE_LOT

START = datetime.fromisoformat("2026-11-24T08:00:00+08:00")


def _static_replay(parking_frames, folder, repeats=8):
    """The 21 real frames, each shown ``repeats`` times in a row: a camera whose picture is still
    most of the time, as a car-park camera's is."""
    folder.mkdir()
    for number, image in enumerate(parking_frames):
        for again in range(repeats):
            shutil.copyfile(image, folder / f"{number:03d}_{again:02d}{image.suffix}")
    return folder


def _config(folder, motion):
    raw = json.loads(json.dumps(WHOLE_LOT))
    raw["source"].update(uri=str(folder), frame_interval_s=5)
    if motion is not None:
        raw["detection"] = {"motion": motion}
    return SiteConfig.model_validate(raw)


def test_gating_on_replayed_real_footage_cuts_model_calls_and_keeps_the_violations(settings, parking_frames, tmp_path):
    folder = _static_replay(parking_frames, tmp_path / "replay")
    ungated = _config(folder, None)
    gated = _config(folder, {})
    off = build_pipeline(ungated, settings).run(open_source(ungated.source))
    pipeline = build_pipeline(gated, settings)
    on = pipeline.run(open_source(gated.source))

    assert off.frames == on.frames == 21 * 8
    assert off.model_frames == off.frames
    assert on.model_frames == pipeline.gate.looked and pipeline.gate.frames == on.frames
    assert on.model_frames * 3 <= off.model_frames, (on.model_frames, off.model_frames)

    # The same violations, as the very same packs: where a watched car's confidence sits at a rule's
    # threshold, the model looks again at any picture that is not identical to the last one it saw.
    print(f"model frames: {off.model_frames} without gating, {on.model_frames} with; packs {len(off.packs)} / {len(on.packs)}")
    assert len(off.packs) >= 20
    def facts(packs):
        return {(p.pack_id, p.manifest.times.first_seen, p.manifest.times.last_seen, p.manifest.dwell_s) for p in packs}

    same = facts(off.packs) & facts(on.packs)
    assert len(same) == len(off.packs) == len(on.packs), f"only {len(same)} of {len(off.packs)} packs identical"
    assert not any(p.new for p in on.packs)  # each was already stored by the run without gating


@pytest.fixture()
def car_park(parking_frames):
    return decode_image(parking_frames[0])


def _with_car(image, x):
    """The real car park with a dark car-sized block at ``x`` on the aisle."""
    frame = image.copy()
    cv2.rectangle(frame, (x, 300), (x + 60, 340), (30, 30, 35), -1)
    return frame


def _with_clock(image, second):
    """The real car park with a burnt-in timestamp overlay (white on black) in its top-left corner."""
    frame = image.copy()
    cv2.rectangle(frame, (0, 0), (420, 40), (0, 0, 0), -1)
    cv2.putText(frame, f"2026-11-24 08:{second:02d}:{second:02d}", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 3)
    return frame


def test_a_moving_object_makes_the_model_look_and_a_still_picture_does_not(car_park):
    gate = MotionGate(MotionSpec(recheck_s=60))
    at = lambda s: START + timedelta(seconds=s)  # noqa: E731
    assert gate.look(car_park, at(0))  # the first frame: nothing known yet
    assert not gate.look(car_park, at(1))
    assert gate.look(_with_car(car_park, 300), at(2))  # a car drives in
    assert gate.look(_with_car(car_park, 340), at(3))  # and on
    assert gate.look(_with_car(car_park, 380), at(4))  # and stops
    assert not gate.look(_with_car(car_park, 380), at(5)) and not gate.look(_with_car(car_park, 380), at(6))
    assert (gate.frames, gate.looked) == (7, 4)


def test_the_model_rechecks_a_still_camera_so_parked_cars_stay_confirmed(car_park):
    gate = MotionGate(MotionSpec(recheck_s=30))
    looks = [s for s in range(0, 95, 5) if gate.look(car_park, START + timedelta(seconds=s))]
    assert looks == [0, 30, 60, 90]


def test_change_inside_a_mask_is_ignored_and_outside_it_is_not(car_park):
    corner = [[0, 0], [0.5, 0], [0.5, 0.1], [0, 0.1]]
    masked = MotionGate(MotionSpec(recheck_s=600, mask=[corner]))
    unmasked = MotionGate(MotionSpec(recheck_s=600))
    verdicts = {"masked": [], "unmasked": []}
    for second in range(10):
        frame, at = _with_clock(car_park, second * 7 % 60), START + timedelta(seconds=second)
        verdicts["masked"].append(masked.look(frame, at))
        verdicts["unmasked"].append(unmasked.look(frame, at))
    assert verdicts["masked"] == [True] + [False] * 9  # the ticking clock never wakes the model
    assert any(verdicts["unmasked"][1:])  # without the mask it does (until MOG2 learns the flicker as background)
    assert masked.look(_with_car(_with_clock(car_park, 10), 300), START + timedelta(seconds=10))  # a car still does


def test_motion_settings_are_checked_with_the_site_config(parking_frames, tmp_path):
    folder = tmp_path / "frames"
    assert _config(folder, None).detection.motion is None  # no gating unless asked for
    spec = _config(folder, {"recheck_s": 20, "mask": [[[0, 0], [1, 0], [1, 0.05]]]}).detection.motion
    assert (spec.width, spec.recheck_s, spec.min_changed) == (320, 20, 0.002)
    for wrong in ({"mask": [[[0, 0], [1.5, 0], [1, 0.05]]]}, {"mask": [[[0, 0], [1, 0]]]}, {"recheck_s": 0},
                  {"min_changed": 0}, {"width": 8}, {"every": 3}):
        with pytest.raises(ValidationError):
            _config(folder, wrong)
