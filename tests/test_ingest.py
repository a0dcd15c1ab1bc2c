"""Frames from a real video file, an image folder (EXIF, file-name and interval times), and bad files."""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import cv2
import piexif
import pytest

from nonsite.ingest import SourceError, SourceSpec, open_source

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_video_file_is_sampled_at_the_configured_rate(tmp_path, parking_frames):
    path = tmp_path / "lot.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (854, 480))
    for image_path in parking_frames[:6]:
        image = cv2.imread(str(image_path))
        for _ in range(10):  # one second of video per real frame
            writer.write(image)
    writer.release()
    spec = SourceSpec(id="cam-video", kind="video", uri=str(path), sample_fps=2, start_time="2026-11-23T10:00:00")
    frames = list(open_source(spec))
    assert len(frames) == 12
    assert [f.seq for f in frames] == list(range(12))
    assert frames[0].captured_at == datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    assert frames[-1].captured_at - frames[0].captured_at == timedelta(seconds=5.5)
    assert frames[0].image.shape == (480, 854, 3)


def test_folder_in_time_order_with_times_from_exif(tmp_path, parking_frames):
    for minute, image_path in enumerate(parking_frames[:3]):
        stamp = f"2026:11:23 10:{minute:02d}:00".encode()
        exif = piexif.dump({"Exif": {piexif.ExifIFD.DateTimeOriginal: stamp}})
        target = tmp_path / f"shot-{(3 - minute) * 5}.jpg"  # names sort the other way round on purpose
        shutil.copy(image_path, target)
        piexif.insert(exif, str(target))
    frames = list(open_source(SourceSpec(id="cam-exif", kind="folder", uri=str(tmp_path), sample_fps=1)))
    assert [f.origin.rsplit("/", 1)[1] for f in frames] == ["shot-15.jpg", "shot-10.jpg", "shot-5.jpg"]
    assert [f.captured_at.strftime("%H:%M") for f in frames] == ["10:00", "10:01", "10:02"]


def test_folder_without_times_plays_in_natural_order(tmp_path, parking_frames):
    for number, image_path in zip((10, 2, 1), parking_frames):
        shutil.copy(image_path, tmp_path / f"frame-{number}.jpg")
    spec = SourceSpec(id="cam", kind="folder", uri=str(tmp_path), frame_interval_s=5)
    assert [f.origin.rsplit("/", 1)[1] for f in open_source(spec)] == ["frame-1.jpg", "frame-2.jpg", "frame-10.jpg"]


def test_folder_times_from_the_file_name(tmp_path, parking_frames):
    start = datetime(2026, 11, 23, 9, 30, tzinfo=SHANGHAI)
    moments = [start + timedelta(seconds=s) for s in (0, 30, 90)]
    for moment, image_path in zip(moments, parking_frames):
        shutil.copy(image_path, tmp_path / f"cam7_{moment:%Y%m%d_%H%M%S}.jpg")
    spec = SourceSpec(id="cam-7", kind="folder", uri=str(tmp_path), time_pattern=r"_(?P<ts>\d{8}_\d{6})")
    assert [f.captured_at for f in open_source(spec)] == moments


def test_folder_interval_and_sampling_drop_frames_faster_than_the_rate(tmp_path, parking_frames):
    for image_path in parking_frames[:8]:
        shutil.copy(image_path, tmp_path / image_path.name)
    spec = SourceSpec(id="cam", kind="folder", uri=str(tmp_path), frame_interval_s=0.5, sample_fps=1, start_time="2026-11-23T10:00:00")
    frames = list(open_source(spec))
    assert len(frames) == 4
    assert all(b.captured_at - a.captured_at == timedelta(seconds=1) for a, b in zip(frames, frames[1:]))


def test_a_corrupt_image_is_skipped_and_logged(tmp_path, parking_frames, caplog):
    shutil.copy(parking_frames[0], tmp_path / "a-1.jpg")
    (tmp_path / "a-2.jpg").write_bytes(parking_frames[1].read_bytes()[:200])  # truncated: undecodable
    (tmp_path / "a-3.jpg").write_bytes(b"this is not a picture")
    shutil.copy(parking_frames[2], tmp_path / "a-4.jpg")
    spec = SourceSpec(id="cam", kind="folder", uri=str(tmp_path), frame_interval_s=10)
    frames = list(open_source(spec))
    assert [f.origin.rsplit("/", 1)[1] for f in frames] == ["a-1.jpg", "a-4.jpg"]
    assert "a-3.jpg skipped: not a picture in a known format" in caplog.text
    assert "a-2.jpg skipped:" in caplog.text  # every skipped picture is named with its reason


def test_missing_sources_are_named(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        list(open_source(SourceSpec(id="cam", kind="folder", uri=str(tmp_path / "nothing"))))
    with pytest.raises(SourceError, match="no images"):
        list(open_source(SourceSpec(id="cam", kind="folder", uri=str(tmp_path))))
    (tmp_path / "clip.mp4").write_bytes(b"garbage")
    with pytest.raises(SourceError, match="cannot decode video"):
        list(open_source(SourceSpec(id="cam", kind="video", uri=str(tmp_path / "clip.mp4"))))
