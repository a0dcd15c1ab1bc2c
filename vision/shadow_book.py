"""What a candidate model running in shadow disagreed on, and the officers' judgements of it.

One JSON record and one JPEG per disagreement in the model's ``shadow`` folder, written by the
camera service and read and judged at the desk. The JPEG is the frame both models looked at; its
SHA-256 is the picture's identity in the site evaluation set, where a judged disagreement goes, and
the record's ``digest`` (boxes, size, judgement) is what the set keeps of its labels, so a record
edited afterwards is refused rather than measured on. A judgement is given once: the first to
create the record's ``.judged`` mark wins, in any process. The book holds at most ``capacity``
unjudged records of each candidate version and forgets unjudged ones after ``keep_days`` (they are
pictures of the street with everyone in them), so a candidate that disagrees everywhere cannot fill
the disk while nobody judges.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from nonsite.ingest.files import replace_file

log = logging.getLogger("nonsite.shadow")

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
    current_weights_sha256: str = ""  # the current model's weights it was compared with

    def digest(self) -> str:
        """SHA-256 of what labels the picture in the evaluation set: its boxes, size and judgement."""
        labels = {"boxes": [asdict(b) for b in self.boxes], "size": list(self.size), "real": list(self.judgement.real) if self.judgement else None}
        return hashlib.sha256(json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

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
    capacity: int = 500  # unjudged records of one candidate version
    keep_days: int = 14  # unjudged records older than this are deleted
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
        waiting = self._forget_old(self.unjudged())
        if sum(d.version == disagreement.version for d in waiting) >= self.capacity:
            if not self.refused:
                log.warning("shadow: %s v%d has %d disagreements waiting for officers; no more are kept until some are judged",
                            disagreement.model, disagreement.version, self.capacity)
            self.refused += 1
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        replace_file(self.picture(disagreement.id), jpeg)  # the picture first: a record never names a missing picture
        replace_file(path, json.dumps(asdict(disagreement), ensure_ascii=False).encode())
        return True

    def _forget_old(self, waiting: list[Disagreement]) -> list[Disagreement]:
        cutoff = datetime.now(timezone.utc) - timedelta(days=self.keep_days)
        for record in [d for d in waiting if d.seen_moment < cutoff]:
            for suffix in (".json", ".jpg", ".judged"):
                self._path(record.id, suffix).unlink(missing_ok=True)
        return [d for d in waiting if d.seen_moment >= cutoff]

    def get(self, record_id: str) -> Disagreement:
        path = self._path(record_id, ".json")
        if not path.is_file():
            raise ShadowError(f"no shadow disagreement {record_id!r}")
        return Disagreement.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def all(self) -> list[Disagreement]:
        """Every record, newest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.glob("*.json"):
            try:
                found.append(Disagreement.from_dict(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError) as exc:  # one damaged file must not hide the others
                log.error("shadow: record %s cannot be read (%s); left out", path, exc)
        return sorted(found, key=lambda d: (d.seen_at, d.id), reverse=True)

    def unjudged(self) -> list[Disagreement]:
        return [d for d in self.all() if d.judgement is None]

    def judged(self) -> list[Disagreement]:
        return [d for d in self.all() if d.judgement is not None]

    def judge(self, record_id: str, real: list[bool], by: str) -> Disagreement:
        """An officer's word on every box of a record, given once."""
        found = self.get(record_id)
        if len(real) != len(found.boxes):
            raise ShadowError(f"{len(found.boxes)} boxes to judge, {len(real)} answers given")
        try:
            os.close(os.open(self._path(record_id, ".judged"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # one judge, in any process
        except FileExistsError as exc:
            raise ShadowError("already judged: it is part of the evaluation set") from exc
        judged = replace(found, judgement=Judgement(by, datetime.now(timezone.utc).isoformat(timespec="seconds"), tuple(real)))
        replace_file(self._path(record_id, ".json"), json.dumps(asdict(judged), ensure_ascii=False).encode())
        return judged
