"""District surveys on the desk: the list, and each survey's findings drawn over its own orthomosaic."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from nonsite.evidence.survey_records import SURVEY_ID, SurveyRecord, find_survey, survey_records
from nonsite.ingest.mosaic import MosaicRefused
from nonsite.vision.change_kinds import BASIS

from .deps import Context, Session, context, desk_for, session
from .i18n import Desk, Text
from .labels import CHANGE_KIND_COLOURS
from .pages import render
from .survey_tiles import survey_tile

router = APIRouter(include_in_schema=False)
SurveyId = Annotated[str, PathParam(pattern=SURVEY_ID)]
TILE_CACHE_S = 3600  # a survey's tiles never change; an hour spares the desk's machine on every pan


def _record(ctx: Context, survey_id: str) -> SurveyRecord:
    record = find_survey(ctx.surveys_dir, survey_id)
    if record is None:
        raise HTTPException(404, Text("no survey {survey_id}", survey_id=survey_id))
    return record


def _findings(record: SurveyRecord, desk: Desk) -> dict:
    """The survey's findings, each change's basis also in the officer's language (``shown_basis``)."""
    try:
        findings = json.loads(Path(record.geojson).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"type": "FeatureCollection", "features": []}
    for feature in findings["features"]:
        properties = feature["properties"]
        if properties.get("kind") in BASIS:
            properties["shown_basis"] = desk.gettext(BASIS[properties["kind"]], **properties.get("kind_values", {}))
    return findings


def _kind(feature: dict) -> str:
    """What a finding is: a change's kind, or a detected object's class."""
    return feature["properties"].get("kind") or feature["properties"].get("label") or "other_change"


@router.get("/surveys")
def surveys_page(request: Request, current: Session = Depends(session), ctx: Context = Depends(context)):
    return render(request, "surveys.html", current, records=survey_records(ctx.surveys_dir))


@router.get("/surveys/{survey_id}")
def survey_page(request: Request, survey_id: SurveyId, current: Session = Depends(session), ctx: Context = Depends(context)):
    record = _record(ctx, survey_id)
    features = _findings(record, desk_for(request, current.user))["features"]
    kinds = sorted({_kind(f) for f in features})
    return render(request, "survey.html", current, record=record, features=features, kinds=kinds, colours=CHANGE_KIND_COLOURS,
                  kind_of=_kind)


@router.get("/surveys/{survey_id}/findings.geojson")
def survey_findings(request: Request, survey_id: SurveyId, current: Session = Depends(session), ctx: Context = Depends(context)):
    return _findings(_record(ctx, survey_id), desk_for(request, current.user))


@router.get("/surveys/{survey_id}/tiles/{which}/{z}/{x}/{y}.png")
def survey_tiles(survey_id: SurveyId, which: Literal["new", "previous"], z: int, x: int, y: int, _: Session = Depends(session),
                 ctx: Context = Depends(context)):
    record = _record(ctx, survey_id)
    mosaic = record.mosaic if which == "new" else record.previous
    if mosaic is None:
        raise HTTPException(404, Text("this survey was not compared with a previous one"))
    gone = HTTPException(410, Text("the survey's GeoTIFF was moved, replaced or edited since it was surveyed: {path}", path=mosaic.path))
    if not mosaic.unchanged():
        raise gone
    try:
        png = survey_tile(mosaic, z, x, y, (record.bounds[1] + record.bounds[3]) / 2)
    except MosaicRefused as exc:  # its preview was removed or damaged
        raise gone from exc
    if png is None:
        return Response(status_code=204, headers={"Cache-Control": f"private, max-age={TILE_CACHE_S}"})
    return Response(png, media_type="image/png", headers={"Cache-Control": f"private, max-age={TILE_CACHE_S}"})
