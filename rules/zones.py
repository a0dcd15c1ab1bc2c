"""Pure polygon geometry for zones."""
from __future__ import annotations

from collections.abc import Sequence


def contains(polygon: Sequence[tuple[float, float]], point: tuple[float, float]) -> bool:
    """Even-odd ray casting; points on an edge count as inside half the time, which inertia absorbs."""
    x, y = point
    inside = False
    count = len(polygon)
    for i in range(count):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % count]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5
