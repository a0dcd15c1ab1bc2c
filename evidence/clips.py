"""Event clips: a violation's camera frames become the pack's H.264 MP4, which plays in any browser.

The frames are piped to FFmpeg as JPEGs and encoded with libx264 (yuv420p, one thread, bit-exact
muxing: the same frames always give the same bytes, as a rerun of a pack must). MP4's
``faststart`` moves the index to the front, so the file plays before it has fully loaded; FFmpeg
can only do that on a seekable file, so it writes to a temporary file rather than a pipe.

The rules decided on the key frames, which every pack seals as originals; the clip shows the
officer what happened around them. So when FFmpeg is missing or fails, ``attach_clip`` logs why
and the pack is stored without a clip: evidence is never held back for one.
"""
from __future__ import annotations

import dataclasses
import logging
import subprocess
import tempfile
from pathlib import Path

from nonsite.ingest import Clip
from nonsite.ingest.decoding import ImageRefused, picture_size
from nonsite.rules import Violation

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


def _command(clip: Clip, output: Path) -> list[str]:
    try:
        width, height = picture_size(clip.frames[0].jpeg)
    except ImageRefused as exc:
        raise ClipError(f"the clip's first frame is not a readable JPEG ({exc})") from exc
    # Every frame at the first one's size (a stream may change resolution mid-clip; libx264 cannot), and even
    # sides, which 4:2:0 needs.
    scale = f"scale={width // 2 * 2}:{height // 2 * 2},setsar=1"
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "image2pipe", "-framerate", str(_rate(clip)), "-c:v", "mjpeg",
            "-i", "-", "-vf", scale, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-threads", "1",
            "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-movflags", "+faststart",
            "-f", "mp4", "-y", str(output)]


def encode_mp4(clip: Clip) -> bytes:
    """The clip as an H.264 MP4 playing at ``clip.fps``; ``ClipError`` when FFmpeg is missing or fails."""
    if len(clip.frames) < 2 or _rate(clip) <= 0:
        raise ClipError(f"a clip needs two frames or more and a positive rate ({len(clip.frames)} frames at {clip.fps} fps)")
    with tempfile.TemporaryDirectory(prefix="nonsite-clip-") as folder:
        output = Path(folder) / "event.mp4"
        try:
            subprocess.run(_command(clip, output), input=b"".join(f.jpeg for f in clip.frames), capture_output=True,
                           check=True, timeout=_TIMEOUT_S)
        except FileNotFoundError as exc:
            raise ClipError(f"{FFMPEG} not found: install FFmpeg with libx264 (e.g. apt-get install ffmpeg)") from exc
        except OSError as exc:  # not executable, out of memory or processes
            raise ClipError(f"cannot run {FFMPEG}: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ClipError(f"{FFMPEG} took longer than {_TIMEOUT_S} s for {len(clip.frames)} frames") from exc
        except subprocess.CalledProcessError as exc:
            reason = exc.stderr.decode(errors="replace").strip().splitlines()
            raise ClipError(f"{FFMPEG} failed (exit {exc.returncode}): {reason[-1] if reason else 'no message'}") from exc
        data = output.read_bytes() if output.is_file() else b""
    if not data:
        raise ClipError(f"{FFMPEG} wrote no video for {len(clip.frames)} frames")
    return data


def attach_clip(violation: Violation) -> Violation:
    """The violation with its clip as the attachment ``clip/event.mp4`` and the clip's facts for the manifest;
    unchanged when it has no clip, or (logged) when the clip cannot be encoded."""
    clip = violation.clip
    if clip is None:
        return violation
    try:
        video = encode_mp4(clip)
    except ClipError as exc:
        log.warning("pack %s stored without its clip: %s", pack_id_for(violation), exc)
        return violation
    facts = ClipFacts(path=CLIP, started_at=clip.started_at, ended_at=clip.ended_at, frames=len(clip.frames), fps=_rate(clip))
    return dataclasses.replace(violation, attachments={**violation.attachments, CLIP: video},
                               extras={**violation.extras, "clip": facts.model_dump()})
