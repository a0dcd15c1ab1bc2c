"""Evidence off the frame path: real frames through the real model, packs built by the queue's workers.

The queue's packs are the inline packs; frames never wait for evidence, even with S3 down; and a
violation accepted into the queue ends up stored exactly once through a stop, a SIGKILL and a restart.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from nonsite.demo import demo_scene
from nonsite.evidence import MANIFEST, EvidenceSink, PackIndex, open_database, verify_pack
from nonsite.evidence.queue import EvidenceQueue, QueueFull, dump_violation, load_violation
from nonsite.evidence.verify import verify_deployment
from nonsite.ingest import Frame, open_source
from nonsite.pipeline import Pipeline
from nonsite.rules import KeyFrame, SiteConfig, TrackPoint, Violation
from nonsite.runner import build_pipeline
from nonsite.vision import Detection

from .conftest import REPO, WHOLE_LOT

DERIVED = ("annotated/", "crops/", "disclosure/")  # JPEGs re-issued with C2PA credentials, which carry their own times


class SlowStore:
    """A store that takes its time: ``before`` s before a pack is written, ``after`` s after it (touching
    ``marks/<pack id>`` first, so a test can kill the process between storing and indexing)."""

    def __init__(self, store, before: float, after: float = 0.0, marks: Path | None = None):
        self.inner, self.before, self.after, self.marks = store, before, after, marks

    def put(self, pack) -> bool:
        time.sleep(self.before)
        new = self.inner.put(pack)
        if self.marks is not None:
            self.marks.mkdir(exist_ok=True)
            (self.marks / pack.pack_id).touch()
        time.sleep(self.after)
        return new

    def __getattr__(self, name):
        return getattr(self.inner, name)


def slow_sink(settings, before: float, after: float = 0.0, marks: Path | None = None) -> EvidenceSink:
    return EvidenceSink(SlowStore(settings.open_store(), before, after, marks), settings.open_index(), settings.signer,
                        settings.credentials)


class NullSink:
    """No evidence work at all: the frame path's own time."""

    def submit(self, violation, spec, detections_of):
        return None


class RecordingQueue(EvidenceQueue):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pack_ids: list[str] = []

    def accept(self, *args, **kwargs) -> str:
        pack_id = super().accept(*args, **kwargs)
        self.pack_ids.append(pack_id)
        return pack_id


def _report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[evidence queue] {line}")


def _spooled(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.zip"))


def _whole_lot(settings) -> SiteConfig:
    return SiteConfig.model_validate(json.loads(json.dumps(WHOLE_LOT).replace("{datasets}", str(settings.datasets_dir))))


def _pixels(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


# -- (a) the same packs --------------------------------------------------------------------------------

def test_packs_through_the_queue_are_the_inline_packs(settings, tmp_path, capsys):
    from nonsite.settings import Settings

    config = demo_scene(settings, "cam-carpark-01")
    inline = build_pipeline(config, settings).run(open_source(config.source))
    assert len(inline.packs) >= 1

    other = Settings(data_dir=tmp_path / "queued")  # same keys, its own store and index
    plain = build_pipeline(config, other)
    queue = RecordingQueue(other.sink, other.data_dir / "evidence-queue").start()
    queued = Pipeline(config, plain.detectors, other.sink, queue=queue).run(open_source(config.source))
    assert queued.packs == []  # nothing stored on the frame path
    assert queue.wait_idle(timeout=120)
    assert queue.stop(timeout=30)
    assert (queue.accepted, queue.stored, queue.failed, queue.pending) == (len(inline.packs), len(inline.packs), 0, 0)
    assert _spooled(queue.folder) == []

    assert sorted(queue.pack_ids) == sorted(p.pack_id for p in inline.packs)
    store, index, public_key = other.open_store(), other.open_index(), other.public_key()
    assert sorted(store.pack_ids()) == sorted(row.pack_id for row in index.rows()) == sorted(queue.pack_ids)
    for pack in inline.packs:
        report = verify_pack(store, pack.pack_id, index.get(pack.pack_id).manifest_sha256, public_key)
        assert report.ok, report.problems
        ours = json.loads(settings.open_store().read(pack.pack_id, MANIFEST))
        theirs = json.loads(store.read(pack.pack_id, MANIFEST))
        assert {k: v for k, v in ours.items() if k not in ("created_at", "files")} == \
               {k: v for k, v in theirs.items() if k not in ("created_at", "files")}  # plate, disclosure counts, track, times...
        assert ours["files"].keys() == theirs["files"].keys()
        for path, digest in ours["files"].items():
            if digest != theirs["files"][path]:  # only the C2PA-stamped copies differ, and only in their metadata
                assert path.startswith(DERIVED), path
                assert np.array_equal(_pixels(settings.open_store().read(pack.pack_id, path)), _pixels(store.read(pack.pack_id, path))), path
    n = len(inline.packs)
    _report(capsys, f"local store: inline {inline.evidence_s / n:.2f} s of evidence per pack on the frame path, "
                    f"queued {queued.evidence_s / n * 1000:.0f} ms per violation (spooling it); {n} packs")


# -- (b) frames never wait for evidence --------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _unreachable_s3_sink(settings, folder: Path) -> EvidenceSink:
    """A MinIO store at a closed loopback port behind the local spool, as ``Settings`` builds it (uploader not started)."""
    from minio import Minio

    from nonsite.evidence.minio_store import MinioStore
    from nonsite.evidence.spool import SpoolingStore

    client = Minio(f"127.0.0.1:{_closed_port()}", access_key="nonsite", secret_key="nonsite-secret", secure=False)
    folder.mkdir(parents=True)
    index = PackIndex(open_database(f"sqlite:///{folder / 'index.db'}"))
    return EvidenceSink(SpoolingStore(MinioStore(client, "nonsite-evidence"), folder / "spool"), index, settings.signer, settings.credentials)


def test_frame_analysis_does_not_wait_for_evidence_while_s3_is_down(settings, tmp_path, capsys):
    config = demo_scene(settings, "cam-carpark-01")
    detectors = build_pipeline(config, settings).detectors

    def run(sink, queue=None):
        return Pipeline(config, detectors, sink, queue=queue).run(open_source(config.source))

    run(NullSink())  # warms the model up
    baseline = run(NullSink())
    queued_sink = _unreachable_s3_sink(settings, tmp_path / "queued")
    queue = EvidenceQueue(queued_sink, tmp_path / "queued" / "evidence-queue").start()
    queued = run(queued_sink, queue)
    inline = run(_unreachable_s3_sink(settings, tmp_path / "inline"))
    accepted = queue.accepted
    assert accepted == len(inline.packs) >= 1

    per_pack_inline = inline.evidence_s / accepted
    _report(capsys, f"S3 down: inline {per_pack_inline:.2f} s of evidence per pack on the frame path, queued "
                    f"{queued.evidence_s / accepted * 1000:.0f} ms per violation; frame path {baseline.total_s:.2f} s without "
                    f"evidence, {queued.total_s:.2f} s with the queue, {inline.total_s:.2f} s inline ({baseline.frames} frames, {accepted} packs)")
    assert per_pack_inline > 3  # the outage is real: the client retries before the pack is spooled
    assert queued.evidence_s / accepted < 0.25  # handing a violation over never waits for storage
    # Not compared with the baseline's wall time: the workers share this machine's two cores with the frame path, so
    # that ratio measures the machine's load (it failed once with other jobs running), not whether evidence blocks frames.
    assert queued.total_s < inline.total_s - inline.evidence_s / 2

    assert queue.wait_idle(timeout=180)  # the workers carry on and the packs land in the local spool
    assert queue.stop(timeout=30)
    assert (queue.stored, queue.failed) == (accepted, 0)
    assert sorted(queued_sink.store.spooled()) == sorted(row.pack_id for row in queued_sink.index.rows())
    for row in queued_sink.index.rows():
        assert verify_pack(queued_sink.store, row.pack_id, row.manifest_sha256, settings.public_key()).ok


# -- (c) never lost ---------------------------------------------------------------------------------------

CRASHING_QUEUE = """
import sys, time
from pathlib import Path
from nonsite.evidence.queue import EvidenceQueue
from nonsite.settings import Settings
from tests.test_evidence_queue import slow_sink

settings = Settings()
settings.sink  # repairs, as every start does
EvidenceQueue(slow_sink(settings, 0.2, 30.0, Path(sys.argv[2])), Path(sys.argv[1])).start()
time.sleep(600)
"""


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_an_accepted_violation_survives_a_stop_and_a_kill_and_is_stored_exactly_once(settings, tmp_path, capsys):
    from nonsite.settings import Settings

    config = _whole_lot(settings)
    folder = settings.data_dir / "evidence-queue"
    store, index = settings.open_store(), settings.open_index()

    # 1. The camera run accepts every violation; the sink is slow, so stopping leaves most of them on disk.
    first = RecordingQueue(slow_sink(settings, 1.0), folder, capacity=1000).start()
    summary = Pipeline(config, build_pipeline(config, settings).detectors, first.sink, queue=first).run(open_source(config.source))
    assert summary.packs == []
    assert first.stop(timeout=60)  # the worker finishes the violation it holds, takes no other
    accepted = set(first.pack_ids)
    left = _spooled(folder)
    assert len(accepted) >= 5, "the whole-lot camera should raise enough violations to crash in the middle of them"
    assert first.stored + len(left) == first.accepted and len(left) >= 3
    assert first.pending == len(left)

    # 2. Another process takes over the folder and is killed between storing a pack and indexing it.
    marks = tmp_path / "marks"
    child = subprocess.Popen([sys.executable, "-c", CRASHING_QUEUE, str(folder), str(marks)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=(tmp_path / "child.log").open("w"))
    try:
        _wait_for(lambda: marks.is_dir() and any(marks.iterdir()) or child.poll() is not None, 180, "the child to store a pack")
        assert child.poll() is None, (tmp_path / "child.log").read_text()[-3000:]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    (half_done,) = [mark.name for mark in marks.iterdir()]
    assert store.exists(half_done) and index.get(half_done) is None  # the crash window: stored, not indexed
    assert half_done in {p.name.split("-", 1)[1].removesuffix(".zip") for p in _spooled(folder)}  # so still queued

    # 3. The next start repairs the index, re-queues what is on disk and finishes it.
    restarted = Settings()
    again = EvidenceQueue(restarted.sink, folder).start()
    assert again.recovered == len(_spooled(folder)) == len(left)
    assert again.wait_idle(timeout=600)
    assert again.stop(timeout=30)
    assert (again.stored, again.failed, again.pending) == (len(left), 0, 0)
    assert _spooled(folder) == [] and not list(folder.glob(".*.tmp"))

    rows = [row.pack_id for row in index.rows()]
    assert len(rows) == len(set(rows)) == len(accepted)  # every violation indexed, none twice
    assert set(rows) == set(store.pack_ids()) == accepted
    report = verify_deployment(store, index, settings.public_key())  # store, index and audit log agree, every pack verifies
    assert report.ok, (report.problems, [r.problems for r in report.packs if not r.ok])
    _report(capsys, f"{len(accepted)} violations accepted; {first.stored} stored before the stop, 1 stored but not indexed "
                    f"when the child was killed, {again.stored} stored after the restart; {len(rows)} index rows, "
                    f"{len(store.pack_ids())} packs")


# -- the spool file, back-pressure and retries --------------------------------------------------------------

def _violation_on_a_decoded_frame(parking_frames) -> tuple[Violation, dict[str, list[Detection]]]:
    """A violation on stream-like frames (no received bytes: PNG in the spool) with every kind of extra."""
    from zoneinfo import ZoneInfo

    from nonsite.rules import RuleSpec, ZoneSpec

    images = [cv2.imread(str(path)) for path in parking_frames[:3]]
    moment = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    frames = [Frame("cam-stream-09", seq, moment.replace(minute=seq * 3), image, camera="rtsp", time_source="stream_clock")
              for seq, image in enumerate(images)]
    car = Detection((387.47, 204.83, 441.51, 249.0), 0.83, "car", ("illegal_parking",), "coco", "a" * 64, 27)
    person = Detection((10.0, 20.0, 40.0, 120.0), 0.6, "person", (), "coco", "a" * 64)
    rule = RuleSpec(id="no-parking", kind="illegal_parking", zones=["lane"], classes=["car"], dwell_s=180)
    zone = ZoneSpec(id="lane", polygon=[(360, 200), (625, 193), (645, 252), (370, 257)])
    violation = Violation(rule, zone, *(KeyFrame(f, (car,)) for f in frames),
                          track=tuple(TrackPoint(f.captured_at, car.box, 27) for f in frames),
                          extras={"change": {"pair": ("a", "b"), "at": moment, "mask": b"\x00\x01", "score": np.float32(0.5)}},
                          attachments={"change/mask.png": b"\x89PNG not really"})
    return violation, {"first_seen": [car], "threshold": [car, person], "last_seen": []}


def test_the_spool_file_gives_back_the_violation_exactly(parking_frames, settings):
    from nonsite.evidence import pack_id_for
    from nonsite.ingest import read_folder

    violation, detections = _violation_on_a_decoded_frame(parking_frames)
    spec = demo_scene(settings, "cam-carpark-01").evidence
    back, spec_back, detections_back = load_violation(dump_violation(violation, spec, detections))
    assert pack_id_for(back) == pack_id_for(violation) and spec_back == spec and detections_back == detections
    assert (back.rule, back.zone, back.track, back.attachments) == (violation.rule, violation.zone, violation.track, violation.attachments)
    assert back.extras == {"change": {"pair": ("a", "b"), "at": violation.extras["change"]["at"], "mask": b"\x00\x01", "score": 0.5}}
    for name in ("first_seen", "threshold", "last_seen"):
        ours, theirs = getattr(violation, name), getattr(back, name)
        assert theirs.subject == ours.subject and theirs.frame.encoded is None
        assert np.array_equal(theirs.frame.image, ours.frame.image)
        assert replace(theirs.frame, picture=None) == replace(ours.frame, picture=None)
        assert theirs.at.tzinfo == ours.at.tzinfo and theirs.at.isoformat() == ours.at.isoformat()

    received = next(read_folder(demo_scene(settings, "cam-carpark-01").source))  # a file: its bytes are kept as received
    keyed = replace(violation, first_seen=KeyFrame(received, violation.first_seen.subject))
    back, _, _ = load_violation(dump_violation(keyed, spec, detections))
    assert back.first_seen.frame.encoded == received.encoded and np.array_equal(back.first_seen.frame.image, received.image)


class GatedSink:
    """Holds each submit until released; fails the first ``failures`` attempts."""

    def __init__(self, failures: int = 0):
        self.release, self.failures, self.submitted = threading.Event(), failures, []

    def submit(self, violation, spec, detections_of):
        self.release.wait(30)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("index database unreachable")
        self.submitted.append((violation, [detections_of(getattr(violation, n)) for n in ("first_seen", "threshold", "last_seen")]))


def test_a_full_queue_pushes_back_and_a_failing_submit_is_retried(parking_frames, settings, tmp_path):
    violation, detections = _violation_on_a_decoded_frame(parking_frames)
    spec = demo_scene(settings, "cam-carpark-01").evidence
    sink = GatedSink(failures=2)
    queue = EvidenceQueue(sink, tmp_path / "q", capacity=1, first_backoff_s=0.05).start()
    queue.accept(violation, spec, detections)
    later = replace(violation, threshold=KeyFrame(violation.threshold.frame, (replace(violation.threshold.subject[0], box=(1, 2, 3, 4)),)))
    started = time.monotonic()
    with pytest.raises(QueueFull):
        queue.accept(later, spec, detections, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 2 and len(_spooled(queue.folder)) == 1 and queue.accepted == 1
    with pytest.raises(RuntimeError, match="another evidence queue"):
        EvidenceQueue(sink, tmp_path / "q")  # one queue per folder
    sink.release.set()
    assert queue.wait_idle(timeout=30)
    assert (queue.stored, queue.failed, queue.pending) == (1, 2, 0)
    ((stored, seen),) = sink.submitted
    assert seen == [detections["first_seen"], detections["threshold"], detections["last_seen"]]
    queue.accept(later, spec, detections)  # room again
    assert queue.wait_idle(timeout=30) and queue.stop(timeout=10)
    assert queue.stored == 2 and _spooled(queue.folder) == []
