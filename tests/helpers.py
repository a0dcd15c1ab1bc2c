"""Small builders for rules tests: frames and detections at given times and places."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from nonsite.ingest import Frame
from nonsite.vision import Detection

SHANGHAI = ZoneInfo("Asia/Shanghai")
BLANK = np.zeros((480, 640, 3), dtype=np.uint8)


def at(hh_mm: str, plus_s: float = 0, day: int = 23) -> datetime:
    """A moment on Monday 23 Nov 2026, local Shanghai time."""
    hour, minute = map(int, hh_mm.split(":"))
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI) + timedelta(seconds=plus_s)


def frame(seq: int, moment: datetime, source: str = "cam-1") -> Frame:
    return Frame(source, seq, moment, BLANK)


def car(x: float, y: float, track: int | None = 1, cls: str = "car", conf: float = 0.8, w: float = 80, h: float = 50) -> Detection:
    """A box whose bottom-centre sits at (x, y)."""
    return Detection((x - w / 2, y - h, x + w / 2, y), conf, cls, ("illegal_parking",), "test-model", "0" * 64, track)
