"""Turning the many ways a source states time into aware datetimes."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def parse_local_time(text: str, tz: str) -> datetime:
    """Parse an ISO time; a time without offset is read in the source's own zone."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


def from_timestamp(seconds: float, tz: str) -> datetime:
    return datetime.fromtimestamp(seconds, ZoneInfo(tz))


def parse_exif_time(text: str, tz: str) -> datetime | None:
    """EXIF stores 'YYYY:MM:DD HH:MM:SS' in the camera's local time, without a zone."""
    try:
        return datetime.strptime(text.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S").replace(tzinfo=ZoneInfo(tz))
    except ValueError:
        return None


def parse_compact_time(text: str, tz: str) -> datetime:
    """File-name stamps such as 20261121_093000 or 20261121093000."""
    digits = "".join(ch for ch in text if ch.isdigit())
    return datetime.strptime(digits[:14], "%Y%m%d%H%M%S").replace(tzinfo=ZoneInfo(tz))
