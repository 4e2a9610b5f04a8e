"""The gap map in a real headless Chromium (Debian's), with the network closed to anything but
127.0.0.1: it loads, draws the villages, and a click on a village opens its popup."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
# the README's screenshot is refreshed only when asked: BUQUE_UPDATE_SCREENSHOT=1 pytest ...
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "gap-map.png"


@pytest.fixture(scope="module")
def page(live):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (setup.sh installs it)")
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})

        def route(r):
            if r.request.url.startswith("http://127.0.0.1"):
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        pg.route("**/*", route)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(f"{live.url}/map")
        pg.wait_for_function("() => window.buqueReady === true", timeout=60_000)
        pg.wait_for_function(
            "() => document.querySelector('.maplibregl-canvas') && "
            "window.buqueMap && window.buqueMap.loaded() && window.buqueMap.areTilesLoaded()",
            timeout=60_000)
        yield pg, outside, errors
        browser.close()


def test_map_loads_offline_and_draws_villages(page, tmp_path) -> None:
    pg, outside, errors = page
    assert not errors
    assert outside == []  # nothing outside 127.0.0.1 was even asked for
    n = pg.evaluate("window.buqueMap.queryRenderedFeatures({layers: ['villages']}).length")
    assert n > 20
    assert "基础设施缺口图" in pg.inner_text("#panel")
    shot = SCREENSHOT if os.environ.get("BUQUE_UPDATE_SCREENSHOT") == "1" else tmp_path / "map.png"
    pg.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000  # a drawn map, not a blank page


def test_click_on_a_village_opens_its_popup(page, tables) -> None:
    pg, _, _ = page
    # a village with a gap, and where it is drawn on screen
    hit = pg.evaluate("""() => {
        const m = window.buqueMap;
        const f = m.queryRenderedFeatures({layers: ['villages']})
                   .find(f => f.properties.n_missing > 0);
        const p = m.project(f.geometry.coordinates);
        return {code: f.properties.code, x: p.x, y: p.y};
    }""")
    box = pg.locator("#map").bounding_box()
    pg.mouse.click(box["x"] + hit["x"], box["y"] + hit["y"])
    popup = pg.locator(".maplibregl-popup-content")
    popup.wait_for(timeout=20_000)
    text = popup.inner_text()
    row = tables.villages.set_index("code").loc[hit["code"]]
    assert hit["code"] in text
    assert "缺" in text  # a missing indicator is shown as such
    first_missing = row["missing"].split(",")[0]
    label = {"road": "通硬化路", "water": "饮水安全", "power": "通生产生活用电",
             "clinic": "标准化村卫生室", "broadband": "通光纤和4G"}[first_missing]
    assert label in text


def test_village_names_are_labelled_offline(page, tables) -> None:
    """Names drawn with the browser's fonts (no glyph server): from zoom 11, without overlaps,
    each label the name of a village drawn at that place; the toggle hides them."""
    pg, outside, errors = page
    pg.evaluate("""() => new Promise((done) => {
        const m = window.buqueMap;
        const f = m.queryRenderedFeatures({layers: ['villages']})[0];
        m.once('idle', () => setTimeout(done, 300));
        m.jumpTo({center: f.geometry.coordinates, zoom: 13});
    })""")
    labels = pg.evaluate("""() => [...document.querySelectorAll('.village-label')].map((el) => {
        const r = el.getBoundingClientRect();
        return {code: el.dataset.code, text: el.textContent, box: [r.left, r.top, r.right, r.bottom]};
    })""")
    assert labels, "no village labels at zoom 13"
    names = tables.villages.set_index("code")["name"]
    for lab in labels:
        assert lab["text"] == names.loc[lab["code"]]
    boxes = [lab["box"] for lab in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = a[0] < b[2] - 1 and a[2] > b[0] + 1 and a[1] < b[3] - 1 and a[3] > b[1] + 1
            assert not overlap, (a, b)
    pg.click("#show-labels")
    assert pg.evaluate("document.querySelectorAll('.village-label').length") == 0
    pg.click("#show-labels")
    assert pg.evaluate("document.querySelectorAll('.village-label').length") == len(labels)
    assert outside == [] and not errors
