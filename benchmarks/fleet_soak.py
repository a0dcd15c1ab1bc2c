"""Soak: the real ``nonsite fleet`` process with N live cameras for M minutes; is its memory flat?

Each camera is an HTTP/MPEG-TS stream on loopback of the real car-park footage
(``parking_lot_cctv``: 21 frames, each shown one second, looped by FFmpeg in real time). The fleet
runs with motion gating, the evidence queue and clips, as a bureau would run it, in a fresh data
folder. Every ``--every`` seconds the fleet process's resident memory and CPU (from /proc), its
cameras' counters (from the status file the fleet writes) and the violations waiting in its
evidence queue are printed.

Memory is judged once the fleet has settled: ``--warmup`` minutes have passed (each camera's clip
ring fills for 310 s) and the evidence queue has stored the start-up burst (every parked car of
every camera reaches its dwell in the same minute, about 250 packs that one worker stores in
ten to fifteen minutes). Before that, memory rises with work still to do, not with a leak. Settled,
the resident size is a sawtooth: frames and packs are allocated and freed many times a second,
and freed pages stay resident until the fleet's periodic ``malloc_trim`` hands them back. A single
sample lands anywhere on that saw, so the reference is the highest sample of the first
``--reference`` settled minutes, and every later sample must stay within ``--bound-mb`` of it: a
leak lifts the whole saw, the saw alone does not.

    .venv/bin/python benchmarks/fleet_soak.py --cameras 8 --minutes 30

Exit status 1 when the fleet never settled, memory rose past the bound after the reference
minutes, or a camera stopped producing.
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


def cpu_s(pid: int) -> float:
    """utime + stime of the process (all its threads) and of the children it waited for (clip encoders)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is the 3rd field of proc(5), the state
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cameras_status(data_dir: Path) -> list[dict]:
    try:
        return json.loads((data_dir / "fleet" / "status.json").read_text())["cameras"]
    except (OSError, ValueError, KeyError):
        return []


def queued(data_dir: Path) -> int:
    """Violations accepted and not yet stored as packs (the evidence queue's spool files)."""
    return sum(1 for _ in (data_dir / "evidence-queue").glob("*.zip"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=15, help="seconds between samples (several per trim period)")
    parser.add_argument("--warmup", type=float, default=6, help="minutes at least before the fleet counts as settled")
    parser.add_argument("--reference", type=float, default=5, help="settled minutes whose highest sample is the reference")
    parser.add_argument("--bound-mb", type=float, default=150, help="allowed rise above the reference")
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
    samples: list[tuple[float, float, int, int]] = []  # minute, RSS MB, cameras live, queued
    print(f"{args.cameras} cameras, {args.minutes:.0f} min; data and log in {work}")
    print(f"{'min':>6} {'RSS MB':>8} {'live':>5} {'frames read':>12} {'model frames':>13} {'packs':>6} {'queued':>7} {'CPU %':>6}")
    started = time.monotonic()
    clock, used = started, 0.0
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
            now, cpu = time.monotonic(), cpu_s(fleet.pid)
            busy, clock, used = 100 * (cpu - used) / (now - clock), now, cpu
            waiting = queued(data_dir)
            samples.append((minute, rss, live, waiting))
            print(f"{minute:6.1f} {rss:8.0f} {live:5d} {read:12d} {detected:13d} {packs:6d} {waiting:7d} {busy:6.0f}", flush=True)
    finally:
        fleet.send_signal(signal.SIGTERM)
        fleet.wait(timeout=120)
        for camera in cameras:
            camera.kill()
    return judge(samples, args)


def judge(samples: list[tuple[float, float, int, int]], args: argparse.Namespace) -> int:
    """Print the verdict on memory and liveness; 0 when both hold."""
    start = next((i for i, s in enumerate(samples) if s[0] >= args.warmup and s[3] == 0), None)
    if start is None:
        print(f"never settled: the evidence queue still held {samples[-1][3] if samples else '?'} violations at the end "
              f"(stuck, or {args.minutes:.0f} min is too short for the start-up burst)")
        return 1
    settled = samples[start:]
    until = settled[0][0] + args.reference
    reference = max(s[1] for s in settled if s[0] <= until)
    later = [s for s in settled if s[0] > until]
    if not later:
        print(f"settled at {settled[0][0]:.1f} min, too late to compare {args.reference:.0f} reference minutes with later ones")
        return 1
    highest, last = max(s[1] for s in later), later[-1][1]
    print(f"settled at {settled[0][0]:.1f} min (evidence queue empty); highest in the next {args.reference:.0f} min: "
          f"{reference:.0f} MB; highest after {until:.1f} min: {highest:.0f} MB ({highest - reference:+.0f}, bound "
          f"+{args.bound_mb:.0f}); lowest {min(s[1] for s in later):.0f} MB; last {last:.0f} MB; "
          f"{reference / args.cameras:.0f} MB per camera including the runtime and the model")
    all_live = all(s[2] == args.cameras for s in samples if s[0] >= args.warmup)
    print(f"every camera live at every sample after {args.warmup:.0f} min: {all_live}")
    return 0 if highest - reference <= args.bound_mb and all_live else 1


if __name__ == "__main__":
    sys.exit(main())
