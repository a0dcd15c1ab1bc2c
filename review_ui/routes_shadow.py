"""The model check page: where a candidate model in shadow disagreed with the current one, for officers to judge.

Each disagreement shows the frame both models looked at with every object either saw; the officer
says of every box whether such an object is truly there. The judgement is blind: a box only one model
saw is shown as such, never as the candidate's or the current model's, and the running score of the
two is on the supervisors' models page only. Those judgements become part of the site evaluation set
(``review_ui.site_eval``), so they are given once and audit-logged.
"""
from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse

from nonsite.evidence.audit import record_now
from nonsite.vision.model_store import ModelLine
from nonsite.vision.shadow_book import Disagreement, ShadowBook, ShadowError

from .deps import Context, Session, context, role
from .i18n import Text
from .pages import render

router = APIRouter(include_in_schema=False)
ModelName = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
RecordId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{20}$")]
SHOWN = 30  # disagreements waiting, listed at once: judging them clears the way for the next
_ANSWER = re.compile(r"^box(\d{1,3})$")


def shadow_books(ctx: Context) -> list[tuple[str, object, ShadowBook]]:
    """(model, its versions here, its shadow book) for every model that ran a version in shadow."""
    if ctx.models_dir is None or not ctx.models_dir.is_dir():
        return []
    lines = [ModelLine(ctx.models_dir, folder.name) for folder in sorted(ctx.models_dir.iterdir())]
    return [(line.name, line.state(), ShadowBook(line.shadow_folder)) for line in lines if line.shadow_folder.is_dir()]


def _book(ctx: Context, model: str) -> ShadowBook:
    if ctx.models_dir is None or not (ctx.models_dir / model / "shadow").is_dir():
        raise HTTPException(404, Text("no model {model} has run in shadow", model=model))
    return ShadowBook(ModelLine(ctx.models_dir, model).shadow_folder)


def _found(book: ShadowBook, record_id: str) -> Disagreement:
    try:
        return book.get(record_id)
    except ShadowError as exc:
        raise HTTPException(404, Text("no such disagreement {record}", record=record_id)) from exc


@router.get("/shadow")
def shadow_page(request: Request, current: Session = Depends(role("reviewer")), ctx: Context = Depends(context)):
    models = []
    for name, state, book in shadow_books(ctx):
        records = book.all()
        waiting = [r for r in records if r.judgement is None]
        models.append({"name": name, "state": state, "waiting": waiting[:SHOWN], "waiting_count": len(waiting),
                       "judged": len(records) - len(waiting)})
    return render(request, "shadow.html", current, models=models)


@router.get("/shadow/{model}/{record_id}.jpg")
def shadow_picture(model: ModelName, record_id: RecordId, current: Session = Depends(role("reviewer")), ctx: Context = Depends(context)):
    book = _book(ctx, model)
    _found(book, record_id)
    return FileResponse(book.picture(record_id), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.post("/shadow/{model}/{record_id}")
async def judge_disagreement(request: Request, model: ModelName, record_id: RecordId, current: Session = Depends(role("reviewer", csrf=True)),
                             ctx: Context = Depends(context)):
    """Every box judged real or not; a record judged already (by someone else meanwhile) is refused."""
    book = _book(ctx, model)
    record = _found(book, record_id)
    form = await request.form()
    answers = {int(m.group(1)): value for key, value in form.items() if (m := _ANSWER.match(key))}
    if sorted(answers) != list(range(len(record.boxes))) or any(v not in ("real", "false") for v in answers.values()):
        raise HTTPException(422, Text("judge every box: is there truly such an object there?"))
    try:
        judged = book.judge(record_id, [answers[n] == "real" for n in range(len(record.boxes))], current.user.username)
    except ShadowError as exc:
        raise HTTPException(409, Text("this disagreement was judged already")) from exc  # by someone else meanwhile
    record_now(ctx.engine, current.user.username, "model.shadow_judged", f"{model} v{record.version} {record_id}",
               {"picture_sha256": record.picture_sha256, "real": list(judged.judgement.real), "right": judged.right()})
    return RedirectResponse(f"/shadow#{model}", status_code=303)
