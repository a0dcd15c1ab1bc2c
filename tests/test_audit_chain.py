"""The audit chain under concurrent officers, and against someone who can write the database.

Two hundred mixed actions from three officers' threads (and from a second engine on the same
file, as another process appends) leave one intact, consecutively numbered chain; a fork cannot
commit; each of twelve kinds of edit is caught and named by ``nonsite audit verify``; checkpoints
are signed, written every N appends, and kept in a folder or in the WORM bucket under audit/.
"""
from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from nonsite.cli import main
from nonsite.evidence import open_database
from nonsite.evidence.audit import CASE_STEPS, GENESIS, anchor, checkpoint, entry_hash, record_now, verify_chain
from nonsite.evidence.checkpoints import CheckpointBucket, CheckpointFolder, Checkpoints
from nonsite.evidence.schema import audit, audit_head, case_events, decisions
from nonsite.review_ui import create_app
from nonsite.settings import Settings

from .officers import login


@pytest.fixture()
def deployment(review, tmp_path, monkeypatch):
    """The review fixture's data folder as a deployment, with settings read from the environment as the CLI does."""
    monkeypatch.setenv("NONSITE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NONSITE_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("NONSITE_DATABASE_URL", review.engine.url.render_as_string(hide_password=False))  # SQLite or PostgreSQL
    return Settings()


def chain(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(audit).order_by(audit.c.seq)).mappings()]


BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@BOTH
def test_audit_verify_is_intact_after_200_concurrent_actions(review, deployment):
    anchor(review.engine, deployment.audit_checkpoints(), every=50)
    app = create_app(review)
    officers = [login(app, name) for name in ("alice", "bob", "sam")]
    packs = [p["pack_id"] for p in officers[0].get("/api/packs").json()]
    before = len(chain(review.engine))
    pipeline = open_database(str(review.engine.url))  # a second engine on the same file: another process appending
    rng = random.Random(7)

    def act(i: int) -> int:
        officer, pack = rng.choice(officers), packs[i % len(packs)]
        if i % 5 == 3:  # actions 3 and 8, 13 and 18...: two officers race to decide one pack, one is told it lost
            body = {"decision": "confirm"} if i % 2 else {"decision": "reject", "reason": "false_detection"}
            return officer.post(f"/api/packs/{packs[i // 10 % len(packs)]}/decision", json=body).status_code
        if i % 5 == 4:
            record_now(pipeline, "pipeline", "pack.store", pack, {"attempt": i})
            return 200
        return officer.get(f"/api/packs/{pack}").status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        codes = list(pool.map(act, range(200)))
    assert set(codes) <= {200, 409} and codes.count(409) >= 20, codes

    entries = chain(review.engine)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert len(entries) >= before + 200 - codes.count(409)  # a lost race changes nothing, so it records nothing
    report = verify_chain(review.engine, deployment.audit_checkpoints(signing=False))
    assert report.ok, report.problem
    assert report.anchor is not None and report.anchor.signed and report.anchor.seq >= before + 100
    print(f"\n200 concurrent actions -> {len(entries)} entries, {codes.count(409)} lost races, "
          f"latest checkpoint at entry {report.anchor.seq}")
    assert main(["audit", "verify"]) == 0


@BOTH
def test_a_fork_fails_to_commit(review):
    record_now(review.engine, "alice", "pack.view", "some-pack")
    last = chain(review.engine)[-1]
    with pytest.raises(IntegrityError), review.engine.begin() as conn:
        conn.execute(insert(audit).values(seq=last["seq"] + 1, at=datetime.now(timezone.utc), actor="bob", action="pack.view",
                                          target="other-pack", details={}, prev_hash=last["prev_hash"], hash="f" * 64))


@pytest.fixture()
def history(review, deployment, capsys):
    """An ordinary day (views, a confirmation with its case and a notice, a rejection), checkpointed at its end."""
    app = create_app(review)
    alice, bob, sam = (login(app, name) for name in ("alice", "bob", "sam"))
    first, second, third = (p["pack_id"] for p in alice.get("/api/packs").json()[:3])
    alice.get(f"/api/packs/{first}")
    case_id = alice.post(f"/api/packs/{first}/decision", json={"decision": "confirm"}).json()["case_id"]
    bob.get(f"/api/packs/{second}")
    assert bob.post(f"/api/packs/{second}/decision", json={"decision": "reject", "reason": "permitted"}).status_code == 200
    step = {"to_state": "notified", "notice_kind": "warning", "note": "handed to the shop owner"}
    assert sam.post(f"/api/cases/{case_id}/transition", json=step).status_code == 200
    for pack in (first, second, third):
        sam.get(f"/api/packs/{pack}")
    assert main(["audit", "checkpoint"]) == 0 and main(["audit", "verify"]) == 0
    capsys.readouterr()
    return {"pending": third, "case_id": case_id}


def _rechain(conn, rows: list[dict]) -> None:
    """What a careful forger does after a change: renumber, recompute every hash, move the head."""
    conn.execute(delete(audit))
    prev = GENESIS
    for seq, row in enumerate(rows, start=1):
        digest = entry_hash(prev, row["at"], row["actor"], row["action"], row["target"], row["details"])
        conn.execute(insert(audit).values(seq=seq, at=row["at"], actor=row["actor"], action=row["action"], target=row["target"],
                                          details=row["details"], prev_hash=prev, hash=digest))
        prev = digest
    conn.execute(update(audit_head).values(seq=len(rows), hash=prev))


def _entry(conn, action: str) -> dict:
    return dict(conn.execute(select(audit).where(audit.c.action == action).order_by(audit.c.seq).limit(1)).mappings().one())


def _all(conn) -> list[dict]:
    return [dict(r) for r in conn.execute(select(audit).order_by(audit.c.seq)).mappings()]


def edit_details(conn, day):
    conn.execute(update(audit).where(audit.c.seq == _entry(conn, "pack.reject")["seq"]).values(details={"reason": "duplicate", "note": ""}))


def edit_actor(conn, day):
    conn.execute(update(audit).where(audit.c.seq == _entry(conn, "pack.view")["seq"]).values(actor="mallory"))


def delete_a_middle_entry(conn, day):
    conn.execute(delete(audit).where(audit.c.seq == _entry(conn, "login.ok")["seq"]))


def swap_two_entries(conn, day):
    a, b = _entry(conn, "pack.confirm")["seq"], _entry(conn, "pack.reject")["seq"]
    conn.execute(update(audit).where(audit.c.seq == a).values(seq=-1))
    conn.execute(update(audit).where(audit.c.seq == b).values(seq=a))
    conn.execute(update(audit).where(audit.c.seq == -1).values(seq=b))


def replace_a_hash(conn, day):
    conn.execute(update(audit).where(audit.c.seq == _entry(conn, "case.notified")["seq"]).values(hash="e" * 64))


def delete_the_last_entries(conn, day):
    rows = _all(conn)
    conn.execute(delete(audit).where(audit.c.seq > rows[-4]["seq"]))
    conn.execute(update(audit_head).values(seq=rows[-4]["seq"], hash=rows[-4]["hash"]))


def delete_every_entry(conn, day):
    conn.execute(delete(audit))
    conn.execute(update(audit_head).values(seq=0, hash=GENESIS))


def insert_an_entry_and_recompute(conn, day):
    rows = _all(conn)
    forged = {**rows[4], "actor": "sam", "action": "pack.view", "target": day["pending"], "details": {}}
    _rechain(conn, [*rows[:5], forged, *rows[5:]])


def edit_an_entry_and_recompute(conn, day):
    _rechain(conn, [{**r, "details": {"reason": "duplicate", "note": ""}} if r["action"] == "pack.reject" else r for r in _all(conn)])


def append_a_forged_entry(conn, day):
    head = conn.execute(select(audit_head)).one()
    at, details = datetime.now(timezone.utc), {"reason": None, "note": ""}
    digest = entry_hash(head.hash, at, "alice", "pack.confirm", day["pending"], details)
    conn.execute(insert(audit).values(seq=head.seq + 1, at=at, actor="alice", action="pack.confirm", target=day["pending"],
                                      details=details, prev_hash=head.hash, hash=digest))
    conn.execute(update(audit_head).values(seq=head.seq + 1, hash=digest))


def delete_a_decision(conn, day):
    conn.execute(delete(decisions).where(decisions.c.decision == "reject"))


def delete_a_case_event(conn, day):
    conn.execute(delete(case_events).where(case_events.c.to_state == "notified"))


EDITS = {  # each edit, and the words `nonsite audit verify` names it with
    edit_details: "content does not match its hash (edited)",
    edit_actor: "pack.view by mallory",
    delete_a_middle_entry: "missing before entry",
    swap_two_entries: "link to the previous entry is broken",
    replace_a_hash: "case.notified by sam on 'case:",
    delete_the_last_entries: "entries were removed",
    delete_every_entry: "the chain ends at entry 0",
    insert_an_entry_and_recompute: "the chain was rewritten and its hashes recomputed",
    edit_an_entry_and_recompute: "the chain was rewritten and its hashes recomputed",
    append_a_forged_entry: "audit entry pack.confirm on {pending} by alice has no decision row",
    delete_a_decision: "audit entry pack.reject on",
    delete_a_case_event: "audit entry case.notified on case:{case_id} by sam has no case event row",
}


@pytest.mark.parametrize("edit", list(EDITS), ids=lambda edit: edit.__name__)
def test_every_kind_of_edit_is_detected_and_named(review, history, capsys, edit):
    with review.engine.begin() as conn:
        edit(conn, history)
    assert main(["audit", "verify"]) == 1
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "BROKEN" in out and EDITS[edit].format(**history) in out, out


def test_checkpoints_are_signed_every_n_appends_and_a_forged_one_is_caught(review, deployment):
    checkpoints = deployment.audit_checkpoints()
    anchor(review.engine, checkpoints, every=10)
    for i in range(35):
        record_now(review.engine, "alice", "pack.view", f"pack-{i}")
    folder = deployment.data_dir / "audit-checkpoints"
    written = sorted(folder.glob("checkpoint-*.json"))
    assert len(written) == 4 and all(json.loads(p.read_text())["signature"] for p in written)
    assert verify_chain(review.engine, deployment.audit_checkpoints(signing=False)).ok

    stored = json.loads(written[-1].read_text())
    stored["head"]["hash"] = chain(review.engine)[-1]["hash"]  # a forger moves the anchor to suit the chain
    written[-1].write_text(json.dumps(stored))
    report = verify_chain(review.engine, deployment.audit_checkpoints(signing=False))
    assert not report.ok and "signature does not verify" in report.problem


def test_unsigned_checkpoints_still_anchor_the_chain_and_say_so(review, tmp_path):
    unsigned = Checkpoints(CheckpointFolder(tmp_path / "anchors"), signer=None)
    record_now(review.engine, "alice", "pack.view", "a-pack")
    assert not checkpoint(review.engine, unsigned).signed
    report = verify_chain(review.engine, unsigned)
    assert report.ok and report.anchor is not None and "unsigned" in " ".join(report.warnings)
    before_last = chain(review.engine)[-2]
    with review.engine.begin() as conn:
        conn.execute(delete(audit).where(audit.c.seq > before_last["seq"]))
        conn.execute(update(audit_head).values(seq=before_last["seq"], hash=before_last["hash"]))
    assert "entries were removed" in verify_chain(review.engine, unsigned).problem


def test_a_checkpoint_store_that_is_down_does_not_fail_the_officers_action(review, tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    anchor(review.engine, Checkpoints(CheckpointFolder(blocked / "anchors"), signer=None), every=1)
    record_now(review.engine, "alice", "pack.view", "a-pack")
    assert verify_chain(review.engine).ok and "not written" in caplog.text


def test_checkpoints_go_to_the_worm_bucket_under_audit(review, deployment):
    import socket

    from minio import Minio
    from moto.server import ThreadedMotoServer

    from nonsite.evidence.minio_store import MinioStore

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        client = Minio(f"127.0.0.1:{port}", access_key="test", secret_key="test-secret", secure=False, region="us-east-1")
        client.make_bucket("evidence-worm", object_lock=True)
        checkpoints = Checkpoints(CheckpointBucket(MinioStore(client, "evidence-worm", 30)), deployment.signer, deployment.public_key())
        written = checkpoint(review.engine, checkpoints)
        key = f"audit/checkpoint-{written.seq:012d}.json"
        headers = {k.lower(): v for k, v in client.stat_object("evidence-worm", key).metadata.items()}
        assert headers["x-amz-object-lock-mode"] == "COMPLIANCE"
        report = verify_chain(review.engine, checkpoints)
        assert report.ok and report.anchor == written and not report.warnings
    finally:
        server.stop()


def test_case_steps_checked_are_the_review_desks_case_states():
    from nonsite.review_ui.cases import STATES

    assert CASE_STEPS == STATES
