"""What Ray costs on this machine: a drone flight in one process vs on a Ray cluster with 1 and 2
workers, and the camera service with and without Ray at the same load, all in one run.

On one 2-core machine this shows overhead, not speed-up: a second worker competes for the same
two cores. The cluster is a real one on loopback (``ray start --head`` on 127.0.0.2, two CPUs).

    .venv/bin/python benchmarks/cluster_overhead.py [--images 12] [--cameras 12] [--seconds 60]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.raycluster import LoopbackCluster  # noqa: E402
from tests.streams import HttpCamera, carpark_video  # noqa: E402
from tests.test_batch import ALT, _config, _flight, _zones_over_right_half  # noqa: E402
from tests.test_fleet import _site, _write  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("NONSITE_DATASETS_DIR", REPO.parent / "shared" / "datasets"))


def _nonsite(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nonsite.cli", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def flights(root: Path, cluster: LoopbackCluster, images: int) -> None:
    frames = sorted((DATASETS / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[-images:]
    flight = _flight(root / "flight-bench", frames, scale=2.0, altitude=ALT * 2)
    _zones_over_right_half(root / "zones.geojson", 1280, 1280, ALT * 2)
    config = _config(root)
    print(f"drone flight: {len(frames)} pictures of 1280x1280 (drone_cars_cats scaled 2x), tiled 640, aerial_vehicle")
    plain_s = None
    for label, extra in (("one process (plain batch)", ()), ("Ray, 1 worker", ("--ray", cluster.address, "--workers", "1")),
                         ("Ray, 2 workers", ("--ray", cluster.address, "--workers", "2"))):
        data = root / label.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        started = time.perf_counter()
        process = _nonsite("batch", str(flight), "--config", str(config), *extra, env={**os.environ, "NONSITE_DATA_DIR": str(data)})
        _, errors = process.communicate(timeout=1800)
        seconds = time.perf_counter() - started
        if process.returncode:
            raise SystemExit(f"{label} failed: {errors[-2000:]}")
        plain_s = plain_s or seconds
        print(f"  {label:28s} {seconds:6.1f} s  {len(frames) / seconds * 60:5.1f} pictures/min  "
              f"{(seconds - plain_s) / len(frames):+5.2f} s per picture against one process (start-up included)")


def _rss_mb(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def _detected(status_file: Path) -> tuple[int, int, int]:
    status = json.loads(status_file.read_text())
    cameras = status["cameras"]
    return (sum(c["frames_detected"] for c in cameras), sum(c["dropped_frames"] for c in cameras),
            sum(c["state"] == "live" for c in cameras))


def cameras(root: Path, cluster: LoopbackCluster, count: int, seconds: float) -> None:
    video = carpark_video(sorted((DATASETS / "parking_lot_cctv" / "images").glob("*.jpg")), root / "carpark.mp4")
    streams = [HttpCamera(video).start() for _ in range(count)]
    print(f"camera service: {count} loopback HTTP cameras of real car-park footage at 1 fps, measured for {seconds:.0f} s "
          "after every camera is live")
    try:
        for label, extra in (("one process", ()), ("on Ray (one 2-CPU node)", ("--ray", cluster.address))):
            data = root / ("fleet-plain" if not extra else "fleet-ray")
            sites = data / "sites"
            sites.mkdir(parents=True)
            for n, stream in enumerate(streams):
                _write(sites, {**_site(f"cam-{n:02d}", stream.url, dwell_s=3600),
                               "source": {"id": f"cam-{n:02d}", "kind": "stream", "uri": stream.url, "sample_fps": 1}})
            process = _nonsite("fleet", "--metrics-port", "0", *extra, env={**os.environ, "NONSITE_DATA_DIR": str(data)})
            status = data / "fleet" / "status.json"
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not (status.exists() and _detected(status)[2] == count):
                time.sleep(1)
            time.sleep(10)
            first, dropped_first, _ = _detected(status)
            time.sleep(seconds)
            last, dropped_last, live = _detected(status)
            service = psutil.Process(process.pid)
            mine = [service, *service.children(recursive=True)]
            if extra:
                mine += [p for name in cluster.nodes for p in cluster.processes(name)]
            rss = _rss_mb(mine)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=180)
            rate = (last - first) / seconds
            print(f"  {label:28s} {rate:5.2f} frames analysed/s of {count:.0f} asked ({live} live), "
                  f"{dropped_last - dropped_first} dropped; memory {rss:,.0f} MB"
                  + (" (fleet, node actor, Ray's own processes)" if extra else " (the fleet process)"))
    finally:
        for stream in streams:
            stream.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--cameras", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ray-bench-", dir="/tmp") as folder:
        root = Path(folder)
        (root / "ray").mkdir()
        cluster = LoopbackCluster(root / "ray", {}, head_cpus=2)
        try:
            flights(root, cluster, args.images)
            cameras(root, cluster, args.cameras, args.seconds)
        finally:
            cluster.stop()
    print("What one 2-core machine cannot show: speed-up from more machines, network transfer of pictures between "
          "machines, or failover between real hosts; the figures above are Ray's own cost at equal hardware.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
