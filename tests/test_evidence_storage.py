"""Evidence that holds up: MinIO over real HTTP (moto's S3 server), the spool when storage is down,
Ed25519-signed manifests against every kind of tampering, and retention."""
from __future__ import annotations

import dataclasses
import json
import socket
import time
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from minio import Minio

from nonsite.cli import main
from nonsite.evidence import MANIFEST, verify_pack
from nonsite.evidence.minio_store import MinioStore
from nonsite.evidence.signing import SIGNATURE
from nonsite.evidence.spool import SpoolingStore


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def s3():
    from moto.server import ThreadedMotoServer

    port = _port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield server, port
    server.stop()


def _client(port: int) -> Minio:
    return Minio(f"127.0.0.1:{port}", access_key="test", secret_key="test-secret", secure=False, region="us-east-1")


def _local_packs(packed_data, count: int):
    """Real packs the pipeline wrote, read back as they were accepted."""
    local = SpoolingStore(None, packed_data / "evidence")
    return [local._reload(pack_id) for pack_id in local.spool.pack_ids()[:count]]


def test_minio_store_puts_verifies_lists_and_never_overwrites_originals(s3, packed_data):
    _, port = s3
    client = _client(port)
    client.make_bucket("evidence-worm", object_lock=True)
    store = MinioStore(client, "evidence-worm", original_retention_days=30)
    packs = _local_packs(packed_data, 3)
    started = time.perf_counter()
    assert all(store.put(pack) for pack in packs)
    rate = len(packs) / (time.perf_counter() - started)
    print(f"\nupload throughput to the S3 test server: {rate:.1f} packs/s")
    assert all(not store.put(pack) for pack in packs)  # idempotent: stored once
    assert sorted(store.pack_ids()) == sorted(p.pack_id for p in packs)
    for pack in packs:
        assert verify_pack(store, pack.pack_id).ok
        original = next(path for path in pack.files if path.startswith("original/"))
        stat = client.stat_object("evidence-worm", f"packs/{pack.pack_id}/{original}")
        assert {k.lower(): v for k, v in stat.metadata.items()}["x-amz-meta-sha256"] == pack.manifest.files[original]
        headers = {k.lower(): v for k, v in stat.metadata.items()}
        assert headers["x-amz-object-lock-mode"] == "COMPLIANCE"  # WORM where the bucket locks objects
        until = datetime.fromisoformat(headers["x-amz-object-lock-retain-until-date"].replace("Z", "+00:00"))
        assert timedelta(days=29) < until - datetime.now(timezone.utc) <= timedelta(days=30)
    forged = dataclasses.replace(packs[0], files={**packs[0].files, original: b"forged"})
    client.remove_object("evidence-worm", f"packs/{forged.pack_id}/{MANIFEST}")  # pretend the pack never completed
    from nonsite.evidence import StoreError

    with pytest.raises(StoreError, match="originals are never overwritten"):
        store.put(forged)


def test_packs_survive_an_outage_and_arrive_intact_once(s3, packed_data, tmp_path):
    server, port = s3
    client = _client(port)
    client.make_bucket("evidence-spool")
    packs = _local_packs(packed_data, 4)
    spool_dir = tmp_path / "spool"
    server.stop()  # MinIO goes down
    store = SpoolingStore(MinioStore(_client(port), "evidence-spool"), spool_dir, first_backoff_s=0.2, max_backoff_s=1)
    assert all(store.put(pack) for pack in packs)  # accepted all the same
    assert sorted(store.spooled()) == sorted(p.pack_id for p in packs)
    assert store.read(packs[0].pack_id, MANIFEST) == packs[0].manifest_bytes  # still readable while spooled
    del store  # the process restarts: only the spool folder remains
    server.start()
    restarted = SpoolingStore(MinioStore(_client(port), "evidence-spool"), spool_dir, first_backoff_s=0.2, max_backoff_s=1).start()
    deadline = time.monotonic() + 30
    while restarted.spooled() and time.monotonic() < deadline:
        time.sleep(0.2)
    restarted.stop()
    assert restarted.spooled() == []
    objects = [o.object_name for o in client.list_objects("evidence-spool", prefix="packs/", recursive=True)]
    for pack in packs:
        assert verify_pack(restarted.primary, pack.pack_id).ok
        expected = {f"packs/{pack.pack_id}/{path}" for path in pack.stored_files()}
        assert sorted(o for o in objects if o.startswith(f"packs/{pack.pack_id}/")) == sorted(expected)  # once each
    assert len(objects) == sum(len(p.stored_files()) for p in packs)


def test_the_demo_runs_the_same_against_s3(s3, settings, monkeypatch, capsys):
    _, port = s3
    for key, value in {"NONSITE_S3_ENDPOINT": f"127.0.0.1:{port}", "NONSITE_S3_ACCESS_KEY": "test",
                       "NONSITE_S3_SECRET_KEY": "test-secret", "NONSITE_S3_SECURE": "false", "NONSITE_S3_BUCKET": "city-evidence"}.items():
        monkeypatch.setenv(key, value)
    assert main(["keys", "init"]) == 0
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "s3://city-evidence" in out and "illegal_parking" in out
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "signature valid" in out and "FAIL" not in out
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert "MinIO s3://city-evidence" in status
    spool_line = next(line for line in status.splitlines() if "local spool" in line)
    assert spool_line.split("│")[2].strip() == "0"


@pytest.fixture()
def signed_pack(settings):
    from nonsite.demo import demo_scene
    from nonsite.ingest import open_source
    from nonsite.runner import build_pipeline

    assert main(["keys", "init"]) == 0
    settings = type(settings)()
    config = demo_scene(settings, "cam-plaza-02")
    summary = build_pipeline(config, settings).run(open_source(config.source))
    return settings, summary.packs[0].pack_id


def _verify_output(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify", *args])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("tamper,expected", [
    ("file byte", "crops/subject_0.jpg: altered"),
    ("manifest field", "signature does not match manifest.json"),
    ("signature", "signature does not match manifest.json"),
    ("missing file", "original/threshold.jpg: missing"),
])
def test_every_kind_of_tampering_is_named(signed_pack, capsys, tamper, expected):
    settings, pack_id = signed_pack
    folder = settings.open_store().root / pack_id
    code, out = _verify_output(capsys, pack_id)
    assert code == 0 and "signature valid" in out
    if tamper == "file byte":
        data = bytearray((folder / "crops" / "subject_0.jpg").read_bytes())
        data[100] ^= 0xFF
        (folder / "crops" / "subject_0.jpg").write_bytes(bytes(data))
    elif tamper == "manifest field":
        manifest = json.loads((folder / MANIFEST).read_bytes())
        manifest["shop"]["name"] = "Another shop"
        (folder / MANIFEST).write_bytes(json.dumps(manifest, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    elif tamper == "signature":
        envelope = json.loads((folder / SIGNATURE).read_bytes())
        envelope["signature"] = ("A" if envelope["signature"][0] != "A" else "B") + envelope["signature"][1:]
        (folder / SIGNATURE).write_bytes(json.dumps(envelope).encode())
    else:
        (folder / "original" / "threshold.jpg").unlink()
    code, out = _verify_output(capsys, pack_id)
    assert code == 1 and expected in out, out


def test_verify_an_exported_dossier_with_the_public_key_alone(signed_pack, capsys, tmp_path):
    from zoneinfo import ZoneInfo

    from nonsite.review_ui import add_user
    from nonsite.review_ui.auth import User
    from nonsite.review_ui.dossier import build_dossier
    from nonsite.review_ui.i18n import Desk
    from nonsite.review_ui.review import decide

    settings, pack_id = signed_pack
    index = settings.open_index()
    officer = add_user(index.engine, "alice", "alice-password", "reviewer")
    case_id = decide(index.engine, pack_id, User(officer.id, "alice", "reviewer"), "confirm", None, "")
    dossier = tmp_path / "case.zip"
    desk = Desk("zh_CN", ZoneInfo("Asia/Shanghai"))
    dossier.write_bytes(build_dossier(index.engine, settings.open_store(), case_id, officer, desk, signer=settings.signer))
    with zipfile.ZipFile(dossier) as made:  # the summary an officer prints: Chinese, times in the bureau's zone, named
        summary = made.read("summary.html").decode()
    assert "所有时间均为 Asia/Shanghai (UTC+08:00)" in summary and "店外经营" in summary
    assert desk.when(index.get(pack_id).threshold_at) in summary
    public_key = settings.keys_dir / "signing-ed25519.pub.pem"
    code, out = _verify_output(capsys, "--dir", str(dossier), "--public-key", str(public_key))
    assert code == 0 and "signature valid" in out
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(dossier) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            target.writestr(item, data[:-1] + bytes([data[-1] ^ 1]) if item.filename.endswith("annotated/threshold.jpg") else data)
    code, out = _verify_output(capsys, "--dir", str(tampered), "--public-key", str(public_key))
    assert code == 1 and "annotated/threshold.jpg: altered" in out


def test_retention_removes_exactly_what_it_should(review, capsys):
    from nonsite.review_ui.auth import User
    from nonsite.review_ui.cases import Transition, case_detail, decide_approval, transition
    from nonsite.review_ui.retention import run_retention
    from nonsite.review_ui.review import decide

    engine, store = review.engine, review.store
    officer = User(1, "alice", "reviewer")
    rows = [r for r in review.index.rows() if r.source_id == "cam-carpark-wide"]
    rejected, confirmed, closed_pack, untouched = rows[0], rows[1], rows[2], rows[3]
    decide(engine, rejected.pack_id, officer, "reject", "false_detection", "")
    decide(engine, confirmed.pack_id, officer, "confirm", None, "")
    case_id = decide(engine, closed_pack.pack_id, officer, "confirm", None, "")
    assert transition(review.casework, case_id, Transition("closed", "duplicate of a patrol report", outcome="dismissed"), officer) \
        == "awaiting_approval"
    decide_approval(review.casework, case_id, case_detail(engine, case_id)["pending_approval"]["id"], True, "", User(3, "sam", "supervisor"))
    before = {r.pack_id: set(store.list_files(r.pack_id)) for r in rows[:4]}
    assert run_retention(engine, store, rejected_days=30, legal_days=365, now=datetime.now(timezone.utc) + timedelta(days=10)) == []
    lines = run_retention(engine, store, rejected_days=30, legal_days=365, now=datetime.now(timezone.utc) + timedelta(days=400))
    assert len(lines) == 2
    assert set(store.list_files(rejected.pack_id)) == {MANIFEST, SIGNATURE}  # images gone, signed manifest stays
    assert not store.exists(closed_pack.pack_id)
    assert set(store.list_files(confirmed.pack_id)) == before[confirmed.pack_id]  # open case: kept
    assert set(store.list_files(untouched.pack_id)) == before[untouched.pack_id]  # pending: kept
    purged = review.index.get(rejected.pack_id)
    assert purged.purged == "images" and verify_pack(store, rejected.pack_id, purged.manifest_sha256, images_purged=True).ok
    from nonsite.evidence.schema import audit

    with engine.connect() as conn:
        logged = {(r.action, r.target) for r in conn.execute(audit.select())}
    assert ("retention.purge_images", rejected.pack_id) in logged and ("retention.delete", closed_pack.pack_id) in logged


def test_derived_images_carry_content_credentials_naming_their_original(signed_pack):
    from nonsite.evidence.credentials import CA_CERT, read_credentials
    from nonsite.evidence.hashing import sha256_hex

    settings, pack_id = signed_pack
    store = settings.open_store()
    manifest = json.loads(store.read(pack_id, MANIFEST))
    original = manifest["key_frames"]["threshold"]["original"]
    anchor = (settings.keys_dir / CA_CERT).read_bytes()
    expected = {"annotated/threshold.jpg": "c2pa.edited", "disclosure/threshold.jpg": "c2pa.edited", "crops/subject_0.jpg": "c2pa.cropped"}
    for path, action in expected.items():
        credentials, state = read_credentials(store.read(pack_id, path), anchor)
        assert state == "Valid", (path, state)
        facts = next(a["data"] for a in credentials["assertions"] if a["label"] == "org.nonsite.evidence")
        assert facts == {"pack_id": pack_id, "original": original, "original_sha256": sha256_hex(store.read(pack_id, original))}
        assert credentials["ingredients"][0]["relationship"] == "parentOf"
        actions = [a["action"] for a in next(a for a in credentials["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]]
        assert actions == ["c2pa.opened", action]
    assert verify_pack(store, pack_id).ok  # the stamped bytes are what the manifest hashed
