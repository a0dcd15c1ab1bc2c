"""Shadow mode on a real live stream of real car-park footage: a candidate version of the COCO model
(the YOLO11n checkpoint beside the shipped YOLOv8n) runs beside the current model in the camera
service, raises no pack, and records the frames where the two disagree; an officer judges them at the
desk (in Chinese), the judgement is audit-logged and given once, and the judged picture joins the
site evaluation set with the officer's boxes as its labels, on which both versions are then scored."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from nonsite.context import review_context
from nonsite.evidence import read_manifest
from nonsite.evidence.schema import audit
from nonsite.learn import build_sets, score, start_shadow, stop_shadow
from nonsite.metrics import FleetCollector
from nonsite.review_ui import add_user, create_app
from nonsite.vision.model_store import ModelLine, ModelStoreError
from nonsite.vision.shadow_book import ShadowBook, ShadowError
from nonsite.vision.weights import weights_sha256

from .officers import login
from .streams import HttpCamera, wait_until
from .test_browser import OUTPUT, browser, log_in, server  # noqa: F401 - the officer judges in real Chromium

CANDIDATE = "yolo11n_coco_recovered.pt"


def _camera(camera_id: str, uri: str) -> dict:
    return {
        "source": {"id": camera_id, "kind": "stream", "uri": uri, "sample_fps": 2},
        "zones": [{"id": "whole-lot", "polygon": [[0, 200], [854, 200], [854, 480], [0, 480]], "inertia": 2}],
        "rules": [{"id": "lot-no-parking", "kind": "illegal_parking", "zones": ["whole-lot"], "classes": ["car", "truck", "bus"],
                   "min_confidence": 0.4, "dwell_s": 3, "hold_s": 1, "grace_s": 30, "cooldown_s": 0}],
    }


@pytest.fixture()
def candidate(settings) -> int:
    """The YOLO11n checkpoint as the COCO model's next version here (a candidate the gate never saw)."""
    shipped = Path(str(settings.registry.resolve_weights(settings.registry.manifest("coco"), shipped=True)))
    line = ModelLine(settings.data_dir / "models", "coco")
    return line.add_candidate(settings.models_dir / CANDIDATE, weights_sha256(shipped), {"note": "another architecture, for shadow"}).version


@pytest.fixture()
def review(settings):
    add_user(settings.open_index().engine, "wang", "wang-password", "reviewer")
    add_user(settings.open_index().engine, "sam", "sam-password", "supervisor")
    return review_context(settings)


def test_a_candidate_in_shadow_raises_nothing_and_officers_judgements_join_the_site_set(settings, carpark_video, candidate, server,  # noqa: F811
                                                                                       browser, tmp_path):  # noqa: F811
    from nonsite.fleet import Fleet

    start_shadow(settings, "coco", candidate, "sam")
    camera = HttpCamera(carpark_video).start()
    (settings.sites_path / "cam-lot.yaml").write_text(yaml.safe_dump(_camera("cam-lot", camera.url), sort_keys=False))
    fleet = Fleet(settings.sites_path, settings.sink, settings.data_dir, settings.registry, shadow_every_s=1.0)
    stop = threading.Event()
    service = threading.Thread(target=fleet.run, args=(stop,), daemon=True)
    service.start()
    book = ShadowBook(ModelLine(settings.data_dir / "models", "coco").shadow_folder)
    try:
        wait_until(lambda: "coco" in fleet.shadows, 60, "the shadow loaded")
        runner = fleet.shadows["coco"]
        assert runner.version == candidate and runner.detector.weights_sha256 == weights_sha256(settings.models_dir / CANDIDATE)
        wait_until(lambda: book.all() and fleet.queue.stored >= 1, 120, "a disagreement recorded and a pack stored")
        shown = {(m.name, s.labels["outcome"]): s.value for m in FleetCollector(fleet.status).collect() for s in m.samples
                 if m.name == "nonsite_shadow_frames"}
        assert shown[("nonsite_shadow_frames", "recorded")] >= 1  # the service's /metrics shows the shadow at work
        stop_shadow(settings, "coco", "sam")
        wait_until(lambda: "coco" not in fleet.shadows, 30, "the shadow ended")
        assert all(not shared.shadows for shared in fleet._shared.values())
    finally:
        stop.set()
        service.join(60)
        camera.kill()
    assert runner.counts["compared"] >= 2 and runner.counts["failed"] == 0, runner.counts
    print(f"shadow on the live car-park stream: {dict(runner.counts)}")

    # The candidate raised nothing: every pack's subjects come from the current weights.
    current = fleet._models["coco", "cpu"].weights_sha256
    store = settings.open_store()
    makers = {b.weights_sha256 for pack in store.pack_ids() for b in read_manifest(store, pack).key_frames["threshold"].subject}
    assert makers == {current}

    # What was recorded is the frame both looked at, with every disputed box named by the model that saw it.
    record = book.all()[-1]
    assert hashlib.sha256(book.picture(record.id).read_bytes()).hexdigest() == record.picture_sha256
    assert record.camera == "cam-lot" and record.version == candidate and "illegal_parking" in record.families
    assert any(b.seen_by != "both" for b in record.boxes)

    # An officer judges it at the desk, in Chinese: every box must be answered, and only once.
    base, ctx = server
    desk = login(create_app(ctx), "wang", "zh-CN")
    picture = desk.get(f"/shadow/coco/{record.id}.jpg")
    assert picture.headers["content-type"] == "image/jpeg" and hashlib.sha256(picture.content).hexdigest() == record.picture_sha256
    truth = ["false" if b.seen_by == "candidate" else "real" for b in record.boxes]  # this officer sides with the current model
    partial = desk.post(f"/shadow/coco/{record.id}", data={f"box{n}": v for n, v in enumerate(truth[:-1])}, follow_redirects=False)
    assert partial.status_code == 422 and "请判断每一个框" in partial.text
    page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 1000})
    log_in(page, base, "wang")
    page.click("nav >> text=模型比对")
    form = page.locator(f"form[action='/shadow/coco/{record.id}']")
    assert form.locator("rect").count() == len(record.boxes)
    form.scroll_into_view_if_needed()
    page.screenshot(path=str(OUTPUT / "shadow-waiting.png"), full_page=False)
    for number, answer in enumerate(truth):
        form.locator(f"input[name=box{number}][value={answer}]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{base}/shadow#coco")
    assert page.locator(f"form[action='/shadow/coco/{record.id}']").count() == 0
    assert "已判断 1 处" in page.inner_text("main")
    page.screenshot(path=str(OUTPUT / "shadow-judged.png"), full_page=False)
    again = desk.post(f"/shadow/coco/{record.id}", data={f"box{n}": v for n, v in enumerate(truth)}, follow_redirects=False)
    assert again.status_code == 409 and "已被判断" in again.text
    assert desk.get("/shadow/coco/..%2Fversions.jpg").status_code in (404, 422)
    judged = book.get(record.id)
    assert judged.judgement.by == "wang" and judged.right()["current"] == sum(b.seen_by != "both" for b in record.boxes)
    with settings.open_index().engine.connect() as conn:
        entry = conn.execute(select(audit).where(audit.c.action == "model.shadow_judged")).one()
    assert entry.actor == "wang" and record.id in entry.target

    # The judged picture is now in the site evaluation set, labelled with the boxes the officer said are real.
    sets = build_sets(settings, "coco", tmp_path / "learn")
    assert sets.eval_set.pictures[record.picture_sha256]["shadow"] == {record.id: book.get(record.id).digest()}
    folder = sets.site_eval["illegal_parking"]
    labels = (folder / "labels" / f"shadow-{record.id}.txt").read_text().splitlines()
    assert len(labels) == truth.count("real")
    site, _ = score(settings, "coco", None, sets)
    candidate_site, _ = score(settings, "coco", ModelLine(settings.data_dir / "models", "coco").folder / f"v{candidate}" / "weights.pt", sets)
    print(f"judged picture ({len(record.boxes)} boxes, {truth.count('real')} real): current precision {site['illegal_parking'].precision:.3f} "
          f"recall {site['illegal_parking'].recall:.3f}; candidate precision {candidate_site['illegal_parking'].precision:.3f} "
          f"recall {candidate_site['illegal_parking'].recall:.3f}")
    assert site["illegal_parking"].truths == sum(v == "real" and b.class_name in ("car", "truck", "bus", "motorcycle", "bicycle")
                                                for v, b in zip(truth, record.boxes))

    # The supervisors' models page keeps the score the officers' page does not show.
    models = login(create_app(ctx), "sam", "zh-CN").get("/models")
    assert f"影子运行版本 {candidate}：已判断 1 处分歧" in models.text

    # A judged record edited afterwards, or its picture swapped, is refused rather than scored.
    path = book.folder / f"{record.id}.json"
    sealed = path.read_text()
    path.write_text(sealed.replace('"real": [true', '"real": [false', 1))
    with pytest.raises(ShadowError, match="changed since it joined"):
        build_sets(settings, "coco", tmp_path / "learn-edited")
    path.write_text(sealed)
    book.picture(record.id).write_bytes(book.picture(record.id).read_bytes() + b"\0")
    with pytest.raises(ShadowError, match="not the picture that was judged"):
        build_sets(settings, "coco", tmp_path / "learn-swapped")
    path.unlink()  # nor may a judged picture of the set simply disappear from it
    with pytest.raises(ShadowError, match="no shadow disagreement"):
        build_sets(settings, "coco", tmp_path / "learn-gone")


def test_promoting_the_version_in_shadow_ends_its_shadow(settings, candidate):
    line = ModelLine(settings.data_dir / "models", "coco")
    with pytest.raises(ModelStoreError, match="is current"):
        line.start_shadow(0, "sam")
    line.start_shadow(candidate, "sam")
    assert line.state().shadow == candidate
    line.promote(candidate, "sam", "chosen by hand for this test")
    state = line.state()
    assert state.shadow is None and [e.action for e in state.history][-2:] == ["promoted", "shadow_stopped"]
    line.start_shadow(0, "sam")  # the shipped version may now run in shadow of the promoted one
    assert line.state().shadow == 0
    with pytest.raises(ModelStoreError, match="no version 9"):
        line.start_shadow(9, "sam")
