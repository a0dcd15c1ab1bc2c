"""一店一册: the shop register. One record per shop, keyed by its business licence number, and
everything the bureau has on it: packs, cases, notices and outcomes.

Zones name a shop by licence (the site file may carry only that); the register supplies the name,
address, contact, street (街道) and grid (网格). Admins keep it by hand or import it from the
market-regulation list as CSV or Excel: every row is checked first, and a file with any bad row
imports nothing, with every bad row named, so a half-imported list never looks complete.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import datetime, timezone

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Engine

from nonsite.evidence.audit import record
from nonsite.evidence.schema import case_events, case_packs, cases, packs_table, shops

from .i18n import Text

MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 20_000
# 统一社会信用代码: 18 characters, no I, O, S, V or Z; other registration numbers are kept but flagged.
USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
LICENCE = re.compile(r"^[0-9A-Z\-]{4,64}$")
FIELDS = {"licence": 64, "name": 256, "address": 512, "contact": 256, "street": 128, "grid": 64}
# Column headings an import accepts, in English and as the bureaus' own lists name them.
HEADINGS = {
    "licence": ("licence", "license", "licence number", "营业执照号", "统一社会信用代码", "信用代码", "执照号"),
    "name": ("name", "shop", "店名", "名称", "商户名称", "店铺名称"),
    "address": ("address", "地址", "经营地址"),
    "contact": ("contact", "联系人", "联系方式", "联系电话", "电话"),
    "street": ("street", "街道"),
    "grid": ("grid", "网格"),
}


class ShopError(ValueError):
    """A shop record or import refused; the message (a Text) says why."""


def clean_licence(text: str) -> str:
    """A licence number as stored: trimmed, upper case, inner spaces removed."""
    licence = re.sub(r"\s+", "", text or "").upper()
    if not LICENCE.fullmatch(licence):
        raise ShopError(Text("a licence number is 4 to 64 letters, digits or dashes"))
    return licence


def is_uscc(licence: str) -> bool:
    return bool(USCC.fullmatch(licence))


def clean_shop(values: dict) -> dict:
    """A record ready to store, or ShopError naming the first problem."""
    shop = {key: " ".join(str(values.get(key) or "").split()) for key in FIELDS}
    shop["licence"] = clean_licence(shop["licence"])
    if not shop["name"]:
        raise ShopError(Text("a shop needs a name"))
    for key, limit in FIELDS.items():
        if len(shop[key]) > limit:
            raise ShopError(Text("{field} has at most {limit} characters", field=Text(key), limit=limit))
    return shop


def _upsert(conn, shop: dict) -> str:
    now = datetime.now(timezone.utc)
    known = conn.execute(select(shops.c.licence).where(shops.c.licence == shop["licence"])).scalar()
    if known:
        conn.execute(update(shops).where(shops.c.licence == known).values(**shop, updated_at=now))
    else:
        conn.execute(insert(shops).values(**shop, created_at=now, updated_at=now))
    return "edited" if known else "added"


def save_shop(engine: Engine, values: dict, actor: str) -> dict:
    shop = clean_shop(values)
    with engine.begin() as conn:
        done = _upsert(conn, shop)
        record(conn, actor, "shop.save", f"shop:{shop['licence']}", {**shop, "new": done == "added"})
    return shop


def find_shops(engine: Engine, text: str = "", limit: int = 200) -> tuple[list[dict], int]:
    """Shops whose licence, name, address, street or grid contain ``text``, by name; and how many match."""
    where = []
    if text.strip():
        like = "%" + text.strip().replace("%", "").replace("_", "") + "%"
        where.append(or_(*(getattr(shops.c, key).ilike(like) for key in FIELDS)))
    counts = (select(packs_table.c.shop_licence, func.count().label("packs")).group_by(packs_table.c.shop_licence).subquery())
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(shops).where(*where)).scalar_one()
        rows = conn.execute(select(shops, func.coalesce(counts.c.packs, 0).label("packs"))
                            .outerjoin(counts, counts.c.shop_licence == shops.c.licence).where(*where)
                            .order_by(shops.c.name).limit(limit)).mappings().all()
    return [dict(r) for r in rows], total


def registered(engine: Engine, licence: str | None) -> dict | None:
    """The register's record of a licence, if it has one."""
    if not licence:
        return None
    with engine.connect() as conn:
        found = conn.execute(select(shops).where(shops.c.licence == licence)).mappings().first()
    return dict(found) if found else None


def shop_book(engine: Engine, licence: str) -> dict | None:
    """The shop's page: its record, every pack, every case with its notices and outcome, in time order."""
    with engine.connect() as conn:
        shop = conn.execute(select(shops).where(shops.c.licence == licence)).mappings().first()
        packs = conn.execute(select(packs_table).where(packs_table.c.shop_licence == licence)
                             .order_by(packs_table.c.threshold_at.desc())).mappings().all()
        case_ids = select(case_packs.c.case_id).join(packs_table, packs_table.c.pack_id == case_packs.c.pack_id) \
            .where(packs_table.c.shop_licence == licence)
        its_cases = conn.execute(select(cases).where(cases.c.id.in_(case_ids)).order_by(cases.c.created_at.desc())).mappings().all()
        steps = conn.execute(select(case_events).where(case_events.c.case_id.in_(case_ids), case_events.c.to_state != "open")
                             .order_by(case_events.c.at)).mappings().all()
    if shop is None and not packs:
        return None
    return {"shop": dict(shop) if shop else {"licence": licence}, "registered": shop is not None, "uscc": is_uscc(licence),
            "packs": [dict(p) for p in packs], "cases": [dict(c) for c in its_cases], "steps": [dict(s) for s in steps]}


# --- import ---------------------------------------------------------------------------------------


def _table(filename: str, data: bytes) -> list[list[str]]:
    """The uploaded rows, header first: an .xlsx workbook's first sheet, or CSV (UTF-8 or GB18030)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ShopError(Text("the file is larger than {megabytes} MB", megabytes=MAX_IMPORT_BYTES // 1024 // 1024))
    if filename.lower().endswith((".xlsx", ".xlsm")):
        from openpyxl import load_workbook

        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise ShopError(Text("this is not an Excel workbook (.xlsx); save it as .xlsx or CSV and try again"))
        try:
            sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
            rows = []
            for row in sheet.iter_rows(values_only=True):
                rows.append(["" if v is None else str(v) for v in row])
                if len(rows) > MAX_IMPORT_ROWS + 1:
                    break
            return rows
        except Exception as exc:  # a damaged or hostile workbook: say so, never a 500
            raise ShopError(Text("the workbook cannot be read: {problem}", problem=type(exc).__name__)) from exc
    if filename.lower().endswith(".csv"):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ShopError(Text("the CSV file is neither UTF-8 nor GB18030 text"))
        return [row for row in csv.reader(io.StringIO(text))][: MAX_IMPORT_ROWS + 2]
    raise ShopError(Text("upload an Excel workbook (.xlsx) or a CSV file"))


def _columns(header: list[str]) -> dict[str, int]:
    found = {}
    for n, heading in enumerate(header):
        name = heading.strip().lower()
        for key, names in HEADINGS.items():
            if name in names and key not in found:
                found[key] = n
    missing = [key for key in ("licence", "name") if key not in found]
    if missing:
        raise ShopError(Text("the first row must name the columns; missing: {columns}", columns=", ".join(missing)))
    return found


def import_shops(engine: Engine, filename: str, data: bytes, actor: str) -> dict:
    """Check every row; store all of them (new shops added, known licences updated) or, if any row is bad,
    none, and name every bad row with its line number."""
    rows = _table(filename, data)
    if not rows:
        raise ShopError(Text("the file is empty"))
    columns = _columns(rows[0])
    if len(rows) - 1 > MAX_IMPORT_ROWS:
        raise ShopError(Text("at most {count} shops per file", count=MAX_IMPORT_ROWS))
    good, bad, seen = [], [], {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            shop = clean_shop({key: row[n] if n < len(row) else "" for key, n in columns.items()})
        except ShopError as exc:
            bad.append({"line": line, "problem": exc.args[0]})
            continue
        if shop["licence"] in seen:
            bad.append({"line": line, "problem": Text("licence {licence} is already on line {line}", licence=shop["licence"],
                                                      line=seen[shop["licence"]])})
            continue
        seen[shop["licence"]] = line
        good.append(shop)
    if bad:
        return {"imported": 0, "added": 0, "edited": 0, "bad": bad}
    counts = {"added": 0, "edited": 0}
    with engine.begin() as conn:
        for shop in good:
            counts[_upsert(conn, shop)] += 1
        record(conn, actor, "shop.import", filename[:128], {"rows": len(good), **counts})
    return {"imported": len(good), **counts, "bad": []}
