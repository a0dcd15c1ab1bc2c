"""The outbox's figures: events delivered to a city platform's webhook that is down, then up, then steady.

    .venv/bin/python benchmarks/outbox_delivery.py [--events 2000] [--down-s 5] [--database URL]

A real ``Courier`` thread on a migrated database (SQLite in a temp folder unless ``--database``) and a
real HTTP receiver on loopback that starts ``--down-s`` after the events were written. Prints how many
attempts failed while it was down, how long the backlog took to drain once it was up, events per
second, and the count of events received twice or out of order (both must be 0).
"""
from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import func, select

from nonsite.evidence.courier import Courier, Receiver, status
from nonsite.evidence.database import open_database
from nonsite.evidence.outbox import emit
from nonsite.evidence.schema import outbox_deliveries


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform(ThreadingHTTPServer):
    def __init__(self, port: int):
        self.ids: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.ids.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--down-s", type=float, default=5.0)
    parser.add_argument("--database", help="SQLAlchemy URL of an empty database (default: SQLite in a temp folder)")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp(prefix='nonsite-outbox-')) / 'nonsite.db'}"
    engine = open_database(url)
    port = _free_port()
    receiver = Receiver(id="city", url=f"http://127.0.0.1:{port}/hook", secret="bench-secret-0123456789", timeout_s=2)
    courier = Courier(engine, [receiver], first_retry_s=0.5, max_retry_s=2.0, poll_s=0.2, batch=500)
    started = time.perf_counter()
    with engine.begin() as conn:
        for n in range(args.events):
            emit(conn, "pack.stored", f"pack-{n}", {"pack_id": f"pack-{n}", "n": n})
    written_s = time.perf_counter() - started
    courier.start()
    time.sleep(args.down_s)
    with engine.connect() as conn:
        attempts = conn.execute(select(func.sum(outbox_deliveries.c.attempts))).scalar() or 0
    down = status(engine, [receiver])[0]
    platform = Platform(port)
    threading.Thread(target=platform.serve_forever, args=(0.05,), daemon=True).start()
    up_at = time.perf_counter()
    while len(set(platform.ids)) < args.events and time.perf_counter() - up_at < 300:
        time.sleep(0.05)
    drained_s = time.perf_counter() - up_at
    courier.stop()
    platform.shutdown()
    twice = len(platform.ids) - len(set(platform.ids))
    disordered = sum(1 for a, b in zip(platform.ids, platform.ids[1:]) if b < a)
    print(f"database: {engine.dialect.name}; {args.events} events written in {written_s:.2f} s (one transaction)")
    print(f"receiver down {args.down_s:.0f} s: {attempts} failed attempts on the head event, {down.pending} pending, "
          f"last error: {down.last_error}")
    print(f"receiver up: {len(set(platform.ids))} of {args.events} delivered in {drained_s:.2f} s "
          f"({len(set(platform.ids)) / drained_s:.0f} events/s); received twice: {twice}; out of order: {disordered}")


if __name__ == "__main__":
    main()
