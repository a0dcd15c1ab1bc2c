"""Rendering a page: the template, the officer, the CSRF token, and the officer's language and zone.

Every router renders through here, so every page gets ``_`` (translate), ``when`` (a time in the
bureau's zone) and the translations app.js needs, and no router imports another.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.messages.extract import extract
from fastapi import Request
from fastapi.responses import HTMLResponse

from .deps import Session, desk_for
from .i18n import Desk
from .labels import label

SCRIPT = Path(__file__).parent / "static" / "app.js"


@lru_cache(maxsize=1)
def script_messages() -> tuple[str, ...]:
    """The messages app.js shows (its ``t("...")`` calls), read from the script itself."""
    with SCRIPT.open("rb") as file:
        return tuple(sorted({m[1] for m in extract("javascript", file, keywords={"t": None}) if isinstance(m[1], str)}))


def render(request: Request, template: str, current: Session | None, status_code: int = 200, **values) -> HTMLResponse:
    desk = desk_for(request, current.user if current else None)
    return request.app.state.templates.TemplateResponse(
        request, template,
        {"user": current.user if current else None, "csrf": current.csrf if current else "", "csp_nonce": request.state.csp_nonce,
         "desk": desk, "_": desk.gettext, "when": desk.when,
         "label": lambda code: desk.gettext(label(code)), "script_messages": script_texts(desk), **values},
        status_code=status_code,
    )


def script_texts(desk: Desk) -> dict[str, str]:
    return {message: desk.gettext(message) for message in script_messages()} if desk.locale != "en" else {}
