"""What every route depends on: the deployment context, the log-in session, CSRF and roles.

Routers and the app factory both import from here, and this module imports neither, so the
web layer has no import circle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response

from nonsite.evidence import EvidenceStore, PackIndex
from nonsite.evidence.signing import Signer

from .auth import SESSION_HOURS, User, session_user
from .cases import Casework
from .i18n import Desk, Text, pick_locale
from .procedure import Procedure, default_procedure

COOKIE = "nonsite_session"
LANG_COOKIE = "nonsite_lang"  # the language picked on the log-in page, before anyone is logged in


@dataclass
class Context:
    """What every route needs: the pipeline's index and store, and where camera configs live."""

    index: PackIndex
    store: EvidenceStore
    sites_dir: Path
    secure_cookies: bool = False
    signer: Signer | None = None  # signs exported dossiers
    public_key: Ed25519PublicKey | None = None  # checks pack signatures on the pack page
    fleet_dir: Path | None = None  # the camera service's status folder (ingest.health.StatusFolder); None: no cameras page figures
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))  # every time on the desk is shown in it
    repeat_lookback_days: int = 365  # an earlier case this recent makes a repeat offence (首违不罚 looks back this far)
    procedure: Procedure = field(default_factory=default_procedure)  # the bureau's case procedure
    document_templates: Path | None = None  # the bureau's own document templates, before nonsite's
    surveys_dir: Path | None = None  # where ``nonsite survey`` leaves its records (evidence.survey_records); None: no surveys page
    models_dir: Path | None = None  # the deployment's own model versions (vision.model_store); None: none on the models page

    @property
    def engine(self):
        return self.index.engine

    @property
    def casework(self) -> Casework:
        return Casework(self.engine, self.store, self.procedure, self.zone, self.document_templates)


@dataclass
class Session:
    user: User
    csrf: str
    token: str


class NotLoggedIn(Exception):
    pass


def context(request: Request) -> Context:
    return request.app.state.context


def desk_for(request: Request, user: User | None) -> Desk:
    """This request's language (the officer's choice, the log-in page's, else the browser's) and the bureau's zone."""
    chosen = (user.locale if user else None) or request.cookies.get(LANG_COOKIE)
    return Desk(pick_locale(chosen, request.headers.get("accept-language")), context(request).zone)


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
        raise HTTPException(403, Text("missing or wrong CSRF token; reload the page"))
    return current


def role(required: str, csrf: bool = False):
    """A dependency admitting ``required`` and higher roles; ``csrf`` for state-changing routes."""

    def check(current: Session = Depends(checked_session if csrf else session)) -> Session:
        if not current.user.can(required):
            raise HTTPException(403, Text("this needs the {role} role", role=Text(required)))
        return current

    return check


def start_session(response: Response, token: str, ctx: Context) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=ctx.secure_cookies, max_age=SESSION_HOURS * 3600)
