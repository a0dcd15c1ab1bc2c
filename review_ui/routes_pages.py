"""Server-rendered pages. Actions post to the JSON API from app.js; log-in and log-out are plain forms."""
from __future__ import annotations

import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from nonsite.evidence import audit as audit_log

from .api_models import PackId, SourceId, parse_day
from .auth import (
    IDLE_MINUTES,
    MIN_PASSWORD,
    ROLES,
    SESSION_HOURS,
    AuthError,
    list_users,
    log_in,
    log_out,
    log_out_everywhere,
    set_locale,
    shown_names,
)
from .corrections import corrections_of
from .deps import COOKIE, LANG_COOKIE, Context, Session, checked_session, context, role, session, start_session
from .geomap import pack_points, svg_map
from .i18n import LOCALES, N_, Text, message_of
from .pages import render
from .places import PlaceBook
from .review import REJECT_REASONS, STATUSES, QueueFilter, decisions_of, facets, neighbours, open_pack, queue
from .shops import find_shops, registered
from .sites import find_site, list_sites, recent_frame

router = APIRouter(include_in_schema=False)
LOGIN_CSRF = "nonsite_login_csrf"


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/queue"


# What /login?error=<code> may say: a link must not put its own words on the log-in page (phishing).
LOGIN_ERRORS = {"expired": N_("your session has ended; log in again")}


@router.get("/login")
def login_page(request: Request, next: str = "/queue", error: str = ""):
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, next=_safe_next(next), error=LOGIN_ERRORS.get(error, ""), login_csrf=token,
                      locales=LOCALES)
    response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", max_age=900)
    return response


@router.post("/login")
def login_submit(request: Request, username: str = Form(...), password: str = Form(...), csrf: str = Form(...),
                 next: str = Form("/queue"), ctx: Context = Depends(context)):
    if not csrf or csrf != request.cookies.get(LOGIN_CSRF):
        raise HTTPException(403, Text("missing or wrong CSRF token; reload the page"))
    try:
        token, _csrf, _user = log_in(ctx.engine, username, password, request.client.host if request.client else "?")
    except AuthError as exc:  # wrong credentials, a disabled account, or Throttled (the message says how long to wait)
        return render(request, "login.html", None, next=_safe_next(next), error=message_of(exc), login_csrf=csrf, locales=LOCALES)
    response = RedirectResponse(_safe_next(next), status_code=303)
    start_session(response, token, ctx)
    response.delete_cookie(LOGIN_CSRF)
    return response


@router.get("/language")
def pick_language(lang: str, next: str = "/login"):
    """The log-in page's language links: remembered in a cookie until the officer logs in and picks their own."""
    response = RedirectResponse(_safe_next(next), status_code=303)
    if lang in LOCALES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="lax")
    return response


@router.post("/account/language")
def keep_language(lang: str = Form(...), next: str = Form("/queue"), current: Session = Depends(checked_session),
                  ctx: Context = Depends(context)):
    """An officer's own language, kept with their account (and in the cookie, for the log-in page)."""
    if lang not in LOCALES:
        raise HTTPException(422, Text("unknown language {lang}", lang=lang))
    set_locale(ctx.engine, current.user, lang)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="lax")
    return response


@router.post("/logout")
def logout(everywhere: str = Form(""), current: Session = Depends(checked_session), ctx: Context = Depends(context)):
    """End this session, or with ``everywhere`` (the account page's button) every session of the account."""
    if everywhere:
        log_out_everywhere(ctx.engine, current.user)
    else:
        log_out(ctx.engine, current.token, current.user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/")
def home(_: Session = Depends(session)):
    return RedirectResponse("/queue", status_code=303)


@router.get("/queue")
def queue_page(request: Request, status: str = "pending_review", category: str = "", source: str = "", place: str = "",
               street: str = "", grid: str = "", day_from: str = "", day_to: str = "", day: str = "", min_confidence: str = "",
               model: str = "", q: str = "", page: int = 1, current: Session = Depends(session), ctx: Context = Depends(context)):
    """The triage queue (or, with ``status``, the decided packs): one page at a time with true counts.
    A filter value the form cannot have sent (a day that is no day) is ignored, and the form shows it empty."""
    first, last = parse_day(day_from) or parse_day(day), parse_day(day_to) or parse_day(day)
    try:
        confidence = min(1.0, max(0.0, float(min_confidence))) if min_confidence else None
    except ValueError:
        confidence = None
    chosen = QueueFilter(category or None, source or None, place or None, first, last, status if status in STATUSES else "pending_review",
                         street or None, grid or None, confidence, model or None, q[:128] or None)
    places = PlaceBook.load(ctx.engine, ctx.sites_dir)
    found = queue(ctx.engine, chosen, ctx.zone, places, max(1, min(page, 1_000_000)))
    shown = {"status": chosen.status, "category": category, "source": source, "place": place, "street": street, "grid": grid,
             "day_from": first.isoformat() if first else "", "day_to": last.isoformat() if last else "",
             "min_confidence": "" if confidence is None else f"{confidence:g}", "model": model, "q": q[:128]}
    decided = decisions_of(ctx.engine, [r.pack_id for r in found.rows])
    return render(request, "queue.html", current, found=found, facets=facets(ctx.engine), streets=places.streets(), grids=places.grids(),
                  chosen=shown, reasons=REJECT_REASONS, statuses=STATUSES, decisions=decided,
                  link=lambda **change: "/queue?" + urlencode({k: v for k, v in {**shown, **change}.items() if v}))


@router.get("/packs/{pack_id}")
def pack_page(request: Request, pack_id: PackId, current: Session = Depends(session), ctx: Context = Depends(context)):
    try:
        facts = open_pack(ctx.index, ctx.store, pack_id, current.user, ctx.public_key)
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    newer, older = neighbours(ctx.engine, pack_id)
    with ctx.engine.connect() as conn:
        fixes = corrections_of(conn, pack_id)
    return render(request, "pack.html", current, reasons=REJECT_REASONS, newer=newer, older=older,
                  register=registered(ctx.engine, facts["row"].shop_licence), corrections=fixes, **facts)


@router.get("/map")
def map_page(request: Request, current: Session = Depends(session), ctx: Context = Depends(context)):
    return render(request, "map.html", current, figure=svg_map(pack_points(ctx.index)))


@router.get("/audit")
def audit_page(request: Request, actor: str = "", action: str = "", target: str = "",
               current: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    entries = audit_log.entries(ctx.engine, actor or None, action or None, target or None, 500)
    return render(request, "audit.html", current, entries=entries, chosen={"actor": actor, "action": action, "target": target},
                  names=shown_names(ctx.engine))


@router.get("/admin/sources")
def sources_page(request: Request, current: Session = Depends(role("admin")), ctx: Context = Depends(context)):
    return render(request, "sources.html", current, sites=list_sites(ctx.sites_dir))


@router.get("/admin/sources/{source_id}")
def source_page(request: Request, source_id: SourceId, current: Session = Depends(role("admin")), ctx: Context = Depends(context)):
    try:
        site = find_site(ctx.sites_dir, source_id)
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    return render(request, "source.html", current, site=site, shops=find_shops(ctx.engine)[0])


@router.get("/admin/sources/{source_id}/frame")
def source_frame(source_id: SourceId, _: Session = Depends(role("admin")), ctx: Context = Depends(context)):
    try:
        data = recent_frame(find_site(ctx.sites_dir, source_id), ctx.index, ctx.store)
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    return Response(data, media_type="image/png" if data[:4] == b"\x89PNG" else "image/jpeg")


ACCOUNT_RULES = {"roles": ROLES, "min_password": MIN_PASSWORD, "idle_minutes": IDLE_MINUTES, "session_hours": SESSION_HOURS,
                 "locales": LOCALES}


@router.get("/admin/users")
def users_page(request: Request, current: Session = Depends(role("admin")), ctx: Context = Depends(context)):
    """Accounts: add, change role, disable or enable, set a password, end sessions (all through /api/users)."""
    return render(request, "users.html", current, users=list_users(ctx.engine), admin=True, **ACCOUNT_RULES)


@router.get("/account")
def account_page(request: Request, current: Session = Depends(session)):
    """Any officer's own account: change the password, log out everywhere."""
    return render(request, "users.html", current, users=[], admin=False, **ACCOUNT_RULES)
