"""Zones that survive a resolution change, on the real car-park frames (854 x 480) and the real model:
a zone drawn at 1280 x 720 finds exactly what the same zone drawn at 854 x 480 finds, and a stream
whose frames grow mid-way keeps its zone over the same ground (scaled, and said so in the log)."""
from __future__ import annotations

import json
import logging
from dataclasses import replace

import cv2
import pytest
import yaml

from nonsite.ingest import open_source
from nonsite.rules import ConfigError, SiteConfig, load_config
from nonsite.runner import build_pipeline

from .conftest import WHOLE_LOT


def _config(datasets, polygon, frame=None) -> SiteConfig:
    raw = json.loads(json.dumps(WHOLE_LOT).replace("{datasets}", str(datasets)))
    raw["zones"][0].update({"polygon": polygon, **({"frame": frame} if frame else {})})
    return SiteConfig.model_validate(raw)


def _found(manifests) -> list[tuple]:
    """What each pack says was seen, independent of how the zone was written down."""
    return sorted((m.rule.id, m.key_frames["threshold"].seq, m.key_frames["first_seen"].seq,
                   tuple(tuple(round(v) for v in b.box) for b in m.key_frames["threshold"].subject))
                  for m in manifests)


def whole_lot_manifests(packed_data) -> list:
    """The packs the session's packed data holds for the whole-lot camera (its zone drawn at 854 x 480)."""
    from nonsite.evidence import LocalStore, PackIndex, open_database, read_manifest

    store = LocalStore(packed_data / "evidence")
    index = PackIndex(open_database(f"sqlite:///{packed_data / 'nonsite.db'}"))
    return [read_manifest(store, row.pack_id) for row in index.rows(source_id=WHOLE_LOT["source"]["id"])]


def test_a_zone_drawn_at_720p_finds_on_480p_frames_what_the_480p_zone_finds(datasets, settings, packed_data):
    drawn_480 = WHOLE_LOT["zones"][0]["polygon"]
    drawn_720 = [[x * 1280 / 854, y * 720 / 480] for x, y in drawn_480]
    reference = whole_lot_manifests(packed_data)
    scaled_config = _config(datasets, drawn_720, frame=[1280, 720])
    scaled = build_pipeline(scaled_config, settings).run(open_source(scaled_config.source))
    assert reference and _found(p.manifest for p in scaled.packs) == _found(reference)
    for pack in scaled.packs:  # the pack shows the zone where it was applied: over the 854 x 480 frame
        assert [[round(x), round(y)] for x, y in pack.manifest.zone.polygon] == drawn_480


def test_a_stream_whose_frames_grow_mid_way_keeps_its_zone_over_the_same_ground(datasets, settings, caplog):
    lower_right = [[427, 240], [854, 240], [854, 480], [427, 480]]
    config = _config(datasets, lower_right, frame=[854, 480])

    def growing(frames):
        for frame in frames:
            if frame.seq < 3:
                yield frame
            elif frame.seq < 11:  # the camera switched to 720p: decoded frames of the new size, no received bytes to seal
                yield replace(frame, picture=cv2.resize(frame.image, (1280, 720), interpolation=cv2.INTER_CUBIC), encoded=None)
            else:
                return

    with caplog.at_level(logging.WARNING, logger="nonsite.rules.engine"):
        summary = build_pipeline(config, settings).run(growing(open_source(config.source)))
    assert "frames changed from 854 x 480 to 1280 x 720" in caplog.text
    later = [p for p in summary.packs if p.manifest.key_frames["threshold"].seq >= 3]
    assert later, "no pack after the switch: nothing shows the zone was applied"
    print(f"\n[zones] {len(summary.packs)} packs, {len(later)} after the switch to 1280 x 720")
    for pack in later:
        threshold = pack.manifest.key_frames["threshold"]
        assert threshold.size == (1280, 720)
        assert [[round(x), round(y)] for x, y in pack.manifest.zone.polygon] == [[640, 360], [1280, 360], [1280, 720], [640, 720]]
        for box in threshold.subject:  # the cars stand in the lower right quarter, in 720p pixels
            x1, _, x2, y2 = box.box
            assert (x1 + x2) / 2 >= 640 and y2 >= 360


def test_a_zone_outside_the_frame_it_was_drawn_on_is_refused(tmp_path):
    raw = json.loads(json.dumps(WHOLE_LOT))
    raw["zones"][0].update({"polygon": [[0, 200], [1280, 200], [1280, 720], [0, 720]], "frame": [854, 480]})
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="outside the 854 x 480 frame"):
        load_config(tmp_path / "cam.yaml", SiteConfig)
