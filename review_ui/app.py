"""The officers' web application: server-rendered pages and a JSON API over the same actions."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from nonsite.evidence.courier import Courier
from nonsite.vision.change_kinds import BASIS

from . import (
    routes_api,
    routes_cameras,
    routes_cases,
    routes_models,
    routes_outbox,
    routes_pages,
    routes_shadow,
    routes_shops,
    routes_stats,
    routes_surveys,
)
from .api_models import ErrorBody
from .auth import session_user
from .deps import COOKIE, Context, NotLoggedIn, Session, desk_for
from .headers import add_security_headers
from .i18n import N_, Text, message_of, shown_zone
from .pages import render

HERE = Path(__file__).parent


def _api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _officer(request: Request) -> Session | None:
    """Who asked, if anyone: an error answers in their language."""
    token = request.cookies.get(COOKIE)
    found = session_user(request.app.state.context.engine, token)
    return Session(found[0], found[1], token) if found else None


# Pydantic's commonest complaints, said in the officer's language (the rest keep Pydantic's English).
FIELD_PROBLEMS = {
    "missing": N_("required"), "string_too_long": N_("at most {max_length} characters"),
    "string_too_short": N_("at least {min_length} characters"), "greater_than_equal": N_("at least {ge}"),
    "less_than_equal": N_("at most {le}"), "literal_error": N_("not one of the allowed values"),
    "date_from_datetime_parsing": N_("not a date (YYYY-MM-DD)"), "date_parsing": N_("not a date (YYYY-MM-DD)"),
    "int_parsing": N_("not a whole number"), "float_parsing": N_("not a number"),
    "string_pattern_mismatch": N_("contains characters that are not allowed"),
}


def _field_problem(problem: dict) -> str:
    """One rejected field's message: our own validators' Text, a known Pydantic complaint, else Pydantic's words."""
    context = problem.get("ctx") or {}
    if problem["type"] == "value_error" and isinstance(context.get("error"), ValueError):
        return message_of(context["error"])
    template = FIELD_PROBLEMS.get(problem["type"])
    if template:
        return Text(template, **{k: v for k, v in context.items() if isinstance(v, (int, float, str))})
    return problem["msg"]


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None, problems: list[dict] | None = None):
    """A JSON ErrorBody under /api (the desk's scripts show its ``detail``), else an error page; both in the officer's language."""
    current = _officer(request)
    desk = desk_for(request, current.user if current else None)
    if problems is not None:
        problems = [{**p, "msg": desk.gettext(_field_problem(p))} for p in problems]
    if _api(request):
        body = ErrorBody.of_validation(problems) if problems is not None else ErrorBody(detail=desk.gettext(message))
        if problems is not None:
            body.detail = desk.gettext(Text("invalid request: {fields}", fields=body.detail.removeprefix("invalid request: ")))
        return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)
    return render(request, "error.html", current, status_code=status, status=status, message=message, problems=problems or [])


def _errors(app: FastAPI) -> None:
    """Every error under /api answers the one ErrorBody, so clients read one string whatever went wrong;
    a page's error is a page saying what went wrong, never raw JSON. Log-in is a redirect there."""

    @app.exception_handler(NotLoggedIn)
    async def _login_first(request: Request, _exc: NotLoggedIn):
        if _api(request):
            return _error(request, 401, Text("log in first"))
        ended = "&error=expired" if request.cookies.get(COOKIE) else ""  # a session cookie the server no longer honours
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(back)}{ended}", status_code=303)

    @app.exception_handler(HTTPException)
    async def _refused(request: Request, exc: HTTPException):
        return _error(request, exc.status_code, exc.detail if isinstance(exc.detail, str) else str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        problems = list(exc.errors())
        if _api(request):
            return _error(request, 422, "", problems=problems)
        return _error(request, 422, Text("the address or form has a value the desk cannot use"), problems=problems)


def create_app(ctx: Context, courier: Courier | None = None) -> FastAPI:
    # No Swagger/ReDoc pages: they load their scripts from a CDN. The schema itself is served,
    # behind log-in like everything else, at /api/openapi.json.
    app = FastAPI(title="nonsite review", description="Review queue, decisions, cases and audit for non-site enforcement.",
                  docs_url=None, redoc_url=None, openapi_url=None, webhooks=routes_outbox.webhooks, lifespan=routes_outbox.delivering)
    app.state.context = ctx
    app.state.courier = courier  # delivers the outbox to the city platform's webhooks while the app serves
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.state.templates.env.globals["change_basis"] = BASIS.get  # a survey change's basis: message id, figures in the manifest
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    _errors(app)
    add_security_headers(app)

    @app.middleware("http")
    async def _bureau_zone(request: Request, call_next):
        shown_zone.set(ctx.zone)  # the JSON API's times, in the zone the pages show
        return await call_next(request)

    app.include_router(routes_api.router)
    app.include_router(routes_cases.api)
    app.include_router(routes_cases.router)
    app.include_router(routes_pages.router)
    app.include_router(routes_cameras.router)
    app.include_router(routes_stats.router)
    app.include_router(routes_shops.router)
    app.include_router(routes_outbox.router)
    app.include_router(routes_surveys.router)
    app.include_router(routes_models.router)
    app.include_router(routes_shadow.router)
    return app
