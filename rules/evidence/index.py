"""The pack index: one row per pack, the review queue's source of truth (SQLite or PostgreSQL)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from .hashing import sha256_hex
from .pack import EvidencePack

metadata = MetaData()

packs_table = Table(
    "packs",
    metadata,
    Column("pack_id", String(64), primary_key=True),
    Column("category", String(48), nullable=False, index=True),
    Column("source_id", String(128), nullable=False, index=True),
    Column("rule_id", String(128), nullable=False),
    Column("zone_id", String(128), nullable=False),
    Column("shop_name", String(256)),
    Column("subject_key", String(256), nullable=False, index=True),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("threshold_at", DateTime(timezone=True), nullable=False, index=True),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("dwell_s", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("status", String(32), nullable=False, default="pending_review", index=True),
    Column("indexed_at", DateTime(timezone=True), nullable=False),
    Column("purged", String(16)),  # None, 'images' (rejected, after N days) or 'all' (case expired)
)


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


def make_engine(url: str) -> Engine:
    engine = create_engine(url, future=True)
    metadata.create_all(engine)
    return engine


class PackIndex:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, pack: EvidencePack, indexed_at: datetime) -> bool:
        """Index a stored pack; False when it was indexed before (reruns add nothing)."""
        m = pack.manifest
        row = {
            "pack_id": pack.pack_id, "category": m["category"], "source_id": m["source"]["id"],
            "rule_id": m["rule"]["id"], "zone_id": m["zone"]["id"], "shop_name": (m["shop"] or {}).get("name"),
            "subject_key": m["subject_key"],
            "first_seen": datetime.fromisoformat(m["times"]["first_seen"]),
            "threshold_at": datetime.fromisoformat(m["times"]["threshold"]),
            "last_seen": datetime.fromisoformat(m["times"]["last_seen"]),
            "dwell_s": m["dwell_s"], "confidence": m["confidence"],
            "manifest_sha256": sha256_hex(pack.manifest_bytes), "status": "pending_review", "indexed_at": indexed_at,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(packs_table).values(**row))
        except IntegrityError:
            return False
        return True

    def get(self, pack_id: str) -> PackRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(packs_table).where(packs_table.c.pack_id == pack_id)).mappings().first()
        return PackRow(**row) if row else None

    def rows(self, status: str | None = None) -> list[PackRow]:
        query = select(packs_table).order_by(packs_table.c.threshold_at.desc())
        if status:
            query = query.where(packs_table.c.status == status)
        with self.engine.connect() as conn:
            return [PackRow(**r) for r in conn.execute(query).mappings()]
