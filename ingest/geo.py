"""Pixels to ground coordinates for drone photos and orthophotos, and back.

Nadir photo model (stated assumptions): a pinhole camera pointing straight down from the GPS
position at ``relative altitude`` above flat ground; the image's top edge faces the gimbal yaw
(clockwise from north); the sensor width comes from the camera model or the 35 mm equivalent
focal length. Shots whose gimbal pitch is more than 10° off straight down are flagged
approximate: there the ground is not a plane at one distance and errors grow towards the horizon.
Orthophotos (GeoTIFF) use their affine transform exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_378_137.0
NADIR_PITCH = -90.0
NADIR_TOLERANCE_DEG = 10.0


@dataclass(frozen=True)
class NadirCamera:
    lat: float
    lon: float
    altitude_m: float  # above the ground the objects stand on
    focal_mm: float
    sensor_width_mm: float
    width_px: int
    height_px: int
    yaw_deg: float = 0.0
    pitch_deg: float = NADIR_PITCH

    @property
    def approximate(self) -> bool:
        return abs(self.pitch_deg - NADIR_PITCH) > NADIR_TOLERANCE_DEG

    @property
    def metres_per_pixel(self) -> float:
        return self.altitude_m * self.sensor_width_mm / (self.focal_mm * self.width_px)

    def to_ground(self, x: float, y: float) -> tuple[float, float]:
        """(lon, lat) of pixel (x, y)."""
        gsd = self.metres_per_pixel
        right, down = (x - self.width_px / 2) * gsd, (y - self.height_px / 2) * gsd
        yaw = math.radians(self.yaw_deg)
        east = right * math.cos(yaw) + (-down) * math.sin(yaw)
        north = -right * math.sin(yaw) + (-down) * math.cos(yaw)
        return offset(self.lon, self.lat, east, north)

    def to_pixel(self, lon: float, lat: float) -> tuple[float, float]:
        east, north = displacement(self.lon, self.lat, lon, lat)
        yaw = math.radians(self.yaw_deg)
        right = east * math.cos(yaw) - north * math.sin(yaw)
        up = east * math.sin(yaw) + north * math.cos(yaw)
        gsd = self.metres_per_pixel
        return right / gsd + self.width_px / 2, -up / gsd + self.height_px / 2


def offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    """Move a WGS-84 point by metres east and north (local tangent plane; fine over a photo's span)."""
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    return lon + dlon, lat + dlat


def displacement(lon0: float, lat0: float, lon: float, lat: float) -> tuple[float, float]:
    east = math.radians(lon - lon0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    north = math.radians(lat - lat0) * EARTH_RADIUS_M
    return east, north


@dataclass(frozen=True)
class Orthophoto:
    """A GeoTIFF's affine transform (a, b, c, d, e, f) in WGS-84 degrees: x' = a*col + b*row + c."""

    transform: tuple[float, float, float, float, float, float]
    approximate: bool = False

    def to_ground(self, x: float, y: float) -> tuple[float, float]:
        a, b, c, d, e, f = self.transform
        return a * x + b * y + c, d * x + e * y + f

    def to_pixel(self, lon: float, lat: float) -> tuple[float, float]:
        a, b, c, d, e, f = self.transform
        det = a * e - b * d
        return (e * (lon - c) - b * (lat - f)) / det, (-d * (lon - c) + a * (lat - f)) / det


def sensor_width_mm(focal_mm: float | None, focal_35mm: float | None, default_mm: float = 13.2) -> float:
    """From the 35 mm equivalent when the camera states it (36 mm wide frame); else a 1-inch sensor."""
    if focal_mm and focal_35mm:
        return 36.0 * focal_mm / focal_35mm
    return default_mm


_BOUNDS = {  # what a drone picture's metadata may plausibly say; anything else is refused, not guessed around
    "lat": (-90.0, 90.0), "lon": (-180.0, 180.0), "altitude_m": (-500.0, 9000.0), "relative_altitude_m": (0.5, 3000.0),
    "gimbal_pitch": (-90.5, 30.0), "gimbal_yaw": (-360.0, 360.0), "focal_mm": (0.5, 1200.0), "focal_35mm": (1.0, 2400.0),
}


def check_georeference(facts: dict) -> None:
    """Refuse NaN or absurd GPS, altitude, gimbal and focal values and degenerate GeoTIFF transforms (ValueError says which)."""
    for key, (low, high) in _BOUNDS.items():
        value = facts.get(key)
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"implausible {key.replace('_', ' ')} {value!r} in the picture's metadata (expected {low} to {high})")
    transform = facts.get("ortho_transform")
    if transform is not None:
        a, b, c, d, e, f = transform
        if not all(math.isfinite(v) for v in transform) or a * e - b * d == 0:
            raise ValueError(f"GeoTIFF transform {transform} is not finite or has a zero pixel size")
