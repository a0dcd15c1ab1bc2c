"""Cases on the desk and in the JSON API: lists by due time, steps, approvals, documents, delivery, dossiers."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from . import routes_api
from .api_models import ApprovalBody, AssignBody, CaseDetail, CaseId, CaseState, CaseSummary, DeliveryBody, TransitionBody
from .auth import list_users
from .cases import (
    STATES,
    NotYourCase,
    Transition,
    TransitionError,
    allowed_moves,
    assign,
    case_detail,
    decide_approval,
    list_cases,
    transition,
)
from .deps import Context, Session, checked_session, context, desk_for, role, session
from .documents import DELIVERY_METHODS, DocumentError, deliver, document_pdf
from .dossier import build_dossier
from .i18n import Text, message_of
from .pages import render
from .recheck_desk import MAX_PHOTO_BYTES, add_field_photo, confirm_recheck, recheck_picture, rechecks_of
from .timeline import step_words, timeline

router = APIRouter(include_in_schema=False)  # the pages; the JSON API is `api`
api = APIRouter(prefix="/api", tags=["api"], responses=routes_api.router.responses)


def _detail(ctx: Context, case_id: int, current: Session) -> dict:
    """The case, with the moves the procedure gives this officer from where it stands."""
    detail = case_detail(ctx.engine, case_id, ctx.repeat_lookback_days)
    if detail is None:
        raise HTTPException(404, Text("no case {case}", case=case_id))
    moves = allowed_moves(ctx.casework, detail["case"], current.user, detail["pending_approval"] is not None)
    detail["moves"] = [{"to_state": m.to, "when": m.when, "role": m.role, "approval": m.approval, "issues": m.issues} for m in moves]
    detail["next"] = sorted({m.to for m in moves}, key=STATES.index)
    detail["rechecks"] = rechecks_of(ctx.engine, case_id)
    return detail


def _forms(detail: dict) -> list[dict]:
    """One form per target step, offering only the choices (notice kind, outcome) the procedure allows from here,
    and "rectified" only after a re-check found the site clear (the server refuses it otherwise)."""
    last_recheck = next((e["details"].get("recheck") for e in reversed(detail["events"]) if e["to_state"] == "rechecked"), None)
    forms: dict[str, dict] = {}
    for move in detail["moves"]:
        if move["when"].get("outcome") == "rectified" and last_recheck != "clear":
            continue
        form = forms.setdefault(move["to_state"], {"to": move["to_state"], "field": None, "choices": [], "approval": move["approval"]})
        for field, value in move["when"].items():
            form["field"] = field
            form["choices"].append({"value": value, "approval": move["approval"], "issues": move["issues"]})
    for form in forms.values():  # the button asks for approval only when every choice needs it; the options say which do
        if form["choices"]:
            form["approval"] = all(c["approval"] for c in form["choices"])
    return list(forms.values())


@contextmanager
def case_errors():
    """Unknown cases are 404; a case that is not the reviewer's is 403; steps the procedure (or the
    officer's role) does not allow are 422 with the reason and the role they need."""
    try:
        yield
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    except NotYourCase as exc:
        raise HTTPException(403, message_of(exc)) from exc
    except (TransitionError, DocumentError) as exc:
        raise HTTPException(422, message_of(exc)) from exc


# --- pages ------------------------------------------------------------------------------------------


@router.get("/cases")
def cases_page(request: Request, state: str = "", mine: bool = False, overdue: bool = False, team: str = "",
               current: Session = Depends(session), ctx: Context = Depends(context)):
    found = list_cases(ctx.engine, state or None, current.user if mine else None, overdue, team or None)
    return render(request, "cases.html", current, cases=found, states=STATES, chosen=state, mine=mine, overdue=overdue, team=team)


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: CaseId, current: Session = Depends(session), ctx: Context = Depends(context)):
    detail = _detail(ctx, case_id, current)
    users = list_users(ctx.engine) if current.user.can("supervisor") else []
    family = ctx.procedure.family_of(detail["case"]["category"])
    rectify_by = datetime.now(ctx.zone).date() + timedelta(days=family.rectification_days if family else 3)
    pending = detail["pending_approval"]
    return render(request, "case.html", current, users=users, entries=timeline(detail), forms=_forms(detail),
                  pending_words=step_words(pending["step"]["to_state"], pending["step"]) if pending else None,
                  delivery_methods=DELIVERY_METHODS, rectify_by=rectify_by, **detail)


# --- JSON API ---------------------------------------------------------------------------------------


@api.get("/cases", response_model=list[CaseSummary])
def api_cases(state: CaseState | None = None, mine: bool = False, overdue: bool = False, team: str | None = None,
              current: Session = Depends(session), ctx: Context = Depends(context)):
    """Cases, those due soonest first, then the most recently changed. ``mine``: the asking officer's own and
    their team's; ``overdue``: open cases past their step's due time; ``team``: one team or grid (网格)."""
    return list_cases(ctx.engine, state, current.user if mine else None, overdue, team)


@api.get("/cases/{case_id}", response_model=CaseDetail)
def api_case(case_id: CaseId, current: Session = Depends(session), ctx: Context = Depends(context)):
    return _detail(ctx, case_id, current)


@api.post("/cases/{case_id}/transition", response_model=CaseDetail, responses={202: {"model": CaseDetail,
          "description": "The step needs a supervisor's approval: asked for, not yet taken (see pending_approval)."}})
def api_transition(case_id: CaseId, body: TransitionBody, response: Response, current: Session = Depends(checked_session),
                   ctx: Context = Depends(context)):
    """Walk the case one step as the bureau's procedure allows; the reply is the case as it now stands.

    A reviewer acts only on cases assigned to them or their team (403 otherwise) and takes only the
    moves the procedure gives reviewers (422 naming the role). A move that needs approval answers 202
    and waits for a supervisor other than the asker; a step that issues a document numbers and stores it."""
    with case_errors():
        if transition(ctx.casework, case_id, Transition(**body.model_dump()), current.user) == "awaiting_approval":
            response.status_code = 202
    return _detail(ctx, case_id, current)


@api.post("/cases/{case_id}/approvals/{approval_id}", response_model=CaseDetail)
def api_approve(case_id: CaseId, approval_id: CaseId, body: ApprovalBody, current: Session = Depends(role("supervisor", csrf=True)),
                ctx: Context = Depends(context)):
    """审批: approve the step asked for (it is taken, its document issued) or send it back with the reason."""
    with case_errors():
        decide_approval(ctx.casework, case_id, approval_id, body.approve, body.opinion, current.user)
    return _detail(ctx, case_id, current)


@api.post("/cases/{case_id}/assign", response_model=CaseDetail)
def api_assign(case_id: CaseId, body: AssignBody, current: Session = Depends(role("supervisor", csrf=True)),
               ctx: Context = Depends(context)):
    with case_errors():
        assign(ctx.engine, case_id, body.username, body.team, current.user)
    return _detail(ctx, case_id, current)


@api.get("/cases/{case_id}/documents/{document_id}", response_class=Response,
         responses=routes_api.binary("The document as issued, a PDF.", "application/pdf"))
def api_document(case_id: CaseId, document_id: CaseId, _: Session = Depends(session), ctx: Context = Depends(context)):
    with case_errors():
        number, pdf = document_pdf(ctx.engine, case_id, document_id)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(number)}.pdf"})


@api.post("/cases/{case_id}/documents/{document_id}/delivery", response_model=CaseDetail)
def api_delivery(case_id: CaseId, document_id: CaseId, body: DeliveryBody, current: Session = Depends(checked_session),
                 ctx: Context = Depends(context)):
    """送达: record how, when and to whom the document was served; once per document, by an officer of the case,
    at a time between its issue and now."""
    at = body.at or datetime.now(timezone.utc)
    at = at if at.tzinfo else at.replace(tzinfo=ctx.zone)
    with case_errors():
        deliver(ctx.engine, case_id, document_id, body.method, body.recipient, at, current.user)
    return _detail(ctx, case_id, current)


@api.post("/cases/{case_id}/photos", response_model=CaseDetail)
async def api_field_photo(case_id: CaseId, photo: UploadFile = File(description="A JPEG or PNG of the site, at most 20 MB."),
                          current: Session = Depends(checked_session), ctx: Context = Depends(context)):
    """A field photo for the 核查: checked as a whole picture, stored as sent, its SHA-256 sealed in the audit log."""
    data = await photo.read(MAX_PHOTO_BYTES + 1)
    with case_errors():
        await run_in_threadpool(add_field_photo, ctx.engine, case_id, data, current.user)
    return await run_in_threadpool(_detail, ctx, case_id, current)


@api.get("/cases/{case_id}/rechecks/{recheck_id}/picture", response_class=Response,
         responses=routes_api.binary("The recheck's current view or the field photo.", "image/jpeg", "image/png"))
def api_recheck_picture(case_id: CaseId, recheck_id: CaseId, _: Session = Depends(session), ctx: Context = Depends(context)):
    with case_errors():
        data = recheck_picture(ctx.engine, case_id, recheck_id)
    return Response(data, media_type="image/png" if data.startswith(b"\x89PNG") else "image/jpeg")


@api.post("/cases/{case_id}/rechecks/{recheck_id}/confirm", response_model=CaseDetail,
          responses={202: {"model": CaseDetail, "description": "Confirmed; the closing that followed waits for approval."}})
def api_confirm_recheck(case_id: CaseId, recheck_id: CaseId, response: Response, current: Session = Depends(checked_session),
                        ctx: Context = Depends(context)):
    """Confirm an automatic recheck's proposal: the case takes the 核查 step with its result (and, where the
    procedure allows, a cleared first offence goes on to close)."""
    with case_errors():
        if confirm_recheck(ctx.casework, case_id, recheck_id, current.user) == "awaiting_approval":
            response.status_code = 202
    return _detail(ctx, case_id, current)


@api.get("/cases/{case_id}/dossier", response_class=Response, responses=routes_api.binary("The dossier, a zip archive.", "application/zip"))
def api_dossier(request: Request, case_id: CaseId, audience: Literal["officers", "public"] = "officers",
                current: Session = Depends(session), ctx: Context = Depends(context)):
    """The officers' dossier holds the sealed originals; the public one only the blurred disclosure copies.
    Its summary page is in the asking officer's language, its times in the bureau's zone."""
    try:
        data = build_dossier(ctx.engine, ctx.store, case_id, current.user, desk_for(request, current.user),
                             public=audience == "public", signer=ctx.signer)
    except LookupError as exc:
        raise HTTPException(404, message_of(exc)) from exc
    name = f"case-{case_id}{'-public' if audience == 'public' else ''}.zip"
    return Response(data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'})
