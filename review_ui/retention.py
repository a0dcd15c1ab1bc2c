"""``nonsite retention run``: delete evidence whose time is up, and log exactly what went.

Rejected packs lose their images after ``rejected_days`` (manifest, decision and audit stay, so
the rejection itself remains provable). Packs in a case are kept while the case is open and for
``legal_days`` after it closes; then every file goes. Pending and confirmed packs outside a
closed case are never touched. Objects under a WORM lock that has not run out stay, and say so.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Engine

from nonsite.evidence import EvidenceStore, StoreError
from nonsite.evidence.audit import record
from nonsite.evidence.schema import case_packs, cases, decisions, packs_table
from nonsite.evidence.verify import PURGEABLE


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def run_retention(engine: Engine, store: EvidenceStore, rejected_days: int, legal_days: int, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(timezone.utc)
    lines = []
    with engine.connect() as conn:
        rejected = conn.execute(
            select(decisions.c.pack_id, decisions.c.at).join(packs_table, packs_table.c.pack_id == decisions.c.pack_id)
            .where(and_(decisions.c.decision == "reject", packs_table.c.purged.is_(None)))
        ).all()
        expired_cases = conn.execute(
            select(cases.c.id, cases.c.updated_at, case_packs.c.pack_id).join(case_packs, case_packs.c.case_id == cases.c.id)
            .join(packs_table, packs_table.c.pack_id == case_packs.c.pack_id)
            .where(and_(cases.c.state == "closed", (packs_table.c.purged.is_(None)) | (packs_table.c.purged != "all")))
        ).all()
    for pack_id, decided_at in rejected:
        if _aware(decided_at) + timedelta(days=rejected_days) <= now:
            lines.append(_purge(engine, store, pack_id, "images", f"rejected {decided_at:%Y-%m-%d}, images kept {rejected_days} days"))
    for case_id, closed_at, pack_id in expired_cases:
        if _aware(closed_at) + timedelta(days=legal_days) <= now:
            lines.append(_purge(engine, store, pack_id, "all", f"case {case_id} closed {closed_at:%Y-%m-%d}, kept {legal_days} days"))
    return lines


def _purge(engine: Engine, store: EvidenceStore, pack_id: str, scope: str, why: str) -> str:
    try:
        present = store.list_files(pack_id)
    except StoreError:
        present = []
    doomed = present if scope == "all" else [p for p in present if p.startswith(PURGEABLE)]
    try:
        removed = store.delete(pack_id, doomed)
    except Exception as exc:  # e.g. an original still under its WORM retention period
        return f"kept {pack_id}: {exc}"
    with engine.begin() as conn:
        conn.execute(update(packs_table).where(packs_table.c.pack_id == pack_id).values(purged=scope))
        record(conn, "retention", f"retention.{'delete' if scope == 'all' else 'purge_images'}", pack_id, {"removed": removed, "why": why})
    return f"purged {pack_id} ({scope}): {len(removed)} files removed; {why}"
