"""Cameras and their zones, edited from the admin pages in the same YAML the pipeline runs."""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import cv2
import yaml

from nonsite.evidence import EvidenceStore, PackIndex, read_manifest
from nonsite.ingest import open_source
from nonsite.rules import ConfigError, SiteConfig, load_config
from nonsite.rules.loader import validate_config


@dataclass
class Site:
    path: Path
    config: SiteConfig | None
    error: str = ""

    @property
    def source_id(self) -> str:
        return self.config.source.id if self.config else self.path.stem

    @property
    def version(self) -> str:
        """The file's SHA-256: an edit made on an older version is refused instead of overwriting a newer one."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class StaleEdit(Exception):
    """The camera's file changed since the editor loaded it."""


def list_sites(folder: Path) -> list[Site]:
    sites = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            sites.append(Site(path, load_config(path, SiteConfig)))
        except ConfigError as exc:
            sites.append(Site(path, None, str(exc)))
    return sites


def find_site(folder: Path, source_id: str) -> Site:
    for site in list_sites(folder):
        if site.source_id == source_id:
            return site
    raise LookupError(f"no camera {source_id!r}")


def recent_frame(site: Site, index: PackIndex, store: EvidenceStore) -> bytes:
    """The newest key frame a pack holds for this camera, else the source's first frame, as JPEG."""
    for row in index.rows(source_id=site.source_id):
        return store.read(row.pack_id, read_manifest(store, row.pack_id).key_frames["threshold"].original)
    if site.config is None or site.config.source.kind == "stream":
        raise LookupError(f"no frame of {site.source_id} yet")
    frame = next(islice(open_source(site.config.source), 1), None)
    if frame is None:
        raise LookupError(f"source {site.source_id} gave no frame")
    return cv2.imencode(".jpg", frame.image)[1].tobytes()


def frame_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) of an encoded frame, from its header."""
    from nonsite.ingest.decoding import ImageRefused, picture_size

    try:
        return picture_size(frame)
    except ImageRefused:
        return None


def save_zone(site: Site, zone_id: str, polygon: list[tuple[float, float]], rule_id: str, shop: dict | None,
              version: str, size: tuple[int, int] | None) -> SiteConfig:
    """Add or replace a zone, bind it to a rule, validate the whole file, then replace it atomically (mode kept).

    ``version`` is the file's SHA-256 as the editor loaded it; ``size`` the camera's frame size,
    which the zone must lie within. Nothing is written unless every check passes."""
    if site.version != version:
        raise StaleEdit(f"{site.path.name} was changed since this editor loaded it; reload and draw again")
    if size and not all(0 <= x <= size[0] and 0 <= y <= size[1] for x, y in polygon):
        raise ConfigError(f"zone {zone_id!r} reaches outside the {size[0]} x {size[1]} frame")
    data = yaml.safe_load(site.path.read_text(encoding="utf-8"))
    zone = next((z for z in data.get("zones", []) if z.get("id") == zone_id), None)
    if zone is None:
        zone = {"id": zone_id}
        data.setdefault("zones", []).append(zone)
    zone["polygon"] = [[round(float(x), 1), round(float(y), 1)] for x, y in polygon]
    if size:
        zone["frame"] = list(size)  # what the polygon's pixels are pixels of: frames of another size get it scaled
    else:
        zone.pop("frame", None)
    if shop:
        zone["shop"] = {k: v for k, v in shop.items() if v}
    rule = next((r for r in data.get("rules", []) if r.get("id") == rule_id), None)
    if rule is None:
        raise ConfigError(f"{site.path}: no rule {rule_id!r}")
    if zone_id not in rule.setdefault("zones", []):
        rule["zones"].append(zone_id)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    config = validate_config(data, yaml.compose(text), SiteConfig, str(site.path))
    handle, temp = tempfile.mkstemp(dir=site.path.parent, prefix=".zone-edit-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(temp, stat.S_IMODE(site.path.stat().st_mode))
    os.replace(temp, site.path)
    return config
