"""The camera service on real loopback streams of real footage: several cameras in one process,
one camera killed and back while the others go on, configs edited and removed while it runs, and
SIGTERM in the middle of violations losing nothing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from nonsite.ingest.health import CameraState, StatusFolder

from .conftest import REPO
from .streams import HttpCamera, free_port, wait_until


def _site(camera_id: str, uri: str, dwell_s: float, **source) -> dict:
    return {
        "source": {"id": camera_id, "kind": "stream", "uri": uri, "sample_fps": 2, **source},
        "zones": [{"id": "whole-lot", "polygon": [[0, 200], [854, 200], [854, 480], [0, 480]], "inertia": 2}],
        "rules": [{"id": "lot-no-parking", "kind": "illegal_parking", "zones": ["whole-lot"], "classes": ["car", "truck", "bus"],
                   "min_confidence": 0.4, "dwell_s": dwell_s, "hold_s": 1, "grace_s": 30, "cooldown_s": 0}],
    }


def _write(folder: Path, site: dict) -> Path:
    path = folder / f"{site['source']['id']}.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


def _by_camera(fleet) -> dict:
    return {c.camera: c for c in fleet.status().cameras}


def test_one_service_runs_every_camera_and_survives_outages_and_config_edits(settings, carpark_video, rtsp):
    from nonsite.fleet import Fleet

    sites = settings.sites_path
    cam_a, cam_b = HttpCamera(carpark_video).start(), HttpCamera(carpark_video).start()
    _write(sites, _site("cam-a", cam_a.url, dwell_s=3600))
    path_b = _write(sites, _site("cam-b", cam_b.url, dwell_s=3600))
    path_typo = _write(sites, _site("cam-typo", rtsp.url("no-such-camera"), dwell_s=3600, rtsp_transport="udp"))
    fleet = Fleet(sites, settings.sink, settings.data_dir, settings.registry)
    stop = threading.Event()
    service = threading.Thread(target=fleet.run, args=(stop,), daemon=True)
    service.start()
    try:
        wait_until(lambda: all(_by_camera(fleet).get(c) and _by_camera(fleet)[c].frames_detected >= 3 for c in ("cam-a", "cam-b")),
              90, "both live cameras analysed frames")
        wait_until(lambda: _by_camera(fleet)["cam-typo"].state == CameraState.failed, 30, "the mistyped camera is reported")
        typo = _by_camera(fleet)["cam-typo"]
        assert typo.misconfigured and "404" in typo.reason and typo.frames_read == 0
        written = StatusFolder(settings.fleet_dir).read()  # what the cameras page and `nonsite status` read
        assert {c.camera for c in written.cameras} == {"cam-a", "cam-b", "cam-typo"}
        assert len(fleet._models) == 1  # one model instance for every camera

        # Camera A goes dark: B keeps being analysed meanwhile; A is read again within seconds of coming back.
        camera_a = fleet.cameras["cam-a"]
        cam_a.kill()
        wait_until(lambda: _by_camera(fleet)["cam-a"].state == CameraState.reconnecting, 30, "A noticed as lost")
        assert not _by_camera(fleet)["cam-a"].misconfigured  # down, not misconfigured
        b_before = _by_camera(fleet)["cam-b"].frames_detected
        time.sleep(8)
        assert _by_camera(fleet)["cam-b"].frames_detected >= b_before + 6, "camera B stalled while A was down"
        a_before = _by_camera(fleet)["cam-a"].frames_read
        cam_a.start()
        back_after = wait_until(lambda: _by_camera(fleet)["cam-a"].frames_read > a_before + 1, 30, "A back")
        assert back_after < 10, f"A reconnected {back_after:.1f} s after it came back"
        assert _by_camera(fleet)["cam-a"].reconnects >= 1

        # B's zones are edited: only B restarts; A runs on undisturbed.
        camera_b = fleet.cameras["cam-b"]
        edited = _site("cam-b", cam_b.url, dwell_s=1800)
        edited["zones"][0]["polygon"] = [[0, 250], [854, 250], [854, 480], [0, 480]]
        _write(sites, edited)
        wait_until(lambda: fleet.cameras.get("cam-b") not in (None, camera_b) and fleet.cameras["cam-b"].running(), 30, "B restarted")
        assert fleet.cameras["cam-b"].config.zones[0].polygon[0][1] == 250
        wait_until(lambda: _by_camera(fleet)["cam-b"].frames_detected > 2, 30, "B analyses with its new zones")
        assert fleet.cameras["cam-a"] is camera_a and camera_a.running()

        # A broken edit leaves B as it was; removing a file stops its camera.
        camera_b = fleet.cameras["cam-b"]
        path_b.write_text("source: {id: cam-b, kind: stream, uri: '" + cam_b.url + "', sample_fps: -1}\n")
        path_typo.unlink()
        wait_until(lambda: "cam-typo" not in _by_camera(fleet), 30, "the removed camera stopped")
        assert fleet.cameras["cam-b"] is camera_b and camera_b.running()
    finally:
        stop.set()
        service.join(60)
        cam_a.kill()
        cam_b.kill()
    assert not service.is_alive(), "the fleet did not stop"
    final = StatusFolder(settings.fleet_dir).read()
    assert {c.camera: c.state for c in final.cameras} == {"cam-a": CameraState.stopped, "cam-b": CameraState.stopped}


def _raised(log: str) -> int:
    return log.count("raising a pack")


def test_sigterm_in_the_middle_of_violations_loses_nothing_and_a_restart_carries_on(settings, carpark_video, tmp_path):
    """The real ``nonsite fleet`` process, stopped with SIGTERM while packs are being raised: it exits
    cleanly, every violation it raised is a stored pack or spooled for the next start, the open dwell
    episodes are saved, and /metrics showed the camera while it ran."""
    camera = HttpCamera(carpark_video).start()
    _write(settings.sites_path, _site("cam-gate", camera.url, dwell_s=4))
    metrics_port = free_port()
    env = {**os.environ, "NONSITE_DATA_DIR": str(settings.data_dir), "NONSITE_KEYS_DIR": str(settings.keys_dir),
           "NONSITE_MODELS_DIR": str(settings.models_dir), "YOLO_OFFLINE": "True", "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "fleet.log"
    command = [sys.executable, "-m", "nonsite.cli", "fleet", "--metrics-port", str(metrics_port)]
    try:
        with log_path.open("wb") as log:
            service = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: _raised(log_path.read_text()) >= 3, 180, "packs raised")
                scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
                service.send_signal(signal.SIGTERM)
                assert service.wait(timeout=90) == 0
            finally:
                if service.poll() is None:
                    service.kill()
    finally:
        camera.kill()
    text = log_path.read_text()
    assert "received SIGTERM: stopping" in text and "fleet stopped" in text
    assert all(line[:4].isdigit() for line in text.splitlines() if " nonsite." in line)  # every event line starts with its time
    frames = {s.labels["camera"]: s.value for f in text_string_to_metric_families(scraped) for s in f.samples
              if s.name == "nonsite_camera_frames_read_total"}
    assert frames.get("cam-gate", 0) > 0
    cpu = {s.labels["part"]: s.value for f in text_string_to_metric_families(scraped) for s in f.samples
           if s.name == "nonsite_fleet_cpu_seconds_total"}
    assert cpu["readers"] > 0 and cpu["pipelines"] > 0 and cpu["model"] > 0, cpu  # where the service's CPU went

    raised = _raised(text)
    queue_folder = settings.data_dir / "evidence-queue"
    spooled = list(queue_folder.glob("*.zip"))
    stored = settings.open_index().rows()
    assert len(stored) + len(spooled) == raised, (len(stored), len(spooled), raised)
    assert any((settings.data_dir / "episodes").iterdir())  # the open episodes were saved for the restart

    from nonsite.evidence.queue import EvidenceQueue

    with EvidenceQueue(settings.sink, queue_folder) as queue:  # the next start stores what was spooled
        wait_until(lambda: queue.pending == 0, 120, "spooled violations stored")
    assert len(settings.open_index().rows()) == raised
    result = subprocess.run([sys.executable, "-m", "nonsite.cli", "verify"], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads((settings.fleet_dir / "status.json").read_text())
    assert [c["state"] for c in status["cameras"]] == ["stopped"]


@pytest.mark.parametrize("unit", ["nonsite-fleet.service", "nonsite-review.service", "nonsite-ray-head.service",
                                  "nonsite-ray-worker.service"])
def test_the_systemd_units_are_valid(unit, tmp_path):
    """The units in examples/systemd pass systemd's own check once their paths point at this checkout."""
    analyze = subprocess.run(["bash", "-c", "command -v systemd-analyze"], capture_output=True, text=True)
    if analyze.returncode != 0:
        pytest.skip("systemd-analyze is not installed here")
    text = (REPO / "examples" / "systemd" / unit).read_text().replace("/opt/nonsite", str(REPO))
    text = text.replace("User=nonsite", "User=root").replace("Group=nonsite", "Group=root")
    (tmp_path / unit).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if unit in line]
    assert result.returncode == 0 and not problems, problems
