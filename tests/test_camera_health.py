"""Health you can see: the camera service's status folder, read by the cameras page, the API, the
Prometheus endpoint and ``nonsite status``, with a real picture of the car park as a camera's snapshot."""
from __future__ import annotations

import os
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from nonsite.cli import main
from nonsite.ingest import CameraHealth, CameraState, DetectorHealth, FleetStatus, StatusFolder, StatusUnreadable
from nonsite.ingest.health import BUREAU_ZONE, NodeHealth
from nonsite.metrics import serve_metrics
from nonsite.review_ui import create_app
from nonsite.review_ui.api_models import CamerasReport

from .officers import login
from .test_browser import _wait_until, browser, log_in, server  # noqa: F401 - the browser check runs the same server over this folder

NOW = DOWN_SINCE = datetime.now(timezone.utc)  # set afresh for each test: the moment its fleet reported
SOUTH_GATE = "南门-02"  # ids may be Chinese: the snapshot URL must carry it quoted


@pytest.fixture(autouse=True)
def _reported_now():
    """Each test's status is written at its own start: ages stay seconds however long the suite ran before."""
    global NOW, DOWN_SINCE
    NOW = datetime.now(timezone.utc)
    DOWN_SINCE = NOW - timedelta(minutes=4)


def fleet_status(written_at: datetime | None = None) -> FleetStatus:
    """Three cameras as a county fleet has them: one live, one whose camera dropped, one with a mistyped URL."""
    return FleetStatus(written_at=written_at or NOW, pid=4242, started_at=NOW - timedelta(hours=3), cameras=[
        CameraHealth(camera=SOUTH_GATE, uri="rtsp://admin:hunter2@10.20.0.12:554/Streaming/Channels/101", state=CameraState.live,
                     since=NOW - timedelta(hours=3), frames_read=10_800, frames_detected=10_650, reconnects=2, decode_errors=3,
                     dropped_frames=150, packs_raised=4, last_frame_at=NOW - timedelta(seconds=2), model_latency_ms=45.5),
        CameraHealth(camera="cam-renmin-sq-01", uri="rtsp://10.20.0.31:554/live", state=CameraState.reconnecting,
                     since=DOWN_SINCE, reason="connection refused", frames_read=900, frames_detected=880, reconnects=7,
                     last_frame_at=DOWN_SINCE),
        CameraHealth(camera="cam-gate-east", uri="http://10.20.0.40/wrong.mjpg", state=CameraState.failed, since=NOW,
                     reason="HTTP 404 Not Found", misconfigured=True),
    ], detector=DetectorHealth(batches=5400, mean_batch=2.14, dropped=150, model_s=243.0))


@pytest.fixture()
def data_dir(tmp_path, parking_frames):
    """A data folder where the camera service has just reported, and written one camera's picture."""
    data = tmp_path / "var"
    folder = StatusFolder(data / "fleet")
    folder.write(fleet_status())
    folder.write_snapshot(SOUTH_GATE, parking_frames[0].read_bytes())
    return data


@pytest.fixture()
def review(data_dir):
    """The review app's context over that folder (named as conftest's, so the browser's server serves it)."""
    from nonsite.evidence import LocalStore, PackIndex, open_database
    from nonsite.review_ui import Context, add_user

    index = PackIndex(open_database(f"sqlite:///{data_dir / 'nonsite.db'}"))
    for name, role in (("alice", "reviewer"), ("sam", "supervisor"), ("ada", "admin")):
        add_user(index.engine, name, f"{name}-password", role)
    return Context(index, LocalStore(data_dir / "evidence"), data_dir / "sites", fleet_dir=data_dir / "fleet")


@pytest.fixture()
def app(review):
    return create_app(review)


def _local(moment: datetime, pattern: str = "%H:%M:%S") -> str:
    return moment.astimezone(BUREAU_ZONE).strftime(pattern)


def _age_minutes(data_dir, minutes: int) -> datetime:
    """Make the status file as old as a fleet that stopped writing ``minutes`` ago; returns that time."""
    then = datetime.now(timezone.utc) - timedelta(minutes=minutes)
    os.utime(data_dir / "fleet" / "status.json", (then.timestamp(), then.timestamp()))
    return then


def test_the_status_folder_keeps_whole_files_and_only_camera_pictures(tmp_path, parking_frames):
    folder = StatusFolder(tmp_path / "fleet")
    assert folder.read() is None and folder.last_written() is None and not folder.is_stale(NOW)
    folder.write(fleet_status())
    assert folder.read() == fleet_status()
    assert not folder.is_stale(datetime.now(timezone.utc))
    assert folder.is_stale(datetime.now(timezone.utc) + timedelta(seconds=31))
    jpeg = parking_frames[1].read_bytes()
    assert folder.write_snapshot(SOUTH_GATE, jpeg) == folder.snapshot_path(SOUTH_GATE)
    assert folder.read_snapshot(SOUTH_GATE) == jpeg and folder.read_snapshot("cam-gate-east") is None
    assert sorted(p.name for p in folder.path.rglob("*")) == ["snapshots", "status.json", f"{SOUTH_GATE}.jpg"]  # no temp files left
    for hostile in ("../status", "a/b", "a\\b", ".hidden", "", "/etc/passwd"):
        with pytest.raises(ValueError):
            folder.snapshot_path(hostile)
    folder.status_file.write_text('{"written_at": "yesterday"')
    with pytest.raises(StatusUnreadable, match="not a fleet status"):
        folder.read()


def test_a_supervisor_sees_each_camera_state_counters_and_picture(app, review):
    page = login(app, "sam").get("/cameras")
    assert page.status_code == 200 and page.headers["refresh"] == "10"
    text = page.text
    assert 'id="fleet-running"' in text and "fleet-stale" not in text
    assert f"reconnecting · since {_local(DOWN_SINCE, '%Y-%m-%d %H:%M:%S')} · connection refused" in text
    assert "failed · HTTP 404 Not Found" in text and "misconfigured" in text
    assert ">10800<" in text and ">10650<" in text and ">150<" in text and "46 ms" in text  # frames read, detected, dropped, latency
    assert re.search(r"last frame \d+ s ago", text) and re.search(r"last frame [45] min ago", text) and "no frame yet" in text
    assert f'<img src="/cameras/{quote(SOUTH_GATE)}/snapshot"' in text
    assert text.count("<img") == 1  # the cameras without a picture show none, not a broken image
    assert "rtsp://10.20.0.12:554/Streaming/Channels/101" in text and "hunter2" not in text  # the camera's password stays out
    assert 'href="/cameras"' in text  # the nav link
    assert login(app, "ada").get("/cameras").status_code == 200  # admins rank above supervisors


def test_cameras_known_only_from_their_packs_are_listed_too(app, review):
    """A camera that ran on another machine or lost its site file still answers for its packs."""
    from sqlalchemy import insert

    from nonsite.evidence.schema import packs_table

    at = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
    with review.engine.begin() as conn:
        conn.execute(insert(packs_table), [dict(pack_id=f"{n:064x}", category="illegal_parking", source_id="cam-old-market", rule_id="r",
                                                zone_id="z", subject_key=f"s{n}", first_seen=at, threshold_at=at, last_seen=at, dwell_s=60,
                                                confidence=0.9, manifest_sha256="0" * 64, status="pending_review", indexed_at=at)
                                           for n in range(3)])
    (review.sites_dir / "cam-west-gate.yaml").parent.mkdir(parents=True)
    (review.sites_dir / "cam-west-gate.yaml").write_text("source: [not a site]\n")  # a site file, even a broken one, names a camera
    sam = login(app, "sam")
    page = sam.get("/cameras").text
    row = page.split('data-known="cam-old-market"', 1)[1].split("</tr>", 1)[0]
    assert "packs in the index" in row and ">3<" in row and "2026-11-20 09:00:00" in row  # local time
    assert "no status from the camera service" in row
    fleet_row = page.split(f'data-known="{SOUTH_GATE}"', 1)[1].split("</tr>", 1)[0]
    assert "camera service" in fleet_row and "packs in the index" not in fleet_row
    assert "5 cameras known" in page
    known = {k.camera: k for k in CamerasReport.model_validate(sam.get("/api/cameras").json()).known}
    assert list(known) == sorted([SOUTH_GATE, "cam-renmin-sq-01", "cam-gate-east", "cam-old-market", "cam-west-gate"])
    assert known["cam-old-market"].known_from == ["index"] and known["cam-old-market"].packs == 3 and known["cam-old-market"].state is None
    assert known["cam-old-market"].last_pack == at  # the same instant, written in the bureau's zone:
    assert {k["camera"]: k["last_pack"] for k in sam.get("/api/cameras").json()["known"]}["cam-old-market"] == "2026-11-20T09:00:00+08:00"
    assert known["cam-west-gate"].known_from == ["sites"] and known["cam-west-gate"].packs == 0
    assert known["cam-renmin-sq-01"].known_from == ["fleet"] and known["cam-renmin-sq-01"].state == "reconnecting"


def test_the_cameras_page_in_chinese(app):
    """States, origins, ages and units in the bureaus' words; nothing left in English but ids and addresses."""
    text = login(app, "sam", language="zh-CN").get("/cameras").text
    assert "<h1>摄像头状态" in text
    assert "已知摄像头 3 个" in text and "重连中" in text and "摄像头服务" in text
    assert re.search(r"最近画面：\d+ 秒 前", text) and re.search(r"最近画面：[45] 分钟 前", text) and "46 毫秒" in text
    assert not re.search(r"\d+ (s|min|ms)\b", text)


def test_a_reviewer_may_not_look_at_the_cameras(app):
    alice = login(app, "alice")
    assert 'href="/cameras"' not in alice.get("/queue").text
    for path in ("/cameras", f"/cameras/{quote(SOUTH_GATE)}/snapshot", "/api/cameras"):
        assert alice.get(path).status_code == 403, path
    assert TestClient(app).get("/api/cameras").status_code == 401


def test_the_snapshot_is_the_cameras_latest_picture_never_cached(app, parking_frames):
    sam = login(app, "sam")
    picture = sam.get(f"/cameras/{quote(SOUTH_GATE)}/snapshot")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    assert picture.headers["cache-control"] == "no-store" and picture.content == parking_frames[0].read_bytes()
    for missing in ("cam-gate-east", "..%2Fstatus.json", "%2E%2E", "no-such-camera"):
        assert sam.get(f"/cameras/{missing}/snapshot").status_code == 404, missing


def test_the_api_gives_the_same_figures_to_scripts(app):
    report = CamerasReport.model_validate(login(app, "sam").get("/api/cameras").json())
    assert report.fleet == "running" and report.detector.batches == 5400
    cameras = {c.camera: c for c in report.cameras}
    assert list(cameras) == [SOUTH_GATE, "cam-renmin-sq-01", "cam-gate-east"]
    assert cameras[SOUTH_GATE].up and cameras[SOUTH_GATE].frames_read == 10_800 and cameras[SOUTH_GATE].snapshot.endswith("/snapshot")
    assert 2 <= cameras[SOUTH_GATE].last_frame_age_seconds < 60
    assert cameras["cam-renmin-sq-01"].state_text == f"reconnecting since {_local(DOWN_SINCE)} (connection refused)"
    assert cameras["cam-gate-east"].misconfigured and cameras["cam-gate-east"].last_frame_age_seconds is None
    assert cameras["cam-gate-east"].snapshot is None


def test_a_stale_status_is_called_stale_with_the_time_of_the_last_write(app, data_dir):
    stopped = _age_minutes(data_dir, 10)
    sam = login(app, "sam")
    text = sam.get("/cameras").text
    assert 'id="fleet-stale"' in text and f"has not reported since {_local(stopped, '%Y-%m-%d %H:%M:%S')}" in text
    assert "cam-renmin-sq-01" in text  # the last known figures stay visible under the warning
    assert sam.get("/api/cameras").json()["fleet"] == "stale"


def test_no_service_and_an_unreadable_status_still_render(app, data_dir):
    sam = login(app, "sam")
    status = data_dir / "fleet" / "status.json"
    status.write_bytes(b"\x00garbage")
    page = sam.get("/cameras")
    assert page.status_code == 200 and 'id="fleet-unreadable"' in page.text and "cannot be read" in page.text
    assert sam.get("/api/cameras").json()["fleet"] == "unreadable"
    status.unlink()
    page = sam.get("/cameras")
    assert page.status_code == 200 and "No camera service is running here" in page.text


def test_prometheus_scrapes_each_cameras_series(review):
    def node(name: str, state: str, readers: float) -> NodeHealth:
        return NodeHealth(name=name, address="10.20.0.5", state=state, since=NOW, cpus=2, cpu_s={"readers": readers, "model": 40.5})

    status = fleet_status().model_copy(update={"cpu_s": {"readers": 120.0, "model": 310.5, "other": 4.0},
                                               "nodes": [node("head", "ready", 60.0), node("worker1", "lost", 9.0)]})
    metrics = serve_metrics("127.0.0.1", 0, lambda: status)
    try:
        text = httpx.get(f"http://127.0.0.1:{metrics.port}/metrics", timeout=10).text
    finally:
        metrics.shutdown()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}

    def value(name: str, camera: str | None = None, **labels) -> float:
        wanted = {**({"camera": camera} if camera else {}), **labels}
        return samples[name, tuple(sorted(wanted.items()))]

    assert value("nonsite_camera_frames_read_total", SOUTH_GATE) == 10_800
    assert value("nonsite_camera_frames_detected_total", SOUTH_GATE) == 10_650
    assert value("nonsite_camera_reconnects_total", "cam-renmin-sq-01") == 7
    assert value("nonsite_camera_decode_errors_total", SOUTH_GATE) == 3
    assert value("nonsite_camera_dropped_frames_total", SOUTH_GATE) == 150
    assert value("nonsite_camera_packs_raised_total", SOUTH_GATE) == 4
    assert value("nonsite_camera_model_latency_seconds", SOUTH_GATE) == pytest.approx(0.0455)
    assert 2 <= value("nonsite_camera_last_frame_age_seconds", SOUTH_GATE) < 60
    assert ("nonsite_camera_last_frame_age_seconds", (("camera", "cam-gate-east"),)) not in samples  # no frame yet: no series
    assert [value("nonsite_camera_up", c) for c in (SOUTH_GATE, "cam-renmin-sq-01", "cam-gate-east")] == [1, 0, 0]
    assert value("nonsite_camera_misconfigured", "cam-gate-east") == 1
    assert value("nonsite_camera_state", "cam-gate-east", state="failed") == 1
    assert value("nonsite_camera_state", "cam-gate-east", state="live") == 0
    assert value("nonsite_camera_state", "cam-renmin-sq-01", state="reconnecting") == 1
    assert value("nonsite_detector_batches_total") == 5400 and value("nonsite_detector_mean_batch_size") == pytest.approx(2.14)
    assert value("nonsite_fleet_cpu_seconds_total", part="readers") == 120 and value("nonsite_fleet_cpu_seconds_total", part="model") == 310.5
    assert value("nonsite_node_cpu_seconds_total", node="head", part="readers") == 60  # a cluster: each node's own split
    assert not any(name == "nonsite_node_cpu_seconds_total" and ("node", "worker1") in labels for name, labels in samples)  # lost
    with pytest.raises(httpx.ConnectError):  # shut down: the port is free again
        httpx.get(f"http://127.0.0.1:{metrics.port}/metrics", timeout=2)


def test_nonsite_status_lists_the_cameras(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NONSITE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("NONSITE_KEYS_DIR", str(tmp_path / "keys"))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 8}
    assert set(rows) >= {SOUTH_GATE, "cam-renmin-sq-01", "cam-gate-east"}
    assert "live" in rows[SOUTH_GATE] and "10800 / 10650" in rows[SOUTH_GATE]
    assert f"reconnecting since {_local(DOWN_SINCE)}" in rows["cam-renmin-sq-01"] and "never" in rows["cam-gate-east"]
    assert "HTTP 404 Not Found" in rows["cam-gate-east"] and "misconfigured" in rows["cam-gate-east"]
    stopped = _age_minutes(data_dir, 10)
    assert main(["status"]) == 0
    assert f"has not reported since {_local(stopped, '%Y-%m-%d %H:%M:%S')}" in capsys.readouterr().out
    (data_dir / "fleet" / "status.json").unlink()
    assert main(["status"]) == 0
    assert "no camera service is running here" in capsys.readouterr().out


def test_the_cameras_page_in_chromium(server, browser):  # noqa: F811 - the fixtures imported above
    base, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(page, base, "sam")  # fails the test on any Content Security Policy violation
    page.click("nav a[href='/cameras']")
    page.wait_for_url(f"{base}/cameras")
    _wait_until(page, "[...document.images].every(i => i.complete && i.naturalWidth > 0)")  # the snapshot is shown
    assert page.locator(f"article[data-camera='{SOUTH_GATE}'] .state").inner_text() == "live"
    started = time.monotonic()
    page.wait_for_event("load", timeout=15_000)  # the page reloads itself with the Refresh header
    assert time.monotonic() - started > 5
