"""The deployment's own evaluation set: officers' decisions on its own cameras, frozen aside and never trained on.

A model learns from decided packs; it is judged on other decided packs of the same streets. The unit
is the picture a pack was raised on (every pack on one picture goes to the same side, or a model
would be judged on a frame it trained on). A picture joins the evaluation set when its SHA-256 falls
in one fifth of the hash space, or when it is the first decided picture of a stratum (camera or
flight, violation family, part of the day) that has none yet; once in, it stays in, and a picture
already used for training never joins. The set only grows: each growth is a new version, and the
set's SHA-256 (over its canonical JSON) names exactly what a report was measured on.

Officers' judgements of what a candidate in shadow disagreed on (``vision.shadow_book``) join the
set too, every one of them: they are pictures the current model raised nothing on or raised wrongly,
exactly where a candidate differs, and never training data.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import Engine

from nonsite.evidence import EvidenceStore, read_manifest
from nonsite.evidence.hashing import canonical_json
from nonsite.evidence.schema import decisions, packs_table
from nonsite.ingest.files import replace_file
from nonsite.vision.shadow_book import Disagreement

from .training_export import NEGATIVE_REASONS

EVAL_SHARE = 5  # one picture in five joins the evaluation set
DAYPARTS = ((0, "night"), (6, "morning"), (12, "afternoon"), (18, "evening"))


@dataclass(frozen=True)
class DecidedPack:
    """A pack whose decision says something about the model: confirmed, or rejected as a false detection."""

    pack_id: str
    picture: str  # SHA-256 of the sealed picture it was raised on
    source: str
    category: str
    daypart: str
    decision: str
    models: tuple[str, ...]  # the detectors its subjects came from

    @property
    def stratum(self) -> str:
        return f"{self.source}|{self.category}|{self.daypart}"


def _daypart(moment: datetime, zone: ZoneInfo) -> str:
    hour = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(zone).hour
    return next(name for start, name in reversed(DAYPARTS) if hour >= start)


def decided_packs(engine: Engine, store: EvidenceStore, zone: ZoneInfo) -> list[DecidedPack]:
    query = (select(decisions.c.pack_id, decisions.c.decision, decisions.c.reason, packs_table.c.source_id, packs_table.c.category,
                    packs_table.c.threshold_at)
             .join(packs_table, packs_table.c.pack_id == decisions.c.pack_id).order_by(decisions.c.pack_id))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    found = []
    for row in rows:
        if row.decision == "reject" and row.reason not in NEGATIVE_REASONS:
            continue  # permitted, duplicate, ...: the detection itself was right and teaches nothing either way
        manifest = read_manifest(store, row.pack_id)
        key = manifest.key_frames["threshold"]
        found.append(DecidedPack(row.pack_id, manifest.files[key.original], row.source_id, row.category,
                                 _daypart(row.threshold_at, zone), row.decision, tuple(sorted({b.model for b in key.subject}))))
    return found


@dataclass(frozen=True)
class SiteEvalSet:
    version: int
    sha256: str
    pictures: dict[str, dict]  # picture SHA-256 -> {"stratum": ..., "packs": [pack ids]} (and "shadow": {judged record id: its digest})
    created_at: str

    def packs(self) -> set[str]:
        return {pack for picture in self.pictures.values() for pack in picture["packs"]}

    def shadow_records(self) -> dict[str, str]:
        """Judged shadow disagreements in the set: record id -> the digest of its labels when it joined."""
        return {record: digest for picture in self.pictures.values() for record, digest in picture.get("shadow", {}).items()}


class SiteEvalBook:
    """The evaluation set and the pictures already trained on, kept under ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.set_path, self.trained_path = folder / "site_eval.json", folder / "trained_pictures.json"

    def current(self) -> SiteEvalSet:
        if not self.set_path.is_file():
            return SiteEvalSet(0, hashlib.sha256(canonical_json({})).hexdigest(), {}, "")
        return SiteEvalSet(**json.loads(self.set_path.read_text(encoding="utf-8")))

    def trained(self) -> set[str]:
        return set(json.loads(self.trained_path.read_text())) if self.trained_path.is_file() else set()

    def mark_trained(self, pictures: set[str]) -> None:
        self._write(self.trained_path, sorted(self.trained() | pictures))

    def grow(self, decided: list[DecidedPack], judged: list[Disagreement] = (), zone: ZoneInfo = ZoneInfo("Asia/Shanghai")) -> SiteEvalSet:
        """Add newly decided pictures by the rule above, and every judged shadow disagreement; a new
        version only when something joined."""
        current, trained = self.current(), self.trained()
        pictures = {sha: {**entry, "packs": list(entry["packs"]), **({"shadow": dict(entry["shadow"])} if "shadow" in entry else {})}
                    for sha, entry in current.pictures.items()}
        covered = {entry["stratum"] for entry in pictures.values() if entry["packs"]}  # a stratum is covered by decided packs
        for pack in sorted(decided, key=lambda p: p.picture):
            if pack.picture in pictures:
                if pack.pack_id not in pictures[pack.picture]["packs"]:
                    pictures[pack.picture]["packs"].append(pack.pack_id)  # a later decision on a picture already set aside
                continue
            if pack.picture in trained:
                continue
            if int(pack.picture[:8], 16) % EVAL_SHARE == 0 or pack.stratum not in covered:
                pictures[pack.picture] = {"stratum": pack.stratum, "packs": [pack.pack_id]}
                covered.add(pack.stratum)
        for record in judged:
            if record.picture_sha256 in trained:
                continue
            stratum = f"{record.camera}|{record.families[0]}|{_daypart(record.seen_moment, zone)}"
            entry = pictures.setdefault(record.picture_sha256, {"stratum": stratum, "packs": []})
            entry.setdefault("shadow", {}).setdefault(record.id, record.digest())  # once in, its labels are fixed by this digest
        for entry in pictures.values():
            entry["packs"].sort()
        digest = hashlib.sha256(canonical_json(pictures)).hexdigest()
        if digest == current.sha256:
            return current
        grown = SiteEvalSet(current.version + 1, digest, pictures, datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self._write(self.set_path, grown.__dict__)
        return grown

    def _write(self, path: Path, value) -> None:
        replace_file(path, json.dumps(value, indent=1, ensure_ascii=False).encode())
