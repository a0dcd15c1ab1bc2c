"""The pack index: one row per pack, the review queue's source of truth (SQLite or PostgreSQL)."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from .hashing import sha256_hex
from .manifest import PackManifest
from .pack import EvidencePack
from .schema import packs_table, shops


@dataclass(frozen=True)
class PackRow:
    pack_id: str
    category: str
    source_id: str
    rule_id: str
    zone_id: str
    shop_name: str | None
    subject_key: str
    first_seen: datetime
    threshold_at: datetime
    last_seen: datetime
    dwell_s: float
    confidence: float
    manifest_sha256: str
    status: str
    indexed_at: datetime
    purged: str | None = None
    places: list | None = None  # [[lon, lat], ...]; None for packs indexed before migration 0002
    places_approximate: bool | None = None
    plate: str | None = None
    shop_licence: str | None = None
    model: str | None = None  # None: indexed before migration 0005, until PackIndex.repair reaches it


def _row_of(manifest: PackManifest, manifest_sha256: str, indexed_at: datetime) -> dict:
    return {
        "pack_id": manifest.pack_id, "category": manifest.category, "source_id": manifest.source.id,
        "rule_id": manifest.rule.id, "zone_id": manifest.zone.id, "shop_name": (manifest.shop.name or None) if manifest.shop else None,
        "subject_key": manifest.subject_key, "first_seen": manifest.times.first_seen, "threshold_at": manifest.times.threshold,
        "last_seen": manifest.times.last_seen, "dwell_s": manifest.dwell_s, "confidence": manifest.confidence,
        "manifest_sha256": manifest_sha256, "status": "pending_review", "indexed_at": indexed_at,
        "places": [list(p) for p in manifest.places], "places_approximate": manifest.places_approximate, **_searched(manifest),
    }


def _searched(manifest: PackManifest) -> dict:
    """What the queue searches and filters by; the times too, since rows before 0005 kept camera wall-clock text."""
    return {
        "plate": manifest.plate.text if manifest.plate and manifest.plate.valid else None,
        "shop_licence": (re.sub(r"\s+", "", manifest.shop.licence).upper() or None) if manifest.shop else None,  # as the register keys it
        "model": ", ".join(m.name for m in manifest.models) or "?",
        "first_seen": manifest.times.first_seen, "threshold_at": manifest.times.threshold, "last_seen": manifest.times.last_seen,
    }


class PackIndex:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, pack: EvidencePack, indexed_at: datetime, with_row: Callable[[Connection], None] | None = None) -> bool:
        """Index a stored pack; False when it was indexed before (reruns add nothing). ``with_row`` runs in
        the same transaction (the audit entry that records storing the pack), so the two commit together."""
        try:
            with self.engine.begin() as conn:
                row = _row_of(pack.manifest, sha256_hex(pack.manifest_bytes), indexed_at)
                if row["shop_name"] is None and row["shop_licence"]:  # a zone naming its shop by licence: the register's name
                    row["shop_name"] = conn.execute(select(shops.c.name).where(shops.c.licence == row["shop_licence"])).scalar()
                conn.execute(insert(packs_table).values(**row))
                if with_row is not None:
                    with_row(conn)
        except IntegrityError:
            return False
        return True

    def fill_facts(self, pack_id: str, manifest: PackManifest) -> None:
        """What a pack indexed before the index kept it gets from its manifest: ground positions (0002),
        plate, shop licence, model and UTC times (0005)."""
        with self.engine.begin() as conn:
            conn.execute(update(packs_table).where(packs_table.c.pack_id == pack_id)
                         .values(places=[list(p) for p in manifest.places], places_approximate=manifest.places_approximate,
                                 **_searched(manifest)))

    def get(self, pack_id: str) -> PackRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(packs_table).where(packs_table.c.pack_id == pack_id)).mappings().first()
        return PackRow(**row) if row else None

    def rows(self, status: str | None = None, source_id: str | None = None) -> list[PackRow]:
        query = select(packs_table).order_by(packs_table.c.threshold_at.desc())
        if status:
            query = query.where(packs_table.c.status == status)
        if source_id:
            query = query.where(packs_table.c.source_id == source_id)
        with self.engine.connect() as conn:
            return [PackRow(**r) for r in conn.execute(query).mappings()]
