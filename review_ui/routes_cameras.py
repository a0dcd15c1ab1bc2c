"""The cameras page, each camera's latest picture, and the same figures as JSON; for supervisors and admins."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from nonsite.ingest.health import StatusFolder

from . import routes_api
from .api_models import CamerasReport, SourceId
from .camera_status import age_text, desk_report
from .deps import Context, Session, context, role
from .i18n import Text
from .pages import render
from .sites import list_sites

REFRESH_S = 10  # the page reloads itself: a Refresh header, no script for the CSP to allow

router = APIRouter()


def _report(ctx: Context) -> CamerasReport:
    return desk_report(ctx.engine, [s.source_id for s in list_sites(ctx.sites_dir)], ctx.fleet_dir, datetime.now(timezone.utc))


@router.get("/cameras", include_in_schema=False)
def cameras_page(request: Request, current: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    response = render(request, "cameras.html", current, report=_report(ctx), age=age_text, refresh_s=REFRESH_S)
    response.headers["Refresh"] = str(REFRESH_S)
    return response


@router.get("/cameras/{camera}/snapshot", include_in_schema=False)
def camera_snapshot(camera: SourceId, _: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    """The camera's latest picture; never cached, the camera service replaces it every few seconds."""
    try:
        data = StatusFolder(ctx.fleet_dir).read_snapshot(camera) if ctx.fleet_dir is not None else None
    except ValueError:  # not a camera id: no camera has that picture
        data = None
    if data is None:
        raise HTTPException(404, Text("no picture of camera {camera}", camera=camera))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/api/cameras", response_model=CamerasReport, tags=["api"], responses=routes_api.router.responses)
def api_cameras(_: Session = Depends(role("supervisor")), ctx: Context = Depends(context)) -> CamerasReport:
    """Each camera of the camera service (state, counters, last-frame age, whether the service still reports), and under
    ``known`` every camera the desk knows: from its packs, the camera service or a site file."""
    return _report(ctx)
