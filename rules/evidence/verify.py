"""Recompute every hash of a pack and say exactly which file no longer matches."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .hashing import sha256_hex
from .pack import MANIFEST
from .store import EvidenceStore, StoreError


@dataclass
class VerifyReport:
    pack_id: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_pack(store: EvidenceStore, pack_id: str, expected_manifest_sha256: str | None = None) -> VerifyReport:
    """``expected_manifest_sha256`` (from the index) also catches an edited manifest."""
    report = VerifyReport(pack_id)
    try:
        raw = store.read(pack_id, MANIFEST)
    except StoreError as exc:
        report.problems.append(f"{MANIFEST}: missing ({exc})")
        return report
    if expected_manifest_sha256 and sha256_hex(raw) != expected_manifest_sha256:
        report.problems.append(f"{MANIFEST}: altered (its SHA-256 differs from the one indexed when the pack was written)")
    try:
        manifest = json.loads(raw)
        listed: dict[str, str] = manifest["files"]
    except (ValueError, KeyError, TypeError):
        report.problems.append(f"{MANIFEST}: not a readable pack manifest")
        return report
    for path, expected in sorted(listed.items()):
        report.checked += 1
        try:
            actual = sha256_hex(store.read(pack_id, path))
        except StoreError:
            report.problems.append(f"{path}: missing")
            continue
        if actual != expected:
            report.problems.append(f"{path}: altered (SHA-256 {actual[:16]}… expected {expected[:16]}…)")
    present = set(store.list_files(pack_id)) - {MANIFEST}
    for extra in sorted(present - set(listed)):
        report.problems.append(f"{extra}: not listed in the manifest")
    return report
