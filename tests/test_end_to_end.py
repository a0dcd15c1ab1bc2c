"""The demo's real frames through the real model into packs that verify; one edited byte is named."""
from __future__ import annotations

import json

from nonsite.cli import main
from nonsite.demo import demo_scene
from nonsite.evidence import MANIFEST, verify_pack
from nonsite.ingest import open_source
from nonsite.runner import build_pipeline


def _run_scene(settings, source_id):
    config = demo_scene(settings, source_id)
    return config, build_pipeline(config, settings).run(open_source(config.source))


def test_parked_vehicles_in_the_loading_lane_become_verified_packs(settings):
    config, summary = _run_scene(settings, "cam-carpark-01")
    assert config.source.id == "cam-carpark-01"
    assert summary.frames == 21
    assert len(summary.packs) >= 1
    store, index = settings.open_store(), settings.open_index()
    for stored in summary.packs:
        assert stored.manifest.category == "illegal_parking"
        assert stored.manifest.dwell_s >= 180
        manifest = json.loads(store.read(stored.pack_id, MANIFEST))
        assert set(manifest["key_frames"]) == {"first_seen", "threshold", "last_seen"}
        assert manifest["models"][0]["name"] == "coco" and len(manifest["models"][0]["weights_sha256"]) == 64
        assert {"original/threshold.jpg", "annotated/threshold.jpg", "crops/subject_0.jpg"} <= set(manifest["files"])
        row = index.get(stored.pack_id)
        assert row.status == "pending_review"
        assert verify_pack(store, stored.pack_id, row.manifest_sha256).ok


def test_rerunning_the_same_frames_adds_no_duplicate_pack(settings):
    _, first = _run_scene(settings, "cam-plaza-02")
    _, second = _run_scene(settings, "cam-plaza-02")
    assert [p.pack_id for p in first.packs] == [p.pack_id for p in second.packs]
    assert all(p.new for p in first.packs) and not any(p.new for p in second.packs)
    assert len(settings.open_index().rows()) == len(first.packs) == 1
    assert first.packs[0].manifest.shop.name == "Plaza café (demo shop record)"


def test_verify_names_the_file_with_one_altered_byte(settings, capsys):
    _, summary = _run_scene(settings, "cam-plaza-02")
    pack_id = summary.packs[0].pack_id
    store = settings.open_store()
    assert main(["verify", pack_id]) == 0
    target = store.root / pack_id / "crops" / "subject_0.jpg"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", pack_id]) == 1
    out = capsys.readouterr().out
    assert "crops/subject_0.jpg: altered" in out and "annotated" not in out


def test_verify_catches_an_edited_manifest_and_a_missing_file(settings, capsys):
    _, summary = _run_scene(settings, "cam-plaza-02")
    pack_id = summary.packs[0].pack_id
    folder = settings.open_store().root / pack_id
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["dwell_s"] = 1.0
    (folder / MANIFEST).write_text(json.dumps(manifest))
    (folder / "annotated" / "last_seen.jpg").unlink()
    capsys.readouterr()
    assert main(["verify", pack_id]) == 1
    out = capsys.readouterr().out
    assert "manifest.json: altered" in out and "annotated/last_seen.jpg: missing" in out


def test_demo_prints_parking_spillover_and_construction_violations(settings, capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "illegal_parking" in out and "spillover_business" in out and "construction_activity" in out


def test_coco_and_the_excavator_model_run_together_on_a_site_camera(settings):
    config, summary = _run_scene(settings, "cam-plot-03")
    assert config.detection.models == ["coco", "excavator"]
    (pack,) = summary.packs
    assert pack.manifest.category == "construction_activity"
    manifest = json.loads(settings.open_store().read(pack.pack_id, MANIFEST))
    assert {m["name"] for m in manifest["models"]} == {"excavator"}
    assert manifest["key_frames"]["threshold"]["subject"][0]["class"] == "excavator"


def test_nonsite_run_on_a_video_file_config(settings, tmp_path, parking_frames, capsys):
    import cv2
    import yaml

    video = tmp_path / "carpark.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 1.0, (854, 480))
    for path in parking_frames:
        for _ in range(10):  # ten seconds per real frame: a 3.5-minute clip
            writer.write(cv2.imread(str(path)))
    writer.release()
    scene = demo_scene(settings, "cam-carpark-01").model_dump(mode="json")
    scene["source"] = {"id": "cam-video-01", "kind": "video", "uri": str(video), "sample_fps": 0.5, "start_time": "2026-11-23T09:00:00"}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(scene))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "site.yaml")]) == 0
    out = capsys.readouterr().out
    assert "cam-video-01: 105 frames" in out and "illegal_parking" in out
    bad = scene | {"zones": []}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["run", str(tmp_path / "bad.yaml")]) == 2
    assert "bad.yaml" in capsys.readouterr().out
