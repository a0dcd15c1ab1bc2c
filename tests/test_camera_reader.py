"""The camera reader on real loopback streams: states, named causes, fast reconnection, sampling."""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import cv2
import numpy as np
import pytest

from nonsite.fleet import snapshot_jpeg
from nonsite.ingest import LiveStream, SourceSpec
from nonsite.ingest.h264 import EncodedPicture, parameter_sets
from nonsite.ingest.health import CameraState
from nonsite.ingest.probe import diagnose, without_credentials

from .streams import HttpCamera, Publisher, TcpRtspCamera, free_port, key_frames_cut_short, rescaled, wait_until


class _WebServer:
    """Answers every GET with one fixed status and content type, like a camera's web interface."""

    def __init__(self, status: int, content_type: str = "text/html"):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_wrong_addresses_are_named_and_a_camera_that_is_down_is_not_called_misconfigured(rtsp, carpark_video):
    publisher = Publisher(rtsp, "gate-3", carpark_video).start()
    try:
        missing = diagnose(rtsp.url("gate-33"))
        assert not missing.ok and missing.misconfigured and "404" in missing.reason and "gate-33" in missing.reason
    finally:
        publisher.kill()
    refused = diagnose(f"rtsp://127.0.0.1:{free_port()}/cam")
    assert not refused.ok and not refused.misconfigured and "refused" in refused.reason
    for status, content_type, words in ((404, "text/html", "404"), (401, "text/html", "password"), (200, "text/html", "not a video")):
        web = _WebServer(status, content_type)
        try:
            found = diagnose(f"http://user:secret@127.0.0.1:{web.port}/video.mjpg")
        finally:
            web.close()
        assert not found.ok and found.misconfigured and words in found.reason, (status, found)
        assert "secret" not in found.reason
    assert without_credentials("rtsp://admin:pw@10.0.0.7:554/ch1") == "rtsp://10.0.0.7:554/ch1"


def test_a_mistyped_rtsp_path_is_reported_as_misconfigured_not_retried_silently(rtsp, carpark_video):
    publisher = Publisher(rtsp, "gate-3", carpark_video).start()
    stream = LiveStream(SourceSpec(id="cam-typo", kind="stream", uri=rtsp.url("gate-30"), rtsp_transport="udp"))
    frames = iter(stream)
    try:
        threading.Thread(target=lambda: next(frames, None), daemon=True).start()
        wait_until(lambda: stream.state == CameraState.failed, 30, "the reader gives up on a 404")
        assert stream.misconfigured and "404" in stream.reason and stream.frames_read == 0
    finally:
        stream.close()
        publisher.kill()


def test_a_killed_stream_is_read_again_within_seconds_of_coming_back(rtsp, carpark_video):
    publisher = Publisher(rtsp, "yard-1", carpark_video).start()
    spec = SourceSpec(id="cam-yard", kind="stream", uri=rtsp.url("yard-1"), sample_fps=2, rtsp_transport="udp", reconnect_max_s=30)
    stream = LiveStream(spec)
    seen: list = []
    reading = threading.Thread(target=lambda: [seen.append(f) for f in stream], daemon=True)
    try:
        reading.start()
        wait_until(lambda: len(seen) >= 4, 30, "first frames")
        assert stream.state == CameraState.live
        publisher.kill()  # the camera reboots: its stream and its RTSP server are gone
        rtsp.stop()
        wait_until(lambda: stream.state == CameraState.reconnecting, 20, "the reader notices the camera is gone")
        time.sleep(12)  # a long outage: the backoff has grown past the outage's end
        assert "refused" in stream.reason
        before = len(seen)
        rtsp.start()
        publisher.start()  # returns when the server offers the stream again
        back_after = wait_until(lambda: len(seen) > before, 30, "frames after the camera returned")
        assert back_after < 8, f"reconnected {back_after:.1f} s after the camera returned"
        assert stream.state == CameraState.live and stream.reconnects >= 1 and not stream.misconfigured
        started, count = time.monotonic(), len(seen)
        time.sleep(5)
        rate = (len(seen) - count) / (time.monotonic() - started)
        assert rate <= spec.sample_fps * 1.3, rate  # sampled at 2 fps ...
        # ... out of the camera's 10 fps, with a key frame every second: more often than key frames come,
        # so every frame is decoded and only the sampled ones are converted.
        assert not stream.key_frames_only and stream.frames_decoded > 3 * stream.frames_read
        assert [f.seq for f in seen] == list(range(len(seen)))
    finally:
        stream.close()
        publisher.kill()
        if rtsp.process.poll() is not None:
            rtsp.start()
        reading.join(10)


def test_at_one_frame_a_second_only_the_key_frames_are_decoded(carpark_video):
    """A 10 fps camera with a key frame every second, sampled at 1 fps: the decoder skips the nine
    other frames of each second (they are received, never decoded), and the frames still come at 1 fps."""
    camera = HttpCamera(carpark_video).start()
    stream = LiveStream(SourceSpec(id="cam-kerb", kind="stream", uri=camera.url, sample_fps=1))
    seen: list = []
    reading = threading.Thread(target=lambda: [seen.append(f) for f in stream], daemon=True)
    try:
        reading.start()
        wait_until(lambda: stream.key_frames_only, 30, "the reader switches to key frames only")
        received, decoded, count = stream.frames_received, stream.frames_decoded, len(seen)
        time.sleep(8)
        received, decoded = stream.frames_received - received, stream.frames_decoded - decoded
        assert received >= 60 and decoded * 5 <= received, (received, decoded)
        assert 6 <= len(seen) - count <= 10  # still one frame a second
    finally:
        stream.close()
        camera.kill()
        reading.join(10)


@pytest.mark.parametrize("sample_fps", [1, 2], ids=["key-frames-only", "every-frame-decoded"])
def test_a_key_frame_cut_short_on_the_way_is_counted_and_not_handed_on(carpark_video, tmp_path, sample_fps, caplog):
    """A camera whose every third key frame loses the second half of its slice on the way: FFmpeg fills
    the lost part in (grey or green) without an error. At 1 fps the reader decodes key frames only; at
    2 fps it decodes every frame, and the frames decoded from a filled-in key frame carry its damage
    until the next one. None of those pictures reaches the model or a pack, and they are counted; every
    picture handed on is a frame of the footage, pixel for pixel, and the others still come."""
    camera = HttpCamera(key_frames_cut_short(carpark_video, tmp_path / "cut.mp4")).start()
    stream = LiveStream(SourceSpec(id="cam-lossy", kind="stream", uri=camera.url, sample_fps=sample_fps))
    seen: list = []
    reading = threading.Thread(target=lambda: [seen.append(f) for f in stream], daemon=True)
    try:
        reading.start()
        if sample_fps == 1:
            wait_until(lambda: stream.key_frames_only, 30, "the reader switches to key frames only")
        else:
            wait_until(lambda: len(seen) >= 2, 30, "frames come")
        errors, count = stream.decode_errors, len(seen) + 1  # a frame decoded before the window may still be in flight
        time.sleep(9)
        errors, handed_on = stream.decode_errors - errors, seen[count:]
        assert stream.key_frames_only == (sample_fps == 1)
    finally:
        stream.close()
        camera.kill()
        reading.join(10)
    assert errors >= 2 and len(handed_on) >= 4 * sample_fps, (errors, len(handed_on))
    damage = [r for r in caplog.records if "cam-lossy: a picture arrived damaged" in r.getMessage()]
    assert len(damage) == 1  # once a minute at most, however many come
    with av.open(str(carpark_video)) as footage:
        frames = {hashlib.sha256(picture.to_ndarray(format="bgr24").tobytes()).digest() for picture in footage.decode(video=0)}
    assert all(hashlib.sha256(frame.image.tobytes()).digest() in frames for frame in handed_on)


def test_a_sub_stream_feeds_the_model_and_the_main_stream_the_evidence(carpark_video, registry, tmp_path):
    """A camera's low-resolution sub-stream for detection, its main stream for key frames: the model's
    boxes on the small picture land on the same cars in the main picture's pixels."""
    from nonsite.pipeline import _in_frame_pixels
    from nonsite.vision import box_iou

    main, sub = HttpCamera(carpark_video).start(), HttpCamera(rescaled(carpark_video, tmp_path / "sub.mp4")).start()
    stream = LiveStream(SourceSpec(id="cam-dual", kind="stream", uri=main.url, detect_uri=sub.url, sample_fps=2))
    try:
        frames = iter(stream)
        frame = next(frames)
        frame = next(frames)
    finally:
        stream.close()
        main.kill()
        sub.kill()
    assert frame.image.shape == (480, 854, 3) and frame.detect_image.shape == (240, 428, 3)
    assert frame.model_image is frame.detect_image and stream.state == CameraState.stopped
    coco = registry.detector("coco", "cpu")
    on_main = [d for d in coco.detect([frame.image])[0] if d.class_name == "car" and d.confidence >= 0.5]
    from_sub = [d for d in _in_frame_pixels(frame, coco.detect([frame.detect_image])[0]) if d.class_name == "car"]
    assert len(on_main) >= 5
    matched = [m for m in on_main if any(box_iou(m.box, s.box) >= 0.5 for s in from_sub)]
    assert len(matched) * 10 >= len(on_main) * 7, (len(matched), len(on_main))
    with pytest.raises(ValueError, match="only for kind: stream"):
        SourceSpec(id="cam-file", kind="video", uri="a.mp4", detect_uri="b.mp4")


def test_with_a_sub_stream_the_main_stream_is_decoded_only_where_its_pixels_are_needed(carpark_video, tmp_path):
    """At 1 fps from cameras with a key frame every second, the model and the gate look at the sub-stream:
    the main stream's key frames are handed on as sent, undecoded (only the first one is decoded, for its
    size), and a frame's picture decodes on demand to the very pixels of that key frame in the footage."""
    main, sub = HttpCamera(carpark_video).start(), HttpCamera(rescaled(carpark_video, tmp_path / "sub.mp4")).start()
    stream = LiveStream(SourceSpec(id="cam-lazy", kind="stream", uri=main.url, detect_uri=sub.url, sample_fps=1))
    seen: list = []
    reading = threading.Thread(target=lambda: [seen.append(f) for f in stream], daemon=True)
    try:
        reading.start()
        wait_until(lambda: any(isinstance(f.picture, EncodedPicture) for f in seen), 30, "main-stream key frames come undecoded")
        decoded, count = stream.main.frames_decoded, len(seen)
        time.sleep(6)
        assert stream.main.frames_decoded == decoded and len(seen) - count >= 4  # frames at 1 fps, none decoded
        assert stream.sub.frames_decoded > 0
    finally:
        stream.close()
        main.kill()
        sub.kill()
        reading.join(10)
    frame = seen[-1]
    assert isinstance(frame.picture, EncodedPicture) and frame.key_frame_h264 is frame.picture.data
    assert frame.size == (854, 480) and "image" not in vars(frame)  # the size is known without decoding
    assert frame.model_image is frame.detect_image and frame.detect_image.shape == (240, 428, 3)
    with av.open(str(carpark_video)) as footage:
        footage.streams.video[0].codec_context.skip_frame = "NONKEY"
        key_frames = [picture.to_ndarray(format="bgr24") for picture in footage.decode(video=0)]
    assert len(key_frames) >= 20 and any(np.array_equal(frame.image, k) for k in key_frames)
    snapshot = cv2.imdecode(np.frombuffer(snapshot_jpeg(frame), np.uint8), cv2.IMREAD_COLOR)  # the cameras page's
    assert snapshot.shape == (360, 640, 3)
    lost = EncodedPicture(parameter_sets(frame.picture.data), frame.size)  # its picture's slices lost
    damaged = replace(frame, picture=lost)
    assert np.array_equal(damaged.image, cv2.resize(frame.detect_image, (854, 480), interpolation=cv2.INTER_LINEAR))
    assert "not a decodable H.264 key frame" in damaged.stand_in  # the sub-stream picture stands in, and says so
    assert snapshot_jpeg(damaged) is None  # not shown, nor rechecked, as the camera's view
    half = replace(frame, picture=EncodedPicture(frame.picture.data[: len(frame.picture.data) // 2], frame.size))  # cut short
    assert np.array_equal(half.image, damaged.image) and "parts of it were lost" in half.stand_in  # not the decoder's grey fill
    alone = replace(frame, picture=lost, detect_image=None)  # nothing to stand in
    with pytest.raises(ValueError, match="not a decodable H.264 key frame"):
        alone.image  # noqa: B018 - decoding is what is tested
    assert snapshot_jpeg(alone) is None  # logged; the loop that reports every camera goes on


def test_a_camera_serving_rtsp_over_tcp_only_is_read_over_tcp_and_again_after_it_reboots(carpark_video):
    """nonsite's default transport against a camera that refuses UDP: real footage read at the sample
    rate over TCP, the camera's reboot noticed and its stream read again within seconds; asked for UDP,
    the same camera is reported as a misconfigured transport, not retried for ever."""
    camera = TcpRtspCamera(carpark_video).start()
    stream = LiveStream(SourceSpec(id="cam-tcp", kind="stream", uri=camera.url, sample_fps=2, reconnect_max_s=30))
    assert stream.spec.rtsp_transport == "tcp"
    seen: list = []
    reading = threading.Thread(target=lambda: [seen.append(f) for f in stream], daemon=True)
    udp = LiveStream(SourceSpec(id="cam-udp", kind="stream", uri=camera.url, rtsp_transport="udp"))
    try:
        reading.start()
        wait_until(lambda: len(seen) >= 4, 30, "first frames over TCP")
        assert stream.state == CameraState.live and seen[0].image.shape == (480, 854, 3)
        started, count = time.monotonic(), len(seen)
        time.sleep(4)
        assert (len(seen) - count) / (time.monotonic() - started) <= 2 * 1.3  # the newest frame at the sample rate, not 10 fps
        camera.kill()
        wait_until(lambda: stream.state == CameraState.reconnecting, 20, "the reader notices the camera is gone")
        before = len(seen)
        camera.start()
        back_after = wait_until(lambda: len(seen) > before, 30, "frames after the camera returned")
        assert back_after < 8, f"read again {back_after:.1f} s after the camera returned"
        assert stream.state == CameraState.live and stream.reconnects >= 1 and not stream.misconfigured

        frames = iter(udp)
        threading.Thread(target=lambda: next(frames, None), daemon=True).start()
        wait_until(lambda: udp.state == CameraState.failed, 30, "the reader gives up on a refused transport")
        assert udp.misconfigured and udp.frames_read == 0 and "rtsp_transport to tcp" in udp.reason, udp.reason
    finally:
        stream.close()
        udp.close()
        camera.kill()
        reading.join(10)
