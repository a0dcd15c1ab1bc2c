"""The model page for supervisors: which version of each model runs here, its history, and every candidate's figures."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from nonsite.vision.model_store import ModelLine
from nonsite.vision.shadow_book import ShadowBook

from .deps import Context, Session, context, role
from .pages import render

router = APIRouter(include_in_schema=False)


def model_lines(ctx: Context) -> list[tuple[str, object]]:
    """(model name, its versions here) for every model this deployment has trained or promoted."""
    if ctx.models_dir is None or not ctx.models_dir.is_dir():
        return []
    return [(folder.name, ModelLine(ctx.models_dir, folder.name).state()) for folder in sorted(ctx.models_dir.iterdir())
            if (folder / "versions.json").is_file()]


def shadow_tallies(ctx: Context) -> dict[str, dict[int, dict]]:
    """Per model and candidate version run in shadow: disagreements judged, and the boxes each model had right."""
    tallies: dict[str, dict[int, dict]] = {}
    for name, line in ((n, ModelLine(ctx.models_dir, n)) for n, _ in model_lines(ctx)):
        for record in ShadowBook(line.shadow_folder).judged():
            tally = tallies.setdefault(name, {}).setdefault(record.version, {"judged": 0, "current": 0, "candidate": 0})
            tally["judged"] += 1
            for side, right in record.right().items():
                tally[side] += right
    return tallies


@router.get("/models")
def models_page(request: Request, current: Session = Depends(role("supervisor")), ctx: Context = Depends(context)):
    return render(request, "models.html", current, lines=model_lines(ctx), shadow=shadow_tallies(ctx))
