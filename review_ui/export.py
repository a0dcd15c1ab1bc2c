"""Packs, cases and decisions as Excel (openpyxl) and CSV, for the bureau's own reports.

Headers are in the officer's language, times on the bureau's clock with the zone named in the
header. A value starting with = + - @ (a shop name from an upload, an officer's note) is written
with a leading apostrophe, so a spreadsheet shows it instead of running it as a formula. The
workbook is written in openpyxl's write-only mode: memory stays flat however many rows.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from openpyxl import Workbook
from sqlalchemy import and_, select, true
from sqlalchemy.engine import Engine

from nonsite.evidence import PackRow
from nonsite.evidence.schema import cases, decisions, packs_table, users

from .dashboard import Period
from .i18n import N_, Desk
from .labels import label
from .places import PlaceBook

KINDS = ("packs", "cases", "decisions")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe(value):
    """A cell value a spreadsheet will not run as a formula."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA) else value


def _time_header(desk: Desk, name: str) -> str:
    return f"{desk.gettext(name)} ({desk.zone.key})"


def table(engine: Engine, kind: str, desk: Desk, places: PlaceBook, period: Period) -> tuple[list[str], Iterator[list]]:
    """The header row and the rows of one export, in the officer's language and the bureau's zone."""
    _, when = desk.gettext, desk.when
    shown = lambda code: _(label(code)) if code else ""  # noqa: E731
    bounds = and_(true(), *period.bounds(desk.zone))
    if kind == "packs":
        headers = [_(N_("Pack")), _(N_("Category")), _(N_("Camera")), _(N_("Zone")), _(N_("Shop")), _(N_("licence number")), _(N_("Plate")),
                   _(N_("Street")), _(N_("Grid")), _time_header(desk, N_("first seen")), _time_header(desk, N_("threshold")),
                   _time_header(desk, N_("last seen")), _(N_("dwell (s)")), _(N_("Confidence")), _(N_("Model")), _(N_("Status")),
                   "manifest SHA-256"]

        def rows():
            with engine.connect() as conn:
                for r in conn.execute(select(packs_table).where(bounds).order_by(packs_table.c.threshold_at)).mappings():
                    p = PackRow(**r)
                    place = places.of(p)
                    yield [p.pack_id, shown(p.category), p.source_id, p.zone_id, p.shop_name, p.shop_licence, p.plate, place.street,
                           place.grid, when(p.first_seen), when(p.threshold_at), when(p.last_seen), round(p.dwell_s), round(p.confidence, 3),
                           p.model, shown(p.status), p.manifest_sha256]
        return headers, rows()
    if kind == "cases":
        headers = [_(N_("Case")), _(N_("Category")), _(N_("Place")), _(N_("Step")), _(N_("Notice")), _time_header(desk, N_("Deadline")),
                   _(N_("Outcome")), _(N_("Assignee")), _time_header(desk, N_("Opened")), _time_header(desk, N_("Updated"))]

        def rows():
            with engine.connect() as conn:
                query = (select(cases, users.c.username, users.c.display_name).outerjoin(users, users.c.id == cases.c.assignee_id)
                         .where(and_(true(), *period.bounds(desk.zone, cases.c.created_at))).order_by(cases.c.id))
                for c in conn.execute(query).mappings():
                    yield [c["id"], shown(c["category"]), c["place"], shown(c["state"]), shown(c["notice_kind"]),
                           when(c["deadline"]) if c["deadline"] else "", shown(c["outcome"]), c["display_name"] or c["username"] or "",
                           when(c["created_at"]), when(c["updated_at"])]
        return headers, rows()
    headers = [_(N_("Pack")), _(N_("Decision")), _(N_("Reason")), _(N_("Note")), _(N_("Officer")), _time_header(desk, N_("When"))]

    def rows():
        with engine.connect() as conn:
            query = (select(decisions, users.c.username, users.c.display_name).join(users, users.c.id == decisions.c.user_id)
                     .join(packs_table, packs_table.c.pack_id == decisions.c.pack_id).where(bounds).order_by(decisions.c.at))
            for d in conn.execute(query).mappings():
                yield [d["pack_id"], shown(d["decision"] + "ed"), shown(d["reason"]), d["note"] or "", d["display_name"] or d["username"],
                       when(d["at"])]
    return headers, rows()


def to_xlsx(sheet: str, headers: list[str], rows: Iterator[list]) -> tuple[bytes, int]:
    book = Workbook(write_only=True)
    page = book.create_sheet(sheet[:31])
    page.append(headers)
    count = 0
    for row in rows:
        page.append([safe(v) for v in row])
        count += 1
    out = io.BytesIO()
    book.save(out)
    return out.getvalue(), count


def to_csv(headers: list[str], rows: Iterator[list]) -> tuple[bytes, int]:
    """UTF-8 with a byte-order mark: Excel on a Chinese Windows opens it with the characters right."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    count = 0
    for row in rows:
        writer.writerow(["" if v is None else safe(v) for v in row])
        count += 1
    return ("\ufeff" + out.getvalue()).encode("utf-8"), count
