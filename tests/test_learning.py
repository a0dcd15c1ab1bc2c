"""The learning loop on real imagery: a drone flight over real labelled street chips raises packs with the aerial
vehicle model; officers' decisions are simulated from the labels (a pack on a labelled car confirmed, one on
nothing rejected as a false detection); the site evaluation set is set aside; a fine-tune of a few epochs is
judged by the gate, which promotes it, and refuses a candidate trained on shuffled labels; rollback restores
the shipped weights; packs made before, during and after name the weights they were made with."""
from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import cv2
import pytest
from rich.console import Console

from nonsite.batch import run_batch
from nonsite.evidence import read_manifest
from nonsite.learn import build_sets, fine_tune, judge_candidate, roll_back, run_learn
from nonsite.review_ui import add_user, create_app
from nonsite.review_ui.review import decide
from nonsite.review_ui.site_eval import SiteEvalBook, decided_packs
from nonsite.rules.drone import FlightConfig
from nonsite.vision.detection import box_iou
from nonsite.vision.model_store import ModelLine

from .flightkit import write_geotiff
from .test_browser import OUTPUT, _wait_until, browser, log_in, server  # noqa: F401 - the pack page runs in real Chromium

QUIET = Console(quiet=True)
DEGREES = 5e-7  # about 5 cm a pixel


def _site_chips(datasets: Path) -> list[Path]:
    """Chips from the aerial vehicle recipe's training split: its held-out split and places stay the untouched fixed benchmarks."""
    from nonsite.learn import fixed_benchmarks
    from nonsite.settings import Settings

    benchmarks = fixed_benchmarks(Settings(datasets_dir=datasets), "aerial_vehicle")
    assert len(benchmarks) == 2
    kept_out = {image for _, images in benchmarks.values() for image in images}
    return [p for p in sorted((datasets / "drone_cars_cats" / "images").glob("[0-9]_*.jpg")) if p not in kept_out]


def _flight(folder: Path, chips: list[Path]) -> Path:
    """The chips as georeferenced pictures of one flight; a street-vending chip's name keeps its folder's mark ('v_')."""
    folder.mkdir(parents=True)
    for number, chip in enumerate(chips):
        name = f"v_{chip.stem}" if "vendors_aerial" in chip.parts else chip.stem
        write_geotiff(cv2.imread(str(chip)), folder / f"{name}.tif", west=121.47 + number * 1e-3, north=31.24, degrees_per_pixel=DEGREES)
    return folder


def _vendor_chips(datasets: Path) -> list[Path]:
    """Pavement and plaza chips with stalls labelled and no car labelled: any car found there is a false detection."""
    return sorted((datasets / "vendors_aerial" / "train" / "images").glob("*.jpg"))


def _config(folder: Path) -> FlightConfig:
    zones = folder / "street.geojson"
    zones.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"id": "street"}, "geometry": '
                     '{"type": "Polygon", "coordinates": [[[121.46, 31.23], [121.60, 31.23], [121.60, 31.25], [121.46, 31.25], [121.46, 31.23]]]}}]}')
    return FlightConfig(zones=str(zones), models=["aerial_vehicle"], flight_time=datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
                        rules=[{"id": "kerb", "kind": "illegal_parking", "zones": ["street"], "classes": ["aerial_vehicle:car"],
                                "min_confidence": 0.1}])


def _labelled_cars(datasets: Path, stem: str, width: int, height: int) -> list[tuple[float, float, float, float]]:
    if stem.startswith("v_"):
        return []
    boxes = []
    for line in (datasets / "drone_cars_cats" / "labels" / f"{stem}.txt").read_text().splitlines():
        if line.strip():
            _, cx, cy, w, h = map(float, line.split())
            boxes.append(((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
    return boxes


def _decide_from_labels(settings, datasets: Path, officer) -> tuple[int, int]:
    """Each pending pack: confirmed where its car is labelled, else rejected as a false detection."""
    store, engine = settings.open_store(), settings.open_index().engine
    confirmed = rejected = 0
    for row in settings.open_index().rows():
        if row.status != "pending_review":
            continue
        key = read_manifest(store, row.pack_id).key_frames["threshold"]
        width, height = key.size
        truth = _labelled_cars(datasets, Path(key.origin).stem, width, height)
        hit = any(box_iou(subject.box, car) >= 0.5 for subject in key.subject for car in truth)
        decide(engine, row.pack_id, officer, "confirm" if hit else "reject", None if hit else "false_detection", "")
        confirmed, rejected = confirmed + hit, rejected + (not hit)
    return confirmed, rejected


def _weights_of_packs(settings, flight_id: str) -> set[str]:
    store = settings.open_store()
    return {m.weights_sha256 for row in settings.open_index().rows() if row.source_id == flight_id
            for m in read_manifest(store, row.pack_id).models}


@pytest.fixture(scope="module")
def decided(tmp_path_factory, datasets):
    """A deployment whose officers decided every pack of one flight over real chips (built once, copied per test)."""
    from nonsite.settings import Settings

    root = tmp_path_factory.mktemp("decided")
    settings = Settings(data_dir=root / "var", keys_dir=root / "keys", datasets_dir=datasets)
    chips = _site_chips(datasets)[::6][:14] + _vendor_chips(datasets)[::40][:8]
    run_batch(settings, QUIET, str(_flight(root / "flight-1", chips)), _config(root), "flight-1")
    officer = add_user(settings.open_index().engine, "alice", "alice-password", "reviewer")
    confirmed, rejected = _decide_from_labels(settings, datasets, officer)
    assert confirmed > 30 and rejected > 0, (confirmed, rejected)
    return root, officer


@pytest.fixture()
def site(decided, settings, tmp_path):
    import shutil

    root, officer = decided
    for part in ("var", "keys"):
        shutil.copytree(root / part, tmp_path / part, dirs_exist_ok=True)
    return SimpleNamespace(folder=tmp_path, officer=officer)  # the same user row in the copied database


def test_the_site_evaluation_set_is_frozen_stratified_and_never_trained_on(site, settings, datasets):
    first = build_sets(settings, "aerial_vehicle", site.folder / "sets-1")
    assert first.eval_set.version == 1 and len(first.eval_set.pictures) >= 3
    assert not first.train_pictures & set(first.eval_set.pictures), "a picture both evaluated and trained on"
    assert set(first.site_eval) == {"illegal_parking"} and first.train_packs > 0
    SiteEvalBook(settings.data_dir / "learning" / "aerial_vehicle").mark_trained(set(first.train_pictures))
    again = build_sets(settings, "aerial_vehicle", site.folder / "sets-2")  # nothing new decided: the same set, same version
    assert (again.eval_set.version, again.eval_set.sha256) == (first.eval_set.version, first.eval_set.sha256)
    # a second flight, decided later: the set grows, keeps every earlier picture, and takes none that was trained on
    chips = _site_chips(datasets)[3::6][:6] + _vendor_chips(datasets)[20::40][:3]
    run_batch(settings, QUIET, str(_flight(site.folder / "flight-2", chips)), _config(site.folder), "flight-2")
    _decide_from_labels(settings, datasets, site.officer)
    grown = build_sets(settings, "aerial_vehicle", site.folder / "sets-3")
    assert grown.eval_set.version == 2 and set(first.eval_set.pictures) < set(grown.eval_set.pictures)
    assert not set(grown.eval_set.pictures) & set(first.train_pictures)
    strata = {entry["stratum"] for entry in grown.eval_set.pictures.values()}
    assert {s.split("|")[0] for s in strata} == {"flight-1", "flight-2"}  # every flight is represented
    decided = {p.picture for p in decided_packs(settings.open_index().engine, settings.open_store(), ZoneInfo("Asia/Shanghai"))}
    assert set(grown.eval_set.pictures) <= decided


def test_the_gate_promotes_a_better_candidate_refuses_a_worse_one_and_rollback_restores(site, settings, datasets):
    shipped = _weights_of_packs(settings, "flight-1")
    result = run_learn(settings, "aerial_vehicle", epochs=10, imgsz=320, promote=True, by="sam")
    figures = result.gate.families["illegal_parking"]
    print(f"\nsite set v{result.sets.eval_set.version} ({len(result.sets.eval_set.pictures)} pictures): operating recall "
          f"{figures['operating_recall']}, current {figures['current']}, candidate {figures['candidate']}; fixed {result.gate.fixed}; "
          f"trained on {result.sets.train_packs} packs in {result.training_seconds:.0f} s")
    assert result.gate.passed and result.promoted, result.gate.reasons
    line = ModelLine(settings.data_dir / "models", "aerial_vehicle")
    assert line.state().current == result.version.version == 1
    # the model page shows supervisors the promotion and the figures behind it, in Chinese
    from nonsite.context import review_context
    from nonsite.review_ui import create_app

    from .officers import login

    add_user(settings.open_index().engine, "sam", "sam-password", "supervisor")
    page = login(create_app(review_context(settings)), "sam", "zh-CN").get("/models")
    assert page.status_code == 200 and "已上线" in page.text and result.version.sha256[:12] in page.text and "通过" in page.text
    # packs made now name the promoted weights
    chips = _site_chips(datasets)[1::6][:2]
    run_batch(settings, QUIET, str(_flight(site.folder / "flight-3", chips)), _config(site.folder), "flight-3")
    assert _weights_of_packs(settings, "flight-3") == {result.version.sha256} != shipped

    # a candidate trained on shuffled labels: every box moved to a random place in its picture
    sets = build_sets(settings, "aerial_vehicle", site.folder / "shuffled")
    chance = random.Random(7)
    for label in (sets.train / "labels").glob("*.txt"):
        lines = [line.split() for line in label.read_text().splitlines() if line.strip()]
        label.write_text("".join(f"{c} {chance.uniform(0.1, 0.9):.4f} {chance.uniform(0.1, 0.9):.4f} {w} {h}\n" for c, _, _, w, h in lines))
    worse = fine_tune(line.current_weights(), sets.train, site.folder / "shuffled-run", epochs=10, imgsz=320)
    refused = judge_candidate(settings, "aerial_vehicle", worse, sets)
    print(f"shuffled labels: {refused.families['illegal_parking']}; fixed {refused.fixed}; {refused.reasons}")
    assert not refused.passed and refused.reasons

    roll_back(settings, "aerial_vehicle", "sam", "test of the rollback")
    assert line.state().current == 0 and settings.registry.line("aerial_vehicle").current_weights() is None
    run_batch(settings, QUIET, str(_flight(site.folder / "flight-4", chips)), _config(site.folder), "flight-4")
    assert _weights_of_packs(settings, "flight-4") == shipped
    actions = [event.action for event in line.state().history]
    assert actions == ["promoted", "rolled_back"]


@pytest.fixture()
def review(site, settings):
    """The desk over the decided deployment, for the browser."""
    from nonsite.context import review_context

    return review_context(settings)


def test_an_officer_redraws_a_box_on_the_pack_page_and_training_uses_it(site, review, server, browser, settings):  # noqa: F811
    from sqlalchemy import select

    from nonsite.evidence.schema import audit, corrections

    from .officers import login

    base, ctx = server
    store = settings.open_store()
    confirmed = next(row for row in settings.open_index().rows() if row.status == "confirmed")
    key = read_manifest(store, confirmed.pack_id).key_frames["threshold"]
    width, height = key.size
    page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 1000})
    log_in(page, base, "alice")
    page.goto(f"{base}/packs/{confirmed.pack_id}")
    svg = page.locator("#correct svg")
    svg.scroll_into_view_if_needed()
    frame = svg.bounding_box()
    # the officer drags the true box from a tenth to three tenths of the picture
    page.mouse.move(frame["x"] + frame["width"] * 0.1, frame["y"] + frame["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] * 0.3, frame["y"] + frame["height"] * 0.3, steps=5)
    page.mouse.up()
    page.fill("#correct-class", "car")
    page.click("#correct-save")
    _wait_until(page, "document.getElementById('flash').className === 'ok'")
    assert "纠正已保存" in page.inner_text("#flash")
    page.screenshot(path=str(OUTPUT / "pack-correction.png"), full_page=False)
    with ctx.engine.connect() as conn:
        fix = conn.execute(select(corrections).where(corrections.c.pack_id == confirmed.pack_id)).mappings().one()
        logged = conn.execute(select(audit.c.action).where(audit.c.target == confirmed.pack_id)).scalars().all()
    assert fix["class_name"] == "car" and "pack.corrected" in logged
    assert fix["x1"] == pytest.approx(0.1 * width, abs=0.02 * width) and fix["y2"] == pytest.approx(0.3 * height, abs=0.02 * height)
    # a box outside the picture is refused, in Chinese
    client = login(create_app(review), "alice", "zh-CN")
    refused = client.post(f"/api/packs/{confirmed.pack_id}/correction", json={"subject": 0, "box": [0, 0, width + 50, 10], "class_name": "car"})
    assert refused.status_code == 422 and "画面内" in refused.json()["detail"]
    # training takes the officer's box and class, not the detection's
    sets = build_sets(settings, "aerial_vehicle", site.folder / "sets")
    labels = {p.stem: p.read_text() for folder in [sets.train, *sets.site_eval.values()] for p in (folder / "labels").glob("*.txt")}
    cx, cy = (fix["x1"] + fix["x2"]) / 2 / width, (fix["y1"] + fix["y2"]) / 2 / height
    assert any(f"{cx:.6f} {cy:.6f}" in text for text in labels.values()), "the corrected box is not in the exported labels"
