"""Triage: the queue of pending packs and the officer's confirm / reject decision."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine

from nonsite.evidence import PackRow
from nonsite.evidence.audit import record, record_now
from nonsite.evidence.outbox import emit
from nonsite.evidence.schema import case_events, case_packs, cases, decisions, packs_table, shops, users

from .auth import User
from .cases import attach_to_case
from .i18n import Text
from .labels import label
from .places import PlaceBook
from .procedure import Procedure, default_procedure

SHANGHAI = ZoneInfo("Asia/Shanghai")

REJECT_REASONS = ("false_detection", "permitted", "duplicate", "not_enforceable", "other")  # labels: labels.py
PAGE_SIZE = 50
UNDO_SECONDS = 30  # an officer may take back their last decision this long after taking it
STATUSES = ("pending_review", "confirmed", "rejected", "decided")


class DecisionConflict(Exception):
    """The pack was decided by someone else first."""


class EvidenceFailed(Exception):
    """The pack's files or signature do not verify: it cannot be confirmed."""


class UndoRefused(Exception):
    """The decision cannot be taken back (someone else's, too old, or its case has moved on)."""


@dataclass(frozen=True)
class QueueFilter:
    """What the officer asked for; every field narrows the SQL, none loads rows to filter them in Python."""

    category: str | None = None
    source_id: str | None = None
    place: str | None = None  # zone id or shop name
    day_from: date | None = None  # days on the bureau's clock, inclusive
    day_to: date | None = None
    status: str = "pending_review"  # or confirmed, rejected, decided (both)
    street: str | None = None
    grid: str | None = None
    min_confidence: float | None = None
    model: str | None = None
    search: str | None = None  # plate, shop name, licence number, case number (#12), pack id


@dataclass(frozen=True)
class QueuePage:
    rows: list[PackRow]
    total: int  # packs matching the filters
    page: int
    pages: int
    pending: int  # every pack waiting for review, whatever the filters


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _search(text: str):
    """One box for plate, shop name, licence, case number and pack id; a plate matches without its spaces or dot."""
    text = text.strip()
    compact = re.sub(r"[\s·.\-]", "", text).upper()
    found = [packs_table.c.shop_name.ilike(_like(text), escape="\\"),
             packs_table.c.shop_licence.ilike(_like(compact), escape="\\"),
             packs_table.c.shop_licence.in_(select(shops.c.licence).where(shops.c.name.ilike(_like(text), escape="\\"))),
             packs_table.c.pack_id.startswith(text.lower(), autoescape=True)]
    if compact:
        found.append(packs_table.c.plate.ilike(_like(compact), escape="\\"))
    if number := re.fullmatch(r"#?(\d{1,12})", text):
        found.append(packs_table.c.pack_id.in_(select(case_packs.c.pack_id).where(case_packs.c.case_id == int(number[1]))))
    return or_(*found)


def _conditions(filters: QueueFilter, zone: ZoneInfo, places: PlaceBook | None) -> list:
    status = packs_table.c.status
    wanted = [status.in_(("confirmed", "rejected")) if filters.status == "decided" else status == filters.status]
    if filters.category:
        wanted.append(packs_table.c.category == filters.category)
    if filters.source_id:
        wanted.append(packs_table.c.source_id == filters.source_id)
    if filters.place:
        wanted.append((packs_table.c.zone_id == filters.place) | (packs_table.c.shop_name == filters.place))
    if filters.day_from:
        wanted.append(packs_table.c.threshold_at >= datetime.combine(filters.day_from, time.min, zone))
    if filters.day_to:
        wanted.append(packs_table.c.threshold_at < datetime.combine(filters.day_to + timedelta(days=1), time.min, zone))
    if filters.min_confidence is not None:
        wanted.append(packs_table.c.confidence >= filters.min_confidence)
    if filters.model:
        wanted.append(packs_table.c.model == filters.model)
    if (filters.street or filters.grid) and places is not None:
        wanted.append(places.clause(filters.street, filters.grid))
    if filters.search and filters.search.strip():
        wanted.append(_search(filters.search))
    return wanted


def queue(engine: Engine, filters: QueueFilter, zone: ZoneInfo = SHANGHAI, places: PlaceBook | None = None,
          page: int = 1, size: int = PAGE_SIZE) -> QueuePage:
    """One page of packs, newest first, with true counts: the officer sees how many wait, never a silent cap."""
    where = and_(*_conditions(filters, zone, places))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(packs_table).where(where)).scalar_one()
        pending = conn.execute(select(func.count()).select_from(packs_table).where(packs_table.c.status == "pending_review")).scalar_one()
        pages = max(1, -(-total // size))
        page = min(max(1, page), pages)
        query = (select(packs_table).where(where).order_by(packs_table.c.threshold_at.desc(), packs_table.c.pack_id)
                 .limit(size).offset((page - 1) * size))
        rows = [PackRow(**r) for r in conn.execute(query).mappings()]
    return QueuePage(rows, total, page, pages, pending)


def neighbours(engine: Engine, pack_id: str) -> tuple[str | None, str | None]:
    """The pending packs before and after this one in queue order (J / K on the pack page)."""
    with engine.connect() as conn:
        row = conn.execute(select(packs_table.c.threshold_at).where(packs_table.c.pack_id == pack_id)).first()
        if row is None:
            return None, None
        pending = packs_table.c.status == "pending_review"
        at, key = packs_table.c.threshold_at, packs_table.c.pack_id
        newer = conn.execute(select(key).where(pending, or_(at > row.threshold_at, and_(at == row.threshold_at, key < pack_id)))
                             .order_by(at.asc(), key.desc()).limit(1)).scalar()
        older = conn.execute(select(key).where(pending, or_(at < row.threshold_at, and_(at == row.threshold_at, key > pack_id)))
                             .order_by(at.desc(), key.asc()).limit(1)).scalar()
    return newer, older


def facets(engine: Engine) -> dict[str, list[str]]:
    """Values the queue can be filtered by."""
    with engine.connect() as conn:
        def distinct(column):
            return sorted(v for v in conn.execute(select(column).distinct()).scalars() if v)
        return {
            "category": distinct(packs_table.c.category), "source": distinct(packs_table.c.source_id),
            "place": sorted(set(distinct(packs_table.c.zone_id)) | set(distinct(packs_table.c.shop_name))),
            "model": distinct(packs_table.c.model),
        }


def evidence_problems(index, store, pack_id: str, public_key=None) -> list[str]:
    """What fails when the pack is verified now (hashes, manifest, signature with the deployment's key)."""
    from nonsite.evidence import verify_pack

    row = index.get(pack_id)
    if row is None:
        raise LookupError(Text("no pack {pack}", pack=pack_id))
    report = verify_pack(store, pack_id, row.manifest_sha256, public_key, row.purged == "images")
    problems = list(report.problems)
    if public_key is not None and "signature valid" not in report.notes and not problems:
        problems.append("signature not valid")
    return problems


def decide(engine: Engine, pack_id: str, user: User, decision: str, reason: str | None, note: str,
           problems: list[str] | None = None, procedure: Procedure | None = None) -> int | None:
    """Record a decision; a confirmation joins or opens a case, whose id is returned.

    ``problems``: what failed when the pack was verified just before. Evidence that does not verify
    cannot be confirmed (the attempt is audit-logged); it can still be rejected.
    """
    if decision not in ("confirm", "reject"):
        raise ValueError(Text("decision must be confirm or reject"))
    if decision == "reject" and reason not in REJECT_REASONS:
        raise ValueError(Text("a rejection needs a reason"))
    if decision == "reject" and reason == "other" and not note.strip():
        raise ValueError(Text("reason 'other' needs a note"))
    if decision == "confirm" and problems:
        record_now(engine, user.username, "pack.confirm_refused", pack_id, {"problems": problems})
        raise EvidenceFailed(Text("this evidence failed verification and cannot be confirmed: {problems}", problems="; ".join(problems)))
    status = "confirmed" if decision == "confirm" else "rejected"
    with engine.begin() as conn:
        changed = conn.execute(
            update(packs_table).where(and_(packs_table.c.pack_id == pack_id, packs_table.c.status == "pending_review"))
            .values(status=status)
        ).rowcount
        if changed != 1:
            row = conn.execute(
                select(decisions.c.decision, decisions.c.at, users.c.username, users.c.display_name)
                .join(users, users.c.id == decisions.c.user_id).where(decisions.c.pack_id == pack_id)
            ).first()
            if row is None:
                raise LookupError(Text("no pending pack {pack}", pack=pack_id))
            raise DecisionConflict(Text("already {decision} by {officer} at {time}", decision=Text(label(f"{row.decision}ed")),
                                        officer=row.display_name or row.username, time=row.at))
        conn.execute(insert(decisions).values(
            pack_id=pack_id, decision=decision, reason=reason if decision == "reject" else None, note=note,
            user_id=user.id, at=datetime.now(timezone.utc),
        ))
        record(conn, user.username, f"pack.{decision}", pack_id, {"reason": reason, "note": note})
        case_id = attach_to_case(conn, pack_id, user, procedure or default_procedure()) if decision == "confirm" else None
        emit(conn, "pack.decided", pack_id, {"pack_id": pack_id, "decision": decision, "reason": reason, "case_id": case_id})
        return case_id


def undo(engine: Engine, pack_id: str, user: User, now: datetime | None = None) -> None:
    """Take back one's own decision within UNDO_SECONDS: the pack waits for review again.

    Undoing a confirmation takes the pack out of its case, and removes the case if it was opened for
    this pack alone and nothing else happened to it; a case that has moved on is refused.
    """
    now = now or datetime.now(timezone.utc)
    with engine.begin() as conn:
        taken = conn.execute(select(decisions).where(decisions.c.pack_id == pack_id)).mappings().first()
        if taken is None:
            raise LookupError(Text("pack {pack} has no decision to undo", pack=pack_id))
        if taken["user_id"] != user.id:
            raise UndoRefused(Text("only the officer who decided can undo it"))
        if now - taken["at"] > timedelta(seconds=UNDO_SECONDS):
            raise UndoRefused(Text("a decision can be undone only within {seconds} s", seconds=UNDO_SECONDS))
        case_id = conn.execute(select(case_packs.c.case_id).where(case_packs.c.pack_id == pack_id)).scalar()
        if case_id is not None:
            _leave_case(conn, case_id, pack_id)
        conn.execute(delete(decisions).where(decisions.c.pack_id == pack_id))
        conn.execute(update(packs_table).where(packs_table.c.pack_id == pack_id).values(status="pending_review"))
        record(conn, user.username, "pack.undo", pack_id, {"decision": taken["decision"], "case_id": case_id})
        emit(conn, "pack.undone", pack_id, {"pack_id": pack_id, "decision": taken["decision"]})


def _leave_case(conn, case_id: int, pack_id: str) -> None:
    steps = conn.execute(select(func.count()).select_from(case_events).where(case_events.c.case_id == case_id)).scalar_one()
    state = conn.execute(select(cases.c.state).where(cases.c.id == case_id)).scalar_one()
    if state != "open" or steps > 1:
        raise UndoRefused(Text("case #{case} has moved on since; the decision stands", case=case_id))
    conn.execute(delete(case_packs).where(case_packs.c.pack_id == pack_id))
    if conn.execute(select(func.count()).select_from(case_packs).where(case_packs.c.case_id == case_id)).scalar_one() == 0:
        conn.execute(delete(case_events).where(case_events.c.case_id == case_id))
        conn.execute(delete(cases).where(cases.c.id == case_id))


def decisions_of(engine: Engine, pack_ids: list[str]) -> dict[str, dict]:
    """Who decided each of these packs, when and why (the decided view's cards)."""
    with engine.connect() as conn:
        rows = conn.execute(select(decisions, users.c.username, users.c.display_name).join(users, users.c.id == decisions.c.user_id)
                            .where(decisions.c.pack_id.in_(pack_ids))).mappings()
        return {r["pack_id"]: dict(r) for r in rows}


def decision_of(engine: Engine, pack_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(decisions, users.c.username, users.c.display_name).join(users, users.c.id == decisions.c.user_id)
            .where(decisions.c.pack_id == pack_id)
        ).mappings().first()
    return dict(row) if row else None


def open_pack(index, store, pack_id: str, user: User, public_key=None) -> dict:
    """Everything the detail view shows; viewing is itself an audited act. The pack's hashes and, with the
    deployment's ``public_key``, its signature are checked every time it is opened."""
    from nonsite.evidence import ManifestError, StoreError, read_manifest, verify_pack

    row = index.get(pack_id)
    if row is None:
        raise LookupError(Text("no pack {pack}", pack=pack_id))
    try:
        manifest = read_manifest(store, pack_id)
    except (StoreError, ManifestError) as exc:
        raise LookupError(Text("pack {pack} is indexed but its files are missing or unreadable", pack=pack_id)) from exc
    report = verify_pack(store, pack_id, row.manifest_sha256, public_key, row.purged == "images")
    record_now(index.engine, user.username, "pack.view", pack_id)
    signature = ("valid" if "signature valid" in report.notes else "unchecked" if public_key is None else "failed")
    return {"row": row, "manifest": manifest, "verified": report.ok, "problems": report.problems,
            "checked": report.checked, "signature": signature, "decision": decision_of(index.engine, pack_id)}
