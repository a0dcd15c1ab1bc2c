"""An officer's fix of what the model drew: the right box, or the right class, for a subject of a pack.

A confirmation says "this is a violation"; a correction says "and this is exactly where, and what, the
object is". Training uses the correction instead of the detection (``training_export``), so a loose
box or a van called a truck teaches the model the officer's answer. The sealed pack is never touched:
the correction lives beside it in the database, the latest one per subject, each change audit-logged
with the box it replaced.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.engine import Connection, Engine

from nonsite.evidence import EvidenceStore, ManifestError, StoreError, read_manifest
from nonsite.evidence.audit import record
from nonsite.evidence.schema import corrections

from .auth import User
from .i18n import Text

CLASS_NAME = re.compile(r"^[\w][\w .:-]{0,63}$")
MIN_SIDE_PX = 2.0


@dataclass(frozen=True)
class Correction:
    subject: int
    box: tuple[float, float, float, float]
    class_name: str


def correct_subject(engine: Engine, store: EvidenceStore, pack_id: str, subject: int, box: tuple[float, float, float, float],
                    class_name: str, user: User) -> Correction:
    """Record the officer's box and class for one subject of the pack's threshold frame (ValueError says what is wrong)."""
    try:
        key = read_manifest(store, pack_id).key_frames["threshold"]
    except (StoreError, ManifestError) as exc:
        raise LookupError(Text("no pack {pack}", pack=pack_id)) from exc
    if not 0 <= subject < len(key.subject):
        raise ValueError(Text("the pack has no subject {subject}", subject=subject))
    width, height = key.size
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height) or min(x2 - x1, y2 - y1) < MIN_SIDE_PX:
        raise ValueError(Text("the box must lie inside the picture ({width} x {height}) and be at least 2 pixels a side",
                              width=width, height=height))
    name = class_name.strip()
    if not CLASS_NAME.fullmatch(name):
        raise ValueError(Text("a class is a short name such as car or truck"))
    earlier = key.subject[subject]
    with engine.begin() as conn:
        conn.execute(delete(corrections).where(and_(corrections.c.pack_id == pack_id, corrections.c.subject == subject)))
        conn.execute(insert(corrections).values(pack_id=pack_id, subject=subject, x1=x1, y1=y1, x2=x2, y2=y2, class_name=name,
                                                user_id=user.id, at=datetime.now(timezone.utc)))
        record(conn, user.username, "pack.corrected", pack_id, {"subject": subject, "box": [x1, y1, x2, y2], "class": name,
                                                               "detected_box": list(earlier.box), "detected_class": earlier.class_name})
    return Correction(subject, (x1, y1, x2, y2), name)


def _correction(row) -> Correction:
    return Correction(row["subject"], (row["x1"], row["y1"], row["x2"], row["y2"]), row["class_name"])


def corrections_of(conn: Connection, pack_id: str) -> dict[int, Correction]:
    rows = conn.execute(select(corrections).where(corrections.c.pack_id == pack_id)).mappings().all()
    return {row["subject"]: _correction(row) for row in rows}


def all_corrections(conn: Connection) -> dict[tuple[str, int], Correction]:
    """Every correction by (pack, subject): one query for a whole training export."""
    return {(row["pack_id"], row["subject"]): _correction(row) for row in conn.execute(select(corrections)).mappings()}
