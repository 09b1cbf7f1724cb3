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

from tests.helpers import live_server

CHROMIUM = "/usr/bin/chromium"
SIZE = 256  # overlay tile px


def _require(ok: bool, reason: str) -> None:
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_playwright():
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        sync_playwright = expect = None
    _require(sync_playwright is not None,
             "playwright is not installed (pip install -e '.[dev]'; no 'playwright install')")
    _require(Path(CHROMIUM).is_file(),
             f"{CHROMIUM} not found (apt-get install chromium; .ci/run does it on CI)")
    for mod in ("fastapi", "uvicorn"):
        try:
            __import__(mod)
        except ImportError:
            _require(False, f"{mod} is not installed (the review extra)")
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

    # The screenshot shows the overlay: the <img> region equals the served panel, and the
    # panel's first tile is mostly covered by the mesh colour.
    assert natural == [3 * SIZE + 8, SIZE]
    shot_img = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    x0, y0 = round(box["x"]), round(box["y"])
    region = shot_img[y0:y0 + SIZE, x0:x0 + 3 * SIZE + 8]
    served = app.state.review.overlays.path(app.state.review.catalog.find(ids[0]))
    panel = np.asarray(Image.open(io.BytesIO(served.read_bytes())).convert("RGB")).astype(float)
    assert region.shape == panel.shape
    assert np.abs(region - panel).mean() < 3.0
    mesh = np.array(DEFAULT_COLOR) * 255
    tile = panel[:, :SIZE]
    blueish = (tile[..., 2] > tile[..., 0] + 25) & (np.abs(tile - mesh).sum(-1) < 150)
    assert blueish.mean() > 0.05, f"mesh colour covers only {blueish.mean():.1%} of the tile"
