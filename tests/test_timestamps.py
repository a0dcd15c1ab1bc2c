"""RFC 3161 time-stamps on packs and audit checkpoints, against a real TSA on loopback (``tests.tsa``).

A pack written through the sink while a TSA is configured carries ``manifest.tsr`` and ``nonsite
verify`` names the TSA's time; a token from another CA, or a manifest edited after stamping,
fails; with the TSA down the pack is stored all the same and verify notes the missing token; an
audit checkpoint carries a token that ``verify_chain`` checks.
"""
from __future__ import annotations

import base64
import json
import logging
import socket
from datetime import datetime, timedelta, timezone

import pytest

from nonsite.cli import main
from nonsite.evidence import MANIFEST, verify_pack
from nonsite.evidence.timestamps import TIMESTAMP, TimeStamper, TimestampError, check_token
from nonsite.rules import RuleEngine, SiteConfig

from .helpers import at, car, frame
from .tsa import TestTSA

SITE = SiteConfig.model_validate({
    "source": {"id": "cam-tsa", "kind": "folder", "uri": "."},
    "zones": [{"id": "bus-lane", "polygon": [(100, 100), (400, 100), (400, 400), (100, 400)], "inertia": 1}],
    "rules": [{"id": "no-parking", "kind": "illegal_parking", "zones": ["bus-lane"], "classes": ["car"], "dwell_s": 60,
               "hold_s": 0, "grace_s": 30, "cooldown_s": 0}],
})


class NoText:
    """The sink's plate reader: the test frames are blank, there is nothing to read."""

    def plate(self, image):
        return None


def _violation():
    """A car parked two minutes in the bus lane: one real violation from the rules engine."""
    engine = RuleEngine(SITE)
    found = []
    for seq, t in enumerate(range(0, 121, 10)):
        found += engine.update(frame(seq, at("10:00", t), "cam-tsa"), [car(250, 300)])
    found += engine.flush()
    assert len(found) == 1
    return found[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture()
def tsa():
    server = TestTSA().start()
    yield server
    server.stop()


@pytest.fixture()
def other_tsa():
    server = TestTSA("another TSA").start()
    yield server
    server.stop()


@pytest.fixture()
def deployment(settings, tsa, tmp_path, monkeypatch):
    """A deployment configured with the loopback TSA and its CA, read from the environment as the CLI does."""
    ca_file = tmp_path / "tsa-ca.pem"
    ca_file.write_bytes(tsa.ca_pem)
    monkeypatch.setenv("NONSITE_TSA_URL", tsa.url)
    monkeypatch.setenv("NONSITE_TSA_CA_FILE", str(ca_file))
    return type(settings)()


def _submit(deployment) -> str:
    sink = deployment.sink
    sink.reader = NoText()
    stored = sink.submit(_violation(), SITE.evidence, lambda key: list(key.subject))
    assert stored.new
    return stored.pack_id


def _verify(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify", *args])
    return code, " ".join(capsys.readouterr().out.split())  # as one line: the console wraps long ones


def test_a_pack_through_the_sink_is_time_stamped_and_verify_says_so(deployment, tsa, capsys):
    from nonsite.evidence.spool import SpoolingStore

    pack_id = _submit(deployment)
    store = deployment.open_store()
    token = store.read(pack_id, TIMESTAMP)
    assert tsa.requests == 1
    when, problem = check_token(token, store.read(pack_id, MANIFEST), tsa.ca_pem)
    assert problem is None and abs(when - datetime.now(timezone.utc)) < timedelta(minutes=1)
    code, out = _verify(capsys, pack_id)
    assert code == 0 and "FAIL" not in out, out
    assert "signature valid" in out and f"time-stamped at {when:%Y-%m-%d %H:%M:%S} UTC by the TSA" in out, out
    # Verified without the CA, the token still binds the manifest; only the TSA's identity is left unchecked.
    report = verify_pack(store, pack_id)
    assert report.ok and any("certificate not checked" in note for note in report.notes)
    # The spool rebuilds a pack from disk with its token, so an upload carries manifest.tsr along.
    reloaded = SpoolingStore(None, store.root)._reload(pack_id)
    assert reloaded.timestamp == token and reloaded.stored_files()[TIMESTAMP] == token


def test_a_token_from_another_ca_fails(deployment, tsa, other_tsa, capsys):
    pack_id = _submit(deployment)
    store = deployment.open_store()
    manifest = store.read(pack_id, MANIFEST)
    # A perfectly good token for these very bytes, but from a TSA the deployment does not trust.
    (store.root / pack_id / TIMESTAMP).write_bytes(TimeStamper(other_tsa.url).stamp(manifest))
    code, out = _verify(capsys, pack_id)
    assert code == 1, out
    assert f"FAIL {pack_id}: {TIMESTAMP}: the token's certificate (CN=another TSA" in out, out
    assert "was not issued by the configured TSA CA (CN=nonsite test TSA CA" in out, out
    # The stamper itself refuses such a token when it knows the CA: nothing unverifiable is stored.
    with pytest.raises(TimestampError, match="does not verify"):
        TimeStamper(other_tsa.url, tsa.ca_pem).stamp(manifest)


def test_an_edited_manifest_fails_the_token_check(deployment, capsys):
    pack_id = _submit(deployment)
    folder = deployment.open_store().root / pack_id
    manifest = json.loads((folder / MANIFEST).read_bytes())
    manifest["dwell_s"] = 1.0
    (folder / MANIFEST).write_bytes(json.dumps(manifest, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    code, out = _verify(capsys, pack_id)
    assert code == 1, out
    assert f"{TIMESTAMP}: the token time-stamps other bytes than these" in out, out
    assert "signature does not match manifest.json" in out, out


def test_an_altered_token_fails(deployment, tsa):
    pack_id = _submit(deployment)
    store = deployment.open_store()
    token = bytearray(store.read(pack_id, TIMESTAMP))
    token[-10] ^= 0x01  # inside the signature
    _, problem = check_token(bytes(token), store.read(pack_id, MANIFEST), tsa.ca_pem)
    assert problem and "signature" in problem
    _, problem = check_token(b"not a token", store.read(pack_id, MANIFEST), tsa.ca_pem)
    assert problem.startswith("not a readable time-stamp token")


def test_a_refusing_tsa_is_named(tsa):
    tsa.refusing = True
    with pytest.raises(TimestampError, match=r"refused the request: rejection \(policy not available; unaccepted_policy\)"):
        TimeStamper(tsa.url, tsa.ca_pem).stamp(b"a manifest")


def test_with_the_tsa_down_the_pack_is_stored_and_verify_notes_the_missing_token(deployment, monkeypatch, capsys, caplog):
    monkeypatch.setenv("NONSITE_TSA_URL", f"http://127.0.0.1:{_closed_port()}/tsa")
    down = type(deployment)()
    with caplog.at_level(logging.WARNING, logger="nonsite.evidence.sink"):
        pack_id = _submit(down)
    assert any("stored without an RFC 3161 time-stamp" in r.getMessage() and "unreachable" in r.getMessage()
               for r in caplog.records), caplog.text
    store = down.open_store()
    assert store.exists(pack_id) and TIMESTAMP not in store.list_files(pack_id)
    code, out = _verify(capsys, pack_id)
    assert code == 0 and "FAIL" not in out, out
    assert f"no {TIMESTAMP} (stored while the TSA was unreachable" in out, out


def test_an_audit_checkpoint_with_a_token_verifies(tsa, other_tsa, tmp_path, caplog):
    from nonsite.evidence import open_database
    from nonsite.evidence.audit import checkpoint, record_now, verify_chain
    from nonsite.evidence.checkpoints import CheckpointFolder, Checkpoints
    from nonsite.evidence.signing import FileSigner, create_keys, load_public_key

    engine = open_database(f"sqlite:///{tmp_path / 'audit.db'}")
    public = load_public_key(create_keys(tmp_path / "keys"))
    signer = FileSigner.load(tmp_path / "keys")
    folder = CheckpointFolder(tmp_path / "anchors")
    stamped = Checkpoints(folder, signer, public, TimeStamper(tsa.url, tsa.ca_pem), tsa.ca_pem)
    for n in range(3):
        record_now(engine, "alice", "pack.view", f"pack-{n}")
    written = checkpoint(engine, stamped)
    assert written.signed and written.time_stamped_at is not None
    stored = json.loads(folder.read(f"checkpoint-{written.seq:012d}.json"))
    assert "timestamp" in stored
    report = verify_chain(engine, Checkpoints(folder, None, public, tsa_ca=tsa.ca_pem))
    assert report.ok, report.problem
    assert report.anchor.seq == written.seq and report.anchor.time_stamped_at == written.time_stamped_at
    assert any("valid RFC 3161 time-stamp: 1" in w and "time-stamped at" in w for w in report.warnings), report.warnings

    # Checked against another CA, the token is a problem, named with its checkpoint.
    report = verify_chain(engine, Checkpoints(folder, None, public, tsa_ca=other_tsa.ca_pem))
    assert not report.ok and "its RFC 3161 time-stamp does not verify" in report.problem
    assert "was not issued by the configured TSA CA" in report.problem

    # A token over other bytes (swapped in from elsewhere) does not vouch for this checkpoint.
    stored["timestamp"] = base64.b64encode(TimeStamper(tsa.url).stamp(b"another head")).decode()
    (tmp_path / "anchors" / f"checkpoint-{written.seq:012d}.json").write_text(json.dumps(stored))
    report = verify_chain(engine, Checkpoints(folder, None, public, tsa_ca=tsa.ca_pem))
    assert not report.ok and "the token time-stamps other bytes" in report.problem

    # With the TSA down the checkpoint is still written, and verification notes the missing token.
    record_now(engine, "alice", "pack.view", "pack-3")
    down = Checkpoints(CheckpointFolder(tmp_path / "anchors-2"), signer, public,
                       TimeStamper(f"http://127.0.0.1:{_closed_port()}/tsa", tsa.ca_pem), tsa.ca_pem)
    with caplog.at_level(logging.WARNING, logger="nonsite.evidence.checkpoints"):
        unstamped = checkpoint(engine, down)
    assert unstamped.signed and unstamped.time_stamped_at is None
    assert "without an RFC 3161 time-stamp" in caplog.text
    report = verify_chain(engine, down)
    assert report.ok, report.problem
    assert any("checkpoints without an RFC 3161 time-stamp: 1" in w for w in report.warnings), report.warnings
