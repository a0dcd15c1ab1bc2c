"""What the rules stage hands to evidence: a finished violation with its three key frames."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ingest import Frame
from vision import Detection

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
    def confidence(self) -> float:
        return max((d.confidence for d in self.threshold.subject), default=0.0)
