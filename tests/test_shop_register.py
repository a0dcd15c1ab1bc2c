"""一店一册: the shop register through real HTTP. Admins add, edit and import shops (CSV and Excel,
every bad row named, nothing half-imported, hostile files refused); a zone that names its shop
by licence alone shows the register's details; each shop's page lists its packs and cases."""
from __future__ import annotations

import io

import pytest
from openpyxl import Workbook
from sqlalchemy import update

from nonsite.evidence.schema import packs_table
from nonsite.review_ui import create_app

from .officers import login

LICENCE = "91330102MA2H3X4Y5Z"


@pytest.fixture()
def app(review):
    return create_app(review)


def _xlsx(rows: list[list]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _upload(client, name: str, data: bytes):
    return client.post("/api/shops/import", files={"file": (name, data)})


def test_admins_keep_the_register_and_everyone_searches_it(app):
    ada, alice = login(app, "ada"), login(app, "alice")
    shop = {"licence": " 91330102ma2h3x4y5z ", "name": "老王烧烤店", "address": "解放路 12 号", "contact": "王先生 138-0000-0000",
            "street": "湖滨街道", "grid": "湖滨 3 网格"}
    assert alice.post("/api/shops", json=shop).status_code == 403  # reviewers read, admins write
    saved = ada.post("/api/shops", json=shop)
    assert saved.status_code == 200 and saved.json()["licence"] == LICENCE  # trimmed, upper case
    assert ada.post("/api/shops", json={**shop, "address": "解放路 14 号"}).status_code == 200  # an edit, not a second shop
    found = alice.get("/api/shops", params={"q": "湖滨"}).json()
    assert found["total"] == 1 and found["shops"][0]["address"] == "解放路 14 号"
    assert alice.get("/api/shops", params={"q": "nothing like it"}).json()["total"] == 0
    bad = ada.post("/api/shops", json={**shop, "licence": "x"}, headers={"Accept-Language": "zh-CN"})
    assert bad.status_code == 422 and "营业执照号" in bad.json()["detail"]
    page = login(app, "alice", language="zh-CN").get("/shops", params={"q": "烧烤"}).text
    assert "老王烧烤店" in page and "商户档案" in page
    audit = login(app, "sam").get("/api/audit", params={"action": "shop.save"}).json()
    assert len(audit) == 2 and audit[0]["actor"] == "ada"


def test_import_from_excel_and_csv_checks_every_row_first(app):
    ada = login(app, "ada")
    rows = [["统一社会信用代码", "店名", "地址", "联系方式", "街道", "网格"],
            ["91330102MA2H3X4Y5A", "一号水果店", "延安路 1 号", "李女士", "湖滨街道", "1 网格"],
            ["91330102MA2H3X4Y5B", "", "延安路 2 号", "", "湖滨街道", "1 网格"],  # no name
            ["91330102MA2H3X4Y5A", "重复", "", "", "", ""],  # the same licence twice
            ["?", "三号店", "", "", "", ""]]  # no licence number
    refused = _upload(ada, "shops.xlsx", _xlsx(rows))
    assert refused.status_code == 200 and refused.json()["imported"] == 0
    assert [b["line"] for b in refused.json()["bad"]] == [3, 4, 5]
    assert ada.get("/api/shops").json()["total"] == 0  # nothing half-imported

    good = _upload(ada, "shops.xlsx", _xlsx([rows[0], rows[1], ["91330102MA2H3X4Y5C", "三号店", "延安路 3 号", "", "湖滨街道", ""]]))
    assert good.json() == {"imported": 2, "added": 2, "edited": 0, "bad": []}
    csv_text = "licence,name,address,contact,street,grid\n91330102MA2H3X4Y5A,一号水果店（新）,延安路 1 号,,湖滨街道,2 网格\n"
    again = _upload(ada, "shops.csv", csv_text.encode("gb18030"))  # the encoding Excel on a Chinese Windows writes
    assert again.json() == {"imported": 1, "added": 0, "edited": 1, "bad": []}
    assert ada.get("/api/shops", params={"q": "2 网格"}).json()["shops"][0]["name"] == "一号水果店（新）"

    for name, data in (("shops.xlsx", b"PK\x03\x04 not really a workbook"), ("shops.xlsx", b"<html>"), ("shops.exe", b"MZ"),
                       ("shops.csv", b"\xff\xfe\x00garbage\x81"), ("shops.csv", b"name\nonly names\n")):
        answer = _upload(ada, name, data)
        assert answer.status_code == 422 and answer.json()["detail"], (name, answer.text)
    assert _upload(ada, "big.csv", b"x" * (5 * 1024 * 1024 + 10)).status_code == 422
    assert _upload(login(app, "alice"), "shops.csv", csv_text.encode()).status_code == 403


def test_a_shop_named_by_licence_shows_the_register_on_its_packs_and_its_own_page(app, review):
    ada = login(app, "ada")
    assert ada.post("/api/shops", json={"licence": LICENCE, "name": "老王烧烤店", "address": "解放路 12 号", "contact": "王先生",
                                        "street": "湖滨街道", "grid": "3 网格"}).status_code == 200
    pack = ada.get("/api/packs", params={"category": "spillover_business"}).json()[0]["pack_id"]
    with review.engine.begin() as conn:
        conn.execute(update(packs_table).where(packs_table.c.pack_id == pack).values(shop_licence=LICENCE))
    assert "老王烧烤店" in ada.get(f"/packs/{pack}").text  # the register's name on the pack page
    case_id = ada.post(f"/api/packs/{pack}/decision", json={"decision": "confirm"}).json()["case_id"]
    book = login(app, "alice", language="zh-CN").get(f"/shops/{LICENCE}")
    assert book.status_code == 200 and f'href="/packs/{pack}"' in book.text and f'href="/cases/{case_id}"' in book.text
    in_street = ada.get("/api/packs", params={"street": "湖滨街道", "status": "confirmed"}).json()  # the queue's street filter
    assert [p["pack_id"] for p in in_street] == [pack]
    assert ada.get("/shops/NOSUCHSHOP1").status_code == 404
