"""核查 from the next flight (issue 14): a real drone picture of a city street (drone_cars_cats: three cars in the
right-hand lane) flown by ``nonsite batch`` raises a pack per car; the first and the last car become cases past their
rectification deadline. Later flights over the same ground, written as a DJI drone writes its files (EXIF GPS, XMP
gimbal), recheck them:

* pictures that do not show a site whole (100 m away; from 5 m lower and 4 m to the west, the cars cut by the
  picture's right edge) propose nothing, through ``nonsite batch`` as when looked at directly; nor does a picture that
  shows both sites but was taken before the deadline;
* the next flight, from 4 m lower, 3 m east and 1 m north of the first, over the street with the last car's stretch of
  lane replaced by the empty lane just above it (a patch of the same real picture: no second real picture of this
  street without that car exists here), proposes "cleared" for that car and "still_present" for the first car, which
  is still there; an officer confirms a proposal.

A picture from lower down and elsewhere is a crop of the real picture, georeferenced as the drone would have
written it: the same ground sampling distance from a lower altitude, its centre's ground position as GPS. So the
sites land elsewhere in its pixels, and the counted car is found where the ground says it stands.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import yaml
from sqlalchemy import select

from nonsite.cli import main
from nonsite.evidence import read_manifest
from nonsite.evidence.audit import entries, verify_chain
from nonsite.evidence.schema import case_rechecks
from nonsite.ingest import Frame
from nonsite.ingest.flight import FlightImage, read_flight
from nonsite.ingest.geo import NadirCamera, offset, sensor_width_mm
from nonsite.review_ui import Context, add_user, create_app
from nonsite.review_ui.flight_recheck import FlightPicture, FlightRechecks, due_sites, sighting, spot
from nonsite.review_ui.recheck import LoadedModels, Target, due_for_recheck
from nonsite.vision.multiscale import tile_sizes_for

from .flightkit import write_drone_jpeg
from .officers import login
from .test_batch import ALT, LAT, LON, _zones_over_right_half
from .test_recheck import _case_past_its_deadline

STREET = "Drone2_(205).jpg"  # 640 x 640, three cars in the right-hand lane (labelled boxes at y 61, 199 and 451)
FIRST, LAST = (530, 61, 576, 154), (530, 451, 578, 555)  # the labelled boxes of the cars that become cases
FIRST_FLIGHT = NadirCamera(LAT, LON, ALT, 4.5, sensor_width_mm(4.5, 24), 640, 640)  # a 4.5 mm lens, 24 mm in 35 mm terms
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _shot(street: np.ndarray, folder: Path, name: str, x0: int, y0: int, size: int, when: datetime, north_m: float = 0) -> Path:
    """The ``size`` px square of ``street`` at (x0, y0) as a nadir picture taken at ``when``: from the height that keeps the
    first flight's metres per pixel, above the ground under its centre (``north_m`` further north)."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{name}.png"), street[y0:y0 + size, x0:x0 + size])
    lon, lat = offset(*FIRST_FLIGHT.to_ground(x0 + size / 2, y0 + size / 2), 0, north_m)
    altitude = ALT * size / 640
    shot = write_drone_jpeg(folder / f"{name}.png", folder / name, lat, lon, altitude + 12, altitude, 0.0, -90.0,
                            when.astimezone(SHANGHAI).replace(tzinfo=None))
    (folder / f"{name}.png").unlink()
    return shot


def _without_the_last_car(street: np.ndarray) -> np.ndarray:
    """The street with the last car's stretch of lane replaced by the empty lane above it, in the same columns."""
    patched = street.copy()
    patched[450:560, 518:592] = street[341:451, 518:592]
    return patched


def _config(folder: Path) -> Path:
    """No parking in the right half of the first picture, tiles of 320 px: the window around a site is a real crop."""
    config = {"zones": "zones.geojson", "models": ["aerial_vehicle"], "tile": 320, "overlap": 0.2,
              "rules": [{"id": "kerb-parking", "kind": "illegal_parking", "zones": ["no-parking-kerb"], "classes": ["aerial_vehicle:car"],
                         "min_confidence": 0.4}]}
    _zones_over_right_half(folder / "zones.geojson", 640, 640)
    (folder / "flight.yaml").write_text(yaml.safe_dump(config))
    return folder / "flight.yaml"


def _pack_of(settings, flight: str, box: tuple[float, ...]) -> str:
    """The flight's pack whose car is the labelled ``box``."""
    def off(pack_id: str) -> float:
        x1, y1, x2, y2 = read_manifest(settings.open_store(), pack_id).key_frames["threshold"].subject[0].box
        return abs((x1 + x2) - (box[0] + box[2])) + abs((y1 + y2) - (box[1] + box[3]))
    pack_id = min((r.pack_id for r in settings.open_index().rows(source_id=flight)), key=off)
    assert off(pack_id) < 20
    return pack_id


def _pictures(folder: Path) -> list[FlightPicture]:
    return [FlightPicture(Frame(folder.name, n, p.captured_at, p.image, origin=p.name), p.geo_model, p.sha256)
            for n, p in enumerate(read_flight(str(folder))) if isinstance(p, FlightImage)]


def _packs_of_a_multi_scale_flight_are_rechecked_at_their_scales(settings, models, sites, case_of, after) -> None:
    """Had the first flight run multi-scale (``multi_scale: true``), its packs would record the tile sizes for its metres per
    pixel: the window is the largest, and the model runs on it whole and in tiles sized for the new picture."""
    manifest = settings.registry.manifest("aerial_vehicle")
    sizes = tile_sizes_for(FIRST_FLIGHT.metres_per_pixel, manifest.object_m, manifest.object_px, manifest.imgsz, 640, 640)
    [picture] = _pictures(after)
    for name, case_id in case_of.items():
        site = next(s for s in sites if s.case_id == case_id)
        recorded = site.target.manifest
        drone = recorded.drone.model_copy(update={"tiles": recorded.drone.tiles.model_copy(update={"scales": sizes})})
        seen = sighting(models, replace(site, target=Target(recorded.model_copy(update={"drone": drone}))), picture)
        x0, y0, x1, y1 = seen.spot.window
        assert (x1 - x0, y1 - y0) == (max(sizes), max(sizes)) and bool(seen.counted) == (name == "stayed")
        print(f"\n[flight-recheck] as a multi-scale pack (tiles {sizes} px): case {case_id}, window {list(seen.spot.window)}, "
              f"{len(seen.counted)} counted", end="")


def test_the_next_flight_over_the_site_proposes_cleared_where_the_car_left_and_still_present_where_it_stayed(tmp_path, datasets, settings):
    street = cv2.imread(str(datasets / "drone_cars_cats" / "images" / STREET))
    config = str(_config(tmp_path))
    first = datetime.now(timezone.utc) - timedelta(days=4)
    assert main(["batch", str(_shot(street, tmp_path / "flight-1", "DJI_0001.JPG", 0, 0, 640, first).parent), "--config", config]) == 0
    review = Context(settings.open_index(), settings.open_store(), settings.sites_path)
    add_user(review.engine, "alice", "alice-password", "reviewer")
    alice = login(create_app(review), "alice")
    case_of = {"left": _case_past_its_deadline(review, alice, _pack_of(settings, "flight-1", LAST)),
               "stayed": _case_past_its_deadline(review, alice, _pack_of(settings, "flight-1", FIRST))}
    now = datetime.now(timezone.utc)
    deadline = now - timedelta(hours=1)

    away = tmp_path / "flight-2"  # no picture of it shows a site whole
    _shot(street, away, "DJI_0001.JPG", 0, 0, 640, now, north_m=100)
    _shot(street, away, "DJI_0002.JPG", 0, 40, 560, now)  # its right edge at x 560 of the first picture: the cars stand at 530-578
    early = _shot(street, tmp_path / "flight-early", "DJI_0001.JPG", 0, 0, 640, deadline - timedelta(hours=1))  # both, too early
    sites, pictures = due_sites(review.engine, review.store, now), [*_pictures(away), *_pictures(early.parent)]
    assert sorted(s.case_id for s in sites) == sorted(case_of.values())
    for picture in pictures:
        shown = [s.case_id for s in sites if spot(s, picture) is not None]
        print(f"\n[flight-recheck] {picture.frame.source_id}/{picture.frame.origin}, taken {picture.frame.captured_at:%H:%M} "
              f"(deadline {deadline.astimezone(SHANGHAI):%H:%M}): shows the sites of cases {shown or 'none'}", end="")
        assert shown == (sorted(case_of.values()) if picture.frame.source_id == "flight-early" else [])
    started = time.perf_counter()
    models = LoadedModels(settings.registry)
    rechecks = FlightRechecks(review.engine, review.store, models, now)
    read_s, started = time.perf_counter() - started, time.perf_counter()
    assert [rechecks.look(p) for p in pictures] == [[], [], []] and len(rechecks.sites) == 2  # both still looked for
    print(f"\n[flight-recheck] {len(rechecks.sites)} due sites read in {1000 * read_s:.0f} ms; the three pictures looked at "
          f"in {1e6 * (time.perf_counter() - started):.0f} µs", end="")
    assert main(["batch", str(away), "--config", config]) == 0
    with review.engine.connect() as conn:
        assert conn.execute(select(case_rechecks.c.id)).first() is None
    assert set(case_of.values()) <= set(due_for_recheck(review.engine, datetime.now(timezone.utc)))

    after = tmp_path / "flight-3"
    _shot(_without_the_last_car(street), after, "DJI_0001.JPG", 64, 20, 576, now)
    started = time.perf_counter()
    assert main(["batch", str(after), "--config", config]) == 0
    flight_s = time.perf_counter() - started
    with review.engine.connect() as conn:
        rows = {r.case_id: r for r in conn.execute(select(case_rechecks))}
    assert set(rows) == set(case_of.values())
    shift = (-64, -20)  # where a ground point of the first picture lands in this one
    for name, case_id in case_of.items():
        row, box = rows[case_id], FIRST if name == "stayed" else LAST
        assert (row.origin, row.result, row.added_by, row.confirmed_by) == ("flight", {"left": "cleared", "stayed": "still_present"}[name],
                                                                            None, None)
        assert row.sha256 == hashlib.sha256(row.image).hexdigest()
        [audited] = entries(review.engine, action="case.recheck_proposed", target=f"case:{case_id}")
        facts = audited["details"]
        assert audited["actor"] == "nonsite" and (facts["sha256"], facts["origin"], facts["result"]) == (row.sha256, "flight", row.result)
        assert (facts["flight"], facts["image"], facts["looks"]) == ("flight-3", "DJI_0001.JPG", 1)
        assert facts["before"]["pack_id"] == _pack_of(settings, "flight-1", box)
        x0, y0, x1, y1 = facts["window"]
        assert cv2.imdecode(np.frombuffer(row.image, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (y1 - y0, x1 - x0) == (320, 320)
        for found in row.detections:  # the car that stayed, found where it stood, in the window's pixels
            bx1, by1, bx2, by2 = found["box"]
            assert abs((bx1 + bx2) / 2 + x0 - ((box[0] + box[2]) / 2 + shift[0])) < 10
            assert abs((by1 + by2) / 2 + y0 - ((box[1] + box[3]) / 2 + shift[1])) < 10
        assert (len(row.detections) == 1) == (name == "stayed")
        print(f"\n[flight-recheck] case {case_id} (the car that {name}, pack {facts['before']['pack_id'][:12]}): {row.result}, "
              f"{len(row.detections)} detection(s) at its place "
              f"{[round(d['confidence'], 2) for d in row.detections]}; after picture: window {facts['window']} of {facts['image']}, "
              f"sha256 {row.sha256[:16]}", end="")
    _packs_of_a_multi_scale_flight_are_rechecked_at_their_scales(settings, models, sites, case_of, after)
    print(f"\n[flight-recheck] the next flight (1 picture, its packs and two rechecks, models loaded) took {flight_s:.1f} s")
    assert not set(case_of.values()) & set(due_for_recheck(review.engine, datetime.now(timezone.utc)))
    assert due_sites(review.engine, review.store, datetime.now(timezone.utc)) == []  # one proposal per deadline

    stayed = case_of["stayed"]
    assert f"/api/cases/{stayed}/rechecks/{rows[stayed].id}/picture" in alice.get(f"/cases/{stayed}").text
    kept = alice.post(f"/api/cases/{stayed}/rechecks/{rows[stayed].id}/confirm")
    assert kept.status_code == 200 and kept.json()["case"]["state"] == "rechecked"
    assert kept.json()["events"][-1]["details"]["recheck"] == "not_clear"
    assert verify_chain(review.engine).ok
