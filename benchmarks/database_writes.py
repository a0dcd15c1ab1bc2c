"""Database writes per pack, counted on a real run: the whole-lot car-park camera (21 real frames)
through the pipeline into a fresh database, every INSERT/UPDATE/DELETE counted as it is sent.
With a pack rate per camera this gives the database load of a bureau's cameras (README capacity plan).

    .venv/bin/python benchmarks/database_writes.py [--database-url URL]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event  # noqa: E402

from nonsite.ingest import open_source  # noqa: E402
from nonsite.rules import SiteConfig  # noqa: E402
from nonsite.runner import build_pipeline  # noqa: E402
from nonsite.settings import Settings  # noqa: E402
from tests.conftest import WHOLE_LOT  # noqa: E402

DATASETS = Path(os.environ.get("NONSITE_DATASETS_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--packs-per-camera-hour", type=float, default=2.0, help="assumed pack rate for the projection")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), database_url=args.database_url)
        engine = settings.open_index().engine
        settings.sink  # opened (and its start-up writes done) before counting
        writes: Counter[str] = Counter()

        @event.listens_for(engine, "before_cursor_execute")
        def count(conn, cursor, statement, parameters, context, executemany):
            verb = statement.lstrip().split(None, 1)[0].upper()
            if verb in ("INSERT", "UPDATE", "DELETE"):
                writes[verb] += len(parameters) if executemany else 1

        config = SiteConfig.model_validate(json.loads(json.dumps(WHOLE_LOT).replace("{datasets}", str(DATASETS))))
        started = time.perf_counter()
        summary = build_pipeline(config, settings).run(open_source(config.source))
        seconds = time.perf_counter() - started
    packs = len(summary.packs)
    total = sum(writes.values())
    per_pack = total / packs
    print(f"{packs} packs from {summary.frames} real frames in {seconds:.1f} s: {total} rows written "
          f"({', '.join(f'{n} {verb}' for verb, n in writes.most_common())}), {per_pack:.1f} per pack")
    for cameras in (134, 2000):
        rate = cameras * args.packs_per_camera_hour / 3600 * per_pack
        print(f"  {cameras:5d} cameras x {args.packs_per_camera_hour:g} packs/camera-hour (assumed): {rate:.2f} rows/s from packs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
