"""A big index for the queue: N pack rows spread over days, cameras, categories, shops and plates,
written straight into the packs table (the queue pages read only the index, never the store)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert

from nonsite.evidence.schema import packs_table

CATEGORIES = ("illegal_parking", "spillover_business", "construction_activity")
START = datetime(2026, 10, 1, tzinfo=timezone.utc)


def fill_index(engine, count: int, seed: int = 7) -> list[dict]:
    """Insert ``count`` pending packs; returns the rows as inserted, for the expected answers."""
    pick = random.Random(seed)
    rows = []
    for n in range(count):
        category = CATEGORIES[n % 3]
        at = START + timedelta(minutes=pick.randrange(0, 60 * 24 * 50))
        shop = n % 7 == 0
        rows.append({
            "pack_id": f"{n:08x}{pick.getrandbits(96):024x}", "category": category, "source_id": f"cam-{n % 40:02d}",
            "rule_id": f"rule-{category}", "zone_id": f"zone-{n % 40:02d}", "shop_name": f"店铺{n % 97:02d}号" if shop else None,
            "subject_key": f"subject-{n}", "first_seen": at - timedelta(minutes=5), "threshold_at": at, "last_seen": at + timedelta(minutes=1),
            "dwell_s": 300.0, "confidence": round(0.3 + 0.7 * pick.random(), 3), "manifest_sha256": "0" * 64, "status": "pending_review",
            "indexed_at": at, "plate": f"浙A{n % 500:05d}" if category == "illegal_parking" and n % 4 else None,
            "shop_licence": f"91330100MA2{n % 97:07d}" if shop else None, "model": "coco" if n % 2 else "coco, aerial",
        })
    with engine.begin() as conn:
        for start in range(0, count, 2000):
            conn.execute(insert(packs_table), rows[start:start + 2000])
    return rows
