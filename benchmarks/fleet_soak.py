"""Soak: the real ``nonsite fleet`` process with N live cameras for M minutes; is its memory flat?

Each camera is an HTTP/MPEG-TS stream on loopback of the real car-park footage
(``parking_lot_cctv``: 21 frames, each shown one second, looped by FFmpeg in real time). The fleet
runs with motion gating, the evidence queue and clips, as a bureau would run it, in a fresh data
folder. Every ``--every`` seconds the fleet process's resident memory (from /proc) and its
cameras' counters (from the status file the fleet writes) are printed. At the end: memory after
warm-up (the first sample past ``--warmup`` minutes) against the highest and the last sample,
and whether every camera stayed live.

    .venv/bin/python benchmarks/fleet_soak.py --cameras 8 --minutes 30

Exit status 1 when memory grew past ``--bound-mb`` after warm-up or a camera stopped producing.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.streams import HttpCamera, carpark_video  # noqa: E402 - the tests' loopback cameras

SITE = {
    "zones": [{"id": "whole-lot", "polygon": [[0, 200], [854, 200], [854, 480], [0, 480]], "inertia": 2}],
    "rules": [{"id": "lot-no-parking", "kind": "illegal_parking", "zones": ["whole-lot"], "classes": ["car", "truck", "bus"],
               "min_confidence": 0.4, "dwell_s": 60, "hold_s": 10, "grace_s": 30, "cooldown_s": 600}],
    "detection": {"models": ["coco"], "motion": {"recheck_s": 30}},
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cameras_status(data_dir: Path) -> list[dict]:
    try:
        return json.loads((data_dir / "fleet" / "status.json").read_text())["cameras"]
    except (OSError, ValueError, KeyError):
        return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=60, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=5, help="minutes before the memory baseline is taken")
    parser.add_argument("--bound-mb", type=float, default=150, help="allowed growth after warm-up")
    args = parser.parse_args()
    import yaml

    from nonsite.ingest import list_images

    work = Path(tempfile.mkdtemp(prefix="nonsite-soak-"))
    datasets = Path(os.environ.get("NONSITE_DATASETS_DIR", REPO.parent / "shared" / "datasets"))
    video = carpark_video(list_images(datasets / "parking_lot_cctv" / "images"), work / "carpark.mp4")
    data_dir, sites = work / "var", work / "var" / "sites"
    sites.mkdir(parents=True)
    cameras = [HttpCamera(video).start() for _ in range(args.cameras)]
    for number, camera in enumerate(cameras):
        site = {"source": {"id": f"cam-{number:02d}", "kind": "stream", "uri": camera.url, "sample_fps": 1}, **SITE}
        (sites / f"cam-{number:02d}.yaml").write_text(yaml.safe_dump(site))
    env = {**os.environ, "NONSITE_DATA_DIR": str(data_dir), "NONSITE_KEYS_DIR": str(work / "keys"), "YOLO_OFFLINE": "True"}
    log = (work / "fleet.log").open("wb")
    fleet = subprocess.Popen([sys.executable, "-m", "nonsite.cli", "fleet", "--metrics-port", "0"], env=env, cwd=REPO,
                             stdout=log, stderr=subprocess.STDOUT)
    samples: list[tuple[float, float, int, int]] = []
    print(f"{args.cameras} cameras, {args.minutes:.0f} min; data and log in {work}")
    print(f"{'min':>6} {'RSS MB':>8} {'live':>5} {'frames read':>12} {'model frames':>13} {'packs':>6}")
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < args.minutes * 60:
            time.sleep(min(args.every, max(1.0, args.minutes * 60 - elapsed)))
            if fleet.poll() is not None:
                print(f"the fleet exited with {fleet.returncode}; see {work / 'fleet.log'}")
                return 1
            status = cameras_status(data_dir)
            live = sum(c["state"] == "live" for c in status)
            read, detected = sum(c["frames_read"] for c in status), sum(c["frames_detected"] for c in status)
            packs = sum(c["packs_raised"] for c in status)
            minute, rss = (time.monotonic() - started) / 60, rss_mb(fleet.pid)
            samples.append((minute, rss, live, read))
            print(f"{minute:6.1f} {rss:8.0f} {live:5d} {read:12d} {detected:13d} {packs:6d}", flush=True)
    finally:
        fleet.send_signal(signal.SIGTERM)
        fleet.wait(timeout=120)
        for camera in cameras:
            camera.kill()
    settled = [s for s in samples if s[0] >= args.warmup] or samples[-1:]
    baseline, highest, last = settled[0][1], max(s[1] for s in settled), settled[-1][1]
    print(f"memory after {settled[0][0]:.1f} min: {baseline:.0f} MB; highest later {highest:.0f} MB (+{highest - baseline:.0f}); "
          f"last {last:.0f} MB (+{last - baseline:.0f}); {baseline / args.cameras:.0f} MB per camera including the runtime "
          f"and the model")
    all_live = all(s[2] == args.cameras for s in settled)
    print(f"every camera live at every sample after warm-up: {all_live}")
    return 0 if highest - baseline <= args.bound_mb and all_live else 1


if __name__ == "__main__":
    sys.exit(main())
