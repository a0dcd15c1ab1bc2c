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


MAX_POINTS = 200  # a hand-drawn zone has a handful; 100 000 points made a 2.3 MB file and a 17 s save


def area(polygon: Sequence[tuple[float, float]]) -> float:
    """Unsigned area (shoelace formula), in the polygon's own units."""
    count = len(polygon)
    return abs(sum(polygon[i][0] * polygon[(i + 1) % count][1] - polygon[(i + 1) % count][0] * polygon[i][1]
                   for i in range(count))) / 2


def _cross(o, a, b) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _segments_meet(p1, p2, q1, q2) -> bool:
    d1, d2, d3, d4 = _cross(q1, q2, p1), _cross(q1, q2, p2), _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4):
        return True

    def on(a, b, c, d) -> bool:  # c lies on segment ab (given collinear: d == 0)
        return d == 0 and min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    return on(q1, q2, p1, d1) or on(q1, q2, p2, d2) or on(p1, p2, q1, d3) or on(p1, p2, q2, d4)


def polygon_problem(polygon: Sequence[tuple[float, float]]) -> str | None:
    """Why a polygon cannot be a zone (too many points, repeated corners, no area, crossing edges), or None."""
    count = len(polygon)
    if count > MAX_POINTS:
        return f"{count} corners; a zone has at most {MAX_POINTS}"
    if any(polygon[i] == polygon[(i + 1) % count] for i in range(count)):
        return "two consecutive corners are the same point"
    edges = [(polygon[i], polygon[(i + 1) % count]) for i in range(count)]
    for i in range(count):
        for j in range(i + 2, count):
            if i == 0 and j == count - 1:
                continue  # the first and last edges share a corner
            if _segments_meet(*edges[i], *edges[j]):
                return f"edges {i + 1} and {j + 1} cross (a zone's outline must not cross itself)"
    if area(polygon) <= 0:
        return "the corners enclose no area"
    return None
