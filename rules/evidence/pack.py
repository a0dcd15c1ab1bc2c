"""Build an evidence pack from a violation: original and annotated key frames, crops, manifest.

Everything is assembled in memory first and handed to a store in one piece, so a store can
make it visible atomically. The manifest lists the SHA-256 of every other file.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import cv2
import numpy as np

from ..config import EvidenceSpec
from ..violation import KeyFrame, Violation
from .annotate import annotate, crop
from .hashing import canonical_json, sha256_hex
from .signing import SIGNATURE, Signer

MANIFEST = "manifest.json"
SCHEMA = "nonsite.pack/1"
KEY_FRAMES = ("first_seen", "threshold", "last_seen")
_PACK_NAMESPACE = uuid.UUID("6f1d2a8e-3c1b-5e0a-9b7f-6e6f6e736974")


def software_version() -> str:
    try:
        return version("nonsite")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class EvidencePack:
    """A pack ready for a store: its id, its manifest, and the bytes of every file."""

    pack_id: str
    manifest: dict
    files: dict[str, bytes]
    signature: bytes | None = None  # manifest.sig, when the deployment has a signing key

    @property
    def manifest_bytes(self) -> bytes:
        return canonical_json(self.manifest)

    def stored_files(self) -> dict[str, bytes]:
        """Everything a store writes: the files, the manifest, and its signature."""
        extra = {SIGNATURE: self.signature} if self.signature else {}
        return {**self.files, MANIFEST: self.manifest_bytes, **extra}


def pack_id_for(violation: Violation) -> str:
    """Deterministic: the same violation seen again (a rerun, a retry) gets the same id."""
    box = ",".join(f"{v:.0f}" for v in violation.threshold.subject[0].box)
    key = f"{violation.source_id}|{violation.rule.id}|{violation.zone.id}|{violation.threshold.at.isoformat()}|{box}"
    return str(uuid.uuid5(_PACK_NAMESPACE, key))


def _encode(image: np.ndarray, suffix: str, quality: int) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix == ".jpg" else []
    ok, data = cv2.imencode(suffix, image, params)
    if not ok:
        raise ValueError(f"cannot encode image as {suffix}")
    return data.tobytes()


def _original_bytes(key: KeyFrame) -> tuple[bytes, str]:
    """The picture exactly as it arrived: the source file's own bytes, or lossless PNG of a decoded video frame."""
    origin = Path(key.frame.origin) if key.frame.origin and "://" not in key.frame.origin else None
    if origin is not None and origin.is_file():
        return origin.read_bytes(), origin.suffix.lower()
    return _encode(key.frame.image, ".png", 0), ".png"


def _box_facts(key: KeyFrame) -> list[dict]:
    return [
        {
            "box": [round(v, 1) for v in d.box], "class": d.class_name, "confidence": round(d.confidence, 4),
            "track_id": d.track_id, "model": d.model, "weights_sha256": d.weights_sha256,
        }
        for d in key.subject
    ]


DERIVED_ACTIONS = {
    "annotated/": ("c2pa.edited", "annotated: subject boxes and zone drawn"),
    "disclosure/": ("c2pa.edited", "privacy copy: bystanders and uninvolved plates pixelated"),
    "crops/": ("c2pa.cropped", "cropped to the subject"),
}


def _with_credentials(files: dict[str, bytes], originals: dict[str, str], credentials, pack_id: str) -> dict[str, bytes]:
    """Derived JPEGs re-issued with C2PA manifests that name their sealed original."""
    stamped = dict(files)
    for path, data in files.items():
        prefix = next((p for p in DERIVED_ACTIONS if path.startswith(p)), None)
        if prefix is None or not path.endswith(".jpg"):
            continue
        source = originals.get(Path(path).stem, originals["threshold"])
        stamped[path] = credentials.stamp(data, files[source], source, [DERIVED_ACTIONS[prefix]], pack_id, software_version())
    return stamped


def build_pack(violation: Violation, spec: EvidenceSpec, created_at: datetime | None = None, signer: Signer | None = None,
               credentials=None) -> EvidencePack:
    pack_id = pack_id_for(violation)
    files: dict[str, bytes] = {}
    key_frames: dict[str, dict] = {}
    caption_base = f"{violation.source_id} | {violation.rule.id}"
    for name in KEY_FRAMES:
        key: KeyFrame = getattr(violation, name)
        original, suffix = _original_bytes(key)
        files[f"original/{name}{suffix}"] = original
        caption = f"{caption_base} | {name.replace('_', ' ')} {key.at.strftime('%Y-%m-%d %H:%M:%S')}"
        files[f"annotated/{name}.jpg"] = _encode(annotate(key.frame.image, violation.zone.polygon, key.subject, caption), ".jpg", spec.jpeg_quality)
        key_frames[name] = {
            "captured_at": key.at.isoformat(), "seq": key.frame.seq, "origin": key.frame.origin,
            "original": f"original/{name}{suffix}", "annotated": f"annotated/{name}.jpg",
            "size": list(key.frame.size), "subject": _box_facts(key),
        }
    crops = []
    for index, detection in enumerate(violation.threshold.subject):
        path = f"crops/subject_{index}.jpg"
        files[path] = _encode(crop(violation.threshold.frame.image, detection.box, spec.crop_margin), ".jpg", spec.jpeg_quality)
        crops.append(path)
    for path, data in violation.attachments.items():
        files[path] = data
    if credentials is not None:
        files = _with_credentials(files, {name: facts["original"] for name, facts in key_frames.items()}, credentials, pack_id)
    frame = violation.threshold.frame
    models = sorted({(d.model, d.weights_sha256) for d in violation.threshold.subject})
    manifest = {
        "schema": SCHEMA,
        "pack_id": pack_id,
        "created_at": (created_at or datetime.now(timezone.utc)).isoformat(),
        "software": {"name": "nonsite", "version": software_version()},
        "category": violation.category,
        "subject_key": violation.subject_key,
        "rule": violation.rule.model_dump(mode="json"),
        "source": {
            "id": frame.source_id, "camera": frame.camera,
            "geo": {"lat": frame.geo.lat, "lon": frame.geo.lon, "alt_m": frame.geo.alt_m} if frame.geo else None,
        },
        "zone": {"id": violation.zone.id, "polygon": [list(p) for p in violation.zone.polygon], "site": violation.zone.site},
        "shop": violation.zone.shop.model_dump() if violation.zone.shop else None,
        "times": {name: key_frames[name]["captured_at"] for name in KEY_FRAMES},
        "dwell_s": round(violation.dwell_s, 3),
        "confidence": round(violation.confidence, 4),
        "models": [{"name": name, "weights_sha256": sha} for name, sha in models],
        "thresholds": {
            "min_confidence": violation.rule.min_confidence, "dwell_s": violation.rule.dwell_s,
            "cooldown_s": violation.rule.cooldown_s, "grace_s": violation.rule.grace_s,
        },
        "key_frames": key_frames,
        "crops": crops,
        "track": [[p.at.isoformat(), *[round(v, 1) for v in p.box], p.track_id] for p in violation.track],
        **violation.extras,
        "files": {path: sha256_hex(data) for path, data in sorted(files.items())},
    }
    pack = EvidencePack(pack_id, manifest, files)
    return replace(pack, signature=signer.sign(pack.manifest_bytes)) if signer else pack
