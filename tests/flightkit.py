"""Writing real drone-style files for tests: EXIF GPS, DJI XMP, GeoTIFF."""
from __future__ import annotations

import shutil
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import piexif


def _dms(value: float) -> tuple:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = Fraction((value - degrees - minutes / 60) * 3600).limit_denominator(10000)
    return ((degrees, 1), (minutes, 1), (seconds.numerator, seconds.denominator))


def write_drone_jpeg(source: Path, target: Path, lat: float, lon: float, altitude: float, relative_altitude: float,
                     yaw: float, pitch: float, when: datetime, focal_mm: float = 4.5, focal_35mm: int = 24) -> Path:
    """Copy a real picture (as JPEG) and give it the EXIF and XMP a DJI drone writes."""
    if source.read_bytes()[:2] == b"\xff\xd8":
        shutil.copy(source, target)
    else:
        import cv2

        cv2.imwrite(str(target), cv2.imread(str(source)), [cv2.IMWRITE_JPEG_QUALITY, 97])
    exif = {
        "0th": {piexif.ImageIFD.Make: b"DJI", piexif.ImageIFD.Model: b"FC3582"},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: when.strftime("%Y:%m:%d %H:%M:%S").encode(),
                 piexif.ExifIFD.FocalLength: (int(focal_mm * 100), 100), piexif.ExifIFD.FocalLengthIn35mmFilm: focal_35mm},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S", piexif.GPSIFD.GPSLatitude: _dms(lat),
                piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W", piexif.GPSIFD.GPSLongitude: _dms(lon),
                piexif.GPSIFD.GPSAltitudeRef: 0, piexif.GPSIFD.GPSAltitude: (int(altitude * 100), 100)},
    }
    piexif.insert(piexif.dump(exif), str(target))
    xmp = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           f'<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" drone-dji:RelativeAltitude="+{relative_altitude:.2f}" '
           f'drone-dji:GimbalYawDegree="{yaw:+.1f}" drone-dji:GimbalPitchDegree="{pitch:+.1f}"/></rdf:RDF></x:xmpmeta>').encode()
    data = target.read_bytes()
    segment = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
    app1 = b"\xff\xe1" + (len(segment) + 2).to_bytes(2, "big") + segment
    target.write_bytes(data[:2] + app1 + data[2:])
    return target


def write_geotiff(image_bgr, target: Path, west: float, north: float, degrees_per_pixel: float) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    height, width = image_bgr.shape[:2]
    with rasterio.open(target, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs="EPSG:4326",
                       transform=from_origin(west, north, degrees_per_pixel, degrees_per_pixel)) as out:
        for band in range(3):
            out.write(image_bgr[:, :, 2 - band], band + 1)
    return target
