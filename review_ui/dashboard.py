"""Supervisor figures: volumes, field precision (confirm rate) per rule and source, case backlog."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.engine import Engine

from nonsite.evidence.schema import cases, packs_table


def dashboard(engine: Engine) -> dict:
    with engine.connect() as conn:
        packs = conn.execute(select(packs_table.c.category, packs_table.c.source_id, packs_table.c.rule_id,
                                    packs_table.c.threshold_at, packs_table.c.status)).all()
        open_cases = conn.execute(select(cases.c.id, cases.c.state, cases.c.deadline, cases.c.place).where(cases.c.state != "closed")).all()
    decided: dict[str, dict[str, Counter]] = {"rule": defaultdict(Counter), "source": defaultdict(Counter)}
    for p in packs:
        if p.status in ("confirmed", "rejected"):
            decided["rule"][p.rule_id][p.status] += 1
            decided["source"][p.source_id][p.status] += 1
    now = datetime.now(timezone.utc)
    overdue = [
        {"id": c.id, "place": c.place, "deadline": c.deadline}
        for c in open_cases
        if c.state == "rectification_due" and c.deadline and (c.deadline if c.deadline.tzinfo else c.deadline.replace(tzinfo=timezone.utc)) < now
    ]
    return {
        "by_category": dict(Counter(p.category for p in packs)),
        "by_source": dict(Counter(p.source_id for p in packs)),
        "by_day": dict(sorted(Counter(p.threshold_at.date().isoformat() for p in packs).items())),
        "by_status": dict(Counter(p.status for p in packs)),
        "confirm_rate": {
            kind: {key: {"confirmed": c["confirmed"], "rejected": c["rejected"], "rate": round(c["confirmed"] / (c["confirmed"] + c["rejected"]), 3)}
                   for key, c in sorted(groups.items())}
            for kind, groups in decided.items()
        },
        "open_cases_by_state": dict(Counter(c.state for c in open_cases)),
        "overdue": overdue,
    }
