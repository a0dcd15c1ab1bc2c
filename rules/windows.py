"""Daily time windows such as '07:00-19:00' or '22:00-06:00' (wrapping past midnight)."""
from __future__ import annotations

from datetime import datetime, time

from pydantic import BaseModel, ConfigDict, Field, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeWindow(BaseModel):
    """A span of local clock time on some weekdays: 'HH:MM-HH:MM', optionally with days."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    span: str = Field(pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$", description="Local time 'HH:MM-HH:MM'; end before start wraps midnight.")
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS), description="Weekdays (mon..sun) the window opens on.")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value):
        return {"span": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> "TimeWindow":
        start, end = self.bounds
        if start == end:
            raise ValueError(f"window {self.span!r} is empty")
        bad = [d for d in self.days if d not in WEEKDAYS]
        if bad:
            raise ValueError(f"unknown weekdays {bad}; use {list(WEEKDAYS)}")
        return self

    @property
    def bounds(self) -> tuple[time, time]:
        start, end = self.span.split("-")
        try:
            return time.fromisoformat(start), time.fromisoformat(end)
        except ValueError as exc:
            raise ValueError(f"window {self.span!r}: {exc}") from exc

    def contains(self, moment: datetime) -> bool:
        """True when the local ``moment`` falls inside the window (its day is the day it opened)."""
        start, end = self.bounds
        clock = moment.timetz().replace(tzinfo=None)
        weekday = WEEKDAYS[moment.weekday()]
        if start < end:
            return weekday in self.days and start <= clock < end
        if clock >= start:
            return weekday in self.days
        yesterday = WEEKDAYS[(moment.weekday() - 1) % 7]
        return clock < end and yesterday in self.days


def is_active(moment: datetime, windows: list[TimeWindow], except_windows: list[TimeWindow]) -> bool:
    """A rule is active inside any of its windows (always, if none) and outside all exceptions."""
    inside = not windows or any(w.contains(moment) for w in windows)
    return inside and not any(w.contains(moment) for w in except_windows)
