"""Two surveys of one district compared by georeference: real new buildings and coloured-steel roofs from the
LEVIR / DSIFN "after" tiles pasted into a second survey delivered in another CRS and bit depth. Changes are
found where they were pasted and nowhere else, judged by kind, raised as packs where a parcel's rule counts
that kind, written as GeoJSON and GeoPackage, resumed after a crash without duplicates, and drawn on the
desk's map over the mosaic's own tiles."""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.warp import transform as reproject
from rich.console import Console

from nonsite.change_eval import change_detector
from nonsite.evidence.flights import FlightProgress
from nonsite.evidence.manifest import read_manifest
from nonsite.evidence.verify import verify_pack
from nonsite.rules.drone import load_geo_zones
from nonsite.survey_compare import compare_surveys
from nonsite.vision.change_kinds import classify_change

from .surveykit import CHANGED, UTM_51N, build_surveys, survey_config, write_parcels
from .test_browser import OUTPUT, _wait_until, browser, log_in, server  # noqa: F401 - the survey map runs in real Chromium

QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def surveys(tmp_path_factory, datasets):
    folder = tmp_path_factory.mktemp("surveys")
    pair = build_surveys(datasets, folder)
    return pair, survey_config(folder, write_parcels(folder / "parcels.geojson"))


@pytest.fixture(scope="module")
def detector(datasets):
    from nonsite.settings import Settings

    return change_detector(Settings(datasets_dir=datasets))


def _flight_config(path: Path):
    from nonsite.rules import load_config
    from nonsite.rules.drone import FlightConfig

    return load_config(path, FlightConfig)


def _utm_pixel(pair, lon: float, lat: float) -> tuple[float, float]:
    (x,), (y,) = reproject("EPSG:4326", UTM_51N, [lon], [lat])
    return ~pair.transform @ (x, y)


def test_changes_are_found_where_they_were_pasted_judged_and_raised_by_the_parcels_rules(surveys, settings, detector):
    pair, config_path = surveys
    config = _flight_config(config_path)
    summary = compare_surveys(settings, QUIET, pair.new, pair.previous, config, detector, core=512)
    with rasterio.open(pair.new) as new:  # compared on the new survey's own grid (0.48 m, finer than the change scale)
        assert summary.windows == math.ceil(new.width / 512) * math.ceil(new.height / 512)
    assert summary.outside == 0 and summary.changes
    # nothing is raised outside the pasted tiles: the unchanged tiles went through another CRS, 16 bits and resampling
    hits = Counter()
    for change in summary.changes:
        x, y = _utm_pixel(pair, *change.centre)
        tile = next((n for n, (x0, y0, x1, y1) in pair.changed_tiles.items() if x0 - 4 <= x < x1 + 4 and y0 - 4 <= y < y1 + 4), None)
        assert tile is not None, f"a change raised outside every pasted tile: {change}"
        hits[tile] += 1
    assert set(hits) == set(CHANGED), f"every pasted tile has a change found in it: {hits}"
    # areas are the footprints' ground areas: at least the labelled buildings' (the fields and trees around them changed
    # too between the pairs' dates, unlabelled), at most the pasted tiles'
    truth_m2, pasted_m2 = pair.truth.sum() * 0.5 ** 2, len(CHANGED) * (256 * 0.5) ** 2
    found_m2 = sum(c.area_m2 for c in summary.changes)
    print(f"\nchanged area found {found_m2:.0f} m2; labelled buildings {truth_m2:.0f} m2 in {pasted_m2:.0f} m2 of pasted tiles; "
          f"kinds {dict(Counter(c.kind for c in summary.changes))}")
    assert 0.8 * truth_m2 < found_m2 < pasted_m2
    # the parcels' rules: farmland counts every kind, residential plots only rooftop additions and steel roofs
    counted = {"plot-farm-01": {"new_structure", "coloured_steel_roof", "rooftop_addition", "bare_soil", "vehicles_machinery"},
               "plot-res-02": {"rooftop_addition", "coloured_steel_roof"}}
    for change in summary.changes:
        assert change.parcel in counted
        assert bool(change.pack_ids) == (change.kind in counted[change.parcel]), change
    assert {c.kind for c in summary.changes} <= {"new_structure", "rooftop_addition", "coloured_steel_roof", "bare_soil", "other_change"}
    raised = [c for c in summary.changes if c.pack_ids]
    assert raised and summary.new_packs == sum(len(c.pack_ids) for c in raised)
    store = settings.open_store()
    for change in raised:
        pack_id = change.pack_ids[0]
        manifest = read_manifest(store, pack_id)
        facts = manifest.survey
        assert facts.kind == change.kind and facts.area_m2 == change.area_m2 and facts.zone_geo
        assert facts.survey_date == "2026-11-20" and facts.previous_date == "2026-06-15" and facts.crs == "EPSG:4326"
        assert facts.mosaic_sha256 != facts.previous_sha256 and manifest.places == [change.centre]
        assert {"baseline/crop.png", "change/mask.png"} <= set(manifest.files)
        report = verify_pack(store, pack_id, public_key=settings.public_key())
        assert report.ok and "signature valid" in report.notes, report
    # GIS outputs: the same changes in GeoJSON and in a GeoPackage with typed columns
    features = json.loads(summary.geojson.read_text())["features"]
    info = pyogrio.read_info(summary.geopackage)
    assert info["features"] == len(features) == len(summary.changes) and info["geometry_type"] == "Polygon" and info["crs"] == "EPSG:4326"
    columns = dict(zip(info["fields"], info["dtypes"]))
    assert columns["area_m2"] == "float64" and {"kind", "parcel", "parcel_use", "pack_id", "survey_date", "previous_date"} <= set(columns)
    _, _, _, values = pyogrio.raw.read(summary.geopackage, columns=["kind", "pack_id"])
    assert sorted(values[0]) == sorted(c.kind for c in summary.changes)


def test_a_crash_mid_comparison_resumes_without_duplicate_packs(surveys, settings, detector, monkeypatch):
    pair, config_path = surveys
    config = _flight_config(config_path)
    marked = []
    original = FlightProgress.mark_done

    def crash_on_second(self, *args):
        if len(marked) == 1:  # the second window's packs are stored and journalled, then the process dies
            raise KeyboardInterrupt
        marked.append(args)
        original(self, *args)

    monkeypatch.setattr(FlightProgress, "mark_done", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        compare_surveys(settings, QUIET, pair.new, pair.previous, config, detector, survey_id="crashed", core=384)
    monkeypatch.setattr(FlightProgress, "mark_done", original)
    stored_before = len(settings.open_index().rows())
    resumed = compare_surveys(settings, QUIET, pair.new, pair.previous, config, detector, survey_id="crashed", core=384)
    assert resumed.resumed == 1 and resumed.windows > 2
    ids = [pack_id for change in resumed.changes for pack_id in change.pack_ids]
    assert len(ids) == len(set(ids)) == len(settings.open_index().rows()), "every pack once, none twice"
    assert len(settings.open_index().rows()) >= stored_before


def test_a_rerun_under_another_name_stores_nothing_twice(surveys, settings, detector):
    pair, config_path = surveys
    config = _flight_config(config_path)
    first = compare_surveys(settings, QUIET, pair.new, pair.previous, config, detector, survey_id="district-q4")
    again = compare_surveys(settings, QUIET, pair.new, pair.previous, config, detector, survey_id="城区航测-第四季度")
    assert first.new_packs > 0 and again.new_packs == 0 and again.resumed == 0
    assert sorted(i for c in again.changes for i in c.pack_ids) == sorted(i for c in first.changes for i in c.pack_ids)
    assert len(settings.open_index().rows()) == first.new_packs


def _shifted(source: Path, target: Path, east_m: float = 0.0, date: str | None = None) -> Path:
    """A copy of a survey moved east on the ground, or dated otherwise: same pixels."""
    with rasterio.open(source) as data:
        profile, pixels, tags = data.profile, data.read(), data.tags()
    profile["transform"] = profile["transform"] @ rasterio.Affine.translation(east_m / profile["transform"].a, 0)
    with rasterio.open(target, "w", **profile) as out:
        out.write(pixels)
        out.update_tags(**{**tags, **({"TIFFTAG_DATETIME": date} if date else {})})
    return target


def test_pairs_that_cannot_be_compared_are_refused_with_the_reason(surveys, settings, detector, tmp_path):
    from nonsite.ingest.mosaic import MosaicRefused
    from nonsite.rules.loader import ConfigError

    pair, config_path = surveys
    config = _flight_config(config_path)
    with pytest.raises(ConfigError, match="is not later than"):  # the two surveys given the wrong way round
        compare_surveys(settings, QUIET, pair.previous, pair.new, config, detector)
    elsewhere = _shifted(pair.previous, tmp_path / "elsewhere.tif", east_m=100_000)
    with pytest.raises(MosaicRefused, match="does not overlap"):  # an RGB file without nodata: its outside is not black ground
        compare_surveys(settings, QUIET, pair.new, elsewhere, config, detector)
    partly = _shifted(pair.previous, tmp_path / "partly.tif", east_m=256)  # half of it overlaps: only that half is compared
    summary = compare_surveys(settings, QUIET, pair.new, partly, config, detector, survey_id="partly")
    west_edge = min(lon for lon, _ in (p for c in summary.changes for p in c.footprint))
    assert west_edge >= reproject(UTM_51N, "EPSG:4326", [355_000.0 + 250], [3_456_800.0])[0][0]
    with pytest.raises(ConfigError, match="survey id"):
        compare_surveys(settings, QUIET, pair.new, pair.previous, config, detector, survey_id="../../etc")
    assert settings.open_index().rows() == [] or all(r.source_id == "partly" for r in settings.open_index().rows())


def test_kinds_on_the_labelled_pairs(datasets):
    """LEVIR's changes are new houses on open ground (American suburbs: no steel sheds); DSIFN's are Chinese
    villages and towns, where blue coloured-steel roofs are common."""
    kinds = {"LEVIR": Counter(), "DSIFN": Counter()}
    for name in kinds:
        folder = datasets / "change_pairs" / name
        for before_path in sorted((folder / "before").iterdir()):
            before, after = cv2.imread(str(before_path)), cv2.imread(str(folder / "after" / before_path.name))
            truth = cv2.imread(str(folder / "mask" / before_path.name), cv2.IMREAD_GRAYSCALE) > 127
            count, labels, stats, _ = cv2.connectedComponentsWithStats(truth.astype(np.uint8))
            kinds[name].update(classify_change(before, after, labels == n).kind for n in range(1, count) if stats[n, 4] >= 160)
    print(f"\nkinds of the labelled changes: {dict(kinds['LEVIR'])} (LEVIR), {dict(kinds['DSIFN'])} (DSIFN)")
    assert kinds["LEVIR"]["new_structure"] >= 0.9 * sum(kinds["LEVIR"].values())
    assert kinds["LEVIR"]["coloured_steel_roof"] == 0 and kinds["DSIFN"]["coloured_steel_roof"] >= 3


def test_parcels_from_a_projected_geopackage_are_the_same_zones(tmp_path):
    geojson = write_parcels(tmp_path / "parcels.geojson")
    features = json.loads(geojson.read_text())["features"]
    import shapely
    from rasterio.warp import transform_geom

    shapes = [shapely.geometry.shape(transform_geom("EPSG:4326", UTM_51N, f["geometry"])) for f in features]
    pyogrio.raw.write(tmp_path / "parcels.gpkg", np.array([shapely.to_wkb(s) for s in shapes], dtype=object),
                      [np.array([f["properties"]["id"] for f in features], dtype=object),
                       np.array([f["properties"]["use"] for f in features], dtype=object)], ["id", "use"],
                      driver="GPKG", crs=UTM_51N, geometry_type="Polygon")
    projected = tmp_path / "parcels_utm.geojson"  # as QGIS writes GeoJSON in a projected CRS: the 2008 crs member
    projected.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32651"}},
                                     "features": [{**f, "geometry": shapely.geometry.mapping(s)} for f, s in zip(features, shapes)]}))
    from_json = load_geo_zones(geojson)
    for other in (load_geo_zones(tmp_path / "parcels.gpkg"), load_geo_zones(projected)):
        assert [z.id for z in other] == [z.id for z in from_json]
        for a, b in zip(from_json, other):
            assert np.allclose(np.array(a.polygon)[:4], np.array(b.polygon)[:4], atol=1e-7)
    from nonsite.rules.loader import ConfigError

    metres = tmp_path / "metres.geojson"  # the same plots in metres with no crs member: refused, not silently nowhere
    metres.write_text(json.dumps({"type": "FeatureCollection", "features": json.loads(projected.read_text())["features"]}))
    with pytest.raises(ConfigError, match="not longitude and latitude"):
        load_geo_zones(metres)
    twice = tmp_path / "twice.geojson"
    twice.write_text(json.dumps({"type": "FeatureCollection", "features": [features[0], features[0]]}))
    with pytest.raises(ConfigError, match="more than one polygon"):
        load_geo_zones(twice)


@pytest.fixture()
def review(surveys, settings, detector):
    """The desk of a deployment that has compared the two surveys."""
    from nonsite.context import review_context
    from nonsite.review_ui import add_user

    pair, config_path = surveys
    compare_surveys(settings, QUIET, pair.new, pair.previous, _flight_config(config_path), detector, survey_id="城区航测-q4")
    ctx = review_context(settings)
    add_user(ctx.engine, "alice", "alice-password", "reviewer")
    return ctx


def test_the_survey_map_draws_the_changes_over_the_mosaic_itself(review, server, browser):  # noqa: F811 - the fixtures imported here
    base, ctx = server
    page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 1000})
    tiles = []
    page.on("response", lambda r: "/tiles/" in r.url and tiles.append((r.status, r.headers.get("content-type"))))
    log_in(page, base, "alice")
    page.goto(f"{base}/surveys")
    page.click("text=城区航测-q4")
    _wait_until(page, "document.getElementById('survey-map').dataset.drawn !== undefined")
    _wait_until(page, "[...document.querySelectorAll('.leaflet-tile')].length > 0 && "
                      "[...document.querySelectorAll('.leaflet-tile')].every(t => t.complete)")
    drawn = int(page.evaluate("document.getElementById('survey-map').dataset.drawn"))
    record = json.loads((ctx.surveys_dir / "城区航测-q4.survey.json").read_text())
    assert drawn == record["findings"] > 0
    assert page.locator("path.leaflet-interactive").count() == drawn  # every change outlined on the map
    assert tiles and all(status == 200 and kind == "image/png" for status, kind in tiles if status != 204)
    assert sum(status == 200 for status, _ in tiles) >= 4
    assert "航测" in page.content() and page.locator("table.findings tbody tr").count() == drawn
    page.screenshot(path=str(OUTPUT / "survey-map.png"), full_page=True)
    page.locator(".leaflet-control-layers-base label", has_text="上期航测").locator("input").check()  # the previous survey under the outlines
    _wait_until(page, "[...document.querySelectorAll('.leaflet-tile')].some(t => t.src.includes('/tiles/previous/') && t.complete)")
    page.locator("path.leaflet-interactive").first.dispatch_event("click")  # its popup: kind, area, why, in Chinese
    _wait_until(page, "document.querySelector('.leaflet-popup-content') !== null")
    popup = page.locator(".leaflet-popup-content").inner_text()
    assert "m²" in popup and any(word in popup for word in ("新建构筑物", "彩钢瓦棚", "屋顶加建", "其他变化")), popup
