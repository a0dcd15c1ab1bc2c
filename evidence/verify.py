"""Recompute every hash of a pack, check its signature and time-stamp, and say exactly what no longer matches."""
from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .hashing import sha256_hex
from .manifest import MANIFEST, ManifestError, PackManifest
from .signing import SIGNATURE, check_signature
from .store import EvidenceStore, StoreError
from .timestamps import TIMESTAMP, check_token, time_note

PURGEABLE = ("original/", "annotated/", "crops/", "disclosure/", "baseline/", "change/", "clip/")


@dataclass
class Findings:
    """What a check found: how many files matched, every problem (never only the first), and notes."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerifyReport(Findings):
    pack_id: str = ""


def verify_pack(
    store: EvidenceStore, pack_id: str, expected_manifest_sha256: str | None = None,
    public_key: Ed25519PublicKey | None = None, images_purged: bool = False, tsa_ca: bytes | None = None,
) -> VerifyReport:
    """``expected_manifest_sha256`` (from the index) and ``public_key`` each also catch an edited manifest;
    ``images_purged`` accepts image files that the retention job removed. A ``manifest.tsr`` is always checked;
    ``tsa_ca`` (the TSA's CA certificate, PEM) also checks who issued it, and notes a pack that has none."""
    report = VerifyReport(pack_id=pack_id)
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
    _check_timestamp(store, pack_id, raw, tsa_ca, report)
    try:
        manifest = PackManifest.from_bytes(raw)
    except ManifestError as exc:
        report.problems.append(str(exc))
        return report
    if manifest.pack_id != pack_id:
        report.problems.append(f"{MANIFEST}: names pack {manifest.pack_id}, but it is stored as {pack_id} (copied or moved)")
    listed = manifest.files
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
    present = set(store.list_files(pack_id)) - {MANIFEST, SIGNATURE, TIMESTAMP}
    for extra in sorted(present - set(listed)):
        report.problems.append(f"{extra}: not listed in the manifest")
    return report


def _check_timestamp(store: EvidenceStore, pack_id: str, manifest_bytes: bytes, tsa_ca: bytes | None, report: VerifyReport) -> None:
    """A bad token is a problem; a missing one only a note, as packs are stored while the TSA is down."""
    try:
        token = store.read(pack_id, TIMESTAMP)
    except StoreError:
        if tsa_ca is not None:
            report.notes.append(f"no {TIMESTAMP} (stored while the TSA was unreachable, or before one was configured)")
        return
    at, problem = check_token(token, manifest_bytes, tsa_ca)
    if problem:
        report.problems.append(f"{TIMESTAMP}: {problem}")
    else:
        report.notes.append(time_note(at) + ("" if tsa_ca is not None else " (its certificate not checked: no TSA CA configured)"))


@dataclass
class DeploymentReport:
    """Every pack checked, plus what no single pack shows: packs missing from the store or the index,
    purges without their retention entry, packs whose storing the audit log does not record."""

    packs: list[VerifyReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.packs)


def _audit_trail(engine) -> dict[str, list[tuple[str, dict]]]:
    """(action, details) of the pack.store and retention entries, by pack id."""
    from sqlalchemy import or_, select

    from .schema import audit

    trail: dict[str, list[tuple[str, dict]]] = {}
    with engine.connect() as conn:
        query = select(audit.c.target, audit.c.action, audit.c.details).where(
            or_(audit.c.action == "pack.store", audit.c.action.like("retention.%"))).order_by(audit.c.id)
        for target, action, details in conn.execute(query):
            trail.setdefault(target, []).append((action, details or {}))
    return trail


def verify_deployment(store: EvidenceStore, index, public_key: Ed25519PublicKey | None = None,
                      pack_ids: list[str] | None = None, tsa_ca: bytes | None = None) -> DeploymentReport:
    """Check the union of the index and the store (or only ``pack_ids``) against each other and the audit log."""
    rows = {row.pack_id: row for row in index.rows()}
    stored = set(store.pack_ids())
    trail = _audit_trail(index.engine)
    first_store = min((row.indexed_at for pid, row in rows.items() for action, _ in trail.get(pid, []) if action == "pack.store"),
                      default=None)
    recorded = {pid for pid, actions in trail.items() if any(action == "pack.store" for action, _ in actions)}
    report = DeploymentReport()
    for pack_id in sorted(pack_ids or (set(rows) | stored | recorded)):
        row, actions = rows.get(pack_id), trail.get(pack_id, [])
        purge = next((a.split(".", 1)[1] for a, _ in reversed(actions) if a.startswith("retention.")), None)
        if row is None:
            report.problems.append(f"{pack_id}: in the store but not in the index (no officer sees it)" if pack_id in stored else
                                   f"{pack_id}: the audit log records storing it, but it is neither in the index nor in the store (deleted)"
                                   if pack_id in recorded else f"{pack_id}: neither in the index nor in the store")
            if pack_id in stored:
                report.packs.append(verify_pack(store, pack_id, None, public_key, tsa_ca=tsa_ca))
            continue
        if row.purged and purge != {"all": "delete", "images": "purge_images"}[row.purged]:
            report.problems.append(f"{pack_id}: marked purged ({row.purged}) but the audit log records no such retention run")
        if row.purged == "all" and purge == "delete":
            continue
        if pack_id not in stored:
            report.problems.append(f"{pack_id}: indexed, but its files are gone from the store (deleted)")
            continue
        stores = [details for action, details in actions if action == "pack.store"]
        if stores and stores[0].get("manifest_sha256") != row.manifest_sha256:
            report.problems.append(f"{pack_id}: the index's manifest hash differs from the one the audit log recorded when it was stored")
        elif not stores and first_store is not None and _aware(row.indexed_at) >= _aware(first_store):
            report.problems.append(f"{pack_id}: the audit log does not record storing this pack")
        report.packs.append(verify_pack(store, pack_id, row.manifest_sha256, public_key, row.purged == "images", tsa_ca))
    return report


def _aware(moment):
    from datetime import timezone

    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
