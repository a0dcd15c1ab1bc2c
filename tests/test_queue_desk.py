"""An honest queue at 10 000 packs: true counts, every pack reachable exactly once by paging, filters
and one search box answered in SQL; and safe decisions: tampered evidence cannot be confirmed, an
undo within its window by the deciding officer only."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import insert, select, update

from nonsite.evidence import LocalStore, PackIndex, open_database
from nonsite.evidence.schema import case_packs, cases, decisions, shops
from nonsite.review_ui import Context, add_user, create_app

from .officers import login
from .queue_data import fill_index

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    data = tmp_path_factory.mktemp("big")
    index = PackIndex(open_database(f"sqlite:///{data / 'nonsite.db'}"))
    rows = fill_index(index.engine, 10_000)
    add_user(index.engine, "alice", "alice-password", "reviewer")
    (data / "sites").mkdir()
    return create_app(Context(index, LocalStore(data / "evidence"), data / "sites")), rows, index, data / "sites"


def _all_pages(client, **filters) -> tuple[list[str], int]:
    seen, page, total = [], 1, None
    while True:
        response = client.get("/api/packs", params={**filters, "page": page, "per_page": 500})
        assert response.status_code == 200, response.text
        total = int(response.headers["X-Total-Count"])
        seen += [p["pack_id"] for p in response.json()]
        if page >= int(response.headers["X-Pages"]):
            return seen, total
        page += 1


def test_ten_thousand_packs_page_through_once_each_with_true_counts(big):
    app, rows, _, _ = big
    alice = login(app, "alice")
    seen, total = _all_pages(alice)
    assert total == 10_000 and len(seen) == 10_000 and set(seen) == {r["pack_id"] for r in rows}
    page = alice.get("/queue", params={"page": 150})
    assert page.status_code == 200 and "page 150 of 200" in page.text and "10000 matching" in page.text
    assert page.text.count('class="card"') == 50


def test_filters_and_the_search_box_answer_what_the_rows_say(big):
    app, rows, index, _ = big
    alice = login(app, "alice")
    parking = [r["pack_id"] for r in rows if r["category"] == "illegal_parking" and r["confidence"] >= 0.8 and r["source_id"] == "cam-01"]
    assert sorted(_all_pages(alice, category="illegal_parking", min_confidence=0.8, source="cam-01")[0]) == sorted(parking)

    day = datetime(2026, 10, 20).date()  # a day on the bureau's clock: 16:00 UTC the day before to 16:00 UTC
    start = datetime.combine(day, time.min, SHANGHAI)
    on_day = [r["pack_id"] for r in rows if start <= r["threshold_at"] < start + timedelta(days=1)]
    found, total = _all_pages(alice, day_from=day.isoformat(), day_to=day.isoformat())
    assert total == len(on_day) > 0 and sorted(found) == sorted(on_day)

    plate = [r["pack_id"] for r in rows if r["plate"] == "浙A00123"]
    assert sorted(_all_pages(alice, q="浙A 00123")[0]) == sorted(plate) and plate  # typed with a space
    shop = [r["pack_id"] for r in rows if r["shop_name"] == "店铺42号"]
    assert sorted(_all_pages(alice, q="店铺42号")[0]) == sorted(shop) and shop
    assert sorted(_all_pages(alice, q=rows[42 * 7 % 10_000]["shop_licence"] or "none")[0])  # by licence number
    models = [r["pack_id"] for r in rows if r["model"] == "coco, aerial"]
    assert _all_pages(alice, model="coco, aerial")[1] == len(models)

    with index.engine.begin() as conn:  # a case holding three packs: its number finds them
        case_id = conn.execute(insert(cases).values(subject_key="s", category="illegal_parking", source_id="cam-01", place="p",
                                                    state="open", created_at=datetime.now(timezone.utc),
                                                    updated_at=datetime.now(timezone.utc))).inserted_primary_key[0]
        conn.execute(insert(case_packs), [{"case_id": case_id, "pack_id": r["pack_id"]} for r in rows[:3]])
    assert sorted(_all_pages(alice, q=f"#{case_id}")[0]) == sorted(r["pack_id"] for r in rows[:3])
    assert alice.get("/api/packs", params={"q": "%_%"}).json() == []  # wildcards are text, not patterns


def test_street_and_grid_follow_the_shop_register_first_then_the_camera(big):
    """A registered shop's street wins over its camera's; unregistered packs take the camera's street."""
    app, rows, index, sites = big
    cameras = {"cam-05": ("湖滨街道", "湖滨 1 网格"), "cam-06": ("湖滨街道", "湖滨 2 网格"), "cam-07": ("小营街道", "小营 1 网格")}
    for source, (street, grid) in cameras.items():
        (sites / f"{source}.yaml").write_text(yaml.safe_dump({
            "source": {"id": source, "kind": "stream", "uri": f"rtsp://127.0.0.1/{source}", "street": street, "grid": grid},
            "zones": [{"id": "z", "polygon": [[0, 0], [10, 0], [10, 10]]}],
            "rules": [{"id": "r", "kind": "illegal_parking", "zones": ["z"], "classes": ["car"]}]}, allow_unicode=True))
    registered = {f"91330100MA2{k:07d}": ("湖滨街道" if k < 10 else "小营街道", f"商户网格 {k % 3}") for k in range(20)}
    now = datetime.now(timezone.utc)
    with index.engine.begin() as conn:
        conn.execute(insert(shops), [{"licence": licence, "name": f"登记商户{licence[-2:]}", "address": "", "contact": "",
                                      "street": street, "grid": grid, "created_at": now, "updated_at": now}
                                     for licence, (street, grid) in registered.items()])

    def place(row):
        return registered.get(row["shop_licence"]) or cameras.get(row["source_id"], ("", ""))

    alice = login(app, "alice")
    for asked in ({"street": "湖滨街道"}, {"street": "小营街道", "grid": "小营 1 网格"}, {"grid": "商户网格 1"},
                  {"street": "湖滨街道", "category": "illegal_parking", "min_confidence": 0.5}):
        wanted = [r["pack_id"] for r in rows if (not asked.get("street") or place(r)[0] == asked["street"])
                  and (not asked.get("grid") or place(r)[1] == asked["grid"]) and r["category"] == asked.get("category", r["category"])
                  and r["confidence"] >= asked.get("min_confidence", 0)]
        found, total = _all_pages(alice, **asked)
        assert total == len(found) == len(set(found)) == len(wanted) > 0 and sorted(found) == sorted(wanted), asked
    moved = next(r for r in rows if r["source_id"] == "cam-05" and registered.get(r["shop_licence"], ("",))[0] == "小营街道")
    assert moved["pack_id"] not in _all_pages(alice, street="湖滨街道")[0]  # the register wins over the camera
    page = alice.get("/queue", params={"street": "湖滨街道"})
    assert '<option selected>湖滨街道</option>' in page.text and "小营街道" in page.text


@pytest.fixture()
def app(review):
    return create_app(review)


def test_evidence_that_fails_verification_cannot_be_confirmed_but_can_be_rejected(app, review):
    alice = login(app, "alice")
    victim, other = (p["pack_id"] for p in alice.get("/api/packs", params={"category": "illegal_parking"}).json()[:2])
    frame = review.store.root / victim / "original" / "threshold.jpg"
    frame.write_bytes(frame.read_bytes()[:-1] + b"\0")
    refused = alice.post(f"/api/packs/{victim}/decision", json={"decision": "confirm"})
    detail = refused.json()["detail"]
    assert refused.status_code == 409 and "failed verification" in detail and "original/threshold.jpg" in detail
    assert review.index.get(victim).status == "pending_review"
    page = login(app, "alice", language="zh-CN").get(f"/packs/{victim}").text
    assert 'id="confirm" class="confirm" disabled' in page and "未通过完整性校验" in page
    logged = alice.get("/api/audit", params={"action": "pack.confirm_refused"})
    sam = login(app, "sam")
    entries = sam.get("/api/audit", params={"action": "pack.confirm_refused", "target": victim}).json()
    assert logged.status_code == 403 and len(entries) == 1 and entries[0]["actor"] == "alice"
    assert alice.post(f"/api/packs/{victim}/decision", json={"decision": "reject", "reason": "other",
                                                          "note": "evidence damaged"}).status_code == 200
    assert alice.post(f"/api/packs/{other}/decision", json={"decision": "confirm"}).status_code == 200  # untouched: fine


def test_an_officer_undoes_their_own_decision_within_the_window_only(app, review):
    alice, bob = login(app, "alice"), login(app, "bob")
    first, second, third = (p["pack_id"] for p in alice.get("/api/packs", params={"source": "cam-carpark-wide"}).json()[:3])
    case_id = alice.post(f"/api/packs/{first}/decision", json={"decision": "confirm"}).json()["case_id"]
    assert bob.post(f"/api/packs/{first}/undo").status_code == 409  # not bob's decision
    assert alice.post(f"/api/packs/{first}/undo").status_code == 200
    assert review.index.get(first).status == "pending_review"
    with review.engine.connect() as conn:  # the case opened for it alone is gone with it
        assert conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is None
        assert conn.execute(select(decisions.c.pack_id).where(decisions.c.pack_id == first)).first() is None
    sam = login(app, "sam")
    assert [e["target"] for e in sam.get("/api/audit", params={"action": "pack.undo"}).json()] == [first]

    assert alice.post(f"/api/packs/{second}/decision", json={"decision": "reject", "reason": "duplicate"}).status_code == 200
    with review.engine.begin() as conn:  # 31 s later
        conn.execute(update(decisions).where(decisions.c.pack_id == second).values(at=datetime.now(timezone.utc) - timedelta(seconds=31)))
    late = alice.post(f"/api/packs/{second}/undo")
    assert late.status_code == 409 and "30" in late.json()["detail"]

    moved = alice.post(f"/api/packs/{third}/decision", json={"decision": "confirm"}).json()["case_id"]
    warned = {"to_state": "notified", "notice_kind": "warning", "note": "warned"}
    assert alice.post(f"/api/cases/{moved}/transition", json=warned).status_code == 200
    assert alice.post(f"/api/packs/{third}/undo").status_code == 409  # the case has moved on: the decision stands
    assert review.index.get(third).status == "confirmed"
