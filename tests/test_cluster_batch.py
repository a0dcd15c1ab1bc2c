"""A drone flight spread over a real Ray cluster on loopback (a head and a second node), one of
its workers killed mid-flight, then counted against the same flight analysed in one process:
every picture done once, the same packs (0 lost, 0 duplicated) stored in MinIO (moto's S3 server
over HTTP) from both nodes, and every pack verifies."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from moto.server import ThreadedMotoServer
from sqlalchemy import func, select

from nonsite.evidence import PackIndex, open_database, verify_pack
from nonsite.evidence.schema import flight_images
from nonsite.settings import Settings

from .conftest import REPO
from .streams import wait_until
from .test_batch import ALT, _config, _flight, _zones_over_right_half
from .test_evidence_storage import _port


def _batch(flight, config, env, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nonsite.cli", "batch", str(flight), "--config", str(config), *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_flight_spread_over_two_nodes_survives_a_killed_worker_with_no_pack_lost_or_doubled(
        tmp_path, datasets, settings, postgres, ray_cluster):
    ray_cluster.add_node("worker1")
    frames = sorted((datasets / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[-5:]  # killed after 2: 3 still to do
    flight = _flight(tmp_path / "flight-spread", frames, scale=2.0, altitude=ALT * 2)
    _zones_over_right_half(tmp_path / "zones.geojson", 1280, 1280, ALT * 2)
    config = _config(tmp_path)

    plain_dir = tmp_path / "plain"
    plain = _batch(flight, config, {**os.environ, "NONSITE_DATA_DIR": str(plain_dir)})
    assert plain.wait(timeout=600) == 0, plain.stdout.read()
    expected = {r.pack_id for r in PackIndex(open_database(f"sqlite:///{plain_dir / 'nonsite.db'}")).rows(source_id="flight-spread")}
    assert expected, "the flight raises no pack: nothing to count"

    database = postgres.new_database()
    port = _port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # MinIO's API over real HTTP, for every node
    s3.start()
    storage = {"NONSITE_S3_ENDPOINT": f"127.0.0.1:{port}", "NONSITE_S3_ACCESS_KEY": "test", "NONSITE_S3_SECRET_KEY": "test-secret",
               "NONSITE_S3_SECURE": "false", "NONSITE_S3_BUCKET": "cluster-evidence"}
    env = {**os.environ, **storage, "NONSITE_DATA_DIR": str(settings.data_dir), "NONSITE_DATABASE_URL": database}
    started = time.monotonic()
    engine = open_database(database)  # migrated before the run, so progress can be counted from its start
    spread = _batch(flight, config, env, "--ray", ray_cluster.address, "--workers", "2")

    def done() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(flight_images)).scalar_one()

    try:
        wait_until(lambda: done() >= 2 or spread.poll() is not None, 300, "two pictures done on the cluster")
        workers = {name: ray_cluster.actors(name, "FlightWorker") for name in ("head", "worker1")}
        assert all(workers.values()), f"the flight's workers are not on both nodes: {workers}"
        before_kill = done()
        assert before_kill < len(frames), "the flight ended before a worker could be killed"
        workers["worker1"][0].send_signal(signal.SIGKILL)
        output, _ = spread.communicate(timeout=600)
        assert spread.returncode == 0, output
        elapsed = time.monotonic() - started

        with engine.connect() as conn:
            pictures = conn.execute(select(flight_images.c.sha256, flight_images.c.name)).all()
        assert len(pictures) == len({sha for sha, _ in pictures}) == len(frames)  # every picture done, once
        cluster = Settings(data_dir=settings.data_dir, database_url=database, s3_endpoint=storage["NONSITE_S3_ENDPOINT"],
                           s3_access_key="test", s3_secret_key="test-secret", s3_secure=False, s3_bucket="cluster-evidence")
        rows = cluster.open_index().rows(source_id="flight-spread")
        client = cluster.s3_client()
        stored = {o.object_name.split("/")[1] for o in client.list_objects("cluster-evidence", prefix="packs/", recursive=True)}
        assert len(rows) == len({r.pack_id for r in rows})  # no pack indexed twice
        assert {r.pack_id for r in rows} == stored == expected  # 0 lost, 0 duplicated: the plain run's packs exactly, in MinIO
        assert not [p for p in (settings.data_dir / "nodes").glob("*/spool/*")], "packs left in a node's spool"
        store = cluster.open_store()
        assert all(verify_pack(store, r.pack_id, r.manifest_sha256).ok for r in rows)
    finally:
        if spread.poll() is None:
            spread.kill()
        s3.stop()
    print(f"\n[cluster batch] {len(frames)} pictures, {len(rows)} packs, worker killed after {before_kill} done; {elapsed:.0f} s on 2 nodes")
