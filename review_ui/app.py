"""The officers' web application: server-rendered pages and a JSON API over the same actions."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from . import routes_api, routes_cameras, routes_pages
from .api_models import ErrorBody
from .deps import COOKIE, Context, NotLoggedIn
from .headers import add_security_headers

HERE = Path(__file__).parent


def _api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _json_errors(app: FastAPI) -> None:
    """Every error under /api answers the one ErrorBody, so clients read one string whatever went wrong.

    Pages keep FastAPI's own answers; log-in is a redirect there.
    """

    @app.exception_handler(NotLoggedIn)
    async def _login_first(request: Request, _exc: NotLoggedIn):
        if _api(request):
            return _error(401, ErrorBody(detail="log in first"))
        ended = "&error=expired" if request.cookies.get(COOKIE) else ""  # a session cookie the server no longer honours
        return RedirectResponse(f"/login?next={request.url.path}{ended}", status_code=303)

    @app.exception_handler(HTTPException)
    async def _refused(request: Request, exc: HTTPException):
        if _api(request):
            return _error(exc.status_code, ErrorBody(detail=str(exc.detail)), exc.headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        if _api(request):
            return _error(422, ErrorBody.of_validation(list(exc.errors())))
        return await request_validation_exception_handler(request, exc)


def create_app(ctx: Context) -> FastAPI:
    # No Swagger/ReDoc pages: they load their scripts from a CDN. The schema itself is served,
    # behind log-in like everything else, at /api/openapi.json.
    app = FastAPI(title="nonsite review", description="Review queue, decisions, cases and audit for non-site enforcement.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.context = ctx
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    _json_errors(app)
    add_security_headers(app)
    app.include_router(routes_api.router)
    app.include_router(routes_pages.router)
    app.include_router(routes_cameras.router)
    return app
