"""Recompute every hash of a pack, check its signature, and say exactly what no longer matches."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .hashing import sha256_hex
from .pack import MANIFEST
from .signing import SIGNATURE, check_signature
from .store import EvidenceStore, StoreError

PURGEABLE = ("original/", "annotated/", "crops/", "disclosure/", "baseline/", "change/")


@dataclass
class VerifyReport:
    pack_id: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_pack(
    store: EvidenceStore, pack_id: str, expected_manifest_sha256: str | None = None,
    public_key: Ed25519PublicKey | None = None, images_purged: bool = False,
) -> VerifyReport:
    """``expected_manifest_sha256`` (from the index) and ``public_key`` each also catch an edited manifest;
    ``images_purged`` accepts image files that the retention job removed."""
    report = VerifyReport(pack_id)
    try:
        raw = store.read(pack_id, MANIFEST)
    except StoreError as exc:
        report.problems.append(f"{MANIFEST}: missing ({exc})")
        return report
    if expected_manifest_sha256 and sha256_hex(raw) != expected_manifest_sha256:
        report.problems.append(f"{MANIFEST}: altered (its SHA-256 differs from the one indexed when the pack was written)")
    if public_key is not None:
        try:
            problem = check_signature(public_key, raw, store.read(pack_id, SIGNATURE))
        except StoreError:
            problem = f"{SIGNATURE}: missing (the pack is not signed)"
        if problem:
            report.problems.append(problem)
        else:
            report.notes.append("signature valid")
    try:
        manifest = json.loads(raw)
        listed: dict[str, str] = manifest["files"]
    except (ValueError, KeyError, TypeError):
        report.problems.append(f"{MANIFEST}: not a readable pack manifest")
        return report
    for path, expected in sorted(listed.items()):
        try:
            actual = sha256_hex(store.read(pack_id, path))
        except StoreError:
            if images_purged and path.startswith(PURGEABLE):
                continue
            report.problems.append(f"{path}: missing")
            continue
        report.checked += 1
        if actual != expected:
            report.problems.append(f"{path}: altered (SHA-256 {actual[:16]}… expected {expected[:16]}…)")
    if images_purged:
        report.notes.append("images removed by the retention job; manifest and decision kept")
    present = set(store.list_files(pack_id)) - {MANIFEST, SIGNATURE}
    for extra in sorted(present - set(listed)):
        report.problems.append(f"{extra}: not listed in the manifest")
    return report
