"""一店一册: the shop register's pages and its JSON API (search, one shop's book, save, import)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Path, Query, Request, UploadFile
from pydantic import BaseModel, Field

from . import routes_api
from .deps import Context, Session, checked_session, context, desk_for, role, session
from .i18n import Text, message_of
from .pages import render
from .shops import MAX_IMPORT_BYTES, ShopError, find_shops, import_shops, save_shop, shop_book

router = APIRouter()


class ShopBody(BaseModel):
    """A shop record; an existing licence is updated."""

    licence: str = Field(max_length=80, description="Business licence number (统一社会信用代码), stored upper case without spaces.")
    name: str = Field(max_length=300)
    address: str = Field("", max_length=600)
    contact: str = Field("", max_length=300)
    street: str = Field("", max_length=150, description="街道")
    grid: str = Field("", max_length=80, description="网格")


class ShopOut(BaseModel):
    """A shop as the register keeps it."""

    licence: str
    name: str
    address: str
    contact: str
    street: str
    grid: str
    packs: int = Field(0, description="Packs naming this licence.")


class ShopList(BaseModel):
    total: int = Field(description="Shops matching; at most 200 are listed.")
    shops: list[ShopOut]


class BadRow(BaseModel):
    line: int = Field(description="Line number in the file (the header is line 1).")
    problem: str


class ImportReport(BaseModel):
    imported: int
    added: int
    edited: int
    bad: list[BadRow] = Field(description="Every refused row; any bad row means nothing was imported.")


@router.get("/shops", include_in_schema=False)
def shops_page(request: Request, q: Annotated[str, Query(max_length=128)] = "", current: Session = Depends(session),
               ctx: Context = Depends(context)):
    found, total = find_shops(ctx.engine, q)
    return render(request, "shops.html", current, shops=found, total=total, q=q)


@router.get("/shops/{licence}", include_in_schema=False)
def shop_page(request: Request, licence: Annotated[str, Path(max_length=64)], current: Session = Depends(session),
              ctx: Context = Depends(context)):
    book = shop_book(ctx.engine, licence.strip().upper())
    if book is None:
        raise HTTPException(404, Text("no shop with licence {licence}", licence=licence))
    return render(request, "shop.html", current, **book)


@router.get("/api/shops", response_model=ShopList, tags=["api"], responses=routes_api.router.responses)
def api_shops(q: Annotated[str, Query(max_length=128)] = "", _: Session = Depends(session), ctx: Context = Depends(context)):
    """Shops whose licence, name, address, street or grid contain ``q`` (at most 200), and how many match."""
    found, total = find_shops(ctx.engine, q)
    return {"total": total, "shops": found}


@router.post("/api/shops", response_model=ShopOut, tags=["api"], responses=routes_api.router.responses)
def api_save_shop(body: ShopBody, current: Session = Depends(role("admin", csrf=True)), ctx: Context = Depends(context)):
    """Add a shop, or update the one with this licence (admins; audit-logged)."""
    try:
        return save_shop(ctx.engine, body.model_dump(), current.user.username)
    except ShopError as exc:
        raise HTTPException(422, message_of(exc)) from exc


@router.post("/api/shops/import", response_model=ImportReport, tags=["api"], responses=routes_api.router.responses)
async def api_import_shops(request: Request, file: Annotated[UploadFile, File(description=".xlsx or .csv, first row naming the columns")],
                           current: Session = Depends(checked_session), ctx: Context = Depends(context)) -> ImportReport:
    """Import the register from Excel or CSV (admins): every row is checked; with any bad row nothing is imported."""
    if not current.user.can("admin"):
        raise HTTPException(403, Text("this needs the {role} role", role=Text("admin")))
    data = await file.read(MAX_IMPORT_BYTES + 1)
    try:
        report = import_shops(ctx.engine, file.filename or "", data, current.user.username)
    except ShopError as exc:
        raise HTTPException(422, message_of(exc)) from exc
    desk = desk_for(request, current.user)  # each bad row's reason, in the officer's language
    return ImportReport(**{**report, "bad": [{"line": b["line"], "problem": desk.gettext(b["problem"])} for b in report["bad"]]})
