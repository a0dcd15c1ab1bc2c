"""Event clips: a violation's camera frames become the pack's H.264 MP4, which plays in any browser.

When every frame of the clip is an H.264 key frame as the camera sent it (a stream read at key
frames only: ``ingest.ring``), with one set of coding parameters, FFmpeg's MP4 muxer (through
PyAV) packs those frames unchanged, each at its capture time: the clip is the camera's own
pictures, each pixel-identical to what the pipeline analysed, and nothing is encoded. Any other
clip is piped to the FFmpeg command as JPEGs (key frames among them decoded first) and encoded with
libx264 (yuv420p, one thread). Either way the muxing is bit-exact: the same frames always give the
same bytes, as a rerun of a pack must. MP4's ``faststart`` moves the index to the front, so the
file plays before it has fully loaded; FFmpeg can only do that on a seekable file, so it writes to
a temporary file rather than a pipe.

A sub-stream camera's main-stream key frames reach the clip as sent, never decoded: one damaged on
the way (a lost packet) would play as a grey or green smear that the camera never showed. Each is
decoded once here, off the frame path (about 35 ms at 1080p), and one that does not decode whole is
left out of the video; the manifest lists when it was captured (``ClipFacts.left_out``). The key
frames a reader decoded itself were checked there already (``ingest.stream``).

The rules decided on the key frames, which every pack seals as originals; the clip shows the
officer what happened around them. So when FFmpeg is missing or fails, ``attach_clip`` logs why
and the pack is stored without a clip: evidence is never held back for one.
"""
from __future__ import annotations

import dataclasses
import logging
import subprocess
import tempfile
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av

from nonsite.ingest import Clip
from nonsite.ingest.decoding import ImageRefused, picture_size
from nonsite.ingest.h264 import decode_key_frame
from nonsite.rules import EvidenceSpec, Violation

from .manifest import ClipFacts
from .pack import pack_id_for

CLIP = "clip/event.mp4"
FFMPEG = "ffmpeg"
_TIMEOUT_S = 300  # a 10-minute clip at 5 fps encodes in well under a minute on one core

log = logging.getLogger(__name__)


class ClipError(RuntimeError):
    """The clip could not be encoded; the message names the problem."""


def _rate(clip: Clip) -> float:
    """Frames per second as FFmpeg is told and the manifest records it."""
    return round(clip.fps, 6)


_MS = Fraction(1, 1000)  # the as-sent MP4's time base


def _as_sent(clip: Clip) -> bool:
    """Whether the clip's frames can go into the MP4 unchanged: all key frames of one stream setting."""
    return all(f.codec == "h264" for f in clip.frames) and len({f.parameter_sets() for f in clip.frames}) == 1


def _command(clip: Clip, first_jpeg: bytes, output: Path) -> list[str]:
    """FFmpeg encoding the JPEGs it reads on stdin, at the first one's size."""
    try:
        width, height = picture_size(first_jpeg)
    except ImageRefused as exc:
        raise ClipError(f"the clip's first frame is not a readable JPEG ({exc})") from exc
    # Every frame at the first one's size (a stream may change resolution mid-clip; libx264 cannot), and even
    # sides, which 4:2:0 needs.
    scale = f"scale={width // 2 * 2}:{height // 2 * 2},setsar=1"
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "image2pipe", "-framerate", str(_rate(clip)), "-c:v", "mjpeg",
            "-i", "-", "-vf", scale, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-threads", "1",
            "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-movflags", "+faststart",
            "-f", "mp4", "-y", str(output)]


def _encode(clip: Clip, output: Path) -> None:
    try:
        jpegs = [f.as_jpeg() for f in clip.frames]
    except ValueError as exc:
        raise ClipError(str(exc)) from exc
    try:
        subprocess.run(_command(clip, jpegs[0], output), input=b"".join(jpegs), capture_output=True, check=True, timeout=_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise ClipError(f"{FFMPEG} not found: install FFmpeg with libx264 (e.g. apt-get install ffmpeg)") from exc
    except OSError as exc:  # not executable, out of memory or processes
        raise ClipError(f"cannot run {FFMPEG}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ClipError(f"{FFMPEG} took longer than {_TIMEOUT_S} s for {len(clip.frames)} frames") from exc
    except subprocess.CalledProcessError as exc:
        reason = exc.stderr.decode(errors="replace").strip().splitlines()
        raise ClipError(f"{FFMPEG} failed (exit {exc.returncode}): {reason[-1] if reason else 'no message'}") from exc


def _pack_as_sent(clip: Clip, output: Path) -> None:
    """The key frames into the MP4 unchanged, each at its capture time (ms after the first). Each goes in as
    one sample: a raw H.264 parser would merge two identical key frames of a still camera into one."""
    started = clip.frames[0].at
    offsets = []
    for kept in clip.frames:
        offsets.append(max(round((kept.at - started).total_seconds() * 1000), offsets[-1] + 1 if offsets else 0))
    last = round(1000 / _rate(clip))
    try:
        height, width = clip.frames[0].picture().shape[:2]
    except ValueError as exc:
        raise ClipError(str(exc)) from exc
    try:
        with av.open(str(output), "w", format="mp4", container_options={"movflags": "+faststart", "fflags": "+bitexact"}) as video:
            stream = video.add_mux_stream("h264", time_base=_MS, width=width, height=height)
            for kept, at, after in zip(clip.frames, offsets, [*offsets[1:], offsets[-1] + last], strict=True):
                packet = av.Packet(kept.data)
                packet.stream, packet.time_base, packet.pts, packet.dts, packet.duration = stream, _MS, at, at, after - at
                packet.is_keyframe = True
                video.mux(packet)
    except (av.FFmpegError, ValueError) as exc:
        raise ClipError(f"the camera's key frames could not be packed into an MP4: {exc}") from exc


def encode_mp4(clip: Clip, as_sent: bool = True) -> bytes:
    """The clip as an H.264 MP4 playing at ``clip.fps``, its camera's key frames unchanged where ``as_sent`` and
    the clip allows; ``ClipError`` when FFmpeg is missing or fails."""
    if len(clip.frames) < 2 or _rate(clip) <= 0:
        raise ClipError(f"a clip needs two frames or more and a positive rate ({len(clip.frames)} frames at {clip.fps} fps)")
    with tempfile.TemporaryDirectory(prefix="nonsite-clip-") as folder:
        output = Path(folder) / "event.mp4"
        (_pack_as_sent if as_sent and _as_sent(clip) else _encode)(clip, output)
        data = output.read_bytes() if output.is_file() else b""
    if not data:
        raise ClipError(f"{FFMPEG} wrote no video for {len(clip.frames)} frames")
    return data


def _whole(clip: Clip) -> tuple[Clip, list[datetime]]:
    """The clip without the key frames nobody had decoded that do not decode whole, and their capture times."""
    kept, left_out = [], []
    for frame in clip.frames:
        if frame.codec == "h264" and not frame.checked:
            try:
                decode_key_frame(frame.data, f"the clip frame of {frame.at.isoformat()}", concealed=False)
            except ValueError:
                left_out.append(frame.at)
                continue
        kept.append(frame)
    return dataclasses.replace(clip, frames=tuple(kept)), left_out


def attach_clip(violation: Violation, spec: EvidenceSpec) -> Violation:
    """The violation with its clip as the attachment ``clip/event.mp4`` and the clip's facts for the manifest;
    unchanged when it has no clip, or (logged) when the clip cannot be encoded."""
    if violation.clip is None:
        return violation
    clip, left_out = _whole(violation.clip)
    damaged = f"{len(left_out)} of the clip's {len(violation.clip.frames)} key frames arrived damaged and are left out"
    try:
        video = encode_mp4(clip, spec.clip_as_sent)
    except ClipError as exc:
        log.warning("pack %s stored without its clip: %s%s", pack_id_for(violation), exc, f" ({damaged})" if left_out else "")
        return violation
    if left_out:
        log.warning("pack %s: %s", pack_id_for(violation), damaged)
    facts = ClipFacts(path=CLIP, started_at=clip.started_at, ended_at=clip.ended_at, frames=len(clip.frames), fps=_rate(clip),
                      left_out=left_out or None)
    return dataclasses.replace(violation, attachments={**violation.attachments, CLIP: video},
                               extras={**violation.extras, "clip": facts.model_dump()})
