"""Supervisor statistics: counts and trends by category, street, grid, shop, camera, officer and period,
field precision (confirm rate) per rule and camera, and the case backlog.

Days, weeks and months are the bureau's (``zone``): a pack at 23:30 in Shanghai counts on that day,
not on the UTC day before. Streets and grids come from ``PlaceBook``, as the queue's filter does.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select, true
from sqlalchemy.engine import Engine

from nonsite.evidence import PackRow
from nonsite.evidence.schema import cases, decisions, packs_table, users

from .places import PlaceBook

STEPS = ("day", "week", "month")


@dataclass(frozen=True)
class Period:
    """Days on the bureau's clock, inclusive; None: open-ended. ``step`` groups the trend."""

    day_from: date | None = None
    day_to: date | None = None
    step: str = "day"

    def bounds(self, zone: ZoneInfo, at=packs_table.c.threshold_at) -> list:
        """The period as conditions on a time column's UTC instants (a pack's threshold time by default)."""
        found = []
        if self.day_from:
            found.append(at >= datetime.combine(self.day_from, time.min, zone))
        if self.day_to:
            found.append(at < datetime.combine(self.day_to + timedelta(days=1), time.min, zone))
        return found

    def key(self, moment: datetime, zone: ZoneInfo) -> str:
        """The trend bucket of an instant: 2026-11-22, 2026-W47 (ISO week) or 2026-11."""
        local = moment.astimezone(zone).date()
        if self.step == "month":
            return f"{local:%Y-%m}"
        if self.step == "week":
            year, week, _ = local.isocalendar()
            return f"{year}-W{week:02d}"
        return local.isoformat()


def _packs(engine: Engine, period: Period, zone: ZoneInfo) -> list[PackRow]:
    with engine.connect() as conn:
        return [PackRow(**r) for r in conn.execute(select(packs_table).where(and_(true(), *period.bounds(zone)))).mappings()]


def _officers(engine: Engine, period: Period, zone: ZoneInfo) -> dict[str, dict[str, int]]:
    """Decisions per officer (display name, else user name) on packs of the period."""
    found: dict[str, Counter] = defaultdict(Counter)
    with engine.connect() as conn:
        rows = conn.execute(
            select(users.c.username, users.c.display_name, decisions.c.decision)
            .join(users, users.c.id == decisions.c.user_id).join(packs_table, packs_table.c.pack_id == decisions.c.pack_id)
            .where(and_(true(), *period.bounds(zone)))
        )
        for username, shown, decision in rows:
            found[shown or username]["confirmed" if decision == "confirm" else "rejected"] += 1
    return {name: {"confirmed": c["confirmed"], "rejected": c["rejected"]} for name, c in sorted(found.items())}


def _ranked(counter: Counter) -> dict[str, int]:
    return dict(counter.most_common())


def dashboard(engine: Engine, places: PlaceBook, zone: ZoneInfo, period: Period = Period()) -> dict:
    packs = _packs(engine, period, zone)
    with engine.connect() as conn:
        open_cases = conn.execute(select(cases.c.id, cases.c.state, cases.c.due_at, cases.c.place, cases.c.team)
                                  .where(cases.c.state != "closed")).all()
    decided: dict[str, dict[str, Counter]] = {"rule": defaultdict(Counter), "source": defaultdict(Counter)}
    where = [places.of(p) for p in packs]
    trend: dict[str, Counter] = defaultdict(Counter)
    for p in packs:
        trend[period.key(p.threshold_at, zone)][p.category] += 1
        if p.status in ("confirmed", "rejected"):
            decided["rule"][p.rule_id][p.status] += 1
            decided["source"][p.source_id][p.status] += 1
    now = datetime.now(timezone.utc)
    late = sorted((c for c in open_cases if c.due_at and c.due_at < now), key=lambda c: c.due_at)
    return {
        "total": len(packs),
        "by_category": _ranked(Counter(p.category for p in packs)),
        "by_source": _ranked(Counter(p.source_id for p in packs)),
        "by_street": _ranked(Counter(w.street for w in where if w.street)),
        "by_grid": _ranked(Counter(w.grid for w in where if w.grid)),
        "by_shop": _ranked(Counter(p.shop_name for p in packs if p.shop_name)),
        "by_status": _ranked(Counter(p.status for p in packs)),
        "by_day": dict(sorted(Counter(Period(step="day").key(p.threshold_at, zone) for p in packs).items())),
        "trend": {key: dict(trend[key]) for key in sorted(trend)},
        "by_officer": _officers(engine, period, zone),
        "confirm_rate": {
            kind: {key: {"confirmed": c["confirmed"], "rejected": c["rejected"], "rate": round(c["confirmed"] / (c["confirmed"] + c["rejected"]), 3)}
                   for key, c in sorted(groups.items())}
            for kind, groups in decided.items()
        },
        "open_cases_by_state": dict(Counter(c.state for c in open_cases)),
        "overdue": [{"id": c.id, "place": c.place, "state": c.state, "due_at": c.due_at, "team": c.team} for c in late],
        "overdue_by_team": _ranked(Counter(c.team or "" for c in late)),
    }
