"""The pack manifest: one typed, versioned description of a pack, written and read only here.

The manifest is the document that is hashed and signed, so its bytes are produced once
(canonical JSON of the model) and kept beside the parsed value; whoever checks a pack hashes
the bytes as stored, never a re-serialisation. Reading accepts every schema version nonsite has
written: ``nonsite.pack/1`` (the first release, a plain dict), ``nonsite.pack/2``, ``nonsite.pack/3``
(which adds the optional ``clip`` section: a reader of version 2 would refuse it as an unknown field)
``nonsite.pack/4`` (the rule's ``bays``, and the tile sizes of multi-scale drone detection),
``nonsite.pack/5`` (the optional ``survey`` section of a change found between two orthomosaics),
``nonsite.pack/6`` (a key frame whose sealed picture stands in for the camera's own: ``stand_in``) and
``nonsite.pack/7`` (the camera's key frames left out of a clip because they arrived damaged: ``clip.left_out``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nonsite.rules import RuleSpec, ShopRecord

from .hashing import canonical_json

MANIFEST = "manifest.json"
SCHEMA = "nonsite.pack/7"
KEY_FRAMES = ("first_seen", "threshold", "last_seen")


class ManifestError(ValueError):
    """Bytes that are not a pack manifest of any version nonsite knows."""


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BoxFacts(_Facts):
    box: tuple[float, float, float, float]
    class_name: str = Field(alias="class")
    confidence: float
    track_id: int | None = None
    model: str
    weights_sha256: str | None = None


class KeyFrameFacts(_Facts):
    captured_at: datetime
    seq: int
    origin: str | None = None
    original: str = Field(description="Path of the sealed original inside the pack.")
    annotated: str
    size: tuple[int, int] = Field(description="(width, height) in pixels.")
    subject: list[BoxFacts]
    original_kind: Literal["received_bytes", "decoded_frame", "sub_stream_picture"] | None = Field(
        default=None, description="The file's bytes as the source delivered them, a decoded stream frame (PNG), or the "
        "camera's sub-stream picture where its main-stream key frame did not decode (PNG, see stand_in); none in 1.")
    time_source: str | None = Field(default=None, description="Where the capture time came from (exif, file_name, stream_clock, ...).")
    stand_in: str | None = Field(default=None, description="Why the sealed picture is not the camera's own (6): what failed, "
                                 "and what was sealed instead, which is what the model analysed.")


class GeoFacts(_Facts):
    lat: float
    lon: float
    alt_m: float | None = None


class SourceFacts(_Facts):
    id: str
    camera: str | None = None
    geo: GeoFacts | None = None


class ZoneFacts(_Facts):
    id: str
    polygon: list[tuple[float, float]]
    site: str | None = None


class ModelFacts(_Facts):
    name: str
    weights_sha256: str | None = None


class Software(_Facts):
    name: str
    version: str


class Times(_Facts):
    first_seen: datetime
    threshold: datetime
    last_seen: datetime


class Thresholds(_Facts):
    min_confidence: float
    dwell_s: float
    cooldown_s: float
    grace_s: float


class PlateFacts(_Facts):
    text: str
    confidence: float
    format: str | None = None
    valid: bool


class SignLine(_Facts):
    text: str
    confidence: float


class BlurCounts(_Facts):
    persons: int
    other_vehicle_plates: int


class GpsFacts(_Facts):
    lat: float | None = None
    lon: float | None = None
    altitude_m: float | None = None
    relative_altitude_m: float | None = None


class GimbalFacts(_Facts):
    yaw_deg: float | None = None
    pitch_deg: float | None = None


class TileFacts(_Facts):
    size: int  # the tile size (multi-scale: the finest)
    overlap: float
    grid: int  # crops the model saw (multi-scale: the full frame and every tile of every size)
    scales: list[int] = Field(default_factory=list, description="Multi-scale: every tile size run beside the full frame; empty: one size.")


class DroneFacts(_Facts):
    """Where a drone picture was taken and how its pixels map to the ground."""

    flight_id: str
    image: str
    image_sha256: str
    gps: GpsFacts
    gimbal: GimbalFacts
    camera: str | None = None
    focal_mm: float | None = None
    geo_model: str
    geo_approximate: bool
    tiles: TileFacts
    subject_ground: list[tuple[float, float]] = Field(description="Subjects' [lon, lat].")
    zone_geo: dict[str, list[tuple[float, float]]]


class ChangeFacts(_Facts):
    """A suspected new structure: the baseline picture it was compared with and the changed region."""

    baseline_flight: str
    baseline_image: str
    baseline_sha256: str
    registered: bool
    region_px: tuple[int, int, int, int]
    mean_change_score: float


class SurveyFacts(_Facts):
    """A change between two orthomosaics of one area: both files by hash, where the change lies in the new one,
    its footprint and area on the ground, and the kind it was judged to be with the cue that decided it.
    The pack's pictures are crops of both mosaics resampled onto one grid (``crop_grid``), sealed lossless, and
    the facts name the grid and window the change was found in and the 16-bit stretches, so anyone holding the
    two files can cut them again and compare."""

    survey_id: str
    mosaic: str
    mosaic_sha256: str
    survey_date: str | None = None
    previous_mosaic: str
    previous_sha256: str
    previous_date: str | None = None
    crs: str = Field(description="CRS of the new mosaic: the grid both surveys were compared on.")
    window: int
    region_px: tuple[int, int, int, int] = Field(description="The changed region's box in the new mosaic's own pixels.")
    crop_grid: tuple[float, float, float, float, float, float, int, int] = Field(
        description="The crops' grid: affine transform (a, b, c, d, e, f) in the CRS, then width and height in pixels.")
    change_grid: tuple[float, float, float, float, float, float, int, int] = Field(
        description="The grid both surveys were compared on, as crop_grid; the change mask was found in window_read of it.")
    window_read: tuple[int, int, int, int] = Field(description="The window (x0, y0, x1, y1) of change_grid whose pixels were compared.")
    stretch: list[tuple[float, float]] | None = Field(default=None, description="A 16-bit new survey's per-band (low, high) mapped to 0 and 255.")
    previous_stretch: list[tuple[float, float]] | None = None
    change_gsd_m: float
    area_m2: float
    change_score: float
    footprint: list[tuple[float, float]] = Field(description="The changed region's outline, [lon, lat].")
    kind: str
    kind_basis: str
    kind_values: dict[str, float | int | str] = Field(description="The figures behind kind_basis, and the share of the region per "
                                                      "surface cover before and after.")
    parcel_use: str | None = None
    subject_ground: list[tuple[float, float]] = Field(description="The region's centre, [lon, lat].")
    zone_geo: dict[str, list[tuple[float, float]]]


class ClipFacts(_Facts):
    """The short video of the episode that a stream or video camera's pack carries."""

    path: str = Field(description="Path of the H.264 MP4 inside the pack.")
    started_at: datetime = Field(description="Capture time of its first frame: clip_before_s before first seen, or later where "
                                 "the camera had not been running that long or the episode outlasted clip_max_s.")
    ended_at: datetime = Field(description="Capture time of its last frame: last seen.")
    frames: int = Field(description="Frames in the video, one per sampled camera frame.")
    fps: float = Field(description="Frames per second it plays at: the rate the frames were sampled at.")
    left_out: list[datetime] | None = Field(default=None, description="Capture times of the camera's key frames left out of the "
                                            "video: they arrived damaged (parts lost on the way) and do not decode whole.")


class PackManifest(_Facts):
    schema_id: Literal["nonsite.pack/1", "nonsite.pack/2", "nonsite.pack/3", "nonsite.pack/4", "nonsite.pack/5",
                       "nonsite.pack/6", "nonsite.pack/7"] = Field(default=SCHEMA, alias="schema")
    pack_id: str
    created_at: datetime
    software: Software
    category: str
    subject_key: str
    rule: RuleSpec
    source: SourceFacts
    zone: ZoneFacts
    shop: ShopRecord | None = None
    times: Times
    dwell_s: float
    confidence: float
    models: list[ModelFacts]
    thresholds: Thresholds
    key_frames: dict[Literal["first_seen", "threshold", "last_seen"], KeyFrameFacts]
    crops: list[str]
    track: list[tuple[datetime, float, float, float, float, int | None]] = Field(description="(time, x1, y1, x2, y2, track id).")
    plate: PlateFacts | None = None
    shop_sign_text: list[SignLine] | None = None
    disclosure: dict[str, BlurCounts] | None = None
    drone: DroneFacts | None = None
    change: ChangeFacts | None = None
    survey: SurveyFacts | None = None
    clip: ClipFacts | None = None
    files: dict[str, str] = Field(description="SHA-256 of every file of the pack but the manifest and its signature.")

    def to_bytes(self) -> bytes:
        """The bytes that are stored, hashed and signed."""
        return canonical_json(self.model_dump(mode="json", by_alias=True, exclude_none=True))

    @classmethod
    def from_bytes(cls, raw: bytes) -> "PackManifest":
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            raise ManifestError(f"{MANIFEST}: not a readable pack manifest ({where}: {first['msg']})") from exc

    @property
    def places(self) -> list[tuple[float, float]]:
        """Where the subjects stand ([lon, lat]): drone subjects on the ground, else the camera's position."""
        ground = self.drone or self.survey
        if ground is not None and ground.subject_ground:
            return list(ground.subject_ground)
        return [(self.source.geo.lon, self.source.geo.lat)] if self.source.geo else []

    @property
    def places_approximate(self) -> bool:
        return bool(self.drone and self.drone.geo_approximate)


def read_manifest(store, pack_id: str) -> PackManifest:
    """The typed manifest of a stored pack (``store`` is any evidence store)."""
    return PackManifest.from_bytes(store.read(pack_id, MANIFEST))
