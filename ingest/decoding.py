"""Decoding pictures that may be hostile: size checked from the header, truncation refused.

A small file can declare a huge picture (a 875 KB PNG of 30000 x 30000 pixels decodes to 2.7 GB),
so the header's size is checked against ``MAX_PIXELS`` before anything is decoded, and
OpenCV's own limit is set to the same value. A truncated JPEG decodes to a half-grey picture
without an error from OpenCV, which would be analysed and sealed as if it were whole, so the
whole compressed stream is read first (for JPEG at 1/8 scale, which still reads every byte)
and a picture that does not decode completely is refused with the reason.
"""
from __future__ import annotations

import io
import os

MAX_PIXELS = 160_000_000  # a 150 MP survey camera still passes; larger orthomosaics are read window by window
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

import cv2  # noqa: E402  (after the limit above, which OpenCV reads once)
import numpy as np  # noqa: E402
from PIL import Image, ImageFile, UnidentifiedImageError  # noqa: E402

# Pillow's own guard raises only past twice its limit, with its own wording; every picture nonsite decodes
# passes ``picture_size`` first, which refuses anything over MAX_PIXELS from the header alone.
Image.MAX_IMAGE_PIXELS = None


FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "WEBP")  # JPEG includes the multi-picture (MPO) files many drones write
_SIGNATURES = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"), (b"BM", ".bmp"))


def picture_suffix(data: bytes) -> str | None:
    """The file suffix the bytes' own signature names (.jpg, .png, .tif, .bmp, .webp), or None for anything else.

    Checked before any decoder runs, so no other format plugin (some libraries register their own,
    and try to install them) is ever handed hostile bytes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for signature, suffix in _SIGNATURES if data.startswith(signature)), None)


class ImageRefused(ValueError):
    """Bytes that are not a whole, decodable picture of an acceptable size; the message says why."""


def picture_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header alone; refuses pictures above ``MAX_PIXELS``."""
    if picture_suffix(data) is None:
        raise ImageRefused("not a picture in a known format (JPEG, PNG, TIFF, BMP, WebP)")
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as picture:
            width, height = picture.size
    except UnidentifiedImageError as exc:
        raise ImageRefused("not a picture in a known format (JPEG, PNG, TIFF, BMP, WebP)") from exc
    except Exception as exc:  # noqa: BLE001 - a format plugin may fail in any way on hostile bytes; the picture is refused
        raise ImageRefused(f"unreadable picture header ({type(exc).__name__}: {exc})") from exc
    if width * height > MAX_PIXELS:
        raise ImageRefused(f"{width} x {height} pixels ({width * height / 1e6:.0f} MP) is over the {MAX_PIXELS / 1e6:.0f} MP limit")
    return width, height


def _check_complete(data: bytes, size: tuple[int, int]) -> None:
    # Pillow pads a truncated picture silently when this process-wide flag is on, and a library may turn it on when
    # imported (WeasyPrint does, for the case documents): the check sets it back every time.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as picture:
            if picture.format in ("JPEG", "MPO"):
                picture.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            picture.load()
    except Exception as exc:  # noqa: BLE001 - as above: any decoder failure means the picture is not whole
        raise ImageRefused(f"truncated or corrupt picture ({exc})") from exc


def decode_picture(data: bytes) -> np.ndarray:
    """The BGR picture the bytes hold, or ``ImageRefused`` naming what is wrong."""
    if not data:
        raise ImageRefused("empty file")
    size = picture_size(data)
    _check_complete(data, size)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageRefused("not a decodable picture")
    return image
