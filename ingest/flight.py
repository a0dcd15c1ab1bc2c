"""Drone flights: the images of a folder, a zip or an S3 prefix, with what their files say of them.

EXIF gives GPS, capture time, camera and focal length; DJI writes relative altitude and gimbal
angles into XMP; GeoTIFF orthophotos carry their georeference. Anything unreadable is reported
and skipped so one bad file never stops a flight.
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from .clock import parse_exif_time
from .decoding import decode_picture
from .geo import NadirCamera, Orthophoto, check_georeference, sensor_width_mm

log = logging.getLogger(__name__)

FLIGHT_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".dng"}
_GPS_IFD, _EXIF_IFD = 0x8825, 0x8769
_XMP_FIELDS = {
    "relative_altitude_m": "RelativeAltitude", "gimbal_yaw": "GimbalYawDegree", "gimbal_pitch": "GimbalPitchDegree",
}


@dataclass
class FlightImage:
    """One picture of a flight and its metadata; ``image`` is the decoded BGR picture and ``data``
    the file's bytes exactly as received (what a pack seals as the original)."""

    name: str
    sha256: str
    image: np.ndarray
    data: bytes = field(repr=False)
    captured_at: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    altitude_m: float | None = None
    relative_altitude_m: float | None = None
    gimbal_yaw: float | None = None
    gimbal_pitch: float | None = None
    camera: str | None = None
    focal_mm: float | None = None
    focal_35mm: float | None = None
    ortho_transform: tuple[float, float, float, float, float, float] | None = None

    @property
    def geo_model(self) -> NadirCamera | Orthophoto | None:
        """How pixels map to the ground, or None when the file does not say enough."""
        height, width = self.image.shape[:2]
        return geo_model_of(vars(self), width, height)


def geo_model_of(facts: dict, width: int, height: int) -> NadirCamera | Orthophoto | None:
    """How the pixels of a ``width`` x ``height`` picture map to the ground, from what its file says (``read_facts``),
    or None when it does not say enough. Apart from ``FlightImage``, for a picture whose pixels are not needed: a
    pack's sealed original, whose size its manifest records."""
    if facts.get("ortho_transform"):
        return Orthophoto(facts["ortho_transform"])
    lat, lon, focal_mm = facts.get("lat"), facts.get("lon"), facts.get("focal_mm")
    height_above_ground = facts["relative_altitude_m"] if facts.get("relative_altitude_m") is not None else facts.get("altitude_m")
    if lat is None or lon is None or not height_above_ground or not focal_mm:
        return None
    pitch = facts.get("gimbal_pitch")
    return NadirCamera(lat, lon, height_above_ground, focal_mm, sensor_width_mm(focal_mm, facts.get("focal_35mm")), width, height,
                       facts.get("gimbal_yaw") or 0.0, pitch if pitch is not None else -90.0)


@dataclass
class Skipped:
    name: str
    reason: str


@dataclass(frozen=True)
class RefusedMember:
    """A zip member not read at all (its header promises a decompression bomb)."""

    reason: str


def _rational(value) -> float:
    try:
        return float(value)
    except TypeError:
        numerator, denominator = value
        return numerator / denominator


def _dms(values, ref: str) -> float:
    degrees = _rational(values[0]) + _rational(values[1]) / 60 + _rational(values[2]) / 3600
    return -degrees if ref in ("S", "W") else degrees


def read_exif(data: bytes, tz: str) -> dict:
    facts: dict = {}
    with Image.open(io.BytesIO(data)) as img:
        exif = img.getexif()
        gps = exif.get_ifd(_GPS_IFD)
        details = exif.get_ifd(_EXIF_IFD)
        if 2 in gps and 4 in gps:
            facts["lat"] = _dms(gps[2], gps.get(1, "N"))
            facts["lon"] = _dms(gps[4], gps.get(3, "E"))
        if 6 in gps:
            altitude = _rational(gps[6])
            facts["altitude_m"] = -altitude if gps.get(5) in (1, b"\x01") else altitude
        stamp = details.get(36867) or exif.get(306)
        if isinstance(stamp, str):
            facts["captured_at"] = parse_exif_time(stamp, tz)
        if 37386 in details:
            facts["focal_mm"] = _rational(details[37386])
        if 41989 in details:
            facts["focal_35mm"] = float(details[41989])
        camera = " ".join(str(exif.get(tag, "")).strip("\x00 ") for tag in (271, 272)).strip()
        facts["camera"] = camera or None
    return facts


def read_xmp(data: bytes) -> dict:
    """DJI's drone-dji:* attributes (or elements) from the XMP packet, as floats."""
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return {}
    packet = data[start : data.find(b"</x:xmpmeta>", start) + 12].decode("utf-8", "replace")
    facts = {}
    for key, tag in _XMP_FIELDS.items():
        match = re.search(rf'drone-dji:{tag}\s*=\s*"([-+0-9.]+)"', packet) or re.search(rf"<drone-dji:{tag}>([-+0-9.]+)<", packet)
        if match:
            facts[key] = float(match.group(1))
    return facts


def read_geotiff(path_or_bytes) -> dict:
    import rasterio
    from rasterio.warp import transform as reproject

    with rasterio.open(path_or_bytes) as dataset:
        if dataset.crs is None:
            return {}
        t = dataset.transform
        if dataset.crs.to_epsg() != 4326:  # express the affine transform in degrees, from three corners
            xs, ys = reproject(dataset.crs, "EPSG:4326", [t.c, t.c + t.a * dataset.width, t.c], [t.f, t.f + t.d * dataset.width, t.f + t.e * dataset.height])
            a, d = (xs[1] - xs[0]) / dataset.width, (ys[1] - ys[0]) / dataset.width
            b, e = (xs[2] - xs[0]) / dataset.height, (ys[2] - ys[0]) / dataset.height
            return {"ortho_transform": (a, b, xs[0], d, e, ys[0])}
        return {"ortho_transform": (t.a, t.b, t.c, t.d, t.e, t.f)}


def describe(name: str, data: bytes, tz: str) -> FlightImage:
    """Decode one file and read its metadata; raises ValueError naming what is wrong."""
    image = decode_picture(data)
    return FlightImage(name=name, sha256=hashlib.sha256(data).hexdigest(), image=image, data=data, **read_facts(name, data, tz))


def read_facts(name: str, data: bytes, tz: str) -> dict:
    """What the file says of its picture (EXIF, DJI XMP, GeoTIFF georeference), without decoding the pixels;
    raises ValueError naming an implausible value."""
    facts: dict = {}
    try:
        facts.update(read_exif(data, tz))
    except Exception as exc:  # a picture with broken EXIF is still evidence, but its facts are not trusted
        log.warning("%s: EXIF unreadable (%s)", name, exc)
    facts.update(read_xmp(data))
    if name.lower().endswith((".tif", ".tiff")):
        facts.update(read_geotiff(io.BytesIO(data)))
    check_georeference(facts)
    return facts


MAX_FILE_BYTES = 512 * 1024 * 1024  # no flight picture is larger; a zip member that claims more is refused unread
MAX_ZIP_RATIO = 200  # deflate rarely beats 10:1 on photos; a bomb reaches 1000:1


def safe_member_name(name: str) -> str:
    """A member or object name as packs may record it: relative, forward slashes, no '..', else ValueError."""
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in name.split("/") or "\0" in name:
        raise ValueError(f"unsafe file name {name!r} (absolute, '..', backslash or drive letter)")
    return name


def _zip_members(path: Path) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir() or Path(info.filename).suffix.lower() not in FLIGHT_SUFFIXES | {".txt", ".csv"}:
                continue
            if info.file_size > MAX_FILE_BYTES or info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
                yield info.filename, RefusedMember(f"{info.file_size} bytes uncompressed from {info.compress_size} "
                                                   f"(over {MAX_FILE_BYTES >> 20} MiB or {MAX_ZIP_RATIO}:1): refused unread")
                continue
            with archive.open(info) as member:
                data = member.read(MAX_FILE_BYTES + 1)  # never more than the cap, whatever the header claims
            yield info.filename, data


def flight_files(location: str, s3_client=None) -> Iterator[tuple[str, bytes | RefusedMember]]:
    """(name, bytes) of every image-like file in a folder, a zip, or an s3://bucket/prefix; oversized ones unread."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        if s3_client is None:
            raise ValueError("an s3:// flight needs the S3 settings (NONSITE_S3_ENDPOINT, keys)")
        for item in s3_client.list_objects(bucket, prefix=prefix, recursive=True):
            if Path(item.object_name).suffix.lower() not in FLIGHT_SUFFIXES:
                continue
            if (item.size or 0) > MAX_FILE_BYTES:
                yield item.object_name, RefusedMember(f"{item.size} bytes: larger than {MAX_FILE_BYTES >> 20} MiB, refused unread")
                continue
            response = s3_client.get_object(bucket, item.object_name)
            try:
                yield item.object_name, response.read()
            finally:
                response.close()
                response.release_conn()
        return
    path = Path(location)
    if path.is_file() and zipfile.is_zipfile(path):
        yield from _zip_members(path)
        return
    if not path.is_dir():
        raise FileNotFoundError(f"flight {location}: not a folder, a zip or an s3:// prefix")
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = file.stat().st_size
        yield str(file.relative_to(path)), (file.read_bytes() if size <= MAX_FILE_BYTES else
                                            RefusedMember(f"{size} bytes: larger than {MAX_FILE_BYTES >> 20} MiB, refused unread"))


def flight_pictures(location: str, s3_client=None) -> Iterator[tuple[str, bytes] | Skipped]:
    """Each picture file's name and bytes, undecoded (a cluster decodes them where they are analysed),
    or why a file is not taken."""
    for name, data in flight_files(location, s3_client):
        try:
            name = safe_member_name(name)
        except ValueError as exc:
            yield Skipped(repr(name), str(exc))
            continue
        if isinstance(data, RefusedMember):
            yield Skipped(name, data.reason)
        elif Path(name).suffix.lower() not in FLIGHT_SUFFIXES:
            yield Skipped(name, "not an image file")
        elif len(data) > MAX_FILE_BYTES:
            yield Skipped(name, f"larger than {MAX_FILE_BYTES >> 20} MiB: refused")
        else:
            yield name, data


def read_picture(name: str, data: bytes, tz: str) -> FlightImage | Skipped:
    try:
        return describe(name, data, tz)
    except Exception as exc:  # reported, and the batch goes on
        return Skipped(name, str(exc))


def read_flight(location: str, tz: str = "Asia/Shanghai", s3_client=None) -> Iterator[FlightImage | Skipped]:
    for item in flight_pictures(location, s3_client):
        yield item if isinstance(item, Skipped) else read_picture(*item, tz)
