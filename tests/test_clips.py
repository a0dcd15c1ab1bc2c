"""Event clips: a real H.264 video of the car park through the real pipeline; every pack carries the
seconds before first seen through last seen as an MP4 that decodes, verifies, and plays on the pack page.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from nonsite.cli import main
from nonsite.evidence import LocalStore, PackManifest, StoredPack, read_manifest, verify_pack
from nonsite.evidence import clips as clip_codec
from nonsite.evidence.clips import CLIP, ClipError, encode_mp4
from nonsite.evidence.dossiers import verify_dossier
from nonsite.evidence.manifest import KEY_FRAMES
from nonsite.evidence.queue import EvidenceQueue, dump_violation, load_violation
from nonsite.evidence.signing import PUBLIC_KEY
from nonsite.ingest import Frame, FrameRing, open_source
from nonsite.rules import SiteConfig, Violation
from nonsite.pipeline import Pipeline
from nonsite.runner import build_pipeline
from nonsite.settings import Settings
from nonsite.vision import Detection

from .conftest import MODELS, SESSION_KEYS, WHOLE_LOT
from .officers import login
from .test_browser import _wait_until, browser, log_in, server  # noqa: F401 - the pack page plays the clip in real Chromium

START = datetime(2026, 11, 24, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SHOWN_S = 10  # each real frame stays this long on the replayed camera
VIDEO_FPS = 2
SAMPLE_FPS = 0.5  # one frame in four of the video reaches the model: every 2 s
BEFORE_S = 10.0  # the default clip_before_s
MIDDLE_ROWS = [[200, 300], [460, 300], [460, 400], [200, 400]]  # a few cars, one of which arrives 100 s in: fewer packs to build


def _h264_video(frames: list[Path], path: Path) -> Path:
    """The 21 real car-park frames as an H.264 MP4 of a still camera: each picture held SHOWN_S seconds."""
    held = b"".join(frame.read_bytes() * (SHOWN_S * VIDEO_FPS) for frame in frames)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "image2pipe", "-framerate", str(VIDEO_FPS), "-i", "-",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-threads", "1", "-y", str(path)],
                   input=held, check=True, timeout=300)
    return path


def _config(kind: str, uri: Path, **source) -> SiteConfig:
    raw = json.loads(json.dumps(WHOLE_LOT))
    raw["zones"][0]["polygon"] = MIDDLE_ROWS
    raw["source"] = {"id": f"cam-carpark-{kind}", "kind": kind, "uri": str(uri), "start_time": START.replace(tzinfo=None).isoformat(),
                     **source}
    return SiteConfig.model_validate(raw)


class RecordingSink:
    """The real sink, remembering each violation it was handed with its key frames' detections."""

    def __init__(self, sink):
        self.sink = sink
        self.handed: list[tuple[Violation, dict[str, list[Detection]]]] = []

    def submit(self, violation, spec, detections_of) -> StoredPack:
        self.handed.append((violation, {name: detections_of(getattr(violation, name)) for name in KEY_FRAMES}))
        return self.sink.submit(violation, spec, detections_of)


@dataclass
class Run:
    settings: Settings
    config: SiteConfig
    packs: list[StoredPack]
    handed: list[tuple[Violation, dict[str, list[Detection]]]]

    def manifest(self, pack: StoredPack) -> PackManifest:
        return read_manifest(self.settings.open_store(), pack.pack_id)

    def clip_bytes(self, pack: StoredPack) -> bytes:
        return self.settings.open_store().read(pack.pack_id, CLIP)


@pytest.fixture(scope="module")
def video_run(tmp_path_factory, parking_frames) -> Run:
    """The replayed camera through the real pipeline once (model, rules, sink), for every test here."""
    root = tmp_path_factory.mktemp("clips")
    video = _h264_video(parking_frames, root / "carpark.mp4")
    settings = Settings(data_dir=root / "var", models_dir=MODELS, keys_dir=SESSION_KEYS)
    config = _config("video", video, sample_fps=SAMPLE_FPS)
    pipeline = build_pipeline(config, settings)
    recording = pipeline.sink = RecordingSink(pipeline.sink)
    summary = pipeline.run(open_source(config.source))
    assert summary.frames == len(parking_frames) * SHOWN_S * SAMPLE_FPS
    assert summary.packs, "the replayed car park raised no parking pack"
    return Run(settings, config, summary.packs, recording.handed)


def _decoded_frames(data: bytes, folder: Path) -> tuple[int, float, tuple[int, int]]:
    """(frames, fps, (width, height)) of an MP4 as OpenCV's FFmpeg decodes it, every frame read."""
    path = folder / "clip.mp4"
    path.write_bytes(data)
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    count, size = 0, None
    while True:
        ok, image = capture.read()
        if not ok:
            break
        count += 1
        size = (image.shape[1], image.shape[0])
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return count, fps, size


def test_each_pack_carries_a_clip_that_decodes_spans_the_episode_and_verifies(video_run, tmp_path):
    store, public_key = video_run.settings.open_store(), video_run.settings.public_key()
    assert any(video_run.manifest(p).times.first_seen - timedelta(seconds=BEFORE_S) > START for p in video_run.packs)
    for pack in video_run.packs:
        manifest = video_run.manifest(pack)
        clip = manifest.clip
        assert clip is not None and clip.path == CLIP and CLIP in manifest.files
        # From clip_before_s before first seen (or the camera's first frame), through last seen, every sampled frame.
        assert clip.started_at == max(manifest.times.first_seen - timedelta(seconds=BEFORE_S), START)
        assert clip.ended_at == manifest.times.last_seen
        assert clip.fps == SAMPLE_FPS
        assert clip.frames == (clip.ended_at - clip.started_at).total_seconds() * SAMPLE_FPS + 1
        frames, fps, size = _decoded_frames(video_run.clip_bytes(pack), tmp_path)
        assert frames == clip.frames and fps == pytest.approx(SAMPLE_FPS) and size == (854, 480)
        report = verify_pack(store, pack.pack_id, public_key=public_key)
        assert report.ok, report.problems
        assert report.checked == len(manifest.files) and "signature valid" in report.notes


def test_a_clip_altered_by_one_byte_fails_verification_naming_it(video_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NONSITE_DATA_DIR", str(tmp_path / "var"))
    pack = video_run.packs[0]
    copy = tmp_path / "packs"
    shutil.copytree(video_run.settings.open_store().root / pack.pack_id, copy / pack.pack_id)
    stored = copy / pack.pack_id / CLIP
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))

    report = verify_pack(LocalStore(copy), pack.pack_id, public_key=video_run.settings.public_key())
    assert [p.split(" ")[:2] for p in report.problems] == [[f"{CLIP}:", "altered"]]
    capsys.readouterr()
    assert main(["verify", "--dir", str(copy), "--public-key", str(SESSION_KEYS / PUBLIC_KEY)]) == 1
    assert f"{CLIP}: altered" in capsys.readouterr().out


def test_a_queued_violation_keeps_its_clip_and_makes_the_same_video(video_run, tmp_path):
    violation, detections = video_run.handed[0]
    assert violation.clip is not None
    again, _, _ = load_violation(dump_violation(violation, video_run.config.evidence, detections))
    assert again.clip == violation.clip

    queued = Settings(data_dir=tmp_path / "var", models_dir=MODELS, keys_dir=SESSION_KEYS)
    with EvidenceQueue(queued.sink, tmp_path / "evidence-queue") as queue:
        pack_id = queue.accept(violation, video_run.config.evidence, detections)
        assert queue.wait_idle(timeout=120)
    inline = next(p for p in video_run.packs if p.pack_id == pack_id)
    store = queued.open_store()
    assert store.read(pack_id, CLIP) == video_run.clip_bytes(inline)  # encoding is deterministic
    assert read_manifest(store, pack_id).clip == video_run.manifest(inline).clip
    assert verify_pack(store, pack_id, public_key=queued.public_key()).ok


def test_a_pack_is_stored_without_its_clip_when_ffmpeg_fails(video_run, tmp_path, monkeypatch, caplog):
    violation, detections = video_run.handed[0]
    monkeypatch.setattr(clip_codec, "FFMPEG", str(tmp_path / "no-ffmpeg-here"))
    with pytest.raises(ClipError, match="no-ffmpeg-here not found"):
        encode_mp4(violation.clip)

    settings = Settings(data_dir=tmp_path / "var", models_dir=MODELS, keys_dir=SESSION_KEYS)
    by_seq = {getattr(violation, name).frame.seq: found for name, found in detections.items()}
    with caplog.at_level(logging.WARNING, logger="nonsite.evidence.clips"):
        stored = settings.sink.submit(violation, video_run.config.evidence, lambda key: by_seq[key.frame.seq])
    assert stored.manifest.clip is None and CLIP not in stored.manifest.files
    assert f"pack {stored.pack_id} stored without its clip" in caplog.text
    assert verify_pack(settings.open_store(), stored.pack_id, public_key=settings.public_key()).ok


def test_a_folder_camera_makes_packs_without_a_clip(settings, parking_frames):
    config = _config("folder", parking_frames[0].parent, frame_interval_s=30)
    pipeline = build_pipeline(config, settings)
    assert pipeline.ring is None
    summary = pipeline.run(open_source(config.source))
    assert summary.packs
    for pack in summary.packs:
        assert pack.manifest.clip is None and not any(path.startswith("clip/") for path in pack.manifest.files)


def _desk(run: Run, folder: Path):
    """The review app's context over a copy of the run's data folder, with the reviewer alice."""
    from nonsite.evidence import PackIndex, open_database
    from nonsite.review_ui import Context, add_user

    data = folder / "var"
    shutil.copytree(run.settings.data_dir, data)
    index = PackIndex(open_database(f"sqlite:///{data / 'nonsite.db'}"))
    add_user(index.engine, "alice", "alice-password", "reviewer")
    return Context(index, LocalStore(data / "evidence"), data / "sites", signer=run.settings.signer, public_key=run.settings.public_key())


def test_the_pack_page_plays_the_clip_and_only_the_officers_dossier_holds_it(video_run, tmp_path):
    from nonsite.evidence.schema import audit
    from nonsite.review_ui import create_app

    context = _desk(video_run, tmp_path)
    index = context.index
    alice = login(create_app(context), "alice")
    pack = video_run.packs[0]

    page = alice.get(f"/packs/{pack.pack_id}")
    assert page.status_code == 200
    video = re.search(r'<video [^>]*\bsrc="([^"]+)"', page.text)
    assert video is not None and video.group(1) == f"/api/packs/{pack.pack_id}/files/{CLIP}"
    played = alice.get(video.group(1))
    assert played.status_code == 200 and played.headers["content-type"] == "video/mp4"
    assert played.content == video_run.clip_bytes(pack)
    with index.engine.connect() as conn:  # unblurred footage: watching it is audited, as opening an original is
        downloads = [row.details for row in conn.execute(audit.select().where(audit.c.action == "pack.download"))]
    assert {"file": CLIP} in downloads

    # Seeking asks for parts of the clip (Safari plays no video without): exactly those bytes, each part audited with its range.
    whole = video_run.clip_bytes(pack)
    assert played.headers["accept-ranges"] == "bytes"
    middle = alice.get(video.group(1), headers={"Range": f"bytes={len(whole) // 2}-"})
    assert middle.status_code == 206 and middle.content == whole[len(whole) // 2:]
    assert middle.headers["content-range"] == f"bytes {len(whole) // 2}-{len(whole) - 1}/{len(whole)}"
    tail = alice.get(video.group(1), headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == whole[-100:]
    past = alice.get(video.group(1), headers={"Range": f"bytes={len(whole)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(whole)}"
    with index.engine.connect() as conn:
        parts = [row.details for row in conn.execute(audit.select().where(audit.c.action == "pack.download").order_by(audit.c.seq))][
            len(downloads):]
    assert parts == [{"file": CLIP, "range": f"{len(whole) // 2}-{len(whole) - 1}"},
                     {"file": CLIP, "range": f"{len(whole) - 100}-{len(whole) - 1}"}]  # the refused range read nothing

    decided = alice.post(f"/api/packs/{pack.pack_id}/decision", json={"decision": "confirm"})
    assert decided.status_code == 200, decided.text
    case_id = decided.json()["case_id"]
    for audience, holds_clip in (("officers", True), ("public", False)):
        response = alice.get(f"/api/cases/{case_id}/dossier", params={"audience": audience})
        assert response.status_code == 200
        dossier = tmp_path / f"{audience}.zip"
        dossier.write_bytes(response.content)
        names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
        assert (f"packs/{pack.pack_id}/{CLIP}" in names) is holds_clip
        report = verify_dossier(dossier, video_run.settings.public_key())
        assert report.ok and report.audience == audience, report.problems


def _frame(seconds: float) -> Frame:
    picture = np.full((1080, 1921, 3), int(seconds) % 256, np.uint8)  # odd width: the ring makes both sides even
    return Frame("cam-ring", int(seconds), START + timedelta(seconds=seconds), picture)


def test_the_ring_keeps_its_window_within_its_budget_and_clips_by_time():
    ring = FrameRing(seconds=30)
    for second in range(0, 100, 2):
        ring.add(_frame(second))
    kept = ring.clip(START, START + timedelta(hours=1))
    assert kept.started_at == START + timedelta(seconds=98 - 30) and kept.ended_at == START + timedelta(seconds=98)
    assert len(ring) == len(kept.frames) == 16 and kept.fps == pytest.approx(0.5)
    assert cv2.imdecode(np.frombuffer(kept.frames[0].data, np.uint8), cv2.IMREAD_COLOR).shape == (540, 960, 3)

    part = ring.clip(START + timedelta(seconds=80), START + timedelta(seconds=90))
    assert [f.at for f in part.frames] == [START + timedelta(seconds=s) for s in range(80, 91, 2)]
    assert ring.clip(START, START + timedelta(seconds=68)) is None  # one frame left of that span: no clip
    assert ring.clip(START, START + timedelta(seconds=10)) is None  # long gone

    small = FrameRing(seconds=3600, max_bytes=5 * len(kept.frames[0].data))
    for second in range(100):
        small.add(_frame(second))
        assert small.held_bytes <= small.max_bytes
    newest = small.clip(START, START + timedelta(hours=1))
    assert newest.ended_at == START + timedelta(seconds=99) and newest.started_at > START + timedelta(seconds=90)


def _key_frame(picture: Path, out: Path, *options: str) -> bytes:
    """``picture`` as one libx264 key frame in Annex B with its parameter sets (what a camera sends), after ``options``."""
    from .streams import FFMPEG

    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(picture), *options, "-frames:v", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-f", "h264", str(out)], check=True, timeout=60)
    return out.read_bytes()


def test_the_ring_keeps_a_wide_key_frame_the_reader_did_not_decode_as_sent(parking_frames, tmp_path):
    """A sub-stream camera's 1920 x 1080 main-stream key frame, never decoded by the reader, is kept as sent:
    decoding it only to shrink it would cost more than the rest of the camera's work. The same key frame
    decoded by the reader is shrunk to a 960 px JPEG, as every picture that wide."""
    from nonsite.ingest.h264 import EncodedPicture, decode_key_frame

    data = _key_frame(parking_frames[0], tmp_path / "key.h264", "-vf", "scale=1920:1080")
    undecoded = Frame("cam-ring", 0, START, EncodedPicture(data, (1920, 1080)), key_frame_h264=data)
    decoded = Frame("cam-ring", 1, START + timedelta(seconds=1), decode_key_frame(data, "the test's key frame"), key_frame_h264=data)
    ring = FrameRing(seconds=30)
    ring.add(undecoded)
    ring.add(decoded)
    as_sent, shrunk = ring.clip(START, START + timedelta(seconds=1)).frames
    assert (as_sent.codec, as_sent.data) == ("h264", data) and "image" not in vars(undecoded)  # never decoded
    assert np.array_equal(as_sent.picture(), decoded.image) and decoded.image.shape == (1080, 1920, 3)
    assert shrunk.codec == "jpeg" and cv2.imdecode(np.frombuffer(shrunk.data, np.uint8), cv2.IMREAD_COLOR).shape == (540, 960, 3)


def _mp4_pictures(data: bytes) -> list[np.ndarray]:
    import av

    with av.open(io.BytesIO(data)) as container:
        return [picture.to_ndarray(format="bgr24") for picture in container.decode(video=0)]


def _live_run(root: Path, carpark_video: Path, sub: Path | None = None) -> Run:
    """A live 10 fps camera with a key frame every second (the car-park footage; with ``sub``, a sub-stream
    too), sampled at 1 fps through the real pipeline until its first packs, from the reader's switch to key
    frames only (it measures the key-frame interval first)."""
    from nonsite.ingest import LiveStream

    from .streams import HttpCamera

    settings = Settings(data_dir=root / "var", models_dir=MODELS, keys_dir=SESSION_KEYS)
    cameras = [HttpCamera(carpark_video).start()] + ([HttpCamera(sub).start()] if sub else [])
    raw = json.loads(json.dumps(WHOLE_LOT))
    raw["source"] = {"id": "cam-kerb-keys", "kind": "stream", "uri": cameras[0].url, "sample_fps": 1,
                     **({"detect_uri": cameras[1].url} if sub else {})}
    raw["rules"][0].update(dwell_s=4, hold_s=2, grace_s=10)
    config = SiteConfig.model_validate(raw)
    pipeline = build_pipeline(config, settings)
    recording = pipeline.sink = RecordingSink(pipeline.sink)
    stream = LiveStream(config.source)

    def as_sent_only():
        frames = iter(stream)
        for frame in frames:
            if frame.key_frame_h264 is not None:
                yield frame
                break
        yield from frames

    def stop_after_the_first_packs(frame):
        if pipeline.raised or frame.seq > 40:
            stream.close()

    try:
        summary = pipeline.run(as_sent_only(), on_frame=stop_after_the_first_packs)
    finally:
        stream.close()
        for camera in cameras:
            camera.kill()
    assert summary.packs, f"no pack in {summary.frames} frames"
    return Run(settings, config, summary.packs, recording.handed)


@pytest.fixture(scope="module")
def key_frame_run(tmp_path_factory, carpark_video) -> Run:
    return _live_run(tmp_path_factory.mktemp("key-frames"), carpark_video)


def test_a_key_frame_cameras_clip_is_its_own_key_frames_unchanged(key_frame_run):
    """The reader decodes key frames only, the ring keeps them as the camera sent them, and the pack's
    MP4 holds them unchanged: its picture at the threshold is pixel-identical to the sealed key frame
    the rules judged (a second encoding would change pixels). The spool file gives the same bytes
    again; a clip with a JPEG among its frames, or a site that asks for it (``clip_as_sent: false``),
    is encoded instead: smaller, every frame still there."""
    settings, config = key_frame_run.settings, key_frame_run.config
    assert all({f.codec for f in violation.clip.frames} == {"h264"} for violation, _ in key_frame_run.handed)
    store = settings.open_store()
    for (violation, detections), pack in list(zip(key_frame_run.handed, key_frame_run.packs, strict=True))[:2]:
        video, manifest = store.read(pack.pack_id, CLIP), read_manifest(store, pack.pack_id)
        pictures = _mp4_pictures(video)
        assert len(pictures) == manifest.clip.frames == len(violation.clip.frames)
        at = [f.at for f in violation.clip.frames].index(violation.threshold.at)
        sealed = cv2.imdecode(np.frombuffer(store.read(pack.pack_id, manifest.key_frames["threshold"].original), np.uint8), cv2.IMREAD_COLOR)
        assert np.array_equal(pictures[at], sealed)
        assert verify_pack(store, pack.pack_id, public_key=settings.public_key()).ok

        again, _, _ = load_violation(dump_violation(violation, config.evidence, detections))
        assert again.clip == violation.clip and encode_mp4(again.clip) == video

        mixed = dataclasses.replace(violation.clip, frames=(dataclasses.replace(violation.clip.frames[0], data=violation.clip.frames[0].as_jpeg(),
                                                                                 codec="jpeg"), *violation.clip.frames[1:]))
        for clip, as_sent in ((mixed, True), (violation.clip, False)):  # a JPEG among them, or clip_as_sent: false
            smaller = encode_mp4(clip, as_sent)
            encoded = _mp4_pictures(smaller)
            assert len(encoded) == len(pictures) and len(smaller) < len(video) and not np.array_equal(encoded[at], sealed)
            assert np.abs(encoded[at].astype(int) - sealed).mean() < 4  # the same picture, encoded once more


def test_a_sub_stream_cameras_packs_are_sealed_from_its_main_streams_key_frames(tmp_path, carpark_video):
    """The model and the motion gate look at the 428 x 240 sub-stream; the main stream's key frames are not
    decoded when they arrive, only when a pack needs them: the sealed threshold picture is the main
    stream's 854 x 480 key frame, pixel-identical to the clip's picture at that moment, and the pack verifies."""
    from nonsite.ingest.h264 import EncodedPicture

    from .streams import rescaled

    run = _live_run(tmp_path, carpark_video, rescaled(carpark_video, tmp_path / "sub.mp4"))
    store, (violation, _), pack = run.settings.open_store(), run.handed[0], run.packs[0]
    threshold = violation.threshold.frame
    assert isinstance(threshold.picture, EncodedPicture) and threshold.detect_image.shape == (240, 428, 3)
    manifest = read_manifest(store, pack.pack_id)
    sealed = cv2.imdecode(np.frombuffer(store.read(pack.pack_id, manifest.key_frames["threshold"].original), np.uint8), cv2.IMREAD_COLOR)
    pictures = _mp4_pictures(store.read(pack.pack_id, CLIP))
    assert sealed.shape == (480, 854, 3) and np.array_equal(pictures[[f.at for f in violation.clip.frames].index(threshold.captured_at)], sealed)
    assert np.array_equal(threshold.image, sealed) and verify_pack(store, pack.pack_id, public_key=run.settings.public_key()).ok


def _sub_stream_camera_run(tmp_path: Path, camera_id: str, main: list[bytes], small: np.ndarray) -> tuple[Settings, Pipeline, list[str]]:
    """A sub-stream camera's second by second: each main-stream key frame of ``main`` as sent (the reader decodes none),
    the picture ``small`` for the model, through the real pipeline, model and evidence queue (spooled, as the camera
    service does) under the whole-lot rule. The settings, the pipeline and the packs stored, each verified."""
    from nonsite.ingest.h264 import EncodedPicture

    settings = Settings(data_dir=tmp_path / "var", models_dir=MODELS, keys_dir=SESSION_KEYS)
    raw = json.loads(json.dumps(WHOLE_LOT))
    raw["source"] = {"id": camera_id, "kind": "stream", "uri": "rtsp://127.0.0.1:1/main", "sample_fps": 1}
    raw["rules"][0].update(dwell_s=4, hold_s=2, grace_s=10)
    pipeline = build_pipeline(SiteConfig.model_validate(raw), settings)
    pipeline.queue = queue = EvidenceQueue(pipeline.sink, tmp_path / "queue").start()
    frames = [Frame(camera_id, seq, START + timedelta(seconds=seq), EncodedPicture(data, (854, 480)), detect_image=small,
                    key_frame_h264=data, time_source="stream_clock") for seq, data in enumerate(main)]
    assert pipeline.run(frames).frames == len(main) and pipeline.raised and queue.wait_idle(timeout=120)
    store = settings.open_store()
    stored = store.pack_ids()
    assert len(stored) == pipeline.raised and all(verify_pack(store, p, public_key=settings.public_key()).ok for p in stored)
    return settings, pipeline, stored


def _pack_page_in_chinese(settings: Settings, pack_id: str) -> str:
    """The pack page as a reviewer reading Chinese gets it."""
    from nonsite.review_ui import Context, add_user, create_app

    index = settings.open_index()
    add_user(index.engine, "alice", "alice-password", "reviewer")
    context = Context(index, settings.open_store(), settings.data_dir / "sites", signer=settings.signer, public_key=settings.public_key())
    page = login(create_app(context), "alice", "zh-CN").get(f"/packs/{pack_id}")
    assert page.status_code == 200
    return page.text


def test_a_main_stream_key_frame_that_does_not_decode_is_sealed_as_the_sub_stream_picture(parking_frames, tmp_path):
    """A sub-stream camera's main-stream key frames are kept as sent and decoded only for a pack. One damaged
    on the way with nothing to flag it (its slice header overwritten) does not decode: that used to fail the
    camera's thread when its violation was spooled, and its open episodes could not be saved. Now the frame
    shows the sub-stream picture the model analysed, scaled to the main picture's size: the violation goes
    through the spool, its pack is stored and verifies, every key frame says it is a stand-in (manifest, and
    the pack page in Chinese), and the camera's open episodes save and load."""
    from nonsite.evidence.episodes import EpisodeStore
    from nonsite.ingest.h264 import decode_key_frame

    sent = _key_frame(parking_frames[0], tmp_path / "key.h264")
    header = sent.find(b"\0\0\1\x65") + 4  # the IDR slice's first bytes: its header
    damaged = sent[:header] + b"\xff" * 8 + sent[header + 8 :]
    with pytest.raises(ValueError, match="not a decodable H.264 key frame"):
        decode_key_frame(damaged, "the damaged key frame")
    small = cv2.resize(cv2.imread(str(parking_frames[0])), (428, 240), interpolation=cv2.INTER_AREA)

    settings, pipeline, stored = _sub_stream_camera_run(tmp_path, "cam-damaged-main", [damaged] * 12, small)
    episodes = EpisodeStore(tmp_path / "episodes")
    episodes.save("cam-damaged-main", pipeline.engine.open_episodes(), START + timedelta(seconds=12))
    assert episodes.load("cam-damaged-main") is not None

    store = settings.open_store()
    enlarged = cv2.resize(small, (854, 480), interpolation=cv2.INTER_LINEAR)
    for pack_id in stored:
        for key in read_manifest(store, pack_id).key_frames.values():
            assert key.original_kind == "sub_stream_picture" and "not a decodable H.264 key frame" in key.stand_in
            sealed = cv2.imdecode(np.frombuffer(store.read(pack_id, key.original), np.uint8), cv2.IMREAD_COLOR)
            assert np.array_equal(sealed, enlarged)
    assert _pack_page_in_chinese(settings, stored[0]).count("此图为模型分析所用的子码流画面") == 3


def test_a_main_stream_key_frame_cut_short_on_the_way_is_left_out_of_the_clip_and_the_pack_says_so(parking_frames, tmp_path):
    """A sub-stream camera's main-stream key frames go into the clip as sent, never decoded by the reader. One cut
    short on the way decodes, without an error, to a picture the decoder filled in: it used to play in the clip
    as a smear the camera never showed. Now the clip leaves it out, the manifest lists when it was captured,
    every picture of the MP4 is the camera's own, the pack verifies, and the pack page says so in Chinese."""
    from nonsite.ingest.h264 import decode_key_frame

    sent = _key_frame(parking_frames[0], tmp_path / "key.h264")
    slice_at = sent.find(b"\0\0\1\x65") + 4
    cut = sent[: slice_at + (len(sent) - slice_at) // 2]  # the second half of the picture lost on the way
    with pytest.raises(ValueError, match="parts of it were lost"):
        decode_key_frame(cut, "the cut key frame", concealed=False)
    whole = decode_key_frame(sent, "the key frame", concealed=False)
    small = cv2.resize(whole, (428, 240), interpolation=cv2.INTER_AREA)

    cut_at = START + timedelta(seconds=2)
    settings, _, stored = _sub_stream_camera_run(tmp_path, "cam-cut-main", [sent, sent, cut, *[sent] * 9], small)
    store = settings.open_store()
    for pack_id in stored:
        manifest = read_manifest(store, pack_id)
        assert manifest.schema_id == "nonsite.pack/7" and manifest.clip.started_at < cut_at < manifest.clip.ended_at
        spanned = sum(manifest.clip.started_at <= START + timedelta(seconds=seq) <= manifest.clip.ended_at for seq in range(12))
        assert manifest.clip.left_out == [cut_at] and manifest.clip.frames == spanned - 1
        pictures = _mp4_pictures(store.read(pack_id, CLIP))
        assert len(pictures) == spanned - 1 and all(np.array_equal(picture, whole) for picture in pictures)
    assert "此时段内有 1 帧摄像机画面在传输中受损" in _pack_page_in_chinese(settings, stored[0])


@pytest.fixture()
def review(key_frame_run, tmp_path):
    """The desk over the key-frame camera's packs, for the served app of ``server``."""
    return _desk(key_frame_run, tmp_path)


def test_the_pack_page_plays_a_clip_of_the_cameras_key_frames_in_chromium(key_frame_run, server, browser):
    base, _ = server
    page = browser.new_page()
    log_in(page, base, "alice")
    page.goto(f"{base}/packs/{key_frame_run.packs[0].pack_id}")
    page.evaluate("() => { const video = document.querySelector('video'); video.muted = true; video.play(); }")
    _wait_until(page, "document.querySelector('video').currentTime >= 2", 30)
    assert page.evaluate("() => { const video = document.querySelector('video'); return [video.videoWidth, video.videoHeight, video.error]; }") \
        == [854, 480, None]
