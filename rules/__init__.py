"""Rules: zones, dwell and time windows turn detections into violations and evidence packs."""
from .config import DetectionSpec, EvidenceSpec, RuleSpec, ShopRecord, SiteConfig, ZoneSpec
from .engine import RuleEngine
from .loader import ConfigError, load_config
from .violation import KeyFrame, TrackPoint, Violation
from .windows import TimeWindow, is_active

__all__ = [
    "ConfigError", "DetectionSpec", "EvidenceSpec", "KeyFrame", "RuleEngine", "RuleSpec", "ShopRecord", "SiteConfig",
    "TimeWindow", "TrackPoint", "Violation", "ZoneSpec", "is_active", "load_config",
]
