"""A camera's H.264 key frames as it sent them: decoded alone, and only when a picture is needed.

A key frame in Annex B (what RTSP and MPEG-TS carry), with the stream's SPS and PPS in front,
decodes without any other frame. The clip ring keeps such frames instead of encoding pictures
again, and a camera with a sub-stream hands its main stream's key frames on undecoded
(``EncodedPicture``): the model and the motion gate look at the sub-stream, so the main picture
is decoded only for what needs its pixels (a pack's key frames), not at every sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import av
import numpy as np

START_CODES = (b"\0\0\1", b"\0\0\0\1")  # how Annex B H.264 begins each unit
_PARAMETER_SETS = (7, 8)  # NAL unit types: sequence (SPS) and picture (PPS) parameter sets
_SLICES = (1, 5)  # NAL unit types 1 to 5: a picture's coded slices


def parameter_sets(data: bytes) -> bytes:
    """A key frame's SPS and PPS units (its picture size and coding settings): two key frames with the
    same ones decode to pictures of the same size. Only the units before the first slice are read: the
    parameter sets come first in a key frame, and its slices are nearly all of its bytes."""
    found = []
    start = data.find(b"\0\0\1")
    while start != -1 and start + 3 < len(data):
        end = data.find(b"\0\0\1", start + 3)
        unit = data[start + 3 : end if end != -1 else len(data)]
        kind = unit[0] & 0x1F if unit else 0
        if _SLICES[0] <= kind <= _SLICES[1]:
            break
        if kind in _PARAMETER_SETS:
            found.append(b"\0\0\1" + unit.rstrip(b"\0"))
        start = end
    return b"".join(found)


def decode_key_frame(data: bytes, what: str, concealed: bool = True) -> np.ndarray:
    """The key frame's picture (BGR); ``ValueError`` naming ``what`` when it does not decode, and with
    ``concealed`` False also when the decoder had to fill in parts of it (a key frame cut short on the
    way decodes, without an error, to a picture that is mostly grey: FFmpeg flags it corrupt)."""
    decoder = av.CodecContext.create("h264", "r")
    try:
        pictures = decoder.decode(av.Packet(data)) + decoder.decode(None)
    except av.FFmpegError as exc:
        raise ValueError(f"{what} is not a decodable H.264 key frame: {exc}") from exc
    if not pictures:
        raise ValueError(f"{what} is not a decodable H.264 key frame: no picture in it")
    if not concealed and pictures[0].is_corrupt:
        raise ValueError(f"{what} is not a decodable H.264 key frame: parts of it were lost, the decoder filled them in")
    return pictures[0].to_ndarray(format="bgr24")


@dataclass(frozen=True)
class EncodedPicture:
    """A key frame not decoded yet, and the size it decodes to (known from an earlier key frame with the
    same parameter sets, so asking the size costs nothing)."""

    data: bytes = field(repr=False)
    size: tuple[int, int]  # (width, height)

    def decode(self) -> np.ndarray:
        """The picture; ``ValueError`` also when parts of it were lost (a frame then shows what stands in for it)."""
        return decode_key_frame(self.data, "the camera's key frame", concealed=False)
