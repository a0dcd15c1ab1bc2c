"""What evidence keeps on disk between runs (the queue's spool files, the episode store): lossless codecs, durable writes.

Both write values that must come back *equal* after a crash or restart, not merely similar: a
datetime keeps its zone's name (not only its offset), tuples stay tuples, a detection keeps every
field, and a frame's picture is stored bit-exactly (the bytes the source delivered when they
decode to exactly the analysed picture, a lossless PNG otherwise). Keeping the codecs in one
module keeps the two file formats from drifting apart.
"""
from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from nonsite.ingest import Frame, GeoPoint
from nonsite.vision import Detection

# Lossless PNG for pictures kept between runs: deflate at its fastest level, and every row filtered with
# SUB instead of OpenCV's default of trying each filter per row. On camera frames the two give files
# of the same size, and the fixed filter takes two thirds of the time (13.5 vs 20.5 ms at 854 x 480):
# a fleet re-saves its cameras' open episodes every 30 s. (OpenCV older than 4.11 has no filter
# choice and keeps its default.)
_LOSSLESS = [cv2.IMWRITE_PNG_COMPRESSION, 1] + (
    [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB] if hasattr(cv2, "IMWRITE_PNG_FILTER") else [])


def when(at: datetime) -> dict:
    """A datetime with its zone's name, so it comes back with the same tzinfo (not only the same offset)."""
    zone = at.tzinfo.key if isinstance(at.tzinfo, ZoneInfo) else None
    return {"iso": at.isoformat(), "zone": zone}


def moment(value: dict) -> datetime:
    """The datetime ``when`` wrote."""
    result = datetime.fromisoformat(value["iso"])
    return result.astimezone(ZoneInfo(value["zone"])) if value["zone"] else result


def plain(value):
    """JSON for free-form values: tuples, datetimes, bytes and numpy scalars are tagged so they come back as they were."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [plain(v) for v in value]}
    if isinstance(value, datetime):
        return {"$datetime": when(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: plain(v) for k, v in value.items()}
        return {"$dict": [[plain(k), plain(v)] for k, v in value.items()]}
    raise TypeError(f"cannot serialise a {type(value).__name__}")


def unplain(value):
    """The value ``plain`` wrote."""
    if isinstance(value, list):
        return [unplain(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag == "$tuple":
            return tuple(unplain(v) for v in inner)
        if tag == "$datetime":
            return moment(inner)
        if tag == "$bytes":
            return base64.b64decode(inner)
        if tag == "$dict":
            return {unplain(k): unplain(v) for k, v in inner}
    return {k: unplain(v) for k, v in value.items()}


def detection_json(d: Detection) -> dict:
    """Every field of a detection, tagged so tuples and numpy values come back as they were."""
    return plain({f.name: getattr(d, f.name) for f in dataclasses.fields(Detection)})


def detection_from(value: dict) -> Detection:
    """The detection ``detection_json`` wrote."""
    return Detection(**unplain(value))


def picture(frame: Frame) -> tuple[str, bytes]:
    """('received', bytes) when the source's bytes decode to exactly the analysed picture, else ('png', lossless PNG)."""
    if frame.encoded is not None:
        decoded = cv2.imdecode(np.frombuffer(frame.encoded, np.uint8), cv2.IMREAD_COLOR)
        if decoded is not None and decoded.shape == frame.image.shape and np.array_equal(decoded, frame.image):
            return "received", frame.encoded
    ok, png = cv2.imencode(".png", frame.image, _LOSSLESS)
    if not ok:
        raise ValueError(f"cannot encode frame {frame.source_id}#{frame.seq} losslessly")
    return "png", png.tobytes()


def frame_json(frame: Frame, number: int, members: dict[str, bytes],
               picture_of: Callable[[Frame], tuple[str, bytes]] = picture) -> dict:
    """A frame's facts for a JSON document; its picture goes into ``members`` as ``frames/<number>.<kind>``.

    When the picture has to be stored as PNG, the bytes the source delivered are kept beside it
    (``frames/<number>.received``): they are what a pack seals. ``picture_of`` gives the picture
    (``picture``, or a cache of it for a writer that stores the same frames again and again)."""
    kind, data = picture_of(frame)
    member = f"frames/{number}.{kind}"
    members[member] = data
    if kind == "png" and frame.encoded is not None:
        members[f"frames/{number}.received"] = frame.encoded
    return {
        "source_id": frame.source_id, "seq": frame.seq, "captured_at": when(frame.captured_at),
        "geo": dataclasses.asdict(frame.geo) if frame.geo else None, "camera": frame.camera, "origin": frame.origin,
        "time_source": frame.time_source, "picture": member, "has_encoded": frame.encoded is not None,
        "stand_in": frame.stand_in,  # known once ``picture_of`` has had the pixels
    }


def frame_from(facts: dict, read: Callable[[str], bytes]) -> Frame:
    """The frame ``frame_json`` described, its picture read through ``read`` (member name -> bytes)."""
    data = read(facts["picture"])
    if facts["picture"].endswith(".received"):
        image, encoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), data
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        encoded = read(facts["picture"].replace(".png", ".received")) if facts["has_encoded"] else None
    if image is None:
        raise ValueError(f"the picture {facts['picture']} does not decode")
    return Frame(facts["source_id"], facts["seq"], moment(facts["captured_at"]), image,
                 GeoPoint(**facts["geo"]) if facts["geo"] else None, facts["camera"], facts["origin"],
                 encoded, facts["time_source"], stand_in=facts.get("stand_in"))


def write_durably(folder: Path, name: str, data: bytes) -> Path:
    """Temp name, fsync, rename, fsync the folder: after this returns the file survives a crash or power cut,
    and a crash before it leaves the previous file (or none) in place, never a torn one. The temporary
    file is ``.<name>.tmp`` in the same folder, so a reader of the folder can recognise and clear leftovers."""
    temporary, final = folder / f".{name}.tmp", folder / name
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return final
