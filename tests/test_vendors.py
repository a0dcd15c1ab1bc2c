"""Street vendors (流动摊贩) on real aerial chips of stalls: a no-vending plaza raises street-vending
packs with place and time and no shop record, and the same stalls seen again a week later link
to the same case at the desk (the spot is the party)."""
from __future__ import annotations

import json
from datetime import timedelta

import yaml

from nonsite.cli import main
from nonsite.evidence import MANIFEST
from nonsite.review_ui import Context, add_user, create_app

from .flightkit import write_drone_jpeg
from .officers import login
from .test_batch import ALT, LAT, LON, START, _zones_over_right_half
from .test_domain_models import _val_images


def _survey(folder, chips, when):
    folder.mkdir(parents=True)
    for number, chip in enumerate(chips):
        write_drone_jpeg(chip, folder / f"DJI_{number:04d}.JPG", LAT, LON, ALT + 12, ALT, 0.0, -90.0, when + timedelta(seconds=5 * number))
    return folder


def test_vendors_on_a_plaza_need_no_shop_and_link_by_their_spot(tmp_path, datasets, settings):
    folder, val = _val_images("street_vendor", datasets)
    chips = [p for p in val if (folder / "labels" / f"{p.stem}.txt").read_text().strip()][:2]
    _zones_over_right_half(tmp_path / "zones.geojson", 640, 640)
    config = {"zones": "zones.geojson", "models": ["street_vendor"], "tile": 640,
              "rules": [{"id": "no-vending", "kind": "street_vending", "zones": ["protected-plot"], "classes": ["street_vendor"],
                         "min_confidence": 0.3}]}
    (tmp_path / "flight.yaml").write_text(yaml.safe_dump(config))
    for flight_id, when in (("plaza-1123", START), ("plaza-1130", START + timedelta(days=7))):
        survey = _survey(tmp_path / flight_id, chips, when)
        assert main(["batch", str(survey), "--config", str(tmp_path / "flight.yaml"), "--flight-id", flight_id]) == 0

    index, store = settings.open_index(), settings.open_store()
    first, later = ([r for r in index.rows() if r.source_id == flight] for flight in ("plaza-1123", "plaza-1130"))
    assert first and later and {r.category for r in first + later} == {"street_vending"}
    assert len(first) >= 2  # one pack per stall or vendor, not one per plaza (two stalls in one ~10 m cell share a spot)
    for row in first:
        manifest = json.loads(store.read(row.pack_id, MANIFEST))
        assert manifest["zone"].get("shop") is None and row.shop_licence is None  # no shop record needed
        assert manifest["drone"]["subject_ground"] and row.places and row.threshold_at  # place and time
    spots = {r.subject_key for r in first} & {r.subject_key for r in later}
    assert spots, "the same stalls a week later must map to the same spots"

    add_user(index.engine, "alice", "alice-password", "reviewer")
    context = Context(index, store, settings.sites_path, signer=settings.signer, public_key=settings.public_key())
    alice = login(create_app(context), "alice")
    spot = sorted(spots)[0]
    cases = set()
    for rows in (first, later):
        pack = next(r for r in rows if r.subject_key == spot)
        decided = alice.post(f"/api/packs/{pack.pack_id}/decision", json={"decision": "confirm"})
        assert decided.status_code == 200, decided.text
        cases.add(decided.json()["case_id"])
    (case_id,) = cases  # both sightings of the stall in one case
    detail = alice.get(f"/api/cases/{case_id}").json()
    assert detail["party"] == {"kind": "site", "value": spot} and len(detail["packs"]) == 2
