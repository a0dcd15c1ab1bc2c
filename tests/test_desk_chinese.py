"""A Zhejiang officer's session in real Chromium, in Chinese: 王警官 logs in, searches a shop, triages
with the keyboard, undoes a decision, confirms, opens the shop register and exports to Excel (read
back with openpyxl). Every page is photographed in Chinese under test-output/zh/, and at a phone's
390 px under test-output/phone/, where no page may scroll sideways."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from nonsite.evidence.schema import packs_table
from nonsite.review_ui import add_user
from nonsite.review_ui.shops import save_shop

from .test_browser import OUTPUT, _wait_until, browser, server  # noqa: F401 - the same server and browser as the English flow

LICENCE = "91330102MA2H3X4Y5Z"
SHOP = {"licence": LICENCE, "name": "老王烧烤店", "address": "解放路 12 号", "contact": "王先生", "street": "湖滨街道", "grid": "湖滨 3 网格"}


def _seed(review) -> str:
    """王警官 (a supervisor) and 管理员 (an admin), and a shop in the register whose licence the spill-over pack names."""
    add_user(review.engine, "王警官", "王警官-password", "supervisor", display_name="王警官")
    add_user(review.engine, "管理员", "管理员-password", "admin")
    save_shop(review.engine, SHOP, "test")
    pack = next(r.pack_id for r in review.index.rows() if r.category == "spillover_business")
    with review.engine.begin() as conn:
        conn.execute(update(packs_table).where(packs_table.c.pack_id == pack).values(shop_licence=LICENCE, shop_name=SHOP["name"]))
    return pack


def _log_in(page, base: str, name: str) -> None:
    page.on("console", lambda message: message.type == "error" and "Content Security Policy" in message.text
            and pytest.fail(f"the page broke its own security policy: {message.text}"))
    page.goto(f"{base}/queue")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", f"{name}-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/queue")


def _shoot(page, folder: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_wang_triages_undoes_confirms_opens_the_register_and_exports_in_chinese(server, browser):
    base, review = server
    shop_pack = _seed(review)
    shots = OUTPUT / "zh"
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page.goto(f"{base}/login")
    assert page.locator("html").get_attribute("lang") == "zh-CN" and page.locator("h1").inner_text() == "nonsite · 执法人员登录"
    _shoot(page, shots, "login")
    _log_in(page, base, "王警官")
    assert page.locator("nav .who").inner_text() == "王警官 (主管)"
    assert page.locator("#zone").inner_text() == "所有时间均为 Asia/Shanghai (UTC+08:00)"

    page.fill("input[name=q]", "老王烧烤")  # one box: plate, shop, licence or case number
    page.click("#filters button")
    page.wait_for_url("**q=*")
    assert [c.get_attribute("data-pack") for c in page.locator("#queue .card").all()] == [shop_pack]
    assert "店外经营" in page.locator("#queue .card .cat").inner_text()
    _shoot(page, shots, "queue-search")

    page.goto(f"{base}/queue?source=cam-carpark-wide")
    cards = page.locator("#queue .card")
    total = cards.count()
    first = cards.first.get_attribute("data-pack")
    page.keyboard.press("c")
    _wait_until(page, f"document.querySelectorAll('#queue .card').length === {total - 1}")
    assert "已确认" in page.locator("#flash").inner_text() and page.locator("#undo").is_visible()
    page.keyboard.press("u")  # undo: the pack waits for review again
    _wait_until(page, f"document.querySelectorAll('#queue .card').length === {total}")
    assert review.index.get(first).status == "pending_review"
    page.keyboard.press("c")
    _wait_until(page, f"document.querySelectorAll('#queue .card').length === {total - 1}")
    page.keyboard.press("r")
    page.locator("#reasons").wait_for(state="visible")
    assert "误检" in page.locator("#reasons").inner_text()
    page.keyboard.press("1")
    _wait_until(page, f"document.querySelectorAll('#queue .card').length === {total - 2}")
    assert review.index.get(first).status == "confirmed"
    assert sorted(r.status for r in review.index.rows() if r.source_id == "cam-carpark-wide").count("rejected") == 1
    _shoot(page, shots, "queue")

    page.click("nav >> text=商户档案")
    page.fill("input[name=q]", "湖滨")
    page.click("form.filters button")
    page.click(f"a[href='/shops/{LICENCE}']")
    assert page.locator("h1").inner_text().startswith("老王烧烤店") and page.locator(f"a[href='/packs/{shop_pack}']").count() == 1
    _shoot(page, shots, "shop")

    page.goto(f"{base}/dashboard")
    with page.expect_download() as download:
        page.click("#export-packs-xlsx")
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("证据包", "类别", "摄像头") and len(rows) == 1 + len(review.index.rows())
    assert {r[1] for r in rows[1:]} >= {"违法停车", "店外经营"}

    for name, path in (("queue-decided", "/queue?status=decided"), ("pack", f"/packs/{shop_pack}"), ("cases", "/cases"),
                       ("case", f"/cases/{_any_case(review)}"), ("shops", "/shops"), ("map", "/map"), ("statistics", "/dashboard"),
                       ("cameras", "/cameras"), ("audit", "/audit"), ("account", "/account"), ("not-found", "/cases/987654")):
        page.goto(base + path)
        assert page.locator("html").get_attribute("lang") == "zh-CN", path
        _shoot(page, shots, name)
    assert "未找到" in page.locator("h1").inner_text()  # an error is a page in Chinese, not JSON

    admin = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 900})
    _log_in(admin, base, "管理员")
    for name, path in (("users", "/admin/users"), ("zones", "/admin/sources"), ("zone-editor", "/admin/sources/cam-carpark-wide")):
        admin.goto(base + path)
        _shoot(admin, shots, name)


def _any_case(review) -> int:
    from sqlalchemy import select

    from nonsite.evidence.schema import cases

    with review.engine.connect() as conn:
        return conn.execute(select(cases.c.id).limit(1)).scalar_one()


PHONE_PAGES = ("/queue", "/packs/{pack}", "/cases", "/cases/{case}", "/shops", "/shops/{licence}", "/map", "/dashboard", "/cameras",
               "/audit", "/account", "/admin/users", "/admin/sources")


def test_every_page_fits_a_phone_without_sideways_scrolling(server, browser):
    base, review = server
    pack = _seed(review)
    shots = OUTPUT / "phone"
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    _log_in(page, base, "管理员")
    buttons = page.locator("#queue .card .act button")
    assert buttons.count() >= 2 and buttons.first.bounding_box()["height"] >= 44  # touch buttons on every card
    buttons.first.tap()  # confirm the first card by touch
    _wait_until(page, "document.getElementById('flash').textContent.includes('已确认')")
    case = _any_case(review)
    wide = {}
    for path in PHONE_PAGES:
        page.goto(base + path.format(pack=pack, case=case, licence=LICENCE))
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            wide[path] = width
        name = path.strip("/").replace("/{", "-").replace("{", "").replace("}", "").replace("/", "-")
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert not wide, f"pages wider than the phone: {wide}"


def test_a_refused_decision_keeps_its_card_and_an_ended_session_leads_back_through_log_in(server, browser):
    from sqlalchemy import delete

    from nonsite.evidence.schema import sessions

    base, review = server
    _seed(review)
    page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 900})
    _log_in(page, base, "王警官")
    queue = f"{base}/queue?source=cam-carpark-wide"
    page.goto(queue)
    total = page.locator("#queue .card").count()
    victim = page.locator("#queue .card").first.get_attribute("data-pack")
    frame = review.store.root / victim / "original" / "threshold.jpg"
    frame.write_bytes(frame.read_bytes()[:-1] + b"\0")
    page.keyboard.press("c")
    _wait_until(page, "document.querySelector('#queue .card.failed') !== null")
    card = page.locator(f"#queue .card[data-pack='{victim}']")
    assert page.locator("#queue .card").count() == total and "未通过完整性校验" in card.locator(".problem").inner_text()
    assert review.index.get(victim).status == "pending_review"

    with review.engine.begin() as conn:  # the session ends on the server (logged out elsewhere, or idle)
        conn.execute(delete(sessions))
    page.keyboard.press("j")
    page.keyboard.press("c")
    page.wait_for_url("**/login?**")
    assert "error=expired" in page.url and "登录已过期" in page.locator(".login .error").inner_text()
    page.fill("input[name=username]", "王警官")
    page.fill("input[name=password]", "王警官-password")
    page.click("button[type=submit]")
    page.wait_for_url(queue)  # back where the officer was

    page.click("nav form button")  # log out; Back must not show the desk from a cache
    page.wait_for_url("**/login")
    page.go_back()
    page.wait_for_load_state()
    assert "/login" in page.url and page.locator("#queue").count() == 0
