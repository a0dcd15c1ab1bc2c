"""核查 from the next flight: a drone case's site, found again in a later flight's picture, proposes the outcome.

A drone case's newest pack recorded where its subject stood: its box on the sealed picture, whose
file's georeference (EXIF GPS and DJI XMP, or GeoTIFF) puts those pixels on the ground.
``FlightRechecks`` reads that once per flight for the cases waiting for their 核查 (one query: due
cases whose newest pack came from a flight; none, and a flight pays nothing more), so each picture
costs a few projected corners per due site. A picture shows a site when all of it projects inside
the picture: the subjects' box and, for rules that follow each object, the rule's reach around it
(``max_motion`` box diagonals, as a camera recheck counts it). A site at a picture's edge waits for a
picture that shows all of it, and a picture taken before the deadline (an old flight processed late)
does not count.

Around the site a window is cut as large as the pieces the pack's models saw (its largest tile; the
whole picture if that is smaller), and the models run on it the way the flight ran them: tiled with
the pack's tile size and overlap, or multi-scale with sizes from the new picture's ground sampling
distance when the pack says so, so objects reach the model at the size they did then. The rule's
zone and the subject's place are carried into the window through the ground, so a flight at another
height, heading or position looks at the same spot. What counts is what counts for a camera
(``recheck.still_there``), tested at the box's centre as the drone rules test it; a flight looks once,
so the one picture decides. The window is the after picture: stored as JPEG with the proposal (origin
'flight') through the camera's own storage, the audit entry naming the flight, the picture and the
window. Only the first picture that shows a site proposes: the case is then no longer due.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine

from nonsite.evidence import EvidenceStore, read_manifest
from nonsite.evidence.schema import cases, flight_images, packs_table
from nonsite.ingest import Frame
from nonsite.ingest.flight import geo_model_of, read_facts
from nonsite.ingest.geo import NadirCamera, Orthophoto
from nonsite.rules.zones import distance
from nonsite.vision import Detection
from nonsite.vision.multiscale import MultiScaleDetector
from nonsite.vision.tiling import TiledDetector

from .recheck import (
    DetectorFor,
    Place,
    Proposal,
    RecheckRefused,
    RecheckResult,
    Target,
    encode_jpeg,
    majority,
    newest_pack,
    still_there,
    store_proposal,
    waiting,
)

log = logging.getLogger("nonsite.recheck")

GeoModel = NadirCamera | Orthophoto
Corners = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class FlightPicture:
    """A picture of a flight as ``nonsite batch`` processed it."""

    frame: Frame  # the pixels, the capture time, the flight's id (``source_id``) and the file's name (``origin``)
    geo: GeoModel
    sha256: str


@dataclass(frozen=True)
class Site:
    """A due drone case: what its newest pack recorded, and its subjects' box on the ground."""

    case_id: int
    deadline: datetime
    target: Target
    corners: Corners  # (lon, lat) of the box's corners, clockwise from its top left on the pack's picture


@dataclass(frozen=True)
class Spot:
    """Where a site lies on one picture: the window cut around it (x0, y0, x1, y1), the zone and place in its pixels."""

    window: tuple[int, int, int, int]
    zone: Corners
    place: Place | None


def due_sites(engine: Engine, store: EvidenceStore, now: datetime) -> list[Site]:
    """The drone cases waiting for their 核查 at ``now``, oldest deadline first; a case whose site cannot be placed
    on the ground is logged and left out."""
    newest = packs_table.alias("newest")
    query = (select(cases.c.id, cases.c.deadline, newest.c.pack_id)
             .join_from(cases, newest, newest.c.pack_id == newest_pack(cases.c.id).correlate(cases).scalar_subquery())
             .where(waiting(now), newest.c.source_id.in_(select(flight_images.c.flight_id)))
             .order_by(cases.c.deadline, cases.c.id))
    with engine.connect() as conn:
        due = conn.execute(query).all()
    sites = []
    for case_id, deadline, pack_id in due:
        try:
            sites.append(_site(store, case_id, deadline, pack_id))
        except RecheckRefused as exc:
            log.warning("%s: not rechecked from flights", exc)
        except Exception:  # noqa: BLE001 - one unreadable pack must not stop the flight nor the other cases' rechecks
            log.exception("case %d: its site cannot be read from pack %s", case_id, pack_id)
    return sites


def _site(store: EvidenceStore, case_id: int, deadline: datetime, pack_id: str) -> Site:
    """RecheckRefused: 'not_flight' (a camera's pack), 'change_case' (a suspected new structure: found by comparing with a
    baseline flight, not by a model) or 'no_georeference' (the sealed picture's file does not place it on the ground)."""
    target = Target(read_manifest(store, pack_id))
    manifest = target.manifest
    if manifest.drone is None:
        raise RecheckRefused(case_id, "not_flight", f"pack {pack_id} is a camera's")
    if manifest.change is not None:
        raise RecheckRefused(case_id, "change_case", f"pack {pack_id} compares flights")
    key = manifest.key_frames["threshold"]
    facts = read_facts(manifest.drone.image, store.read(pack_id, key.original), "UTC")  # only its georeference is used
    geo = geo_model_of(facts, *key.size)
    if geo is None:
        raise RecheckRefused(case_id, "no_georeference", f"pack {pack_id}'s picture {manifest.drone.image}")
    x1, y1 = min(s.box[0] for s in key.subject), min(s.box[1] for s in key.subject)
    x2, y2 = max(s.box[2] for s in key.subject), max(s.box[3] for s in key.subject)
    return Site(case_id, deadline, target, tuple(geo.to_ground(x, y) for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))))


def spot(site: Site, picture: FlightPicture) -> Spot | None:
    """Where the site lies on the picture; None when the picture does not show all of it."""
    height, width = picture.frame.image.shape[:2]
    manifest = site.target.manifest
    corners = [picture.geo.to_pixel(lon, lat) for lon, lat in site.corners]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    reach = manifest.rule.max_motion * distance(corners[0], corners[2]) if manifest.rule.per_object else 0.0
    x1, y1, x2, y2 = min(xs) - reach, min(ys) - reach, max(xs) + reach, max(ys) + reach
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        return None
    side = max([manifest.drone.tiles.size, *manifest.drone.tiles.scales])
    (wx0, wx1), (wy0, wy1) = _span(x1, x2, side, width), _span(y1, y2, side, height)
    zone = tuple((x - wx0, y - wy0) for x, y in (picture.geo.to_pixel(lon, lat) for lon, lat in manifest.drone.zone_geo["geo_polygon"]))
    place = Place((sum(xs) / 4 - wx0, sum(ys) / 4 - wy0), reach) if manifest.rule.per_object else None
    return Spot((wx0, wy0, wx1, wy1), zone, place)


def _span(low: float, high: float, side: int, length: int) -> tuple[int, int]:
    """The window on one axis: ``side`` pixels (more for a larger site) centred on the site, moved inside the picture."""
    size = min(length, max(side, math.ceil(high - low)))
    start = min(max(0, round((low + high - size) / 2)), length - size)
    return start, start + size


def _seen(detector_for: DetectorFor, target: Target, window: np.ndarray, gsd_m: float | None) -> list[Detection]:
    """Every model the pack used on the window, cut as the flight cut its picture, pooled."""
    tiles, found = target.manifest.drone.tiles, []
    for model in target.manifest.models:
        detector = detector_for(model.name)
        if tiles.scales:
            found += MultiScaleDetector(detector, tiles.scales, tiles.overlap).detect([window], [gsd_m])[0]
        else:
            found += TiledDetector(detector, tiles.size, tiles.overlap).detect([window])[0]
    return found


@dataclass(frozen=True)
class Sighting:
    """What a picture shows at a site: the window cut around it (the after picture), where the site lies in it, and the
    detections that count there."""

    spot: Spot
    window: np.ndarray
    counted: list[Detection]


def sighting(detector_for: DetectorFor, site: Site, picture: FlightPicture) -> Sighting | None:
    """The pack's models run around the site on the picture; None when the picture was taken before the deadline or does
    not show all of the site."""
    frame = picture.frame
    found = spot(site, picture) if frame.captured_at >= site.deadline else None
    if found is None:
        return None
    x0, y0, x1, y1 = found.window
    window = np.ascontiguousarray(frame.image[y0:y1, x0:x1])
    seen = _seen(detector_for, site.target, window, getattr(picture.geo, "metres_per_pixel", None))
    return Sighting(found, window, still_there(site.target.manifest.rule, found.zone, found.place, seen, at=lambda d: d.centre))


def recheck_site(engine: Engine, detector_for: DetectorFor, site: Site, picture: FlightPicture,
                 now: datetime) -> RecheckResult | None:
    """The proposal for the site from the picture, stored; None where ``sighting`` finds none.
    RecheckRefused as ``store_proposal`` raises it: 'not_due' or 'already_proposed'."""
    seen = sighting(detector_for, site, picture)
    if seen is None:
        return None
    frame = picture.frame
    facts = {"flight": frame.source_id, "image": frame.origin, "image_sha256": picture.sha256, "window": list(seen.spot.window)}
    proposal = Proposal("flight", majority([frame.captured_at], [seen.counted]), frame.captured_at,
                        encode_jpeg(seen.window, f"flight {frame.source_id}"), seen.spot.zone, facts)
    return store_proposal(engine, site.case_id, site.target, proposal, now)


class FlightRechecks:
    """The rechecks of one flight: the drone cases due when it began, each proposed from the first picture showing its site."""

    def __init__(self, engine: Engine, store: EvidenceStore, detector_for: DetectorFor, now: datetime):
        self.engine, self.detector_for = engine, detector_for
        self.sites = due_sites(engine, store, now)

    def look(self, picture: FlightPicture) -> list[RecheckResult]:
        """The proposals from one picture. A site is not looked for again once proposed, refused (another picture or
        worker of the flight was first, or the case moved on) or failed: a model that fails once fails again."""
        stored, left = [], []
        for site in self.sites:
            try:
                result = recheck_site(self.engine, self.detector_for, site, picture, datetime.now(timezone.utc))
            except RecheckRefused as exc:
                log.info("%s: not proposed from %s", exc, picture.frame.origin)
                continue
            except Exception:  # noqa: BLE001 - one case's failure must not stop the flight nor the other cases' rechecks
                log.exception("case %d: recheck from %s failed", site.case_id, picture.frame.origin)
                continue
            if result is None:
                left.append(site)
            else:
                stored.append(result)
                log.info("case %d: flight %s proposes %s (%s)", site.case_id, picture.frame.source_id, result.result, picture.frame.origin)
        self.sites = left
        return stored

