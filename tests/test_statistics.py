"""Statistics and exports for supervisors: counts by the bureau's own days, streets, shops and
officers; charts as well-formed SVG; Excel and CSV read back, formulas neutralised, exports audited."""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest
import yaml
from openpyxl import load_workbook
from sqlalchemy import insert

from nonsite.evidence.schema import packs_table
from nonsite.review_ui import create_app

from .officers import login

SVG = "{http://www.w3.org/2000/svg}svg"


@pytest.fixture()
def app(review):
    return create_app(review)


def _late_evening_pack(review) -> str:
    """A pack at 23:30 in Shanghai on 1 Jan 2026 (15:30 UTC): it belongs to 1 January on the bureau's clock."""
    at = datetime(2026, 1, 1, 15, 30, tzinfo=timezone.utc)
    with review.engine.begin() as conn:
        conn.execute(insert(packs_table).values(
            pack_id="f" * 64, category="spillover_business", source_id="cam-late", rule_id="r", zone_id="z", shop_name="=cmd|' /C calc'!A0",
            subject_key="late", first_seen=at, threshold_at=at, last_seen=at, dwell_s=60, confidence=0.9, manifest_sha256="0" * 64,
            status="pending_review", indexed_at=at, model="coco"))
    (review.sites_dir / "cam-late.yaml").write_text(yaml.safe_dump({
        "source": {"id": "cam-late", "kind": "stream", "uri": "rtsp://127.0.0.1/late", "street": "湖滨街道", "grid": "湖滨 2 网格"},
        "zones": [{"id": "z", "polygon": [[0, 0], [10, 0], [10, 10]]}],
        "rules": [{"id": "r", "kind": "illegal_parking", "zones": ["z"], "classes": ["car"]}]}, allow_unicode=True))
    return "f" * 64


def test_counts_follow_the_bureaus_days_streets_and_officers(app, review):
    _late_evening_pack(review)
    sam, alice = login(app, "sam"), login(app, "alice")
    for pack in alice.get("/api/packs", params={"source": "cam-carpark-wide"}).json()[:3]:
        assert alice.post(f"/api/packs/{pack['pack_id']}/decision", json={"decision": "confirm"}).status_code == 200
    figures = sam.get("/api/dashboard", params={"day_from": "2026-01-01", "day_to": "2026-01-01"}).json()
    assert figures["total"] == 1 and figures["by_day"] == {"2026-01-01": 1}  # not 31 December
    assert figures["by_street"] == {"湖滨街道": 1} and figures["by_grid"] == {"湖滨 2 网格": 1}
    everything = sam.get("/api/dashboard", params={"step": "month"}).json()
    assert everything["by_officer"]["alice"] == {"confirmed": 3, "rejected": 0}
    assert sum(sum(c.values()) for c in everything["trend"].values()) == everything["total"] == len(review.index.rows())
    assert "2026-01" in everything["trend"]
    assert alice.get("/api/dashboard").status_code == 403


def test_the_statistics_page_draws_svg_charts_in_chinese(app, review):
    _late_evening_pack(review)
    page = login(app, "sam", language="zh-CN").get("/dashboard", params={"step": "week"})
    assert page.status_code == 200 and "统计" in page.text and "按街道" in page.text
    charts = [ET.fromstring(chunk[: chunk.index("</svg>") + 6]) for chunk in ("<svg" + part for part in page.text.split("<svg")[1:])]
    assert len(charts) == 7 and all(c.tag == SVG and c.find(f"{SVG[:-3]}title") is not None for c in charts)
    assert "湖滨街道" in page.text and "style=" not in page.text.split("<svg", 1)[1]  # presentation attributes only (CSP)


def test_exports_read_back_in_excel_and_csv_with_local_times_and_no_formulas(app, review):
    pack = _late_evening_pack(review)
    sam = login(app, "sam", language="zh-CN")
    book = sam.get("/export/packs.xlsx", params={"day_from": "2026-01-01", "day_to": "2026-01-01"})
    assert book.status_code == 200 and "attachment" in book.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(book.content)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 2 and rows[0][0] == "证据包" and "达到阈值 (Asia/Shanghai)" in rows[0]
    row = dict(zip(rows[0], rows[1]))
    assert row["证据包"] == pack and row["达到阈值 (Asia/Shanghai)"] == "2026-01-01 23:30:00" and row["街道"] == "湖滨街道"
    assert row["商户"] == "'=cmd|' /C calc'!A0"  # shown as text, never run as a formula
    assert sheet["E2"].data_type == "s"

    table = sam.get("/export/packs.csv")
    assert table.content.startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads the Chinese right
    read = list(csv.reader(io.StringIO(table.content.decode("utf-8-sig"))))
    assert read[0][0] == "证据包" and len(read) == 1 + len(review.index.rows())
    for kind in ("cases", "decisions"):
        assert sam.get(f"/export/{kind}.xlsx").status_code == 200
    assert login(app, "alice").get("/export/packs.csv").status_code == 403
    exports = sam.get("/api/audit", params={"action": "export.packs"}).json()
    assert len(exports) == 2 and {e["target"] for e in exports} == {"xlsx", "csv"} and exports[-1]["details"]["rows"] == 1
