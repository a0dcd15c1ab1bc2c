"""What a camera's main stream costs per sampled key frame: decoded (no sub-stream) or kept as sent.

A camera with a sub-stream (``source.detect_uri``) hands its main stream's key frames on undecoded
(``ingest/h264.EncodedPicture``): the model and the motion gate look at the sub-stream, and the
main picture is decoded only for a pack's key frames and the cameras page's snapshot. Without a
sub-stream, every sampled key frame of the main stream is decoded and converted to BGR.

This script times both on the real car-park footage at its own 854 x 480 and scaled to 1920 x 1080
(what most bureau cameras send as their main stream), H.264 with a key frame every second, one
decoding thread, CPU time per key frame: decoded and converted (what the reader does without a
sub-stream) vs kept as sent (the bytes copied and their parameter sets read, what it does with one).

    .venv/bin/python benchmarks/main_stream_decoding.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import av

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nonsite.ingest import list_images  # noqa: E402
from nonsite.ingest.h264 import parameter_sets  # noqa: E402
from tests.streams import FFMPEG, carpark_video  # noqa: E402 - the tests' footage

KEY_FRAMES = 60


def key_frames(video: Path) -> tuple[list[av.Packet], av.video.stream.VideoStream, av.container.InputContainer]:
    container = av.open(str(video))
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1
    stream.codec_context.skip_frame = "NONKEY"
    return [p for p in container.demux(stream) if p.size and p.is_keyframe][:KEY_FRAMES], stream, container


def cpu_ms_each(packets: list[av.Packet], work) -> float:
    started = time.process_time()
    for packet in packets:
        work(packet)
    return (time.process_time() - started) / len(packets) * 1000


def decode(context, packet: av.Packet) -> None:
    """What the reader does with a sampled key frame without a sub-stream."""
    pictures = packet.decode() + context.decode(None)
    context.flush_buffers()
    pictures[0].to_ndarray(format="bgr24")


def keep(context, packet: av.Packet) -> None:
    """What it does with one: the bytes as sent, and their parameter sets read (the picture's size)."""
    parameter_sets((context.extradata or b"") + bytes(packet))


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="nonsite-main-stream-"))
    datasets = Path(os.environ.get("NONSITE_DATASETS_DIR", REPO.parent / "shared" / "datasets"))
    native = carpark_video(list_images(datasets / "parking_lot_cctv" / "images"), work / "carpark.mp4", seconds_each=4)
    full_hd = work / "carpark-1080.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(native), "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "veryfast",
                    "-g", "10", str(full_hd)], check=True, timeout=600)
    print(f"CPU ms per sampled key frame, {KEY_FRAMES} key frames each, one decoding thread")
    for video in (native, full_hd):
        packets, stream, container = key_frames(video)
        context = stream.codec_context
        decoded, kept = cpu_ms_each(packets, partial(decode, context)), cpu_ms_each(packets, partial(keep, context))
        size = sum(p.size for p in packets) / len(packets) / 1000
        print(f"  {context.width} x {context.height} ({size:.0f} KB a key frame): decoded {decoded:.1f} ms, kept as sent {kept:.2f} ms "
              f"({decoded / kept:.0f}x)")
        container.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
