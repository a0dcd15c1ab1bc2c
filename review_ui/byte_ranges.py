"""HTTP byte ranges (RFC 9110 §14) for evidence files: a browser seeks in a clip by asking for part
of it (Safari plays no video without), so the file endpoint answers ``Range: bytes=a-b`` with 206
(and audits each part it serves).

Only one range per request is served; a multi-range request is answered whole (200), which the
RFC allows. A range that starts past the end is refused with 416 and the file's length.
"""
from __future__ import annotations

import re

_SINGLE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(ValueError):
    """The range lies wholly past the end of the file."""


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte asked for, within ``size``; None for the whole file (no header, or one we do not serve)."""
    if not header:
        return None
    match = _SINGLE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        length = int(last)
        if length == 0:
            raise Unsatisfiable(f"an empty suffix range of a {size}-byte file")
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        raise Unsatisfiable(f"bytes from {start} of a {size}-byte file")
    if end < start:
        return None  # not a valid range: ignored, the whole file is sent
    return start, end
