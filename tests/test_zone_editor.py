"""The zone editor refuses what would poison the pipeline's config: non-finite or out-of-frame
coordinates, outlines that cross themselves or enclose nothing, thousands of corners, and edits
made on a stale copy of the file; a refused edit leaves the file and the audit log as they were."""
from __future__ import annotations

import hashlib
import os

import pytest
import yaml
from fastapi.testclient import TestClient

from nonsite.evidence.audit import entries
from nonsite.review_ui import create_app

SITE = "cam-plaza-02"
SQUARE = [[400, 300], [600, 300], [600, 470], [400, 470]]


@pytest.fixture()
def admin(review):
    client = TestClient(create_app(review), headers={"Accept-Language": "en"})
    csrf = client.post("/api/login", json={"username": "ada", "password": "ada-password"}).json()["csrf"]
    client.headers["X-CSRF-Token"] = csrf
    return client


def _file(review):
    return review.sites_dir / f"{SITE}.yaml"


def _body(review, **change) -> dict:
    version = hashlib.sha256(_file(review).read_bytes()).hexdigest()
    return {"zone_id": "kerb-east", "polygon": SQUARE, "rule_id": "frontage-spillover", "shop": {"name": "East kiosk"},
            "version": version, **change}


BAD_OUTLINES = {
    "not a number": ([[400, 300], [float("nan"), 300], [600, 470]], 422, ""),
    "infinite": ([[400, 300], [float("inf"), 300], [600, 470]], 422, ""),
    "huge": ([[400, 300], [1e308, 300], [600, 470]], 422, ""),
    "three identical points": ([[400, 300], [400, 300], [400, 300]], 422, "same point"),
    "bow-tie": ([[400, 300], [600, 470], [600, 300], [400, 470]], 422, "cross"),
    "outside the frame": ([[400, 300], [2000, 300], [2000, 470], [400, 470]], 422, "reaches outside the 640 x 640 frame"),
    "a thousand corners": ([[400 + i % 200, 300 + (i * 7) % 170] for i in range(1000)], 422, ""),
}


@pytest.mark.parametrize("kind", sorted(BAD_OUTLINES))
def test_a_bad_outline_is_refused_and_nothing_changes(review, admin, kind):
    polygon, status, words = BAD_OUTLINES[kind]
    before, logged = _file(review).read_bytes(), len(entries(review.engine, action="zone.save"))
    response = admin.post(f"/api/sources/{SITE}/zones", content=_json(_body(review, polygon=polygon)),
                          headers={"content-type": "application/json"})
    assert response.status_code == status and words in response.json()["detail"], response.text
    assert _file(review).read_bytes() == before and len(entries(review.engine, action="zone.save")) == logged
    assert admin.get("/api/sources").status_code == 200 and admin.get("/api/audit").status_code == 200


def _json(value) -> str:
    import json

    return json.dumps(value)  # NaN and Infinity as JavaScript would send them


def test_an_edit_on_a_stale_copy_is_refused_and_the_file_keeps_its_mode(review, admin):
    os.chmod(_file(review), 0o640)
    stale = _body(review)
    assert admin.post(f"/api/sources/{SITE}/zones", json=stale).status_code == 200
    assert os.stat(_file(review)).st_mode & 0o777 == 0o640
    again = admin.post(f"/api/sources/{SITE}/zones", json={**stale, "zone_id": "kerb-west"})
    assert again.status_code == 409 and "changed since this editor loaded it" in again.json()["detail"]
    zones = {z["id"] for z in yaml.safe_load(_file(review).read_text())["zones"]}
    assert "kerb-east" in zones and "kerb-west" not in zones


def test_chinese_zone_ids_are_welcome_and_paths_are_not(review, admin):
    assert admin.post(f"/api/sources/{SITE}/zones", json=_body(review, zone_id="解放路-东侧")).status_code == 200
    assert admin.post(f"/api/sources/{SITE}/zones", json=_body(review, zone_id="../../escape")).status_code == 422
    assert admin.post(f"/api/sources/{SITE}/zones", json=_body(review, zone_id="  解放路-西侧 ")).status_code == 200  # trimmed
    assert "解放路-西侧" in yaml.safe_load(_file(review).read_text())["zones"][-1]["id"]
    licence_only = admin.post(f"/api/sources/{SITE}/zones", json=_body(review, zone_id="老王烧烤店门前", shop={"licence": "91330102MA2H3X4Y5Z"}))
    assert licence_only.status_code == 200  # a shop named by licence alone: the register holds the rest
    refused = admin.post(f"/api/sources/{SITE}/zones", json=_body(review, zone_id="x" * 129), headers={"Accept-Language": "zh-CN"})
    assert refused.status_code == 422 and "最多 128 个字符" in refused.json()["detail"]
