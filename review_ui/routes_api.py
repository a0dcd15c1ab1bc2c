"""JSON API: the same actions as the pages, for a city case system (documented at /docs)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import date
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from rules import ConfigError
from rules.evidence import MANIFEST, StoreError

from . import audit as audit_log
from .app import COOKIE, Context, Session, checked_session, context, role, session
from .auth import AuthError, Throttled, add_user, log_in, log_out
from .cases import Transition, TransitionError, assign, case_detail, list_cases, transition
from .dashboard import dashboard
from .dossier import build_dossier
from .review import DecisionConflict, QueueFilter, decide, open_pack, queue
from .sites import find_site, list_sites, save_zone

router = APIRouter(prefix="/api", tags=["api"])


class LoginBody(BaseModel):
    username: str
    password: str


class DecisionBody(BaseModel):
    decision: Literal["confirm", "reject"]
    reason: str | None = None
    note: str = ""


class TransitionBody(BaseModel):
    to_state: str
    note: str = ""
    notice_kind: str | None = None
    deadline: date | None = None
    recheck: str | None = None
    outcome: str | None = None


class AssignBody(BaseModel):
    username: str


class ZoneBody(BaseModel):
    zone_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    polygon: list[tuple[float, float]] = Field(min_length=3)
    rule_id: str
    shop: dict[str, str] | None = None


class UserBody(BaseModel):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=8)
    role: Literal["reviewer", "supervisor", "admin"]


def start_session(response: Response, token: str, ctx: Context) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=ctx.secure_cookies, max_age=12 * 3600)


@router.get("/openapi.json", include_in_schema=False)
def api_schema(request: Request, _: Session = Depends(session)):
    from fastapi.openapi.utils import get_openapi

    app = request.app
    return get_openapi(title=app.title, version="1", description=app.description, routes=app.routes)


@router.post("/login")
def api_login(body: LoginBody, request: Request, ctx: Context = Depends(context)):
    try:
        token, csrf, user = log_in(ctx.engine, body.username, body.password, request.client.host if request.client else "?")
    except Throttled as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "900"}) from exc
    except AuthError as exc:
        raise HTTPException(401, str(exc)) from exc
    response = JSONResponse({"username": user.username, "role": user.role, "csrf": csrf})
    start_session(response, token, ctx)
    return response


@router.post("/logout")
def api_logout(current: Session = Depends(checked_session), ctx: Context = Depends(context)):
    log_out(ctx.engine, current.token, current.user)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE)
    return response


@router.get("/packs")
def api_packs(status: str = "pending_review", category: str | None = None, source: str | None = None,
              place: str | None = None, day: date | None = None, _: Session = Depends(session), ctx: Context = Depends(context)):
    return [row.__dict__ for row in queue(ctx.engine, QueueFilter(category, source, place, day, status))]


@router.get("/packs/{pack_id}")
def api_pack(pack_id: str, current: Session = Depends(session), ctx: Context = Depends(context)):
    try:
        facts = open_pack(ctx.index, ctx.store, pack_id, current.user)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    return {**facts, "row": facts["row"].__dict__}


@router.get("/packs/{pack_id}/files/{path:path}")
def api_pack_file(pack_id: str, path: str, _: Session = Depends(session), ctx: Context = Depends(context)):
    """Evidence only through here: the path must be a file the pack's manifest lists."""
    if ctx.index.get(pack_id) is None:
        raise HTTPException(404, "no such pack")
    try:
        listed = json.loads(ctx.store.read(pack_id, MANIFEST))["files"]
        if path not in listed and path != MANIFEST:
            raise HTTPException(404, "no such file in this pack")
        data = ctx.store.read(pack_id, path)
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from exc
    media = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "json": "application/json"}.get(path.rsplit(".", 1)[-1], "application/octet-stream")
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"})


@router.post("/packs/{pack_id}/decision")
def api_decide(pack_id: str, body: DecisionBody, current: Session = Depends(checked_session), ctx: Context = Depends(context)):
    try:
        case_id = decide(ctx.engine, pack_id, current.user, body.decision, body.reason, body.note)
    except DecisionConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"pack_id": pack_id, "status": "confirmed" if body.decision == "confirm" else "rejected", "case_id": case_id}


@router.get("/cases")
def api_cases(state: str | None = None, _: Session = Depends(session), ctx: Context = Depends(context)):
    return list_cases(ctx.engine, state)


@router.get("/cases/{case_id}")
def api_case(case_id: int, _: Session = Depends(session), ctx: Context = Depends(context)):
    detail = case_detail(ctx.engine, case_id)
    if detail is None:
        raise HTTPException(404, f"no case {case_id}")
    return detail


@contextmanager
def case_errors():
    """Unknown cases are 404; steps the workflow refuses are 422 with the reason."""
    try:
        yield
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    except TransitionError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.post("/cases/{case_id}/transition")
def api_transition(case_id: int, body: TransitionBody, current: Session = Depends(checked_session), ctx: Context = Depends(context)):
    with case_errors():
        transition(ctx.engine, case_id, Transition(**body.model_dump()), current.user)
    return case_detail(ctx.engine, case_id)


@router.post("/cases/{case_id}/assign")
def api_assign(case_id: int, body: AssignBody, current: Session = Depends(role("supervisor", csrf=True)), ctx: Context = Depends(context)):
    with case_errors():
        assign(ctx.engine, case_id, body.username, current.user)
    return case_detail(ctx.engine, case_id)


@router.get("/cases/{case_id}/dossier")
def api_dossier(case_id: int, audience: Literal["officers", "public"] = "officers", current: Session = Depends(session),
                ctx: Context = Depends(context)):
    """The officers' dossier holds the sealed originals; the public one only the blurred disclosure copies."""
    try:
        data = build_dossier(ctx.engine, ctx.store, case_id, current.user, public=audience == "public")
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    name = f"case-{case_id}{'-public' if audience == 'public' else ''}.zip"
    return Response(data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/dashboard")
def api_dashboard(_: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    return dashboard(ctx.engine)


@router.get("/audit")
def api_audit(actor: str | None = None, action: str | None = None, target: str | None = None, limit: int = 500,
              _: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    return audit_entries(ctx, actor, action, target, limit)


def audit_entries(ctx: Context, actor: str | None, action: str | None, target: str | None, limit: int) -> list[dict]:
    query = select(audit_log.audit).order_by(audit_log.audit.c.id.desc()).limit(min(limit, 5000))
    for column, value in (("actor", actor), ("action", action), ("target", target)):
        if value:
            query = query.where(getattr(audit_log.audit.c, column) == value)
    with ctx.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


@router.get("/sources")
def api_sources(_: Session = Depends(role("admin")), ctx: Context = Depends(context)):
    return [{"source_id": s.source_id, "file": s.path.name, "error": s.error,
             "config": s.config.model_dump(mode="json") if s.config else None} for s in list_sites(ctx.sites_dir)]


@router.post("/sources/{source_id}/zones")
def api_save_zone(source_id: str, body: ZoneBody, current: Session = Depends(role("admin", csrf=True)), ctx: Context = Depends(context)):
    try:
        site = find_site(ctx.sites_dir, source_id)
        config = save_zone(site, body.zone_id, body.polygon, body.rule_id, body.shop)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from exc
    audit_log.record_now(ctx.engine, current.user.username, "zone.save", source_id,
                         {"zone_id": body.zone_id, "polygon": body.polygon, "rule_id": body.rule_id, "shop": body.shop})
    return {"source_id": source_id, "zones": [z.model_dump(mode="json") for z in config.zones]}


@router.post("/users")
def api_add_user(body: UserBody, current: Session = Depends(role("admin", csrf=True)), ctx: Context = Depends(context)):
    try:
        user = add_user(ctx.engine, body.username, body.password, body.role, actor=current.user.username)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"id": user.id, "username": user.username, "role": user.role}
