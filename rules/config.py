"""Per-source rule configuration: zones drawn over the camera view, and the rules bound to them."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from nonsite.ingest import SourceSpec
from nonsite.ingest.config import Identifier
from nonsite.vision.motion import MotionSpec

from .windows import TimeWindow
from .zones import polygon_problem

RuleKind = Literal["illegal_parking", "spillover_business", "street_vending", "construction_activity", "suspected_new_structure"]


class ShopRecord(BaseModel):
    """The business a shop-frontage zone belongs to: one shop, one record.

    A zone may name the shop by its licence alone: the review desk's shop register (一店一册) holds
    its name, address and contact, so the site file need not repeat them.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = ""
    address: str = ""
    licence: str = Field(default="", description="Business licence number (统一社会信用代码); enough on its own when the "
                         "shop is in the review desk's register.")
    contact: str = ""

    @model_validator(mode="after")
    def _named(self) -> "ShopRecord":
        if not self.name.strip() and not self.licence.strip():
            raise ValueError("a shop needs a name or a licence number")
        return self


class ZoneSpec(BaseModel):
    """A polygon over the camera view, in pixels of the source's frames."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: Identifier
    polygon: list[tuple[float, float]] = Field(min_length=3, description="Corner points [x, y] in pixels, in order "
                                               "(a simple polygon with an area, at most 200 corners).")
    inertia: int = Field(default=3, ge=1, le=100, description="Consecutive frames needed to enter or leave the zone.")
    shop: ShopRecord | None = Field(default=None, description="Shop-frontage zones: whose frontage it is.")
    site: str | None = Field(default=None, description="Watched construction site or plot name.")
    frame: tuple[PositiveInt, PositiveInt] | None = Field(default=None, description=(
        "[width, height] of the picture the polygon was drawn on (the zone editor records it). Frames of another "
        "size get the zone scaled to them, so a camera switched from 1080p to 720p keeps its zones where they were; "
        "without it, the camera's first frame is taken as the size it was drawn at."))

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, polygon):
        if len(polygon) > 3 and polygon[-1] == polygon[0]:
            polygon = polygon[:-1]  # a closed ring (GeoJSON) repeats its first corner
        if problem := polygon_problem(polygon):
            raise ValueError(problem)
        return polygon

    @model_validator(mode="after")
    def _inside_its_frame(self) -> "ZoneSpec":
        if self.frame and not all(0 <= x <= self.frame[0] and 0 <= y <= self.frame[1] for x, y in self.polygon):
            raise ValueError(f"the polygon reaches outside the {self.frame[0]} x {self.frame[1]} frame it was drawn on")
        return self

    def fitted(self, size: tuple[int, int]) -> "ZoneSpec":
        """The zone over a frame of ``size`` (width, height): scaled from the size it was drawn at."""
        if self.frame is None or tuple(self.frame) == tuple(size):
            return self
        sx, sy = size[0] / self.frame[0], size[1] / self.frame[1]
        return self.model_copy(update={"polygon": [(x * sx, y * sy) for x, y in self.polygon], "frame": tuple(size)})


class RuleSpec(BaseModel):
    """One check: which classes, in which zones, for how long, and when."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: Identifier
    kind: RuleKind
    version: int = Field(default=1, ge=1, description="Bump when thresholds change; packs record it.")
    zones: list[str] = Field(min_length=1, description="Ids of the zones the rule watches.")
    bays: list[str] = Field(default_factory=list, description=(
        "Ids of zones that are marked bays (e.g. the painted boxes of a non-motor vehicle parking area, 非机动车停放区): "
        "an object standing inside any of them is parked properly and does not count; outside every bay it does."))
    classes: list[str] = Field(
        min_length=1, description="Class names that count (e.g. car, truck); 'model:class' picks one detector's class."
    )
    min_confidence: float = Field(default=0.3, gt=0, lt=1)
    dwell_s: float = Field(default=300, ge=0, description="Seconds an object must stay before it is a violation.")
    windows: list[TimeWindow] = Field(default_factory=list, description="When the rule applies (always if empty).")
    except_windows: list[TimeWindow] = Field(default_factory=list, description="When it does not (e.g. night market 18:00-23:00).")
    cooldown_s: float = Field(default=600, ge=0, description="No second pack for the same place within this time.")
    grace_s: float = Field(default=30, ge=0, description="A lost object within this time keeps its dwell clock.")
    max_motion: float = Field(
        default=0.3, gt=0, le=5, description="Parking: movement (in box diagonals) that restarts the dwell clock."
    )
    hold_s: float = Field(default=60, ge=0, description="After the threshold, wait this long for a 'last seen' frame.")

    @property
    def per_object(self) -> bool:
        """Parking raises one pack per vehicle, street vending one per stall or vendor (and change
        detection one per changed region); spill-over and construction one per shop or site."""
        return self.kind in ("illegal_parking", "street_vending", "suspected_new_structure")


class EvidenceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    crop_margin: float = Field(default=0.15, ge=0, le=2, description="Context around a subject crop, as a share of its size.")
    jpeg_quality: int = Field(default=92, ge=50, le=100, description="Quality of annotated copies and crops.")
    clip_before_s: float = Field(
        default=10, ge=0, le=120, description="Streams and videos: the pack's clip starts this many seconds before first seen.")
    clip_max_s: float = Field(
        default=300, gt=0, le=1800, description="Streams and videos: the camera keeps clip_before_s + clip_max_s seconds of frames "
        "for clips; a longer episode's clip starts later than clip_before_s before first seen (its manifest says when).")
    clip_as_sent: bool = Field(
        default=True, description="Streams read at key frames only (a key frame at least once per sample): the clip is the camera's "
        "key frames as sent, packed without encoding (0.1 s of CPU for a 5-minute clip; about 90 KB per second at 854 x 480). "
        "false: encode them with libx264 (about 10 times smaller, 4 s of CPU for 5 minutes).")


class DetectionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    models: list[str] = Field(default_factory=lambda: ["coco"], min_length=1, description="Registry names of the detectors to run.")
    tracker: Literal["bytetrack", "botsort"] = "bytetrack"
    device: str = Field(default="cpu", description="'cpu', or a CUDA device such as '0'.")
    motion: MotionSpec | None = Field(
        default=None, description="Motion gating: the model looks only when the picture changes, and every recheck_s. "
        "None: the model looks at every frame."
    )


class SiteConfig(BaseModel):
    """Everything ``nonsite run`` needs for one source."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: SourceSpec
    detection: DetectionSpec = Field(default_factory=DetectionSpec)
    zones: list[ZoneSpec] = Field(min_length=1)
    rules: list[RuleSpec] = Field(min_length=1)
    evidence: EvidenceSpec = Field(default_factory=EvidenceSpec)

    @field_validator("zones", "rules")
    @classmethod
    def _unique_ids(cls, items):
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"id {item.id!r} is used twice")
            seen.add(item.id)
        return items

    @model_validator(mode="after")
    def _rules_fit_zones(self) -> "SiteConfig":
        zones = {z.id: z for z in self.zones}
        for rule in self.rules:
            for zone_id in rule.zones:
                if zone_id not in zones:
                    raise ValueError(f"rule {rule.id!r} watches unknown zone {zone_id!r} (zones: {sorted(zones)})")
                if rule.kind == "spillover_business" and zones[zone_id].shop is None:
                    raise ValueError(f"rule {rule.id!r}: spill-over zone {zone_id!r} names no shop")
            for bay in rule.bays:
                if bay not in zones:
                    raise ValueError(f"rule {rule.id!r} names unknown bay zone {bay!r} (zones: {sorted(zones)})")
        return self

    def zone(self, zone_id: str) -> ZoneSpec:
        return next(z for z in self.zones if z.id == zone_id)
