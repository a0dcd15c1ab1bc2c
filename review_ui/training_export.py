"""Officers' decisions as training data: confirmed packs are positives, rejected ones hard negatives.

Each pack's sealed threshold frame becomes a YOLO image; a confirmation labels the subject's
boxes (as an officer corrected them, where they did), a rejection for 'false detection' adds no box (the model must learn to see nothing
there). Packs that share a frame share one image, so no picture appears twice. Every decision
and its reason goes into ``decisions.jsonl``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from nonsite.evidence import EvidenceStore, read_manifest
from nonsite.evidence.schema import decisions
from nonsite.vision.shadow_book import Disagreement, ShadowError

from .corrections import all_corrections

NEGATIVE_REASONS = ("false_detection",)


def export_decisions(engine: Engine, store: EvidenceStore, out: Path, packs: set[str] | None = None,
                     classes: list[str] | None = None) -> dict[str, int]:
    """Every decision (or those of ``packs``) as a YOLO dataset. With ``classes`` (a model's own class list) the
    labels use that model's class numbers and subjects of other classes are left out; else classes are
    numbered as they are met."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        rows = conn.execute(select(decisions).order_by(decisions.c.pack_id)).mappings().all()
    rows = [row for row in rows if packs is None or row["pack_id"] in packs]
    with engine.connect() as conn:
        fixes = all_corrections(conn)
    fixed = classes is not None
    classes = list(classes or [])
    labels: dict[str, list[str]] = {}  # image name -> YOLO lines
    name_of: dict[str, str] = {}  # image sha256 -> image name
    counts = {"positives": 0, "negatives": 0, "skipped": 0}
    with (out / "decisions.jsonl").open("w", encoding="utf-8") as log:
        for row in rows:
            if row["decision"] == "reject" and row["reason"] not in NEGATIVE_REASONS:
                counts["skipped"] += 1  # permitted, duplicate, ...: the detection was right
                continue
            manifest = read_manifest(store, row["pack_id"])
            key = manifest.key_frames["threshold"]
            width, height = key.size
            picture = store.read(row["pack_id"], key.original)
            digest = hashlib.sha256(picture).hexdigest()
            if digest not in name_of:
                name_of[digest] = f"{row['pack_id']}{Path(key.original).suffix}"
                (out / "images" / name_of[digest]).write_bytes(picture)
            image_name = name_of[digest]
            lines = labels.setdefault(image_name, [])
            if row["decision"] == "confirm":
                for number, subject in enumerate(key.subject):
                    fix = fixes.get((row["pack_id"], number))  # the officer's box and class, where they corrected the detection
                    class_name, (x1, y1, x2, y2) = (fix.class_name, fix.box) if fix else (subject.class_name, subject.box)
                    if class_name not in classes:
                        if fixed:
                            continue
                        classes.append(class_name)
                    lines.append(f"{classes.index(class_name)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                                 f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
                counts["positives"] += 1
            else:
                counts["negatives"] += 1
            log.write(json.dumps({"image": image_name, "pack_id": row["pack_id"], "decision": row["decision"], "reason": row["reason"],
                                  "note": row["note"], "category": manifest.category, "source": manifest.source.id},
                                 ensure_ascii=False) + "\n")
    for image_name, lines in labels.items():
        (out / "labels" / f"{Path(image_name).stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    return counts


def export_judgement(record: Disagreement, picture: Path, out: Path, classes: list[str]) -> None:
    """A judged shadow disagreement into the YOLO folder ``out``: its picture, labelled with the boxes
    the officer said are real (of ``classes``, the model's own). The picture must be the one judged."""
    data = picture.read_bytes()
    if hashlib.sha256(data).hexdigest() != record.picture_sha256:
        raise ShadowError(f"shadow picture {picture} is not the picture that was judged (SHA-256 differs from its record)")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    if not (out / "classes.txt").is_file():
        (out / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    outside = sorted({box.class_name for box, real in zip(record.boxes, record.judgement.real) if real and box.class_name not in classes})
    if outside:
        raise ShadowError(f"shadow record {record.id}: officers saw {', '.join(outside)}, which the model does not know; it cannot be scored")
    (out / "images" / f"shadow-{record.id}.jpg").write_bytes(data)
    width, height = record.size
    lines = [f"{classes.index(box.class_name)} {(box.box[0] + box.box[2]) / 2 / width:.6f} {(box.box[1] + box.box[3]) / 2 / height:.6f} "
             f"{(box.box[2] - box.box[0]) / width:.6f} {(box.box[3] - box.box[1]) / height:.6f}\n"
             for box, real in zip(record.boxes, record.judgement.real) if real]
    (out / "labels" / f"shadow-{record.id}.txt").write_text("".join(lines))
