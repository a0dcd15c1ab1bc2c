"""What a candidate model running in shadow disagreed on, and the officers' judgements of it.

One JSON record and one JPEG per disagreement in the model's ``shadow`` folder, written by the
camera service and read and judged at the desk. The JPEG is the frame both models looked at; its
SHA-256 is the picture's identity in the site evaluation set, where a judged disagreement goes.
A judgement is given once: once a picture is in the evaluation set, its labels may not change
under the figures measured on it. The book holds at most ``capacity`` unjudged records, so a
candidate that disagrees everywhere cannot fill the disk while nobody judges.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

SEEN_BY = ("both", "current", "candidate")
_ID = re.compile(r"^[0-9a-f]{20}$")


class ShadowError(ValueError):
    """A judgement that cannot be taken; the message says why."""


@dataclass(frozen=True)
class ShadowBox:
    """One object as the two models saw it: by both (same class, boxes overlapping), or by one only."""

    box: tuple[float, float, float, float]
    class_name: str
    seen_by: str  # one of SEEN_BY
    families: tuple[str, ...]  # the violation families the class counts for
    current_confidence: float | None = None
    candidate_confidence: float | None = None


@dataclass(frozen=True)
class Judgement:
    by: str
    at: str
    real: tuple[bool, ...]  # per box of the record: is there truly such an object there?


@dataclass(frozen=True)
class Disagreement:
    id: str
    model: str
    version: int  # the candidate's version
    weights_sha256: str  # the candidate's weights
    camera: str
    seen_at: str  # UTC, ISO 8601
    picture_sha256: str
    size: tuple[int, int]
    boxes: tuple[ShadowBox, ...]
    judgement: Judgement | None = None

    @property
    def seen_moment(self) -> datetime:
        return datetime.fromisoformat(self.seen_at)

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(sorted({family for box in self.boxes for family in box.families}))

    def right(self) -> dict[str, int]:
        """Of the judged boxes the models disagreed on: how many each model had right (saw a real
        object, or rightly left out a false one)."""
        counts = {"current": 0, "candidate": 0}
        if self.judgement is None:
            return counts
        for box, real in zip(self.boxes, self.judgement.real):
            if box.seen_by != "both":
                counts["candidate"] += (box.seen_by == "candidate") == real
                counts["current"] += (box.seen_by == "current") == real
        return counts

    @staticmethod
    def from_dict(raw: dict) -> "Disagreement":
        boxes = tuple(ShadowBox(**{**b, "box": tuple(b["box"]), "families": tuple(b["families"])}) for b in raw["boxes"])
        judged = raw.get("judgement")
        judgement = Judgement(judged["by"], judged["at"], tuple(judged["real"])) if judged else None
        return Disagreement(**{**raw, "size": tuple(raw["size"]), "boxes": boxes, "judgement": judgement})


@dataclass
class ShadowBook:
    folder: Path
    capacity: int = 500
    refused: int = field(default=0, init=False)  # records not kept because the book was full

    def _path(self, record_id: str, suffix: str) -> Path:
        if not _ID.match(record_id):
            raise ShadowError(f"no shadow disagreement {record_id!r}")
        return self.folder / f"{record_id}{suffix}"

    def picture(self, record_id: str) -> Path:
        return self._path(record_id, ".jpg")

    def record(self, disagreement: Disagreement, jpeg: bytes) -> bool:
        """Keep a disagreement and its picture; False when the same picture is kept already or the book is full."""
        path = self._path(disagreement.id, ".json")
        if path.exists():
            return False
        if len(self.unjudged()) >= self.capacity:
            self.refused += 1
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.picture(disagreement.id), jpeg)  # the picture first: a record never names a missing picture
        _write_atomic(path, json.dumps(asdict(disagreement), ensure_ascii=False).encode())
        return True

    def get(self, record_id: str) -> Disagreement:
        path = self._path(record_id, ".json")
        if not path.is_file():
            raise ShadowError(f"no shadow disagreement {record_id!r}")
        return Disagreement.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def all(self) -> list[Disagreement]:
        """Every record, newest first."""
        if not self.folder.is_dir():
            return []
        found = [Disagreement.from_dict(json.loads(p.read_text(encoding="utf-8"))) for p in self.folder.glob("*.json")]
        return sorted(found, key=lambda d: (d.seen_at, d.id), reverse=True)

    def unjudged(self) -> list[Disagreement]:
        return [d for d in self.all() if d.judgement is None]

    def judged(self) -> list[Disagreement]:
        return [d for d in self.all() if d.judgement is not None]

    def judge(self, record_id: str, real: list[bool], by: str) -> Disagreement:
        """An officer's word on every box of a record, given once."""
        found = self.get(record_id)
        if found.judgement is not None:
            raise ShadowError(f"already judged by {found.judgement.by} at {found.judgement.at}: it is part of the evaluation set")
        if len(real) != len(found.boxes):
            raise ShadowError(f"{len(found.boxes)} boxes to judge, {len(real)} answers given")
        judged = replace(found, judgement=Judgement(by, datetime.now(timezone.utc).isoformat(timespec="seconds"), tuple(real)))
        _write_atomic(self._path(record_id, ".json"), json.dumps(asdict(judged), ensure_ascii=False).encode())
        return judged


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
