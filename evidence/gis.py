"""Findings for a GIS analyst: the same features as GeoJSON and as a GeoPackage layer (both WGS-84).

GeoJSON is what a browser and most tools read; a GeoPackage is what QGIS and the bureaus' GIS
desks keep, with typed columns. Both files are written whole to a temporary name and renamed, so
a reader never sees half a file and a rerun replaces the previous one.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _column(values: list) -> np.ndarray:
    """One attribute column with the narrowest type that holds every value (text when the values are mixed)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array([None if v is None else (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)) for v in values], dtype=object)


def write_geojson(path: Path, features: Sequence[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"type": "FeatureCollection", "features": list(features)}, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, path)
    return path


def write_geopackage(path: Path, features: Sequence[dict], layer: str) -> Path:
    """One layer of the features' geometries (all of one type) and every property as a column."""
    import pyogrio
    import shapely

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.gpkg")
    partial.unlink(missing_ok=True)
    names = list(dict.fromkeys(name for feature in features for name in feature["properties"]))
    geometries = np.array([shapely.to_wkb(shapely.geometry.shape(f["geometry"])) for f in features], dtype=object)
    kinds = {f["geometry"]["type"] for f in features} or {"Unknown"}
    pyogrio.raw.write(partial, geometries, [_column([f["properties"].get(name) for f in features]) for name in names], names,
                      driver="GPKG", layer=layer, crs="EPSG:4326", geometry_type=kinds.pop() if len(kinds) == 1 else "Unknown")
    os.replace(partial, path)
    return path


def write_findings(stem: Path, features: Sequence[dict], layer: str) -> tuple[Path, Path]:
    """``stem``.geojson and ``stem``.gpkg with the same features."""
    return (write_geojson(stem.with_name(stem.name + ".geojson"), features),
            write_geopackage(stem.with_name(stem.name + ".gpkg"), features, layer))
