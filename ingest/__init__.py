"""Ingest: turn cameras, video files and image folders into a stream of ``Frame`` values."""
from collections.abc import Iterator

from .config import SourceSpec
from .errors import SourceError
from .folder import decode_image, list_images, read_folder
from .frame import Frame, GeoPoint
from .health import CameraHealth, CameraState, DetectorHealth, FleetStatus, NodeHealth, StatusFolder, StatusUnreadable
from .ring import Clip, ClipFrame, FrameRing
from .stream import LiveStream
from .video import read_video


def open_source(spec: SourceSpec) -> Iterator[Frame]:
    """Frames of one source; a live stream yields until its iterator is closed."""
    if spec.kind == "video":
        return read_video(spec)
    if spec.kind == "folder":
        return read_folder(spec)
    return _live(spec)


def _live(spec: SourceSpec) -> Iterator[Frame]:
    stream = LiveStream(spec)
    try:
        yield from stream
    finally:
        stream.close()


__all__ = [
    "CameraHealth", "CameraState", "Clip", "ClipFrame", "DetectorHealth", "FleetStatus", "Frame", "FrameRing", "GeoPoint", "LiveStream",
    "SourceError", "SourceSpec", "StatusFolder", "StatusUnreadable", "decode_image", "list_images", "open_source",
]
