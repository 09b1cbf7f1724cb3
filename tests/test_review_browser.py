"""The review app in a real browser: headless Chromium (Debian's ``chromium`` package)
driven by Playwright, on the annotations ``eft demo`` writes.

Skipped, with the reason shown, when Playwright or /usr/bin/chromium is missing locally;
on CI (``CI=true``) that is a failure (``.ci/run`` installs chromium).  The screenshot
is saved under ``$EFT_TEST_ARTIFACTS`` (else pytest's tmp folder) and its path printed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import live_server, require, require_module

CHROMIUM = "/usr/bin/chromium"
SIZE = 256  # overlay tile px


@pytest.fixture(scope="module")
def sync_playwright():
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        sync_playwright = expect = None
    require(sync_playwright is not None,
            "playwright is not installed (pip install -e '.[dev]'; no 'playwright install')")
    require(Path(CHROMIUM).is_file(),
            f"{CHROMIUM} not found (apt-get install chromium; .ci/run does it on CI)")
    for mod in ("fastapi", "uvicorn"):
        require_module(mod, "the review extra")
    return sync_playwright, expect


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``eft demo`` with 4 people: ``(fits.json, image root)``."""
    from eft.jobs.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out, n_people=4, progress=False)
    return out / "fits.json", out / "dataset" / "images"


def _artifacts(tmp_path: Path) -> Path:
    env = os.environ.get("EFT_TEST_ARTIFACTS")
    folder = Path(env).expanduser() if env else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_accept_and_reject_with_the_keyboard(sync_playwright, demo, tmp_path):
    from PIL import Image

    from eft.render.mesh import DEFAULT_COLOR
    from eft.review import ReviewDB, latest_decisions
    from eft.review.app import ReviewConfig, create_app

    fits_json, images = demo
    sync_playwright, expect = sync_playwright
    db_path = tmp_path / "review.sqlite"
    app = create_app(ReviewConfig(annotations=fits_json, images=images, db=db_path,
                                  annotator="browser-test", overlay_size=SIZE))
    with live_server(app) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        console_errors: list[str] = []
        page.on("console", lambda m: console_errors.append(m.text)
                if m.type == "error" else None)
        page.on("pageerror", lambda e: console_errors.append(str(e)))
        page.goto(url + "/")
        # (The page's CSP forbids eval, so waits use locators, not wait_for_function.)
        expect(page.locator("#queue-body tr")).to_have_count(4)
        ids = [page.locator("#queue-body tr").nth(k).get_attribute("data-id")
               for k in range(4)]
        expect(page.locator("#progress-text")).to_contain_text("reviewed 0/4")
        assert page.locator("#f-status").input_value() == "unreviewed"  # the default
        page.select_option("#f-status", "all")  # here: walk back over decided fits too
        expect(page.locator("#queue-body tr")).to_have_count(4)
        page.screenshot(path=str(_artifacts(tmp_path) / "review_queue.png"))
        status = page.locator("#fit-status")

        def on_fit(fit_id: str) -> None:
            expect(page.locator("#fit-title")).to_have_text(fit_id)
            expect(page.locator("#overlay-wait")).to_be_hidden()
            assert page.eval_on_selector("#overlay", "i => i.complete && i.naturalWidth > 0")

        page.keyboard.press("Enter")  # open the worst fit
        on_fit(ids[0])
        page.keyboard.press("a")  # accept -> the next fit opens
        on_fit(ids[1])
        page.keyboard.press("r")  # reject -> the next fit opens
        on_fit(ids[2])
        assert latest_decisions(db_path) == {ids[0]: "accept", ids[1]: "reject"}
        page.keyboard.press("u")  # undo the reject: back on that fit, unreviewed
        on_fit(ids[1])
        expect(status).to_have_attribute("data-status", "unreviewed")
        assert latest_decisions(db_path) == {ids[0]: "accept"}
        page.keyboard.press("r")
        on_fit(ids[2])
        page.keyboard.press("k")  # previous
        on_fit(ids[1])
        page.keyboard.press("n")  # note
        page.keyboard.type("hands look off")
        page.keyboard.press("Enter")
        expect(page.locator("#history")).to_contain_text("hands look off")
        page.keyboard.press("k")
        on_fit(ids[0])
        expect(status).to_have_attribute("data-status", "accepted")
        expect(page.locator("#progress-text")).to_contain_text("reviewed 2/4")
        shot = _artifacts(tmp_path) / "review_fit_view.png"
        page.screenshot(path=str(shot), full_page=True)
        box = page.locator("#overlay").bounding_box()
        natural = page.eval_on_selector("#overlay", "i => [i.naturalWidth, i.naturalHeight]")
        assert console_errors == []
        browser.close()
    print(f"\nscreenshots: {shot} (fit view), {shot.with_name('review_queue.png')} (queue)")

    # The database holds both keyboard decisions (and the full history around them).
    assert latest_decisions(db_path) == {ids[0]: "accept", ids[1]: "reject"}
    rows = ReviewDB(db_path).history()
    assert [(r.fit_id, r.decision) for r in rows] == [
        (ids[0], "accept"), (ids[1], "reject"), (ids[1], "undo"), (ids[1], "reject"),
        (ids[1], "note")]
    assert {r.annotator for r in rows} == {"browser-test"}
    assert rows[4].note == "hands look off" and rows[2].undoes == rows[1].id

    # The screenshot shows the overlay: the <img> region (scaled to the window) equals
    # the served panel, and the panel's first tile is mostly covered by the mesh colour.
    assert natural == [3 * SIZE + 8, SIZE]
    assert abs(box["width"] / box["height"] - natural[0] / natural[1]) < 0.02
    shot_png = Image.open(shot).convert("RGB")
    x0, y0 = round(box["x"]), round(box["y"])
    region = shot_png.crop((x0, y0, x0 + round(box["width"]), y0 + round(box["height"])))
    region = np.asarray(region.resize(tuple(natural), Image.BILINEAR)).astype(float)
    served = app.state.review.overlays.path(app.state.review.catalog.find(ids[0]))
    panel = np.asarray(Image.open(io.BytesIO(served.read_bytes())).convert("RGB")).astype(float)
    assert region.shape == panel.shape
    assert np.abs(region - panel).mean() < 6.0
    mesh = np.array(DEFAULT_COLOR) * 255
    tile = panel[:, :SIZE]
    blueish = (tile[..., 2] > tile[..., 0] + 25) & (np.abs(tile - mesh).sum(-1) < 150)
    assert blueish.mean() > 0.05, f"mesh colour covers only {blueish.mean():.1%} of the tile"


# -- no blind decisions -------------------------------------------------------------------

def _start(pw, url, width=1280, height=900):
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    return browser, page, errors


def test_decisions_wait_for_the_overlay_and_ignore_key_repeat(sync_playwright, demo,
                                                                tmp_path):
    import threading

    from eft.review import latest_decisions
    from eft.review.app import ReviewConfig, create_app

    fits_json, images = demo
    sync_playwright, expect = sync_playwright
    db_path = tmp_path / "review.sqlite"
    app = create_app(ReviewConfig(annotations=fits_json, images=images, db=db_path,
                                  annotator="browser-test", overlay_size=SIZE))
    state = app.state.review
    gate = threading.Event()
    asked: list[str] = []
    real_get = state.overlays.get
    cat = state.catalog
    first = cat.ids[cat.ordered("quality", np.ones(len(cat), bool))[0]]  # worst first

    def slow_get(i):  # the first fit's overlay arrives only when the test says so
        asked.append(cat.ids[i])
        if cat.ids[i] == first:
            assert gate.wait(30)
        return real_get(i)

    state.overlays.get = slow_get
    with live_server(app) as (url, _), sync_playwright() as pw:
        browser, page, errors = _start(pw, url)
        rows = page.locator("#queue-body tr")
        expect(rows).to_have_count(4)
        ids = [rows.nth(k).get_attribute("data-id") for k in range(4)]
        page.keyboard.press("Enter")
        expect(page.locator("#fit-title")).to_have_text(ids[0])
        expect(page.locator("#fit-view")).to_have_attribute("data-ready", "false")
        for key in "aaarf":  # five quick presses while the overlay is still drawing
            page.keyboard.press(key)
        expect(page.locator("#toast")).to_contain_text("wait for the overlay")
        assert latest_decisions(db_path) == {}
        gate.set()
        expect(page.locator("#fit-view")).to_have_attribute("data-ready", "true")
        # the next overlays were fetched ahead (at most 3), before anyone opened them
        expect(page.locator("#fit-view")).to_have_attribute("data-ready", "true")
        page.wait_for_timeout(500)
        assert ids[0] == first and set(asked) == set(ids) and len(asked) == 4
        page.keyboard.down("a")  # accept, then hold the key down: repeats decide nothing
        expect(page.locator("#fit-title")).to_have_text(ids[1])
        expect(page.locator("#fit-view")).to_have_attribute("data-ready", "true")
        page.keyboard.down("a")  # auto-repeat (the key is still down)
        page.keyboard.down("a")
        page.wait_for_timeout(300)
        page.keyboard.up("a")
        assert latest_decisions(db_path) == {ids[0]: "accept"}
        expect(page.locator("#fit-title")).to_have_text(ids[1])
        page.keyboard.press("r")  # a fresh press decides
        expect(page.locator("#fit-title")).to_have_text(ids[2])
        assert latest_decisions(db_path) == {ids[0]: "accept", ids[1]: "reject"}
        assert errors == []
        browser.close()


def test_missing_image_banner_and_confirmation(sync_playwright, demo, tmp_path):
    import shutil

    from eft.review import latest_decisions
    from eft.review.app import ReviewConfig, create_app

    fits_json, images = demo
    sync_playwright, expect = sync_playwright
    root = tmp_path / "images"
    shutil.copytree(images, root)
    from eft.review.catalog import Catalog

    cat = Catalog.load(fits_json)
    victim = cat.ids[cat.ordered("quality", np.ones(len(cat), bool))[0]]  # the worst fit
    name = cat.image_ref(cat.find(victim))[1]
    (root / name).unlink()  # its image vanished
    db_path = tmp_path / "review.sqlite"
    app = create_app(ReviewConfig(annotations=fits_json, images=root, db=db_path,
                                  annotator="browser-test", overlay_size=SIZE))
    with live_server(app) as (url, _), sync_playwright() as pw:
        browser, page, errors = _start(pw, url)
        expect(page.locator("#queue-body tr")).to_have_count(4)
        page.keyboard.press("Enter")
        expect(page.locator("#fit-title")).to_have_text(victim)
        banner = page.locator("#image-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("missing")
        expect(page.locator("#fit-view")).to_have_attribute("data-ready", "true")
        page.keyboard.press("a")  # first press: asks for a confirmation
        expect(banner).to_have_class("banner confirm")
        expect(banner).to_contain_text("press a again", ignore_case=True)
        assert latest_decisions(db_path) == {}
        page.keyboard.press("x")  # any other key withdraws the question
        expect(banner).to_have_class("banner")
        page.keyboard.press("a")
        page.keyboard.press("a")  # confirmed
        expect(page.locator("#fit-title")).not_to_have_text(victim)
        assert latest_decisions(db_path) == {victim: "accept"}
        expect(banner).to_be_hidden()  # the next fit has its image
        assert errors == []
        browser.close()


def test_queue_defaults_memory_and_layout(sync_playwright, demo, tmp_path):
    from eft.review import latest_decisions
    from eft.review.app import ReviewConfig, create_app

    fits_json, images = demo
    sync_playwright, expect = sync_playwright
    db_path = tmp_path / "review.sqlite"
    app = create_app(ReviewConfig(annotations=fits_json, images=images, db=db_path,
                                  annotator="browser-test", overlay_size=SIZE))
    cat = app.state.review.catalog
    with live_server(app) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        page.goto(url + "/")
        rows = page.locator("#queue-body tr")
        expect(rows).to_have_count(4)
        assert page.locator("#f-status").input_value() == "unreviewed"
        ids = [rows.nth(k).get_attribute("data-id") for k in range(4)]
        # worst first: the fits the automatic rules rejected come first
        accepted = [bool(cat.columns.quality["accepted"][cat.find(i)]) for i in ids]
        assert accepted == sorted(accepted)
        page.keyboard.press("Enter")
        expect(page.locator("#fit-view")).to_have_attribute("data-ready", "true")
        # the tiles grow with the window: wider than the panel's natural size
        box = page.locator("#overlay").bounding_box()
        assert box["width"] > 1.4 * (3 * SIZE + 8)
        assert box["y"] + box["height"] <= 768 + 1  # and the whole panel is on screen
        page.keyboard.press("a")
        expect(page.locator("#fit-title")).to_have_text(ids[1])
        page.keyboard.press("q")
        expect(rows).to_have_count(3)  # the accepted fit left the "unreviewed" queue
        page.select_option("#f-sort", "id")
        expect(rows.first).to_have_attribute("data-id", sorted(ids[1:])[0])
        # a new page in the same browser remembers the filters ...
        page2 = context.new_page()
        page2.goto(url + "/")
        expect(page2.locator("#queue-body tr")).to_have_count(3)
        assert page2.locator("#f-sort").input_value() == "id"
        assert page2.locator("#f-status").input_value() == "unreviewed"
        # ... and "c" continues with the fit last opened (ids[1], still unreviewed)
        page2.keyboard.press("c")
        expect(page2.locator("#fit-title")).to_have_text(ids[1])
        assert latest_decisions(db_path) == {ids[0]: "accept"}
        # a narrow window: nothing overflows the page sideways
        page2.keyboard.press("q")
        page2.set_viewport_size({"width": 380, "height": 700})
        expect(page2.locator("#queue-body tr")).to_have_count(3)
        wide, inner = page2.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert wide <= inner, f"page is {wide}px wide in a {inner}px window"
        browser.close()
