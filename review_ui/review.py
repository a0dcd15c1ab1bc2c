"""Triage: the queue of pending packs and the officer's confirm / reject decision."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Engine

from nonsite.evidence import PackRow
from nonsite.evidence.audit import record
from nonsite.evidence.schema import decisions, packs_table, users

from .auth import User
from .cases import attach_to_case

REJECT_REASONS = {
    "false_detection": "false detection",
    "permitted": "permitted activity",
    "duplicate": "duplicate",
    "not_enforceable": "not enforceable",
    "other": "other (see note)",
}


class DecisionConflict(Exception):
    """The pack was decided by someone else first."""


@dataclass(frozen=True)
class QueueFilter:
    category: str | None = None
    source_id: str | None = None
    place: str | None = None  # zone id or shop name
    day: date | None = None
    status: str = "pending_review"


def queue(engine: Engine, filters: QueueFilter, limit: int = 200) -> list[PackRow]:
    """Pending packs, newest first."""
    query = select(packs_table).where(packs_table.c.status == filters.status)
    if filters.category:
        query = query.where(packs_table.c.category == filters.category)
    if filters.source_id:
        query = query.where(packs_table.c.source_id == filters.source_id)
    if filters.place:
        query = query.where((packs_table.c.zone_id == filters.place) | (packs_table.c.shop_name == filters.place))
    if filters.day:  # a day either side in SQL (stores differ in how they keep zones), exact below
        start = datetime.combine(filters.day - timedelta(days=1), time.min)
        query = query.where(and_(packs_table.c.threshold_at >= start, packs_table.c.threshold_at < start + timedelta(days=3)))
    query = query.order_by(packs_table.c.threshold_at.desc(), packs_table.c.pack_id)
    with engine.connect() as conn:
        rows = [PackRow(**r) for r in conn.execute(query).mappings()]
    if filters.day:
        rows = [r for r in rows if r.threshold_at.date() == filters.day]
    return rows[:limit]


def facets(engine: Engine) -> dict[str, list[str]]:
    """Values the queue can be filtered by."""
    with engine.connect() as conn:
        def distinct(column):
            return sorted(v for v in conn.execute(select(column).distinct()).scalars() if v)
        return {
            "category": distinct(packs_table.c.category), "source": distinct(packs_table.c.source_id),
            "place": sorted(set(distinct(packs_table.c.zone_id)) | set(distinct(packs_table.c.shop_name))),
        }


def decide(engine: Engine, pack_id: str, user: User, decision: str, reason: str | None, note: str) -> int | None:
    """Record a decision; a confirmation joins or opens a case, whose id is returned."""
    if decision not in ("confirm", "reject"):
        raise ValueError("decision must be confirm or reject")
    if decision == "reject" and reason not in REJECT_REASONS:
        raise ValueError(f"a rejection needs a reason: {', '.join(REJECT_REASONS)}")
    if decision == "reject" and reason == "other" and not note.strip():
        raise ValueError("reason 'other' needs a note")
    status = "confirmed" if decision == "confirm" else "rejected"
    with engine.begin() as conn:
        changed = conn.execute(
            update(packs_table).where(and_(packs_table.c.pack_id == pack_id, packs_table.c.status == "pending_review"))
            .values(status=status)
        ).rowcount
        if changed != 1:
            row = conn.execute(
                select(decisions.c.decision, decisions.c.at, users.c.username)
                .join(users, users.c.id == decisions.c.user_id).where(decisions.c.pack_id == pack_id)
            ).first()
            if row is None:
                raise LookupError(f"no pending pack {pack_id}")
            raise DecisionConflict(f"already {row.decision}ed by {row.username} at {row.at:%Y-%m-%d %H:%M:%S}")
        conn.execute(insert(decisions).values(
            pack_id=pack_id, decision=decision, reason=reason if decision == "reject" else None, note=note,
            user_id=user.id, at=datetime.now(timezone.utc),
        ))
        record(conn, user.username, f"pack.{decision}", pack_id, {"reason": reason, "note": note})
        return attach_to_case(conn, pack_id, user) if decision == "confirm" else None


def decision_of(engine: Engine, pack_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(decisions, users.c.username).join(users, users.c.id == decisions.c.user_id).where(decisions.c.pack_id == pack_id)
        ).mappings().first()
    return dict(row) if row else None


def open_pack(index, store, pack_id: str, user: User, public_key=None) -> dict:
    """Everything the detail view shows; viewing is itself an audited act. The pack's hashes and, with the
    deployment's ``public_key``, its signature are checked every time it is opened."""
    from nonsite.evidence import ManifestError, StoreError, read_manifest, verify_pack
    from nonsite.evidence.audit import record_now

    row = index.get(pack_id)
    if row is None:
        raise LookupError(f"no pack {pack_id}")
    try:
        manifest = read_manifest(store, pack_id)
    except (StoreError, ManifestError) as exc:
        raise LookupError(f"pack {pack_id} is indexed but its files are missing or unreadable") from exc
    report = verify_pack(store, pack_id, row.manifest_sha256, public_key, row.purged == "images")
    record_now(index.engine, user.username, "pack.view", pack_id)
    signature = ("signature valid" if "signature valid" in report.notes else "no public key: signature not checked"
                 if public_key is None else "signature FAILED")
    return {"row": row, "manifest": manifest, "verified": report.ok, "problems": report.problems,
            "checked": report.checked, "signature": signature, "decision": decision_of(index.engine, pack_id)}
