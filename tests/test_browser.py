"""The officer's day in real headless Chromium: log in, clear a queue by keyboard, run a case to closed,
export the dossier, draw a zone. Screenshots land in test-output/ for a person to look at."""
from __future__ import annotations

import hashlib
import io
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest
import uvicorn
import yaml

from nonsite.review_ui import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _wait_until(page, expression: str, timeout_s: float = 10.0) -> None:
    """Poll a condition through Playwright's evaluate: the pages' Content Security Policy forbids the
    string evaluation that wait_for_function relies on, and the test must run under that policy."""
    deadline = time.monotonic() + timeout_s
    while not _evaluate(page, expression):
        assert time.monotonic() < deadline, f"timed out waiting for: {expression}"
        time.sleep(0.05)


def _evaluate(page, expression: str):
    """The expression's value; False while the page is between two documents (a form post navigating)."""
    from playwright.sync_api import Error

    try:
        return page.evaluate(expression)
    except Error as exc:
        if "context was destroyed" in str(exc) or "navigat" in str(exc):
            return False
        raise


@pytest.fixture()
def server(review):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(review), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    while not instance.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", review
    instance.should_exit = True
    thread.join(timeout=5)


@pytest.fixture()
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        instance.close()


def log_in(page, base: str, name: str) -> None:
    """Log in, and from then on fail the test on any Content Security Policy violation of the pages."""
    page.on("console", lambda message: message.type == "error" and "Content Security Policy" in message.text
            and pytest.fail(f"the page broke its own security policy: {message.text}"))
    page.goto(f"{base}/queue")
    assert "/login" in page.url
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", f"{name}-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/queue")


def test_officer_clears_the_queue_with_the_keyboard_and_closes_a_case(server, browser):
    base, review = server
    page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    log_in(page, base, "alice")
    page.goto(f"{base}/queue?source=cam-carpark-wide")
    cards = page.locator("#queue .card")
    total = cards.count()
    assert total >= 20, f"only {total} packs from the whole-lot camera"
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUTPUT / "queue.png"))

    started = time.perf_counter()
    for n in range(20):
        if n % 4 == 3:
            page.keyboard.press("r")
            page.locator("#reasons").wait_for(state="visible")
            page.keyboard.press("1")  # false detection
        else:
            page.keyboard.press("c")
        _wait_until(page, f"document.querySelectorAll('#queue .card').length === {total - n - 1}")
    triage_s = time.perf_counter() - started
    (OUTPUT / "triage.txt").write_text(f"20 packs triaged by keyboard in {triage_s:.2f} s ({triage_s / 20:.3f} s per pack)\n")
    print(f"\n20 packs triaged by keyboard in {triage_s:.2f} s")
    statuses = [r.status for r in review.index.rows() if r.source_id == "cam-carpark-wide"]
    assert statuses.count("confirmed") == 15 and statuses.count("rejected") == 5

    # The detail view of the spill-over pack: key frames switch original/annotated, then C confirms it into a case.
    page.goto(f"{base}/queue?category=spillover_business")
    page.locator("#queue .card a").first.click()
    page.wait_for_selector("text=files verified")
    first_frame = page.locator("#frames img").first
    assert first_frame.get_attribute("src").endswith("annotated/first_seen.jpg")
    page.keyboard.press("o")
    assert first_frame.get_attribute("src").endswith("original/first_seen.jpg")
    page.keyboard.press("o")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUTPUT / "detail.png"), full_page=True)
    decided = page.url
    page.keyboard.press("c")
    page.wait_for_url(lambda url: url != decided)  # on to the next pending pack

    case_id = next(c["id"] for c in _cases(review) if c["category"] == "spillover_business")
    page.goto(f"{base}/cases/{case_id}")
    assert page.locator(".first").is_visible()  # first offence: propose a warning (首违不罚)
    assert page.locator("form[data-to=notified] select[name=notice_kind]").input_value() == "warning"
    for to, fields in (("notified", {"note": "warning notice issued"}),
                       ("rectification_due", {"deadline": "2026-12-01", "note": "clear the frontage by 1 Dec"}),
                       ("rechecked", {"note": "re-check from camera: umbrellas gone"}),
                       ("closed", {"note": "rectified after warning"})):
        form = page.locator(f"form[data-to={to}]")
        for name, value in fields.items():
            form.locator(f"[name={name}]").fill(value)
        if to == "closed":
            form.locator("select[name=outcome]").select_option("rectified")
        form.locator("button[type=submit]").click()
        if to == "closed":  # closing waits for a supervisor's approval (审批)
            page.wait_for_selector("#pending-approval")
            break
        _wait_until(page, f"document.getElementById('case-state')?.dataset.state === '{to}'")
    assert page.locator("#documents a").count() == 2  # the notice and the rectification order, numbered
    supervisor = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(supervisor, base, "sam")
    supervisor.goto(f"{base}/cases/{case_id}")
    supervisor.fill("#pending-approval input[name=opinion]", "同意结案")
    supervisor.click("#pending-approval button[value=true]")
    _wait_until(supervisor, "document.getElementById('case-state')?.dataset.state === 'closed'")
    supervisor.close()
    page.reload()
    assert page.locator("#documents a").count() == 3 and "{'" not in page.locator("#timeline").inner_text()  # words, not dicts
    page.screenshot(path=str(OUTPUT / "case.png"), full_page=True)

    with page.expect_download() as download_info:
        page.click("#dossier")
    archive = zipfile.ZipFile(io.BytesIO(Path(download_info.value.path()).read_bytes()))
    for line in archive.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    assert "rectified" in archive.read("summary.html").decode()


def _cases(review):
    from nonsite.review_ui.cases import list_cases

    return list_cases(review.engine)


def test_admin_draws_a_zone_on_a_recent_frame(server, browser):
    base, review = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, base, "ada")
    page.goto(f"{base}/admin/sources/cam-carpark-01")
    canvas = page.locator("#zone-canvas")
    _wait_until(page, "document.getElementById('zone-canvas').width > 400")  # the frame has loaded
    scale = page.evaluate("(c => c.clientWidth / c.width)(document.getElementById('zone-canvas'))")
    corners = [(100, 300), (300, 300), (300, 450), (100, 450)]
    for x, y in corners:
        canvas.click(position={"x": x * scale, "y": y * scale})
    assert page.locator("#points").text_content() == "4 points"
    page.fill("input[name=zone_id]", "front-row")
    page.select_option("select[name=rule_id]", "loading-lane-no-parking")
    page.screenshot(path=str(OUTPUT / "zone-editor.png"))
    page.click("#zone-form button[type=submit]")
    page.wait_for_selector("td:text('front-row')")
    saved = yaml.safe_load((review.sites_dir / "cam-carpark-01.yaml").read_text())
    zone = next(z for z in saved["zones"] if z["id"] == "front-row")
    assert [[round(x), round(y)] for x, y in zone["polygon"]] == [list(c) for c in corners]


def test_pack_page_asks_a_reason_labels_the_view_and_zooms_the_full_frame(server, browser):
    """R on the pack page asks for a reason (Esc cancels, 'other' needs a note), the view shown is always
    named, and a key frame opens at its natural size with zoom."""
    base, review = server
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(page, base, "alice")
    pack = page.locator("#queue .card").first.get_attribute("data-pack")
    page.goto(f"{base}/packs/{pack}")
    page.keyboard.press("r")
    page.locator("#reasons").wait_for(state="visible")
    page.keyboard.press("Escape")
    page.locator("#reasons").wait_for(state="hidden")
    page.keyboard.press("r")
    page.keyboard.press("5")  # 'other' without a note: refused in the page, nothing sent
    _wait_until(page, "document.getElementById('flash').className === 'error'")
    assert "needs a note" in page.locator("#flash").inner_text() and review.index.get(pack).status == "pending_review"
    page.keyboard.press("Escape")
    page.locator("#reasons").wait_for(state="hidden")  # keys reach the view switch only once the dialog is gone

    label = page.locator("#view-label")
    assert label.inner_text() == "annotated copy (boxes drawn)"
    page.keyboard.press("o")
    _wait_until(page, "document.getElementById('view-label').textContent.trim() === 'sealed original'")
    assert page.locator("[data-view=original]").get_attribute("aria-pressed") == "true"
    page.click("[data-view=annotated]")
    assert label.inner_text() == "annotated copy (boxes drawn)"

    page.locator("#frames img").first.click()
    full = page.locator("#zoom-image")
    _wait_until(page, "document.getElementById('zoom').open && document.getElementById('zoom-image').naturalWidth > 0")
    natural = full.evaluate("img => img.naturalWidth")
    _wait_until(page, f"document.getElementById('zoom-image').width === {natural}")  # full size: one image pixel per CSS pixel
    assert page.locator("#zoom-label").inner_text() == "annotated copy (boxes drawn) · 100 %"
    page.keyboard.press("+")
    assert full.evaluate("img => img.width") == round(natural * 1.5) and "150 %" in page.locator("#zoom-label").inner_text()
    page.click("[data-zoom=out]")
    page.click("[data-zoom=out]")
    assert full.evaluate("img => img.width") == round(natural / 1.5)
    page.keyboard.press("Escape")
    _wait_until(page, "!document.getElementById('zoom').open")
    assert review.index.get(pack).status == "pending_review"  # looking and cancelling decided nothing


def test_on_a_phone_a_card_is_decided_by_touch_and_undone_from_the_flash_in_sight(server, browser):
    """At 390 px: touch buttons on every card, no sideways scroll, and the Undo offered after a decision far
    down the list is on screen (the flash stays in sight), not at the top of a page scrolled away."""
    base, review = server
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    log_in(page, base, "alice")
    page.goto(f"{base}/queue?source=cam-carpark-wide")
    cards = page.locator("#queue .card")
    total = cards.count()
    assert total >= 12 and page.evaluate("document.documentElement.scrollWidth") <= 390
    far = cards.nth(10)
    pack = far.get_attribute("data-pack")
    far.locator("button[data-act=confirm]").tap()
    _wait_until(page, f"document.querySelectorAll('#queue .card').length === {total - 1}")
    assert review.index.get(pack).status == "confirmed" and page.evaluate("window.scrollY") > 844
    box = page.locator("#undo").bounding_box()
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= 844, f"the Undo button is out of sight: {box}"
    page.locator("#undo").tap()
    _wait_until(page, f"document.querySelectorAll('#queue .card').length === {total}")
    assert review.index.get(pack).status == "pending_review"
    page.goto(f"{base}/packs/{pack}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#confirm").bounding_box()["height"] >= 44 and page.locator("#view-label").is_visible()
