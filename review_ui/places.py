"""Where a pack is in the bureau's own geography: its street (街道) and grid (网格).

A pack about a shop takes the shop register's street and grid; any other pack takes its camera's
(``source.street`` / ``source.grid`` in the site file). Filters and statistics both go through
here, so a pack is counted in the same street everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from nonsite.evidence import PackRow
from nonsite.evidence.schema import packs_table, shops

from .sites import list_sites


@dataclass(frozen=True)
class Place:
    street: str = ""
    grid: str = ""


@dataclass(frozen=True)
class PlaceBook:
    shops: dict[str, Place]  # licence -> the register's street and grid
    cameras: dict[str, Place]  # source id -> the site file's street and grid

    @classmethod
    def load(cls, engine: Engine, sites_dir: Path) -> PlaceBook:
        with engine.connect() as conn:
            registered = {r.licence: Place(r.street, r.grid) for r in conn.execute(select(shops.c.licence, shops.c.street, shops.c.grid))}
        cameras = {s.config.source.id: Place(s.config.source.street, s.config.source.grid) for s in list_sites(sites_dir) if s.config}
        return cls(registered, cameras)

    def of(self, row: PackRow) -> Place:
        if row.shop_licence and row.shop_licence in self.shops:
            return self.shops[row.shop_licence]
        return self.cameras.get(row.source_id, Place())

    def streets(self) -> list[str]:
        return sorted({p.street for p in (*self.shops.values(), *self.cameras.values()) if p.street})

    def grids(self) -> list[str]:
        return sorted({p.grid for p in (*self.shops.values(), *self.cameras.values()) if p.grid})

    def clause(self, street: str | None = None, grid: str | None = None) -> ColumnElement[bool]:
        """Packs in ``street`` and/or ``grid``, for a WHERE: the same answer as ``of`` row by row."""
        def wanted(place: Place) -> bool:
            return (not street or place.street == street) and (not grid or place.grid == grid)

        licences = [k for k, p in self.shops.items() if wanted(p)]
        sources = [k for k, p in self.cameras.items() if wanted(p)]
        unregistered = or_(packs_table.c.shop_licence.is_(None), packs_table.c.shop_licence.not_in(list(self.shops)))
        return or_(packs_table.c.shop_licence.in_(licences), and_(packs_table.c.source_id.in_(sources), unregistered))
