"""JSON API: the same actions as the pages, for a city case system (its schema is at /api/openapi.json).

Every route declares its request and response models (``api_models``) and every error answers
``ErrorBody``; parameters carry bounds, so input the database cannot hold is a 422, never a 500.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response

from nonsite.evidence import MANIFEST, ManifestError, StoreError, read_manifest
from nonsite.evidence import audit as audit_log
from nonsite.rules import ConfigError

from .api_models import (
    AccountChange,
    AuditEntry,
    CorrectionBody,
    CorrectionResult,
    Day,
    DecisionBody,
    DecisionResult,
    ErrorBody,
    LoginBody,
    LoginResult,
    LogoutBody,
    LogoutResult,
    OwnPasswordBody,
    PackDetail,
    PackId,
    PackSummary,
    ShownNameBody,
    SourceId,
    SourceInfo,
    TeamBody,
    UndoResult,
    UserActiveBody,
    UserBody,
    UserInfo,
    UserPasswordBody,
    UserRoleBody,
    ZoneBody,
    ZoneSaveResult,
)
from .auth import (
    AuthError,
    Throttled,
    add_user,
    change_own_password,
    end_sessions,
    list_users,
    log_in,
    log_out,
    log_out_everywhere,
    set_active,
    set_display_name,
    set_password,
    set_role,
    set_team,
    username_of,
)
from .byte_ranges import Unsatisfiable, requested_range
from .corrections import correct_subject
from .deps import COOKIE, Context, Session, checked_session, context, role, session, start_session
from .i18n import Text, message_of
from .places import PlaceBook
from .review import (
    PAGE_SIZE,
    STATUSES,
    DecisionConflict,
    EvidenceFailed,
    QueueFilter,
    UndoRefused,
    decide,
    evidence_problems,
    open_pack,
    queue,
    undo,
)
from .sites import StaleEdit, find_site, frame_size, list_sites, recent_frame, save_zone


def error(description: str) -> dict:
    """An error status in the schema: always the one ErrorBody."""
    return {"model": ErrorBody, "description": description}


def binary(description: str, *media_types: str) -> dict:
    """A 200 that is a file, not JSON, in the media types it may have."""
    return {200: {"description": description, "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in media_types}}}


AUDITED_FILES = ("original/", "crops/", "baseline/", "clip/")

router = APIRouter(prefix="/api", tags=["api"], responses={
    401: error("Not logged in, or wrong user name or password."),
    403: error("The role is too low, or a POST lacks the X-CSRF-Token header."),
    404: error("No such pack, file, case or camera."),
    422: error("Invalid input, or a step the workflow does not allow; `errors` lists invalid fields."),
})

# Ids the database can hold: a case id is a 32-bit integer in PostgreSQL (SQLite cannot even bind
# numbers past 64 bits), pack and source ids are 64- and 128-character columns.
EVIDENCE_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "json": "application/json", "mp4": "video/mp4"}
OTHER_FILE = "application/octet-stream"


@router.get("/openapi.json", include_in_schema=False)
def api_schema(request: Request, _: Session = Depends(session)):
    from fastapi.openapi.utils import get_openapi

    app = request.app
    return get_openapi(title=app.title, version="1", description=app.description, routes=app.routes, webhooks=app.webhooks.routes)


THROTTLED = error("Too many failed log-ins for this name from this address (or from this address altogether); "
                  "Retry-After says how many seconds to wait.")


def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


@contextmanager
def login_errors():
    """Throttled tries are 429 with Retry-After; wrong credentials and disabled accounts 401."""
    try:
        yield
    except Throttled as exc:
        raise HTTPException(429, message_of(exc), headers={"Retry-After": str(exc.retry_after)}) from exc
    except AuthError as exc:
        raise HTTPException(401, message_of(exc)) from exc


@router.post("/login", response_model=LoginResult, responses={429: THROTTLED})
def api_login(body: LoginBody, request: Request, response: Response, ctx: Context = Depends(context)):
    """Start a session: the cookie is set, and the reply carries the CSRF token for POSTs."""
    with login_errors():
        token, csrf, user = log_in(ctx.engine, body.username, body.password, _address(request))
    start_session(response, token, ctx)
    return LoginResult(username=user.username, role=user.role, csrf=csrf)


@router.post("/logout", response_model=LogoutResult)
def api_logout(response: Response, body: LogoutBody | None = None, current: Session = Depends(checked_session),
               ctx: Context = Depends(context)):
    """End this session; with ``{"everywhere": true}`` every session of the account."""
    if body is not None and body.everywhere:
        ended = log_out_everywhere(ctx.engine, current.user)
    else:
        log_out(ctx.engine, current.token, current.user)
        ended = 1
    response.delete_cookie(COOKIE)
    return LogoutResult(ok=True, sessions_ended=ended)


@router.post("/account/name", response_model=UserInfo)
def api_own_name(body: ShownNameBody, current: Session = Depends(checked_session), ctx: Context = Depends(context)):
    """Set the name one is shown by (王警官); blank goes back to the user name."""
    shown = set_display_name(ctx.engine, current.user.username, body.display_name, actor=current.user.username)
    return UserInfo(id=current.user.id, username=current.user.username, display_name=shown, role=current.user.role)


@router.post("/account/password", response_model=LogoutResult, responses={429: THROTTLED})
def api_own_password(body: OwnPasswordBody, request: Request, response: Response, current: Session = Depends(checked_session),
                     ctx: Context = Depends(context)):
    """Change one's own password. Every session of the account ends, this one too: log in again with the new one."""
    with login_errors():
        try:
            ended = change_own_password(ctx.engine, current.user, body.current_password, body.new_password, _address(request))
        except ValueError as exc:
            raise HTTPException(422, message_of(exc)) from exc
    response.delete_cookie(COOKIE)
    return LogoutResult(ok=True, sessions_ended=ended)


@router.get("/packs", response_model=list[PackSummary])
def api_packs(response: Response,
              status: Annotated[Literal[STATUSES],  # type: ignore[valid-type]
                                Query(description="pending_review, confirmed, rejected or decided (both).")] = "pending_review",
              category: Annotated[str | None, Query(max_length=48)] = None,
              source: Annotated[str | None, Query(max_length=128, description="A camera's source id.")] = None,
              place: Annotated[str | None, Query(max_length=256, description="A zone id or shop name.")] = None,
              day: Annotated[Day | None, Query(description="Packs whose threshold time falls on this day (bureau's zone).")] = None,
              day_from: Annotated[Day | None, Query(description="From this day on (bureau's zone).")] = None,
              day_to: Annotated[Day | None, Query(description="Up to and including this day (bureau's zone).")] = None,
              street: Annotated[str | None, Query(max_length=128)] = None,
              grid: Annotated[str | None, Query(max_length=64)] = None,
              min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
              model: Annotated[str | None, Query(max_length=256)] = None,
              q: Annotated[str | None, Query(max_length=128, description="Plate, shop name, licence number, case number (#12) or pack id.")]
              = None,
              page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
              per_page: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
              _: Session = Depends(session), ctx: Context = Depends(context)):
    """The queue: one page of packs of one status, newest first, filtered. ``X-Total-Count`` (matching
    packs), ``X-Pending-Count`` (all pending packs) and ``X-Pages`` tell the true size; nothing is cut silently."""
    chosen = QueueFilter(category, source, place, day_from or day, day_to or day, status, street, grid, min_confidence, model, q)
    found = queue(ctx.engine, chosen, ctx.zone, PlaceBook.load(ctx.engine, ctx.sites_dir), page, per_page)
    response.headers.update({"X-Total-Count": str(found.total), "X-Pending-Count": str(found.pending), "X-Pages": str(found.pages)})
    return found.rows


@router.get("/packs/{pack_id}", response_model=PackDetail)
def api_pack(pack_id: PackId, current: Session = Depends(session), ctx: Context = Depends(context)):
    """One pack, verified again; the view is recorded in the audit log."""
    try:
        facts = open_pack(ctx.index, ctx.store, pack_id, current.user, ctx.public_key)
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    return facts


@router.get("/packs/{pack_id}/files/{path:path}", response_class=Response,
            responses={**binary("The file's bytes.", *sorted({*EVIDENCE_TYPES.values(), OTHER_FILE})),
                       206: {"description": "The part of the file a `Range: bytes=first-last` header asked for (Content-Range says which)."},
                       416: error("The range starts past the end of the file.")})
def api_pack_file(pack_id: PackId, path: str, request: Request, current: Session = Depends(session), ctx: Context = Depends(context)):
    """Evidence only through here: the path must be a file the pack's manifest lists. Downloads of sealed
    originals, subject crops and clips (unblurred, like the originals; the pack page loads its clip only
    when played) are audited; the annotated and privacy copies the pages show are not (opening the pack
    page that shows them is). A ``Range`` header gets that part of the file (206), so a clip can be
    seeked; each part is audited with its range (skipping the audit for a part not starting at byte 0
    would let a whole original be read unaudited, one byte short)."""
    if ctx.index.get(pack_id) is None:
        raise HTTPException(404, Text("no pack {pack}", pack=pack_id))
    try:
        listed = read_manifest(ctx.store, pack_id).files
        if path not in listed and path != MANIFEST:
            raise HTTPException(404, Text("no such file in this pack"))
        data = ctx.store.read(pack_id, path)
    except (StoreError, ManifestError) as exc:
        raise HTTPException(404, message_of(exc)) from exc
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff", "Accept-Ranges": "bytes"}
    try:
        part = requested_range(request.headers.get("range"), len(data))
    except Unsatisfiable as exc:
        raise HTTPException(416, Text("the range asked for lies past the end of the file"),
                            headers={"Content-Range": f"bytes */{len(data)}"}) from exc
    if path.startswith(AUDITED_FILES):
        audit_log.record_now(ctx.engine, current.user.username, "pack.download", pack_id,
                             {"file": path, **({"range": f"{part[0]}-{part[1]}"} if part else {})})
    media = EVIDENCE_TYPES.get(path.rsplit(".", 1)[-1], OTHER_FILE)
    if part is None:
        return Response(data, media_type=media, headers=headers)
    first, last = part
    return Response(data[first:last + 1], status_code=206, media_type=media,
                    headers={**headers, "Content-Range": f"bytes {first}-{last}/{len(data)}"})


@router.post("/packs/{pack_id}/decision", response_model=DecisionResult,
             responses={409: error("Another officer decided the pack first (the message says who and when), or the evidence "
                                   "failed verification and cannot be confirmed (the message says what failed).")})
def api_decide(pack_id: PackId, body: DecisionBody, current: Session = Depends(checked_session), ctx: Context = Depends(context)):
    """Confirm or reject; the pack is verified again first, and evidence that fails cannot be confirmed."""
    try:
        problems = evidence_problems(ctx.index, ctx.store, pack_id, ctx.public_key) if body.decision == "confirm" else None
        case_id = decide(ctx.engine, pack_id, current.user, body.decision, body.reason, body.note, problems, ctx.procedure)
    except (DecisionConflict, EvidenceFailed) as exc:
        raise HTTPException(409, message_of(exc)) from exc
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, message_of(exc)) from exc
    return DecisionResult(pack_id=pack_id, status="confirmed" if body.decision == "confirm" else "rejected", case_id=case_id)


@router.post("/packs/{pack_id}/correction", response_model=CorrectionResult,
             responses={404: error("No such pack."), 422: error("A box outside the picture, a subject the pack has not, or a bad class.")})
def api_correct(pack_id: PackId, body: CorrectionBody, current: Session = Depends(checked_session), ctx: Context = Depends(context)):
    """Fix a subject's box or class; training uses the correction instead of the detection. The sealed pack is not changed."""
    try:
        fixed = correct_subject(ctx.engine, ctx.store, pack_id, body.subject, body.box, body.class_name, current.user)
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, message_of(exc)) from exc
    return CorrectionResult(pack_id=pack_id, subject=fixed.subject, box=fixed.box, class_name=fixed.class_name)


@router.post("/packs/{pack_id}/undo", response_model=UndoResult,
             responses={409: error("Not the deciding officer, past the undo window, or the case has moved on.")})
def api_undo(pack_id: PackId, current: Session = Depends(checked_session), ctx: Context = Depends(context)):
    """Take back one's own last decision on this pack within the undo window; it waits for review again."""
    try:
        undo(ctx.engine, pack_id, current.user)
    except UndoRefused as exc:
        raise HTTPException(409, message_of(exc)) from exc
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    return UndoResult(pack_id=pack_id, status="pending_review")


@router.get("/audit", response_model=list[AuditEntry])
def api_audit(actor: Annotated[str | None, Query(max_length=64)] = None, action: Annotated[str | None, Query(max_length=48)] = None,
              target: Annotated[str | None, Query(max_length=128)] = None, limit: Annotated[int, Query(ge=1, le=5000)] = 500,
              _: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    """The newest audit entries first, filtered by who, what and on which target."""
    return audit_log.entries(ctx.engine, actor, action, target, limit)


@router.get("/sources", response_model=list[SourceInfo])
def api_sources(_: Session = Depends(role("admin")), ctx: Context = Depends(context)):
    """Every camera config in the sites folder, including those that do not load."""
    return [SourceInfo(source_id=s.source_id, file=s.path.name, error=s.error, config=s.config) for s in list_sites(ctx.sites_dir)]


@router.post("/sources/{source_id}/zones", response_model=ZoneSaveResult)
def api_save_zone(source_id: SourceId, body: ZoneBody, current: Session = Depends(role("admin", csrf=True)),
                  ctx: Context = Depends(context)):
    """Add or replace a zone in the camera's YAML; the whole file must still validate, the editor's version
    must be the file's current one, and the audit entry is written before the file is replaced."""
    shop = body.shop.model_dump() if body.shop else None
    try:
        site = find_site(ctx.sites_dir, source_id)
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    try:
        size = frame_size(recent_frame(site, ctx.index, ctx.store))
    except LookupError:
        size = None  # a live camera with no pack yet: no frame to bound the zone by
    try:
        with ctx.engine.begin() as conn:
            audit_log.record(conn, current.user.username, "zone.save", source_id,
                             {"zone_id": body.zone_id, "polygon": body.polygon, "rule_id": body.rule_id, "shop": shop})
            config = save_zone(site, body.zone_id, body.polygon, body.rule_id, shop, body.version, size)
    except StaleEdit as exc:
        raise HTTPException(409, message_of(exc)) from exc
    except ConfigError as exc:
        raise HTTPException(422, message_of(exc)) from exc
    return ZoneSaveResult(source_id=source_id, zones=config.zones, version=site.version)


UserId = Annotated[int, Path(ge=1, le=2**31 - 1, description="An account's id (GET /api/users lists them).")]


@router.get("/users", response_model=list[UserInfo])
def api_users(_: Session = Depends(role("admin")), ctx: Context = Depends(context)):
    """Every account: role, whether it is active, and its live sessions."""
    return list_users(ctx.engine)


@router.post("/users", response_model=UserInfo)
def api_add_user(body: UserBody, current: Session = Depends(role("admin", csrf=True)), ctx: Context = Depends(context)):
    try:
        user = add_user(ctx.engine, body.username, body.password, body.role, actor=current.user.username, display_name=body.display_name)
    except ValueError as exc:
        raise HTTPException(422, message_of(exc)) from exc
    return UserInfo(id=user.id, username=user.username, display_name=user.display_name, role=user.role)


def _change_account(ctx: Context, current: Session, user_id: int, change) -> AccountChange:
    """Run one admin change on another account (404 unknown, 422 refused) and answer the account as it now stands.

    An admin's own account is not changed here: one click must not lock its own administrator
    out. Their name and password change at /api/account/...; role and status by another admin or
    ``nonsite user`` on the server.
    """
    try:
        name = username_of(ctx.engine, user_id)
        if user_id == current.user.id:
            raise HTTPException(422, Text("change your own name and password on your account page (/api/account/...); "
                                          "your role or status by another admin, or `nonsite user` on the server"))
        ended = change(name)
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, message_of(exc)) from exc
    account = next(u for u in list_users(ctx.engine) if u["id"] == user_id)
    return AccountChange(user=UserInfo(**account), sessions_ended=ended)


@router.post("/users/{user_id}/role", response_model=AccountChange)
def api_user_role(user_id: UserId, body: UserRoleBody, current: Session = Depends(role("admin", csrf=True)),
                  ctx: Context = Depends(context)):
    """Change an officer's role; their sessions end so the new powers apply from their next log-in."""
    return _change_account(ctx, current, user_id, lambda name: set_role(ctx.engine, name, body.role, current.user.username))


@router.post("/users/{user_id}/active", response_model=AccountChange)
def api_user_active(user_id: UserId, body: UserActiveBody, current: Session = Depends(role("admin", csrf=True)),
                    ctx: Context = Depends(context)):
    """Disable (``false``: the account cannot log in and its sessions end) or enable an account."""
    return _change_account(ctx, current, user_id, lambda name: set_active(ctx.engine, name, body.active, current.user.username))


@router.post("/users/{user_id}/password", response_model=AccountChange)
def api_user_password(user_id: UserId, body: UserPasswordBody, current: Session = Depends(role("admin", csrf=True)),
                      ctx: Context = Depends(context)):
    """Set an officer's password (a forgotten one); their sessions end."""
    return _change_account(ctx, current, user_id, lambda name: set_password(ctx.engine, name, body.password, current.user.username))


@router.post("/users/{user_id}/name", response_model=AccountChange)
def api_user_name(user_id: UserId, body: ShownNameBody, current: Session = Depends(role("admin", csrf=True)),
                  ctx: Context = Depends(context)):
    """Set the name an officer is shown by (王警官); blank: their user name. Their sessions go on."""
    def rename(name: str) -> int:
        set_display_name(ctx.engine, name, body.display_name, current.user.username)
        return 0  # a new name ends no session

    return _change_account(ctx, current, user_id, rename)


@router.post("/users/{user_id}/team", response_model=AccountChange)
def api_user_team(user_id: UserId, body: TeamBody, current: Session = Depends(role("admin", csrf=True)), ctx: Context = Depends(context)):
    """Put an officer in a team or grid (网格): cases dispatched to it are in their "my cases". Their sessions go on."""
    def join(name: str) -> int:
        set_team(ctx.engine, name, body.team, current.user.username)
        return 0

    return _change_account(ctx, current, user_id, join)


@router.post("/users/{user_id}/logout", response_model=AccountChange)
def api_user_logout(user_id: UserId, current: Session = Depends(role("admin", csrf=True)), ctx: Context = Depends(context)):
    """End every session of an officer (a lost phone, a terminal left logged in)."""
    return _change_account(ctx, current, user_id, lambda name: end_sessions(ctx.engine, name, current.user.username))
