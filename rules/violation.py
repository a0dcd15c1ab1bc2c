"""What the rules stage hands to evidence: a finished violation with its three key frames (and, from a
stream or video, the clip around them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from nonsite.ingest import Clip, Frame
from nonsite.vision import Detection

from .config import RuleSpec, ZoneSpec


@dataclass(frozen=True)
class KeyFrame:
    """A frame and the subject's boxes in it."""

    frame: Frame
    subject: tuple[Detection, ...]

    @property
    def at(self) -> datetime:
        return self.frame.captured_at


@dataclass(frozen=True)
class TrackPoint:
    at: datetime
    box: tuple[float, float, float, float]
    track_id: int | None


@dataclass(frozen=True)
class Violation:
    """A rule broken by one subject (a vehicle, or a shop's or site's zone) over one episode."""

    rule: RuleSpec
    zone: ZoneSpec
    first_seen: KeyFrame
    threshold: KeyFrame
    last_seen: KeyFrame
    track: tuple[TrackPoint, ...] = field(default=())
    extras: dict = field(default_factory=dict)  # facts of the source kind (drone flight, change pair)
    attachments: dict[str, bytes] = field(default_factory=dict)  # extra files (baseline crop, change mask)
    clip: Clip | None = None  # the camera's frames from before first seen through last seen; None for folders and drones

    @property
    def category(self) -> str:
        return self.rule.kind

    @property
    def source_id(self) -> str:
        return self.threshold.frame.source_id

    @property
    def dwell_s(self) -> float:
        return (self.last_seen.at - self.first_seen.at).total_seconds()

    @property
    def subject_key(self) -> str:
        """Who or what a case is about: the shop, the site, or a vehicle at one spot of one camera.

        Until a plate is read, a vehicle is its parking spot: the bottom centre of its box on a
        64-pixel grid, so the same car parked in the same place again maps to the same case.
        """
        if self.zone.shop is not None:
            return f"shop:{self.zone.shop.licence or self.zone.shop.name}"
        plate = self.extras.get("plate") or {}
        if plate.get("valid"):  # a read plate links the same car across places and days
            return f"vehicle:plate:{plate['text']}"
        if self.rule.kind == "construction_activity":
            return f"site:{self.source_id}:{self.zone.site or self.zone.id}"
        subject = self.threshold.subject[0]
        if subject.ground is not None:  # drone imagery: the same ~10 m cell on the ground, whichever flight
            lon, lat = subject.ground
            return f"{self.rule.kind}:geo:{lat:.4f},{lon:.4f}"
        x, y = subject.bottom_centre
        if self.rule.kind == "street_vending":  # no shop to name: the spot is the party, so sightings there link up
            return f"vendor:{self.source_id}:{self.zone.id}:{int(x // 128)},{int(y // 128)}"
        return f"vehicle:{self.source_id}:{self.zone.id}:{int(x // 64)},{int(y // 64)}"

    @property
    def confidence(self) -> float:
        return max((d.confidence for d in self.threshold.subject), default=0.0)
