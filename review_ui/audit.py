"""Append-only, hash-chained audit log: each entry carries the hash of the one before it.

Editing or deleting any row breaks every hash after it, which ``verify_chain`` reports.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import desc, insert, select, text
from sqlalchemy.engine import Connection, Engine

from rules.evidence.hashing import canonical_json

from .db import audit

GENESIS = "0" * 64
_append_lock = threading.Lock()


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, target: str, details: dict) -> str:
    body = {"at": _stamp(at), "actor": actor, "action": action, "target": target, "details": details}
    return hashlib.sha256(prev_hash.encode() + canonical_json(body)).hexdigest()


def _stamp(at: datetime) -> str:
    """One text form of a time, whether the database gave it back with or without its zone."""
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat()


def record(conn: Connection, actor: str, action: str, target: str = "", details: dict | None = None) -> None:
    """Append one entry inside the caller's transaction, so the entry and the change commit together."""
    details = details or {}
    with _append_lock:
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE audit IN EXCLUSIVE MODE"))
        last = conn.execute(select(audit.c.hash).order_by(desc(audit.c.id)).limit(1)).scalar()
        prev = last or GENESIS
        at = datetime.now(timezone.utc)
        conn.execute(insert(audit).values(
            at=at, actor=actor, action=action, target=target, details=details, prev_hash=prev,
            hash=entry_hash(prev, at, actor, action, target, details),
        ))


def record_now(engine: Engine, actor: str, action: str, target: str = "", details: dict | None = None) -> None:
    with engine.begin() as conn:
        record(conn, actor, action, target, details)


@dataclass
class ChainReport:
    entries: int
    broken_at: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(engine: Engine) -> ChainReport:
    prev = GENESIS
    count = 0
    with engine.connect() as conn:
        for row in conn.execute(select(audit).order_by(audit.c.id)).mappings():
            count += 1
            if row["prev_hash"] != prev:
                return ChainReport(count, row["id"], f"entry {row['id']}: link to the previous entry is broken (a row was removed or reordered)")
            expected = entry_hash(prev, row["at"], row["actor"], row["action"], row["target"], row["details"])
            if row["hash"] != expected:
                return ChainReport(count, row["id"], f"entry {row['id']} ({row['action']} by {row['actor']}): content does not match its hash (edited)")
            prev = row["hash"]
    return ChainReport(count)
