"""Cases the way the bureaus run them: approval, numbered documents read back from their PDFs, delivery,
deadlines and "my cases", and dossiers that verify (the public one without officers' names)."""
from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import update

from nonsite.cli import main
from nonsite.evidence import MANIFEST
from nonsite.evidence.schema import cases, packs_table
from nonsite.evidence.signing import PUBLIC_KEY
from nonsite.review_ui import create_app
from nonsite.review_ui.documents import next_number
from nonsite.review_ui.procedure import ProcedureError, load_procedure
from nonsite.review_ui.shops import save_shop

from .conftest import DATASETS, SESSION_KEYS
from .officers import login
from .test_hostile_input import _png_bomb

OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "documents"
SHOP = {"licence": "91330106MA2KXY1234", "name": "王记小吃店", "address": "西湖区文三路 88 号", "contact": "王先生"}


@pytest.fixture()
def app(review):
    return create_app(review)


def _text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).replace("\n", "")


def _step(who, case_id: int, **body):
    response = who.post(f"/api/cases/{case_id}/transition", json=body)
    assert response.status_code in (200, 202), response.text
    return response


def _approve(who, case_id: int, asked) -> dict:
    assert asked.status_code == 202, asked.text
    response = who.post(f"/api/cases/{case_id}/approvals/{asked.json()['pending_approval']['id']}", json={"approve": True, "opinion": "同意"})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_case_from_pack_to_closure_through_approval_with_every_document(app, review, backend):
    alice, sam = login(app, "alice"), login(app, "sam")
    save_shop(review.engine, {**SHOP, "street": "文新街道", "grid": "文三-03"}, "ada")
    spill = [alice.get("/api/packs", params={"category": "spillover_business"}).json()[0],
             alice.get("/api/packs", params={"source": "cam-carpark-wide"}).json()[0]]
    with review.engine.begin() as conn:
        conn.execute(update(packs_table).where(packs_table.c.pack_id == spill[0]["pack_id"]).values(shop_licence=SHOP["licence"]))
        conn.execute(update(packs_table).where(packs_table.c.pack_id == spill[1]["pack_id"])
                     .values(plate="浙A12345", category="illegal_parking", subject_key="plate-浙A12345"))
    admin = login(app, "ada")
    alice_id = next(u["id"] for u in admin.get("/api/users").json() if u["username"] == "alice")
    assert admin.post(f"/api/users/{alice_id}/team", json={"team": " 文三-03 "}).json()["user"]["team"] == "文三-03"
    warned = alice.post(f"/api/packs/{spill[0]['pack_id']}/decision", json={"decision": "confirm"}).json()["case_id"]
    fined = sam.post(f"/api/packs/{spill[1]['pack_id']}/decision", json={"decision": "confirm"}).json()["case_id"]
    assert {c["id"] for c in alice.get("/api/cases", params={"mine": True}).json()} == {warned}
    sam.post(f"/api/cases/{fined}/assign", json={"team": "文三-03"})
    assert {c["id"] for c in alice.get("/api/cases", params={"mine": True}).json()} == {warned, fined}  # her team's too
    assert all(c["due_at"] for c in alice.get("/api/cases").json())  # every open step is due

    # 首违不罚: warning, rectification order, clear re-check, closing approved -> 不予处罚决定书
    _step(alice, warned, to_state="notified", notice_kind="warning", note="首违不罚，予以警告")
    deadline = (datetime.now(timezone.utc) + timedelta(days=3)).date()
    _step(alice, warned, to_state="rectification_due", deadline=deadline.isoformat(), note="清理店外物品")
    _step(alice, warned, to_state="rechecked", recheck="clear", note="现场已清理")
    closed = _approve(sam, warned, _step(alice, warned, to_state="closed", outcome="rectified", note="已整改"))
    assert closed["case"]["state"] == "closed" and closed["case"]["due_at"] is None

    # an approval is decided only through its own case: another case's address changes nothing
    asked = _step(alice, fined, to_state="notified", notice_kind="penalty", note="屡次违停")
    elsewhere = sam.post(f"/api/cases/{warned}/approvals/{asked.json()['pending_approval']['id']}", json={"approve": True})
    assert elsewhere.status_code == 404 and alice.get(f"/api/cases/{fined}").json()["pending_approval"]["approved"] is None
    assert sam.post(f"/api/cases/{fined}/approvals/{asked.json()['pending_approval']['id']}",
                    json={"approve": False, "opinion": "先核实车主"}).status_code == 200

    # a penalty: the notice waits for approval, the order, a re-check that finds it still there, the decision approved
    page = alice.get(f"/cases/{fined}").text
    assert 'value="penalised"' not in page  # the form offers only what the procedure allows from "open"
    _approve(sam, fined, _step(alice, fined, to_state="notified", notice_kind="penalty", note="屡次违停"))
    _step(alice, fined, to_state="rectification_due", deadline=deadline.isoformat(), note="立即驶离")
    _step(alice, fined, to_state="rechecked", recheck="not_clear", note="车辆仍在")
    after_check = alice.get(f"/cases/{fined}").text
    assert 'value="penalised"' in after_check and 'value="rectified"' not in after_check  # not after a re-check found it
    decided = _approve(sam, fined, _step(alice, fined, to_state="closed", outcome="penalised", note="罚款人民币一百五十元"))

    OUTPUT.mkdir(parents=True, exist_ok=True)
    numbers = []
    for case_id, detail, party, kinds in ((warned, closed, SHOP["name"], ["notice", "rectification_order", "no_penalty_decision"]),
                                          (fined, decided, "浙A12345", ["notice", "rectification_order", "penalty_decision"])):
        assert [d["kind"] for d in detail["documents"]] == kinds
        manifest_sha = {p["pack_id"]: hashlib.sha256(review.store.read(p["pack_id"], MANIFEST)).hexdigest() for p in detail["packs"]}
        for document in detail["documents"]:
            response = alice.get(f"/api/cases/{case_id}/documents/{document['id']}")
            assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
            assert hashlib.sha256(response.content).hexdigest() == document["sha256"]
            text = _text(response.content)
            assert document["number"] in text and party in text and f"案件编号{case_id}" in text.replace(" ", "")
            assert all(digest in text for digest in manifest_sha.values()), "every pack's manifest hash is printed"
            assert "alice" not in text and "sam" not in text
            (OUTPUT / f"case{case_id}-{document['kind']}.pdf").write_bytes(response.content)
            numbers.append(document["number"])
    notice_text = _text(alice.get(f"/api/cases/{fined}/documents/{decided['documents'][0]['id']}").content)
    assert "陈述和申辩" in notice_text  # a penalty notice states the right to a defence
    assert SHOP["address"] in _text(alice.get(f"/api/cases/{warned}/documents/{closed['documents'][0]['id']}").content)
    year = datetime.now(timezone.utc).year
    assert numbers[0].endswith(f"告〔{year}〕0001号") and numbers[3].endswith(f"告〔{year}〕0002号")
    assert len(set(numbers)) == 6
    print(f"\n[documents] {', '.join(numbers)} -> {OUTPUT}")

    # 送达: recorded once per document, by an officer of the case, never dated before the paper; shown in words
    notice = closed["documents"][0]["id"]
    bob = login(app, "bob")
    assert bob.post(f"/api/cases/{warned}/documents/{notice}/delivery", json={"method": "post", "recipient": "x"}).status_code == 403
    backdated = alice.post(f"/api/cases/{warned}/documents/{notice}/delivery",
                           json={"method": "in_person", "recipient": "王先生", "at": "2001-01-01T09:00:00"})
    assert backdated.status_code == 422 and "between its issue" in backdated.json()["detail"]
    assert alice.post(f"/api/cases/{fined}/documents/{notice}/delivery", json={"method": "post", "recipient": "x"}).status_code == 404
    served = alice.post(f"/api/cases/{warned}/documents/{notice}/delivery", json={"method": "in_person", "recipient": "王先生"})
    assert served.status_code == 200 and served.json()["documents"][0]["recipient"] == "王先生"
    assert alice.post(f"/api/cases/{warned}/documents/{notice}/delivery", json={"method": "post", "recipient": "x"}).status_code == 422
    timeline = login(app, "alice", language="zh-CN").get(f"/cases/{warned}").text
    assert "送达" in timeline and "{" not in timeline.split('id="timeline"')[1].split("</table>")[0]

    # both dossiers verify; the officers' carries the documents, the public one lists them by number and hash and names
    # no officer, recipient or note
    for audience in ("officers", "public"):
        archive = alice.get(f"/api/cases/{warned}/dossier", params={"audience": audience})
        path = OUTPUT.parent / f"case{warned}-{audience}.zip"
        path.write_bytes(archive.content)
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            assert sum(n.startswith("documents/") for n in names) == (3 if audience == "officers" else 0)
            if audience == "public":
                listed = json.loads(z.read("case.json"))["documents"]
                assert [d["sha256"] for d in listed] == [d["sha256"] for d in closed["documents"]]
                for name in (n for n in names if not n.startswith("packs/")):  # packs are the pipeline's, sealed before any officer
                    data = z.read(name)
                    shown = _text(data) if name.endswith(".pdf") else data.decode("utf-8", "replace")
                    assert not re.search(r"\b(alice|sam|ada)\b", shown), name
                    assert not any(private in shown for private in ("已整改", "清理店外物品", "王先生", "同意")), name
        assert main(["verify", "--dir", str(path), "--public-key", str(SESSION_KEYS / PUBLIC_KEY)]) == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_document_numbers_never_repeat_or_skip_under_concurrent_use(review):
    """Eight desks number 60 documents at once; every fifth transaction rolls back after taking its number."""
    committed: list[int] = []
    lock = threading.Lock()
    year = 2031

    def desk(n: int) -> None:
        for k in range(10):
            for _ in range(50):  # SQLite answers "database is locked" past its busy timeout: that desk tries again
                try:
                    with review.engine.begin() as conn:
                        number = next_number(conn, "notice", year)
                        if (n + k) % 5 == 0:
                            raise LookupError("rolled back")
                    with lock:
                        committed.append(number)
                    break
                except LookupError:
                    break
                except Exception as exc:  # noqa: BLE001 - only lock timeouts are retried
                    assert "locked" in str(exc), exc

    threads = [threading.Thread(target=desk, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join(timeout=120) for t in threads]
    assert sorted(committed) == list(range(1, len(committed) + 1)) and len(committed) == 64
    with review.engine.begin() as conn:
        assert next_number(conn, "notice", year) == 65 and next_number(conn, "rectification_order", year) == 1


def test_a_procedure_file_that_does_not_check_out_is_refused_naming_each_problem(tmp_path):
    text = (Path(__file__).resolve().parent.parent / "review_ui" / "procedure.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "procedure.yaml"
    broken.write_text(text.replace("{from: open, to: notified, when: {notice_kind: warning}", "{from: opened, to: notified, when: {kind: x}")
                      .replace("four_eyes: true", "four_eyes: true\nextra_rule: 1"), encoding="utf-8")
    with pytest.raises(ProcedureError) as refused:
        load_procedure(broken)
    assert "steps.0.from" in str(refused.value) and "extra_rule" in str(refused.value)
    assert load_procedure().rule_for("rechecked", "closed", {"outcome": "penalised"}).issues == "penalty_decision"
    with pytest.raises(ProcedureError, match="no such file|No such file"):
        load_procedure(tmp_path / "missing.yaml")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_overdue_cases_are_flagged_first_and_counted_per_team(app, review):
    alice, sam = login(app, "alice"), login(app, "sam")
    packs = alice.get("/api/packs", params={"per_page": 3}).json()
    ids = [alice.post(f"/api/packs/{p['pack_id']}/decision", json={"decision": "confirm"}).json()["case_id"] for p in packs]
    late = ids[-1]
    with review.engine.begin() as conn:
        conn.execute(update(cases).where(cases.c.id == late).values(due_at=datetime.now(timezone.utc) - timedelta(hours=2)))
    sam.post(f"/api/cases/{late}/assign", json={"team": "北山-01"})
    listed = alice.get("/api/cases").json()
    assert listed[0]["id"] == late and listed[0]["overdue"] and not any(c["overdue"] for c in listed[1:])
    assert [c["id"] for c in alice.get("/api/cases", params={"overdue": True}).json()] == [late]
    assert 'class="overdue"' in alice.get("/cases").text
    board = sam.get("/dashboard").text
    assert "北山-01" in board.split('id="overdue-teams"')[1].split("</table>")[0]


def test_field_photos_are_checked_sealed_in_the_audit_log_and_kept_out_of_the_public_dossier(app, review):
    import weasyprint  # noqa: F401 - it turns Pillow's LOAD_TRUNCATED_IMAGES on when imported: truncation must still be refused

    alice = login(app, "alice")
    pack = alice.get("/api/packs", params={"category": "spillover_business"}).json()[0]["pack_id"]
    case_id = alice.post(f"/api/packs/{pack}/decision", json={"decision": "confirm"}).json()["case_id"]
    photo = sorted((DATASETS / "parking_lot_cctv" / "images").glob("*.jpg"))[0].read_bytes()
    refused = {name: alice.post(f"/api/cases/{case_id}/photos", files={"photo": (name, data)})
               for name, data in (("half.jpg", photo[: len(photo) // 2]), ("notes.txt", "现场照片".encode()), ("empty.jpg", b""))}
    huge = _png_bomb(Path(review.sites_dir).parent / "huge.png", side=12_600)  # 159 MP in a small file
    refused["huge.png"] = alice.post(f"/api/cases/{case_id}/photos", files={"photo": ("huge.png", huge.read_bytes())})
    assert all(r.status_code == 422 for r in refused.values()), {k: r.text for k, r in refused.items()}
    assert "MP limit" in refused["huge.png"].json()["detail"]
    theirs = login(app, "bob").post(f"/api/cases/{case_id}/photos", files={"photo": ("site.jpg", photo, "image/jpeg")})
    assert theirs.status_code == 403  # not bob's case
    assert "truncated or corrupt" in refused["half.jpg"].json()["detail"] and "JPEG or PNG" in refused["notes.txt"].json()["detail"]
    added = alice.post(f"/api/cases/{case_id}/photos", files={"photo": ("site.jpg", photo, "image/jpeg")})
    assert added.status_code == 200, added.text
    [kept] = added.json()["rechecks"]
    assert kept["origin"] == "field" and kept["adder"] == "alice" and kept["sha256"] == hashlib.sha256(photo).hexdigest()
    assert alice.get(f"/api/cases/{case_id}/rechecks/{kept['id']}/picture").content == photo
    entries = login(app, "sam").get("/api/audit", params={"target": f"case:{case_id}"}).json()
    assert any(e["action"] == "case.field_photo" and e["details"]["sha256"] == kept["sha256"] for e in entries)
    for audience, expected in (("officers", True), ("public", False)):
        with zipfile.ZipFile(io.BytesIO(alice.get(f"/api/cases/{case_id}/dossier", params={"audience": audience}).content)) as z:
            assert (f"rechecks/{kept['id']}.jpg" in z.namelist()) is expected
