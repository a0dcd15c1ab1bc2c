"""A live MJPEG stream over real HTTP that dies mid-way: the source reconnects and keeps going."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2

from nonsite.ingest import LiveStream, SourceSpec


class _Camera:
    """An HTTP camera serving multipart JPEG at ~10 fps until it is killed."""

    def __init__(self, port: int, jpeg: bytes):
        self.port = port
        self.jpeg = jpeg
        self.alive = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while camera.alive.is_set():
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(camera.jpeg))
                        self.wfile.write(camera.jpeg + b"\r\n")
                        time.sleep(0.1)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.alive.set()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kill(self) -> None:
        self.alive.clear()
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stream_that_dies_midway_reconnects_and_delivers_newest_frames(parking_frames):
    image = cv2.imread(str(parking_frames[0]))
    ok, jpeg = cv2.imencode(".jpg", image)
    camera = _Camera(_free_port(), jpeg.tobytes())
    camera.start()
    stream = LiveStream(SourceSpec(id="cam-live", kind="stream", uri=f"http://127.0.0.1:{camera.port}/video.mjpg",
                                   sample_fps=5, reconnect_max_s=1), first_backoff_s=0.2)
    frames_before, frames_after = [], []
    killed_at = revived_at = None
    deadline = time.monotonic() + 60
    for frame in stream:
        assert frame.image.shape == image.shape
        if revived_at is None:
            frames_before.append(frame)
            if len(frames_before) == 5:
                camera.kill()
                killed_at = time.monotonic()
                time.sleep(2.0)  # the camera is down for two seconds
                camera.start()
                revived_at = time.monotonic()
        elif len(frames_after) < 5:
            frames_after.append(frame)
        else:
            break
        assert time.monotonic() < deadline, "stream never came back"
    stream.close()
    camera.kill()
    assert killed_at is not None and len(frames_after) == 5
    assert stream.reconnects >= 1
    assert [f.seq for f in frames_before + frames_after] == list(range(10))  # seq keeps counting across the outage
    assert stream.frames_decoded > stream.frames_read  # the camera sends 10 fps, we take 5: the others were decoded, not converted
