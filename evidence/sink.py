"""The one way into evidence: every violation, from a camera or a drone flight, goes through here.

``EvidenceSink.submit`` enriches a violation (who: plate or shop sign; privacy copies of the key
frames; a stream or video camera's clip, encoded here), builds and signs its pack, stores it,
indexes it and writes an audit entry naming the manifest's hash. Camera pipelines and drone
batches call the same method, so a drone pack gets everything a camera pack has and the two cannot
drift apart.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from nonsite.rules import EvidenceSpec, KeyFrame, Violation
from nonsite.vision import Detection
from nonsite.vision.plates import TextReader

from .audit import record
from .clips import attach_clip
from .disclosure import add_disclosure_copies
from .hashing import sha256_hex
from .identity import identify
from .index import PackIndex
from .manifest import MANIFEST, PackManifest
from .outbox import emit
from .pack import EvidencePack, build_pack
from .store import EvidenceStore
from .timestamps import TimeStamper

PIPELINE_ACTOR = "pipeline"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredPack:
    """A pack that is stored and indexed, as the commands report it."""

    manifest: PackManifest
    location: str
    new: bool

    @property
    def pack_id(self) -> str:
        return self.manifest.pack_id


@dataclass
class RepairReport:
    indexed: list[str] = field(default_factory=list)  # stored packs that had no index row
    placed: int = 0  # rows of older releases given what the index keeps now (places, plate, UTC times)
    refused: list[str] = field(default_factory=list)  # stored packs that cannot be indexed, and why


class EvidenceSink:
    def __init__(self, store: EvidenceStore, index: PackIndex, signer=None, credentials=None, reader: TextReader | None = None,
                 timestamper: TimeStamper | None = None):
        self.store = store
        self.index = index
        self.signer = signer
        self.credentials = credentials
        self.reader = reader or TextReader()
        self.timestamper = timestamper

    def submit(self, violation: Violation, spec: EvidenceSpec, detections_of: Callable[[KeyFrame], list[Detection]]) -> StoredPack:
        """Enrich, build, sign, store, index and audit one violation. Idempotent: a rerun stores nothing twice.

        ``detections_of`` gives everything detected on a key frame (persons and other vehicles
        included), from which the privacy copies are made.
        """
        violation = attach_clip(add_disclosure_copies(identify(violation, self.reader), detections_of), spec)
        pack = self._time_stamped(build_pack(violation, spec, signer=self.signer, credentials=self.credentials))
        new = self.store.put(pack)
        self._index(pack, {"source": violation.source_id})
        return StoredPack(pack.manifest, self.store.describe(pack.pack_id), new)

    def _index(self, pack: EvidencePack, facts: dict) -> bool:
        """The index row and the audit entry that records storing the pack, in one transaction."""
        details = {"manifest_sha256": sha256_hex(pack.manifest_bytes), **facts}
        def recorded(conn) -> None:
            record(conn, PIPELINE_ACTOR, "pack.store", pack.pack_id, details)
            emit(conn, "pack.stored", pack.pack_id, {"pack_id": pack.pack_id, "category": pack.manifest.category, **details})

        return self.index.add(pack, datetime.now(timezone.utc), recorded)

    def _time_stamped(self, pack: EvidencePack) -> EvidencePack:
        """The pack with the TSA's token over its manifest; without one when the TSA fails: evidence is never
        held back for a time-stamp, and ``verify`` notes the packs that lack one."""
        if self.timestamper is None:
            return pack
        try:
            return dataclasses.replace(pack, timestamp=self.timestamper.stamp(pack.manifest_bytes))
        except Exception as exc:  # noqa: BLE001 - TimestampError, or anything else: the pack is stored regardless
            log.warning("pack %s stored without an RFC 3161 time-stamp: %s", pack.pack_id, exc)
            return pack

    def repair(self) -> RepairReport:
        """Index stored packs that a crash left unindexed, and give rows from older releases what the index keeps now."""
        report = RepairReport()
        rows = {row.pack_id: row for row in self.index.rows()}
        for pack_id in self.store.pack_ids():
            row = rows.get(pack_id)
            if row is not None and row.model is not None:
                continue
            if not self.store.exists(pack_id):
                continue  # an interrupted upload: the manifest, written last, is missing
            raw = self.store.read(pack_id, MANIFEST)
            manifest = PackManifest.from_bytes(raw)
            if manifest.pack_id != pack_id:
                report.refused.append(f"{pack_id}: its manifest names pack {manifest.pack_id} (copied or moved)")
            elif row is None:
                self._index(EvidencePack(pack_id, manifest, raw, {}), {"source": manifest.source.id, "repaired": True})
                report.indexed.append(pack_id)
            else:
                self.index.fill_facts(pack_id, manifest)
                report.placed += 1
        return report
