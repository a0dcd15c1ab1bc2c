"""Every route of the review app: log-in, roles, CSRF, bad ids, traversal, races, cases, audit."""
from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile

import pytest
import yaml
from fastapi.testclient import TestClient

from nonsite.cli import main
from nonsite.evidence.audit import verify_chain
from nonsite.evidence.schema import audit
from nonsite.review_ui import create_app

from .officers import login

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)  # the same routes on both databases


@pytest.fixture()
def app(review):
    return create_app(review)


def pending(client, **filters) -> list[dict]:
    return client.get("/api/packs", params=filters).json()


PAGES = ["/", "/queue", "/cases", "/cases/1", "/dashboard", "/audit", "/admin/sources", "/admin/users", "/packs/x",
         "/admin/sources/cam-carpark-01", "/admin/sources/cam-carpark-01/frame"]
API_GETS = ["/api/packs", "/api/packs/x", "/api/packs/x/files/manifest.json", "/api/cases", "/api/cases/1",
            "/api/cases/1/dossier", "/api/dashboard", "/api/audit", "/api/sources", "/api/openapi.json"]
API_POSTS = ["/api/logout", "/api/packs/x/decision", "/api/cases/1/transition", "/api/cases/1/assign",
             "/api/sources/cam-carpark-01/zones", "/api/users"]


def test_every_route_needs_a_login(app):
    client = TestClient(app, headers={"Accept-Language": "en"})
    for path in PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
    for path in API_GETS:
        assert client.get(path).status_code == 401, path
    for path in API_POSTS:
        assert client.post(path, json={}).status_code == 401, path
    assert client.get("/docs").status_code == 404  # no CDN-backed Swagger page


def test_session_cookie_is_httponly_and_samesite(app):
    english = TestClient(app, headers={"Accept-Language": "en"})
    response = english.post("/api/login", json={"username": "alice", "password": "alice-password"})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_wrong_password_then_throttling(app):
    client = TestClient(app, headers={"Accept-Language": "en"})
    for _ in range(5):
        assert client.post("/api/login", json={"username": "alice", "password": "guess"}).status_code == 401
    throttled = client.post("/api/login", json={"username": "alice", "password": "alice-password"})
    assert throttled.status_code == 429 and "too many" in throttled.json()["detail"]


def test_posts_without_the_csrf_token_are_refused(app):
    client = login(app, "alice")
    pack = pending(client)[0]["pack_id"]
    token = client.headers.pop("X-CSRF-Token")
    assert client.post(f"/api/packs/{pack}/decision", json={"decision": "confirm"}).status_code == 403
    assert client.post(f"/api/packs/{pack}/decision", json={"decision": "confirm"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post(f"/api/packs/{pack}/decision", json={"decision": "confirm"}, headers={"X-CSRF-Token": token}).status_code == 200


def test_roles(app):
    reviewer, supervisor, admin = login(app, "alice"), login(app, "sam"), login(app, "ada")
    for path in ("/api/dashboard", "/api/audit", "/api/sources", "/dashboard", "/audit", "/admin/sources"):
        assert reviewer.get(path).status_code == 403, path
    assert supervisor.get("/api/dashboard").status_code == 200 and supervisor.get("/api/audit").status_code == 200
    assert supervisor.get("/api/sources").status_code == 403
    new_user = {"username": "carl", "password": "carl-password", "role": "reviewer"}
    assert supervisor.post("/api/users", json=new_user).status_code == 403
    assert admin.post("/api/users", json=new_user).status_code == 200
    assert admin.post("/api/users", json=new_user).status_code == 422  # exists already
    assert admin.get("/api/sources").status_code == 200


def test_bad_ids_are_404(app):
    client = login(app, "alice")
    assert client.get("/api/packs/no-such-pack").status_code == 404
    assert client.post("/api/packs/no-such-pack/decision", json={"decision": "confirm"}).status_code == 404
    assert client.get("/api/cases/9999").status_code == 404
    assert client.post("/api/cases/9999/transition", json={"to_state": "notified", "notice_kind": "warning"}).status_code == 404
    assert client.get("/api/cases/9999/dossier").status_code == 404
    assert client.get("/packs/no-such-pack").status_code == 404


@pytest.mark.parametrize("path", ["../../nonsite.db", "..%2F..%2Fnonsite.db", "/etc/passwd", "original/../../../sites/x.yaml",
                                  "crops/%2e%2e/%2e%2e/nonsite.db", "original%2F..%2F..%2F..%2Fnonsite.db"])
def test_evidence_paths_cannot_leave_the_pack(app, path):
    client = login(app, "alice")
    pack = pending(client)[0]["pack_id"]
    response = client.get(f"/api/packs/{pack}/files/{path}")
    assert response.status_code == 404, (path, response.status_code)
    good = client.get(f"/api/packs/{pack}/files/annotated/threshold.jpg")
    assert good.status_code == 200 and good.headers["content-type"] == "image/jpeg"


def test_two_officers_deciding_at_once_cannot_both_win(app):
    alice, bob = login(app, "alice"), login(app, "bob")
    pack = pending(alice)[0]["pack_id"]
    results = {}
    barrier = threading.Barrier(2)

    def decide(name, client, decision):
        barrier.wait()
        results[name] = client.post(f"/api/packs/{pack}/decision", json={"decision": decision, "reason": "false_detection"})

    threads = [threading.Thread(target=decide, args=("alice", alice, "confirm")),
               threading.Thread(target=decide, args=("bob", bob, "reject"))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    codes = sorted(r.status_code for r in results.values())
    assert codes == [200, 409]
    loser = next(r for r in results.values() if r.status_code == 409)
    assert "already" in loser.json()["detail"] and ("by alice" in loser.json()["detail"] or "by bob" in loser.json()["detail"])


def test_reject_needs_a_reason_and_other_needs_a_note(app):
    client = login(app, "alice")
    pack = pending(client)[0]["pack_id"]
    assert client.post(f"/api/packs/{pack}/decision", json={"decision": "reject"}).status_code == 422
    assert client.post(f"/api/packs/{pack}/decision", json={"decision": "reject", "reason": "other"}).status_code == 422
    ok = client.post(f"/api/packs/{pack}/decision", json={"decision": "reject", "reason": "other", "note": "a delivery van, 2 minutes"})
    assert ok.status_code == 200 and ok.json()["case_id"] is None


def test_queue_filters(app):
    client = login(app, "alice")
    everything = pending(client)
    spill = pending(client, category="spillover_business")
    assert spill and all(p["category"] == "spillover_business" for p in spill)
    assert all(p["source_id"] == "cam-carpark-wide" for p in pending(client, source="cam-carpark-wide"))
    assert pending(client, place="Plaza café (demo shop record)") == spill
    assert pending(client, day="2026-11-24") and all(p["threshold_at"].startswith("2026-11-24") for p in pending(client, day="2026-11-24"))
    times = [p["threshold_at"] for p in everything]
    assert times == sorted(times, reverse=True)  # newest first


def _confirm(client, pack_id):
    response = client.post(f"/api/packs/{pack_id}/decision", json={"decision": "confirm"})
    assert response.status_code == 200, response.text
    return response.json()["case_id"]


def test_a_case_walks_from_open_to_closed_and_only_valid_steps_pass(app):
    alice, sam = login(app, "alice"), login(app, "sam")
    pack = pending(alice, category="spillover_business")[0]["pack_id"]
    case_id = _confirm(alice, pack)
    step = lambda body: alice.post(f"/api/cases/{case_id}/transition", json=body)  # noqa: E731
    assert step({"to_state": "closed", "outcome": "rectified", "note": "done"}).status_code == 422  # no skipping
    assert step({"to_state": "closed", "outcome": "dismissed"}).status_code == 422  # needs a reason
    assert step({"to_state": "notified"}).status_code == 422  # warning or penalty?
    detail = alice.get(f"/api/cases/{case_id}").json()
    assert detail["prior_confirmed"] == 0  # first offence: the page proposes a warning
    assert step({"to_state": "notified", "notice_kind": "warning", "note": "首违不罚: warning issued"}).status_code == 200
    assert step({"to_state": "rectification_due", "note": "clear the frontage"}).status_code == 422  # no deadline
    assert step({"to_state": "rectification_due", "deadline": "2026-11-30", "note": "clear the frontage"}).status_code == 200
    assert step({"to_state": "rechecked", "recheck": "clear"}).status_code == 422  # what was seen?
    assert step({"to_state": "rechecked", "recheck": "clear", "note": "site visit: umbrellas gone"}).status_code == 200
    asked = step({"to_state": "closed", "outcome": "rectified", "note": "rectified after warning"})
    assert asked.status_code == 202 and asked.json()["case"]["state"] == "rechecked"  # closing waits for a supervisor's approval
    approval = asked.json()["pending_approval"]["id"]
    assert sam.post(f"/api/cases/{case_id}/approvals/{approval}", json={"approve": True, "opinion": "同意结案"}).status_code == 200
    closed = alice.get(f"/api/cases/{case_id}").json()
    assert closed["case"]["state"] == "closed" and closed["case"]["outcome"] == "rectified"
    assert [e["to_state"] for e in closed["events"]] == ["open", "notified", "rectification_due", "rechecked", "closed"]
    assert step({"to_state": "open", "note": "new complaint"}).status_code == 422  # reviewers do not reopen
    assert sam.post(f"/api/cases/{case_id}/transition", json={"to_state": "open", "note": "new complaint"}).status_code == 200
    assert alice.post(f"/api/cases/{case_id}/assign", json={"username": "bob"}).status_code == 403
    assert sam.post(f"/api/cases/{case_id}/assign", json={"username": "bob"}).json()["case"]["assignee"] == "bob"


def test_confirmed_packs_of_one_subject_share_a_case(app):
    alice = login(app, "alice")
    wide = pending(alice, source="cam-carpark-wide")
    first = _confirm(alice, wide[0]["pack_id"])
    second = _confirm(alice, wide[1]["pack_id"])
    assert first != second  # two different cars: two cases
    same_subject = [p for p in wide[2:] if p["subject_key"] == wide[0]["subject_key"]]
    if same_subject:
        assert _confirm(alice, same_subject[0]["pack_id"]) == first


def test_dossier_holds_originals_manifests_audit_and_matching_hashes(app):
    alice = login(app, "alice")
    case_id = _confirm(alice, pending(alice, category="illegal_parking")[0]["pack_id"])
    response = alice.get(f"/api/cases/{case_id}/dossier")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    assert {"case.json", "summary.html", "SHA256SUMS", "dossier.json"} <= names
    for line in archive.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    manifest_name = next(n for n in names if n.endswith("manifest.json"))
    manifest = json.loads(archive.read(manifest_name))
    folder = manifest_name.rsplit("/", 1)[0]
    for path, digest in manifest["files"].items():
        if path.startswith(("original/", "annotated/", "crops/")):
            assert hashlib.sha256(archive.read(f"{folder}/{path}")).hexdigest() == digest
    assert "audit.json" not in names  # a reviewer may not read the audit log, so the export does not carry it
    archive = zipfile.ZipFile(io.BytesIO(login(app, "sam").get(f"/api/cases/{case_id}/dossier").content))
    actions = [e["action"] for e in json.loads(archive.read("audit.json"))]
    assert "pack.confirm" in actions and "case.open" in actions and "case.export" in actions


def test_audit_chain_records_everything_and_detects_an_edited_row(app, review, monkeypatch, tmp_path):
    alice = login(app, "alice")
    pack = pending(alice)[0]["pack_id"]
    alice.get(f"/api/packs/{pack}")
    _confirm(alice, pack)
    with review.engine.connect() as conn:
        actions = [r.action for r in conn.execute(audit.select())]
    assert {"user.add", "login.ok", "pack.view", "pack.confirm", "case.open"} <= set(actions)
    assert verify_chain(review.engine).ok
    monkeypatch.setenv("NONSITE_DATA_DIR", str(tmp_path / "var"))
    assert main(["audit", "verify"]) == 0
    with review.engine.begin() as conn:
        conn.execute(audit.update().where(audit.c.action == "pack.confirm").values(actor="mallory"))
    report = verify_chain(review.engine)
    assert not report.ok and "edited" in report.problem
    assert main(["audit", "verify"]) == 1


def test_admin_draws_a_zone_into_the_pipeline_config(app, review):
    admin = login(app, "ada")
    version = hashlib.sha256((review.sites_dir / "cam-plaza-02.yaml").read_bytes()).hexdigest()
    body = {"zone_id": "kerb-east", "polygon": [[400, 300], [600, 300], [600, 470], [400, 470]], "rule_id": "frontage-spillover",
            "shop": {"name": "East kiosk", "licence": "91310000MA1EAST00X", "address": "1 East Rd", "contact": "138"}, "version": version}
    saved = admin.post("/api/sources/cam-plaza-02/zones", json=body)
    assert saved.status_code == 200
    body["version"] = saved.json()["version"]
    saved = yaml.safe_load((review.sites_dir / "cam-plaza-02.yaml").read_text())
    zone = next(z for z in saved["zones"] if z["id"] == "kerb-east")
    assert zone["shop"]["name"] == "East kiosk" and len(zone["polygon"]) == 4
    assert "kerb-east" in next(r for r in saved["rules"] if r["id"] == "frontage-spillover")["zones"]
    bad = admin.post("/api/sources/cam-plaza-02/zones", json={**body, "zone_id": "x", "polygon": [[0, 0], [1, 1]]})
    assert bad.status_code == 422
    no_shop = admin.post("/api/sources/cam-plaza-02/zones", json={**body, "zone_id": "y", "shop": None})
    assert no_shop.status_code == 422 and "names no shop" in no_shop.json()["detail"]
    assert admin.get("/admin/sources/cam-plaza-02/frame").headers["content-type"].startswith("image/")
    assert admin.post("/api/sources/no-camera/zones", json=body).status_code == 404


def test_pages_render_for_an_officer(app):
    supervisor = login(app, "sam")
    pack = pending(supervisor)[0]["pack_id"]
    for path in ("/queue", f"/packs/{pack}", "/cases", "/dashboard", "/audit"):
        page = supervisor.get(path)
        assert page.status_code == 200 and "<nav>" in page.text, path
    detail = supervisor.get(f"/packs/{pack}").text
    assert "all 7 files verified" in detail or "files verified" in detail


def test_openapi_schema_documents_the_api(app):
    schema = login(app, "alice").get("/api/openapi.json").json()
    assert {"/api/packs/{pack_id}/decision", "/api/cases/{case_id}/transition", "/api/cases/{case_id}/dossier"} <= set(schema["paths"])


def test_dashboard_figures(app):
    alice, sam = login(app, "alice"), login(app, "sam")
    packs = pending(alice, source="cam-carpark-wide")
    _confirm(alice, packs[0]["pack_id"])
    alice.post(f"/api/packs/{packs[1]['pack_id']}/decision", json={"decision": "reject", "reason": "false_detection"})
    figures = sam.get("/api/dashboard").json()
    assert figures["confirm_rate"]["rule"]["lot-no-parking"] == {"confirmed": 1, "rejected": 1, "rate": 0.5}
    assert figures["by_category"]["illegal_parking"] >= 2 and figures["open_cases_by_state"] == {"open": 1}


def test_review_decisions_round_trip_into_a_training_dataset(app, review, tmp_path, monkeypatch):
    from nonsite.vision.datasets import dataset_images, validate_dataset

    alice = login(app, "alice")
    wide = pending(alice, source="cam-carpark-wide")
    other_time = next(p for p in wide if p["threshold_at"] != wide[0]["threshold_at"])
    same_frame = [p for p in wide if p["threshold_at"] == wide[0]["threshold_at"]]
    _confirm(alice, wide[0]["pack_id"])
    alice.post(f"/api/packs/{other_time['pack_id']}/decision", json={"decision": "reject", "reason": "false_detection"})
    alice.post(f"/api/packs/{wide[-1]['pack_id']}/decision", json={"decision": "reject", "reason": "permitted"})
    monkeypatch.setenv("NONSITE_DATA_DIR", str(tmp_path / "var"))
    assert main(["dataset", "export-decisions", "--out", str(tmp_path / "ds")]) == 0
    folder = tmp_path / "ds"
    assert validate_dataset(folder).ok
    assert len(dataset_images(folder)) == 2  # the 'permitted' rejection is not a false detection
    positive = (folder / "labels" / f"{wide[0]['pack_id']}.txt").read_text().split()
    assert positive[0] == "0" and 0 < float(positive[1]) < 1
    assert (folder / "labels" / f"{other_time['pack_id']}.txt").read_text() == ""  # hard negative
    if len(same_frame) > 1:  # a second car on the confirmed frame: the same picture, labelled once more
        _confirm(alice, same_frame[1]["pack_id"])
        assert main(["dataset", "export-decisions", "--out", str(tmp_path / "ds2")]) == 0
        assert len(dataset_images(tmp_path / "ds2")) == 2
        assert len((tmp_path / "ds2" / "labels" / f"{wide[0]['pack_id']}.txt").read_text().splitlines()) == 2
    lines = [json.loads(line) for line in (folder / "decisions.jsonl").read_text().splitlines()]
    assert {(entry["decision"], entry["reason"]) for entry in lines} == {("confirm", None), ("reject", "false_detection")}
