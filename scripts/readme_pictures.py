"""Make the README's pictures: a demo overlay, an ``eft inspect`` contact sheet and a
screenshot of the review app in headless Chromium.

    python scripts/readme_pictures.py            # writes docs/images/*.png

Runs ``eft demo`` (12 people, seconds) into a temporary folder, copies the overlay of
its worst rejected fit, draws ``eft inspect fits.h5 --png``, then serves ``eft review``
on it in-process and photographs the fit view of the worst fit with Playwright driving
Debian's ``/usr/bin/chromium`` (``apt-get install chromium``; Playwright from the
``dev`` extra, no browser download).  Re-run it whenever the pictures should change;
``--no-browser`` (no Chromium here) redraws the first two and keeps the screenshots.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"


def _optimise(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.save(path, format="PNG", optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(OUT), help="folder for the PNGs")
    ap.add_argument("--no-browser", action="store_true",
                    help="only the overlay and the contact sheet (keep the screenshots)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)
    from eft.annotations import read_columns
    from eft.annotations.pictures import contact_sheet
    from eft.jobs.demo import run_demo
    from eft.jobs.overlays import overlay_choice, overlay_name
    from eft.review.app import ReviewConfig, create_app
    from eft.review.background import live_server

    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        print(run_demo(demo, n_people=12, progress=False))
        header, cols = read_columns(demo / "fits.h5")
        fits = [a.fit for a in cols.to_annotations()]
        first = fits[overlay_choice(fits, 1)[0]]  # the worst rejected fit (else accepted)
        shutil.copy(demo / "overlays" / overlay_name(first.exemplar_id),
                    out / "demo_overlay.png")
        contact_sheet(header, cols, out / "inspect_sheet.png", worst=4,
                      source=demo / "fits.h5")
        if args.no_browser:
            return _optimised(out, ("demo_overlay.png", "inspect_sheet.png"))
        app = create_app(ReviewConfig(annotations=demo / "fits.json",
                                      images=demo / "dataset" / "images",
                                      db=Path(tmp) / "review.sqlite", annotator="alice",
                                      overlay_size=320))
        from playwright.sync_api import expect, sync_playwright

        with live_server(app) as (url, _), sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(url + "/")
            expect(page.locator("#queue-body tr")).to_have_count(12)
            page.screenshot(path=str(out / "review_queue.png"))
            page.keyboard.press("Enter")
            expect(page.locator("#fit-view")).to_have_attribute("data-ready", "true")
            page.screenshot(path=str(out / "review_app.png"))
            browser.close()
    return _optimised(out, ("demo_overlay.png", "inspect_sheet.png", "review_app.png",
                            "review_queue.png"))


def _optimised(out: Path, names: tuple[str, ...]) -> int:
    for name in names:
        _optimise(out / name)
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
