"""Statistics for supervisors: the page with its charts, the same figures as JSON, and exports."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from nonsite.evidence.audit import record_now

from . import routes_api
from .api_models import Dashboard, Day, parse_day
from .charts import bars, trend
from .dashboard import STEPS, Period, dashboard
from .deps import Context, Session, context, desk_for, role
from .export import KINDS, table, to_csv, to_xlsx
from .labels import LABELS
from .pages import render
from .places import PlaceBook

router = APIRouter()
MEDIA = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "csv": "text/csv; charset=utf-8"}


def _period(day_from: str, day_to: str, step: str) -> Period:
    return Period(parse_day(day_from), parse_day(day_to), step if step in STEPS else "day")


@router.get("/dashboard", include_in_schema=False)
def statistics_page(request: Request, day_from: str = "", day_to: str = "", step: str = "day",
                    current: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    period = _period(day_from, day_to, step)
    figures = dashboard(ctx.engine, PlaceBook.load(ctx.engine, ctx.sites_dir), ctx.zone, period)
    desk = desk_for(request, current.user)
    names = {code: desk.gettext(text) for code, text in LABELS.items()}
    _ = desk.gettext
    charts = {"trend": trend(_("Packs per {step}", step=_(period.step)), figures["trend"], names),
              "category": bars(_("By category"), figures["by_category"], names),
              "street": bars(_("By street"), figures["by_street"]), "grid": bars(_("By grid"), figures["by_grid"]),
              "shop": bars(_("By shop"), figures["by_shop"]), "camera": bars(_("By camera"), figures["by_source"]),
              "officer": bars(_("Confirmed by officer"), {k: v["confirmed"] for k, v in figures["by_officer"].items()})}
    chosen = {"day_from": period.day_from.isoformat() if period.day_from else "", "day_to": period.day_to.isoformat() if period.day_to else "",
              "step": period.step}
    return render(request, "dashboard.html", current, figures=figures, charts=charts, chosen=chosen, steps=STEPS, kinds=KINDS)


@router.get("/api/dashboard", response_model=Dashboard, tags=["api"], responses=routes_api.router.responses)
def api_dashboard(day_from: Annotated[Day | None, Query(description="From this day (bureau's zone).")] = None,
                  day_to: Annotated[Day | None, Query(description="Up to and including this day.")] = None,
                  step: Literal["day", "week", "month"] = "day", _: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    """Counts and trends by category, street, grid, shop, camera, officer and period; confirm rates; the case backlog."""
    return dashboard(ctx.engine, PlaceBook.load(ctx.engine, ctx.sites_dir), ctx.zone, Period(day_from, day_to, step))


@router.get("/export/{kind}.{fmt}", include_in_schema=False)
def export(request: Request, kind: Literal["packs", "cases", "decisions"], fmt: Literal["xlsx", "csv"], day_from: str = "",
           day_to: str = "", current: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    """One export as a download; who took what is audit-logged (exports carry personal data: plates, shops)."""
    period = _period(day_from, day_to, "day")
    desk = desk_for(request, current.user)
    headers, rows = table(ctx.engine, kind, desk, PlaceBook.load(ctx.engine, ctx.sites_dir), period)
    data, count = to_xlsx(desk.gettext(kind), headers, rows) if fmt == "xlsx" else to_csv(headers, rows)
    record_now(ctx.engine, current.user.username, f"export.{kind}", fmt,
               {"rows": count, "from": day_from or None, "to": day_to or None, "format": fmt})
    name = f"nonsite-{kind}{'-' + day_from if day_from else ''}{'-' + day_to if day_to else ''}.{fmt}"
    return Response(data, media_type=MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{name}"'})
