"""The model page for supervisors: which version of each model runs here, its history, and every candidate's figures."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from nonsite.vision.model_store import ModelLine

from .deps import Context, Session, context, role
from .pages import render

router = APIRouter(include_in_schema=False)


def model_lines(ctx: Context) -> list[tuple[str, object]]:
    """(model name, its versions here) for every model this deployment has trained or promoted."""
    if ctx.models_dir is None or not ctx.models_dir.is_dir():
        return []
    return [(folder.name, ModelLine(ctx.models_dir, folder.name).state()) for folder in sorted(ctx.models_dir.iterdir())
            if (folder / "versions.json").is_file()]


@router.get("/models")
def models_page(request: Request, current: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    return render(request, "models.html", current, lines=model_lines(ctx))
