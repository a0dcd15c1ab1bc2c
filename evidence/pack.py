"""Build an evidence pack from a violation: original and annotated key frames, crops, manifest.

Everything is assembled in memory first and handed to a store in one piece, so a store can
make it visible atomically. The manifest lists the SHA-256 of every other file.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import cv2
import numpy as np

from nonsite.ingest.decoding import picture_suffix
from nonsite.rules import EvidenceSpec, KeyFrame, Violation

from .annotate import annotate, crop
from .hashing import sha256_hex
from .manifest import KEY_FRAMES, MANIFEST, BoxFacts, KeyFrameFacts, PackManifest
from .signing import SIGNATURE, Signer
from .timestamps import TIMESTAMP

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
    manifest: PackManifest
    manifest_bytes: bytes  # exactly what is stored, hashed and signed
    files: dict[str, bytes]
    signature: bytes | None = None  # manifest.sig, when the deployment has a signing key
    timestamp: bytes | None = None  # manifest.tsr: an RFC 3161 token over the manifest, when a TSA is configured

    @classmethod
    def sealed(cls, manifest: PackManifest, files: dict[str, bytes], signer: Signer | None) -> "EvidencePack":
        raw = manifest.to_bytes()
        return cls(manifest.pack_id, manifest, raw, files, signer.sign(raw) if signer else None)

    def stored_files(self) -> dict[str, bytes]:
        """Everything a store writes: the files, the manifest, its signature and its time-stamp token."""
        extra = {SIGNATURE: self.signature} if self.signature else {}
        if self.timestamp:
            extra[TIMESTAMP] = self.timestamp
        return {**self.files, MANIFEST: self.manifest_bytes, **extra}


def pack_id_for(violation: Violation) -> str:
    """Deterministic: the same violation seen again (a rerun, a retry) gets the same id."""
    if survey := violation.extras.get("survey"):  # a change between two mosaics is what was compared, whatever the run was named
        return str(uuid.uuid5(_PACK_NAMESPACE, f"survey|{survey['mosaic_sha256']}|{survey['previous_sha256']}|{violation.rule.id}|"
                                               f"{violation.zone.id}|{list(survey['region_px'])}"))
    box = ",".join(f"{v:.0f}" for v in violation.threshold.subject[0].box)
    key = f"{violation.source_id}|{violation.rule.id}|{violation.zone.id}|{violation.threshold.at.isoformat()}|{box}"
    return str(uuid.uuid5(_PACK_NAMESPACE, key))


def _encode(image: np.ndarray, suffix: str, quality: int) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix == ".jpg" else []
    ok, data = cv2.imencode(suffix, image, params)
    if not ok:
        raise ValueError(f"cannot encode image as {suffix}")
    return data.tobytes()


def _original_bytes(key: KeyFrame) -> tuple[bytes, str, str]:
    """(bytes, suffix, kind) of what is sealed as the original: the picture's bytes exactly as the source
    delivered them (files, drone pictures), or lossless PNG of a decoded stream or video frame.

    Never re-read by name: the bytes sealed are the bytes that were analysed."""
    if key.frame.encoded is not None:
        return key.frame.encoded, picture_suffix(key.frame.encoded) or ".bin", "received_bytes"
    png = _encode(key.frame.image, ".png", 0)  # first: decoding the picture is what tells whether it is a stand-in
    return png, ".png", "sub_stream_picture" if key.frame.stand_in else "decoded_frame"


class SealError(ValueError):
    """What would be sealed is not what was analysed; nothing is written."""


def _box_facts(key: KeyFrame) -> list[BoxFacts]:
    return [
        BoxFacts(box=tuple(round(v, 1) for v in d.box), class_name=d.class_name, confidence=round(d.confidence, 4),
                 track_id=d.track_id, model=d.model, weights_sha256=d.weights_sha256)
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
    key_frames: dict[str, KeyFrameFacts] = {}
    caption_base = f"{violation.source_id} | {violation.rule.id}"
    for name in KEY_FRAMES:
        key: KeyFrame = getattr(violation, name)
        original, suffix, kind = _original_bytes(key)
        files[f"original/{name}{suffix}"] = original
        caption = f"{caption_base} | {name.replace('_', ' ')} {key.at.strftime('%Y-%m-%d %H:%M:%S')}"
        files[f"annotated/{name}.jpg"] = _encode(annotate(key.frame.image, violation.zone.polygon, key.subject, caption), ".jpg", spec.jpeg_quality)
        key_frames[name] = KeyFrameFacts(
            captured_at=key.at, seq=key.frame.seq, origin=key.frame.origin, original=f"original/{name}{suffix}",
            annotated=f"annotated/{name}.jpg", size=key.frame.size, subject=_box_facts(key), original_kind=kind,
            time_source=key.frame.time_source, stand_in=key.frame.stand_in,
        )
    crops = []
    for index, detection in enumerate(violation.threshold.subject):
        path = f"crops/subject_{index}.jpg"
        files[path] = _encode(crop(violation.threshold.frame.image, detection.box, spec.crop_margin), ".jpg", spec.jpeg_quality)
        crops.append(path)
    for path, data in violation.attachments.items():
        files[path] = data
    drone = violation.extras.get("drone")
    if drone and sha256_hex(files[key_frames["threshold"].original]) != drone["image_sha256"]:
        raise SealError(f"pack {pack_id}: the original to be sealed is not the drone picture {drone['image']} that was analysed")
    if credentials is not None:
        files = _with_credentials(files, {name: facts.original for name, facts in key_frames.items()}, credentials, pack_id)
    frame = violation.threshold.frame
    models = sorted({(d.model, d.weights_sha256 or "") for d in violation.threshold.subject})
    manifest = PackManifest(
        pack_id=pack_id,
        created_at=created_at or datetime.now(timezone.utc),
        software={"name": "nonsite", "version": software_version()},
        category=violation.category,
        subject_key=violation.subject_key,
        rule=violation.rule,
        source={"id": frame.source_id, "camera": frame.camera,
                "geo": {"lat": frame.geo.lat, "lon": frame.geo.lon, "alt_m": frame.geo.alt_m} if frame.geo else None},
        zone={"id": violation.zone.id, "polygon": violation.zone.polygon, "site": violation.zone.site},
        shop=violation.zone.shop,
        times={name: key_frames[name].captured_at for name in KEY_FRAMES},
        dwell_s=round(violation.dwell_s, 3),
        confidence=round(violation.confidence, 4),
        models=[{"name": name, "weights_sha256": sha or None} for name, sha in models],
        thresholds={"min_confidence": violation.rule.min_confidence, "dwell_s": violation.rule.dwell_s,
                    "cooldown_s": violation.rule.cooldown_s, "grace_s": violation.rule.grace_s},
        key_frames=key_frames,
        crops=crops,
        track=[(p.at, *[round(v, 1) for v in p.box], p.track_id) for p in violation.track],
        **violation.extras,
        files={path: sha256_hex(data) for path, data in sorted(files.items())},
    )
    return EvidencePack.sealed(manifest, files, signer)
