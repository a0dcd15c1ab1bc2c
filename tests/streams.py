"""Live cameras on loopback from real footage.

RTSP: FFmpeg publishes an H.264 video, looped in real time, to Debian's rtsp-server-perl, which
serves it to any number of RTSP clients (over UDP, the transport that server offers). HTTP: FFmpeg
sends the same video as MPEG-TS, served to every client of one port per camera, so one camera can
be taken down and brought back while the others go on."""
from __future__ import annotations

import queue
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nonsite.ingest.probe import diagnose

FFMPEG = shutil.which("ffmpeg")
RTSP_SERVER = shutil.which("rtsp-server-perl")
DEBIAN_PYTHON = "/usr/bin/python3"  # has python3-gi, which GStreamer's RTSP server needs (tests/rtsp_tcp_camera.py)


def need_stream_tools() -> None:
    if not FFMPEG or not RTSP_SERVER:
        pytest.fail("ffmpeg and rtsp-server-perl are needed (make system-deps installs them)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {within_s} s")


def wait_until(predicate, within_s: float, what: str) -> float:
    """Seconds until ``predicate()`` held; fails the test naming ``what`` after ``within_s``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < within_s, f"{what}: not within {within_s} s"
        time.sleep(0.1)
    return time.monotonic() - started


def frame_number(path: Path) -> int:
    """The parking_lot_cctv files are named after the frame of the source video they were taken from."""
    return int(re.search(r"mp4-(\d+)_jpg", path.name).group(1))


def carpark_video(frames: list[Path], out: Path, seconds_each: float = 1.0, fps: int = 10) -> Path:
    """The real car-park frames in their video order, each shown ``seconds_each``, as an H.264 MP4
    with a key frame every second (what a CCTV camera's encoder sends)."""
    listing = out.with_suffix(".txt")
    ordered = sorted(frames, key=frame_number)
    listing.write_text("".join(f"file '{p}'\nduration {seconds_each}\n" for p in ordered) + f"file '{ordered[-1]}'\n")
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-vf", f"fps={fps},format=yuv420p",
                    "-c:v", "libx264", "-preset", "veryfast", "-g", str(fps), str(out)], check=True, timeout=120)
    return out


def rescaled(video: Path, out: Path, width: int = 428) -> Path:
    """The same footage at another width: at the default, what a camera's low-resolution sub-stream sends
    for detection; wider than the footage, a main stream of a bigger size (no more detail in it)."""
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(video), "-vf", f"scale={width}:-2", "-c:v", "libx264", "-preset",
                    "veryfast", "-g", "10", str(out)], check=True, timeout=120)
    return out


def key_frames_cut_short(video: Path, out: Path, every: int = 3) -> Path:
    """``video`` with the second half of every ``every``-th key frame's slice lost on the way (what a
    dropped RTP packet does), each frame otherwise as sent: such a key frame decodes without an
    error to a picture the decoder fills in, and FFmpeg flags it corrupt. (libx264 writes each key frame
    here as one slice, so every ``every``-th key-frame slice is every ``every``-th key frame.)"""
    raw = out.with_suffix(".h264")
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(video), "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(raw)],
                   check=True, timeout=60)
    data = raw.read_bytes()
    starts = [m.start() + 3 for m in re.finditer(b"\0\0\1", data)]
    units = zip(starts, [s - 3 for s in starts[1:]] + [len(data)], strict=True)
    key_slices = [(start, end) for start, end in units if data[start] & 0x1F == 5]
    kept = bytearray(data)
    for start, end in reversed(key_slices[1::every]):
        del kept[(start + end) // 2:end]
    raw.write_bytes(kept)
    subprocess.run([FFMPEG, "-v", "error", "-y", "-fflags", "+genpts", "-r", "10", "-i", str(raw), "-c", "copy", str(out)],
                   check=True, timeout=60)
    return out


class RtspServer:
    """rtsp-server-perl on two free loopback ports: publishers push to ``source_port``, cameras read from ``port``.

    It always takes UDP port 20000 for the RTP it receives, so only one runs at a time: the tests
    share one for the whole session (the ``rtsp`` fixture)."""

    def __init__(self, log_dir: Path):
        need_stream_tools()
        self.port, self.source_port = free_port(), free_port()
        self.log_dir = log_dir
        self.start()

    def start(self) -> None:
        """Start (again, on the same ports: a camera's RTSP server coming back after a reboot)."""
        self.log = (self.log_dir / "rtsp-server.log").open("ab")
        self.process = subprocess.Popen(
            [RTSP_SERVER, "--clientport", str(self.port), "--serverport", str(self.source_port),
             "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        wait_for_port(self.source_port)

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


class Publisher:
    """FFmpeg pushing ``video`` to ``server`` under ``path`` in real time, looping, until killed."""

    def __init__(self, server: RtspServer, path: str, video: Path):
        self.server, self.path, self.video = server, path, video
        self.process: subprocess.Popen | None = None

    def start(self, within_s: float = 15.0) -> "Publisher":
        """Publish, and return once the server offers the stream (a camera asking earlier gets a 404)."""
        self.process = subprocess.Popen(
            [FFMPEG, "-v", "error", "-re", "-stream_loop", "-1", "-i", str(self.video), "-c", "copy", "-f", "rtsp",
             f"rtsp://127.0.0.1:{self.server.source_port}/{self.path}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + within_s
        while not diagnose(self.server.url(self.path), timeout_s=1.0).ok:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path} not offered by the RTSP server within {within_s} s")
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class HttpCamera:
    """An HTTP camera on its own loopback port: FFmpeg sends the looped video in real time as
    MPEG-TS, and every client that GETs the address receives it from the moment it joined (the
    way NVRs and many IP cameras serve HTTP streams). ``kill`` takes the camera off the network;
    ``start`` brings it back on the same port."""

    def __init__(self, video: Path, port: int | None = None):
        self.video = video
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.server: ThreadingHTTPServer | None = None
        self._clients: list[queue.Queue] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.ts"

    @property
    def clients(self) -> int:
        """Readers receiving the stream now: a camera analysed twice would show two."""
        with self._lock:
            return len(self._clients)

    def start(self) -> "HttpCamera":
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                chunks: queue.Queue = queue.Queue(maxsize=256)
                with camera._lock:
                    camera._clients.append(chunks)
                try:
                    while (chunk := chunks.get(timeout=10)) is not None:
                        self.wfile.write(chunk)
                except (OSError, queue.Empty):
                    pass
                finally:
                    with camera._lock:
                        if chunks in camera._clients:
                            camera._clients.remove(chunks)

        self.process = subprocess.Popen(
            [FFMPEG, "-v", "error", "-re", "-stream_loop", "-1", "-i", str(self.video), "-c", "copy", "-f", "mpegts", "pipe:1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()
        return self

    def _pump(self, process: subprocess.Popen) -> None:
        while chunk := process.stdout.read1(65536):
            with self._lock:
                for client in list(self._clients):
                    try:
                        client.put_nowait(chunk)
                    except queue.Full:  # a client that does not read loses the stream, as from a real camera
                        self._clients.remove(client)
                        client.put(None)

    def kill(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        with self._lock:
            for client in self._clients:
                client.put(None)
            self._clients.clear()


class TcpRtspCamera:
    """A camera that serves RTSP itself and only over TCP (``tests/rtsp_tcp_camera.py``, GStreamer's RTSP
    server); every reader is played ``video`` from its start in real time. ``kill`` takes it off the
    network, ``start`` brings it back on the same port."""

    def __init__(self, video: Path, path: str = "ch1"):
        found = subprocess.run([DEBIAN_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"], capture_output=True)
        if found.returncode != 0:
            pytest.fail("GStreamer's RTSP server for Debian's python3 is needed (make system-deps installs gir1.2-gst-rtsp-server-1.0)")
        self.video, self.path, self.port = video, path, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.path}"

    def start(self) -> "TcpRtspCamera":
        self.process = subprocess.Popen([DEBIAN_PYTHON, str(Path(__file__).with_name("rtsp_tcp_camera.py")), str(self.port), self.path,
                                         str(self.video)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
