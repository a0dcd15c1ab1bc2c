"""The officers' web application: server-rendered pages and a JSON API over the same actions."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from rules.evidence import EvidenceStore, PackIndex

from .auth import User, session_user

COOKIE = "nonsite_session"
HERE = Path(__file__).parent


@dataclass
class Context:
    """What every route needs: the pipeline's index and store, and where camera configs live."""

    index: PackIndex
    store: EvidenceStore
    sites_dir: Path
    secure_cookies: bool = False

    @property
    def engine(self):
        return self.index.engine


@dataclass
class Session:
    user: User
    csrf: str
    token: str


class NotLoggedIn(Exception):
    pass


def context(request: Request) -> Context:
    return request.app.state.context


def session(request: Request, ctx: Context = Depends(context)) -> Session:
    token = request.cookies.get(COOKIE)
    found = session_user(ctx.engine, token)
    if found is None:
        raise NotLoggedIn()
    return Session(found[0], found[1], token)


async def checked_session(request: Request, current: Session = Depends(session)) -> Session:
    """Every state-changing request must carry the session's CSRF token (form field or header)."""
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/")):
        sent = (await request.form()).get("csrf")
    if sent != current.csrf:
        raise HTTPException(403, "missing or wrong CSRF token")
    return current


def role(required: str, csrf: bool = False):
    """A dependency admitting ``required`` and higher roles; ``csrf`` for state-changing routes."""

    def check(current: Session = Depends(checked_session if csrf else session)) -> Session:
        if not current.user.can(required):
            raise HTTPException(403, f"this needs the {required} role")
        return current

    return check


def create_app(ctx: Context) -> FastAPI:
    from . import routes_api, routes_pages

    # No Swagger/ReDoc pages: they load their scripts from a CDN. The schema itself is served,
    # behind log-in like everything else, at /api/openapi.json.
    app = FastAPI(title="nonsite review", description="Review queue, decisions, cases and audit for non-site enforcement.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.context = ctx
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(NotLoggedIn)
    async def _login_first(request: Request, _exc: NotLoggedIn):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "log in first"}, status_code=401)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    app.include_router(routes_api.router)
    app.include_router(routes_pages.router)
    return app
