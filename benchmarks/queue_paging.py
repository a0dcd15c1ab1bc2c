"""How fast the review queue answers at 10 000 packs (SQLite, this machine): the page an officer
opens, a deep page, filters, the search box and the JSON API, each timed through real HTTP
(FastAPI's TestClient), median of several.

    .venv/bin/python benchmarks/queue_paging.py [--packs 10000] [--repeat 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402

from nonsite.evidence import LocalStore, PackIndex, open_database  # noqa: E402
from nonsite.review_ui import Context, add_user, create_app  # noqa: E402
from tests.queue_data import fill_index  # noqa: E402

GOAL_MS = 300


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        index = PackIndex(open_database(f"sqlite:///{data / 'nonsite.db'}"))
        rows = fill_index(index.engine, args.packs)
        add_user(index.engine, "bench", "bench-password", "reviewer")
        (data / "sites").mkdir()
        client = TestClient(create_app(Context(index, LocalStore(data / "evidence"), data / "sites")))
        assert client.post("/api/login", json={"username": "bench", "password": "bench-password"}).status_code == 200
        pages = args.packs // 50
        asks = {
            "queue, first page": "/queue",
            f"queue, page {pages // 2} of {pages}": f"/queue?page={pages // 2}",
            f"queue, last page ({pages})": f"/queue?page={pages}",
            "queue, category + camera + confidence": "/queue?category=illegal_parking&source=cam-07&min_confidence=0.6",
            "queue, one local day": "/queue?day_from=2026-10-20&day_to=2026-10-20",
            "queue, search a plate": "/queue?q=浙A00123",
            "queue, search a shop name": "/queue?q=店铺42号",
            "decided view": "/queue?status=decided",
            "API, 500 packs": "/api/packs?per_page=500",
        }
        print(f"{len(rows)} packs in SQLite; median of {args.repeat} requests each (goal: page load under {GOAL_MS} ms)")
        worst = 0.0
        for name, path in asks.items():
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            median = statistics.median(times)
            worst = max(worst, median) if path.startswith("/queue") else worst
            print(f"  {name:42s} {median:7.1f} ms  (max {max(times):.1f})")
        print(f"slowest queue page: {worst:.1f} ms = {worst / GOAL_MS:.2f} of the {GOAL_MS} ms goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
