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


def keep_on_server(pg, outside: list[str]) -> None:
    """Let the page reach this machine only; what it asks elsewhere is refused and noted in
    ``outside`` (the map must work offline)."""

    def route(r):
        if r.request.url.startswith("http://127.0.0.1"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    pg.route("**/*", route)


@pytest.fixture(scope="module")
def page(live):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (setup.sh installs it)")
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})

        keep_on_server(pg, outside)
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


def _expected_class(row) -> str:
    statuses = [row.get(k) for k in ("road", "water", "power", "clinic", "broadband")]
    return "gaps" if "missing" in statuses else "unverified" if "unknown" in statuses else "met"


def _pixel(pg, x: float, y: float, tmp_path) -> tuple[int, int, int]:
    from PIL import Image

    shot = tmp_path / "px.png"
    box = pg.locator("#map").bounding_box()
    pg.screenshot(path=str(shot), clip={"x": box["x"] + x - 1, "y": box["y"] + y - 1,
                                        "width": 3, "height": 3})
    return Image.open(shot).convert("RGB").getpixel((1, 1))


def test_unverified_village_is_drawn_apart_from_met(page, tables, tmp_path) -> None:
    """0 missing and 1 unknown is 无缺口，待核实 (grey), not green like a fully met village."""
    pg, outside, errors = page
    want = {r["code"]: _expected_class(r) for r in tables.villages.to_dict("records")}
    colours = {}
    for cls in ("unverified", "met"):
        code = next(c for c, k in want.items() if k == cls)
        row = tables.villages.set_index("code").loc[code]
        pg.evaluate("""([lon, lat]) => new Promise((done) => {
            const m = window.buqueMap;
            document.querySelectorAll('.maplibregl-popup').forEach((p) => p.remove());
            m.once('idle', () => setTimeout(done, 300));
            m.jumpTo({center: [lon, lat], zoom: 15});
        })""", [row["ref_lon"], row["ref_lat"]])
        hit = pg.evaluate("""(code) => {
            const m = window.buqueMap;
            const f = m.queryRenderedFeatures({layers: ['villages']})
                       .find((f) => f.properties.code === code);
            const p = m.project(f.geometry.coordinates);
            return {cls: f.properties.gap_class, x: p.x, y: p.y};
        }""", code)
        assert hit["cls"] == cls
        colours[cls] = _pixel(pg, hit["x"], hit["y"], tmp_path)
    grey, green = colours["unverified"], colours["met"]
    assert max(abs(a - b) for a, b in zip(grey, (0xa6, 0xa6, 0xa6), strict=True)) <= 12, grey
    assert max(abs(a - b) for a, b in zip(green, (0x1a, 0x98, 0x50), strict=True)) <= 12, green
    legend = pg.inner_text("#legend")
    assert "无缺口，待核实" in legend and "无缺口" in legend
    assert outside == [] and not errors


def test_legend_shows_every_symbol_drawn(page) -> None:
    pg, _, _ = page
    layers = pg.evaluate("window.buqueConfig.layers")
    assert {"water", "clinics", "broadband", "power", "boundaries"} <= set(layers)
    legend = pg.inner_text("#legend")
    for text in ("供水点", "卫生室", "通信基站", "变压器等", "电力线", "县界", "乡镇界",
                 "行政村（大点）", "自然村（小点）", "硬化路"):
        assert text in legend, text


def test_one_popup_at_a_time(page) -> None:
    pg, _, errors = page
    codes = pg.evaluate("""() => window.buqueMap.queryRenderedFeatures({layers: ['villages']})
                          .slice(0, 2).map((f) => [f.properties.code, f.geometry.coordinates])""")
    pg.evaluate("""async (codes) => { for (const [c, at] of codes) await popup(c, at); }""", codes)
    pg.wait_for_timeout(300)
    assert pg.locator(".maplibregl-popup").count() == 1
    assert codes[-1][0] in pg.inner_text(".maplibregl-popup-content")
    assert not errors


def test_popup_names_the_failed_condition(page, tables) -> None:
    pg, _, errors = page
    g = tables.gaps[tables.gaps["failed"].notna()].iloc[0]
    row = tables.villages.set_index("code").loc[g["village_code"]]
    pg.evaluate("([c, at]) => popup(c, at)", [g["village_code"], [row["ref_lon"], row["ref_lat"]]])
    pg.wait_for_function("(t) => (document.querySelector('.maplibregl-popup-content') || {})"
                         ".innerText?.includes(t)", arg=g["failed"], timeout=20_000)
    assert pg.locator(".maplibregl-popup").count() == 1
    assert not errors


def test_english_mode_translates_every_ui_string(page) -> None:
    import re

    pg, _, errors = page
    pg.evaluate("document.querySelectorAll('.maplibregl-popup').forEach((p) => p.remove())")
    pg.click("#lang")
    try:
        assert pg.inner_text("#lang") == "中文"  # the way back is named in its language
        panel = pg.inner_text("#panel").replace("中文", "", 1)
        options = pg.evaluate("[...document.querySelectorAll('#panel option')].map(o => o.text)")
        assert "all" in options and "全部" not in options
        assert not re.search(r"[\u3000-\u9fff\uff00-\uffef]", panel), panel
        assert "lang=en" in pg.get_attribute("#list-xlsx", "href")
    finally:
        pg.click("#lang")
    assert "全部" in pg.evaluate("[...document.querySelectorAll('#panel option')].map(o => o.text)")
    assert not errors


def test_favicon_is_served(page, live) -> None:
    import httpx

    pg, _, _ = page
    r = httpx.get(f"{live.url}/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/x-icon"
    assert r.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    hrefs = pg.evaluate("[...document.querySelectorAll('link[rel=icon]')].map(l => l.href)")
    assert any(h.endswith("/favicon.ico") for h in hrefs)
    for h in hrefs:
        assert httpx.get(h).status_code == 200, h


def test_xlsx_link_downloads_the_ledger_of_the_view(page, live, tables) -> None:
    """The map's XLSX link: the Chinese ledger of the county/township chosen (as exported)."""
    import io

    import httpx
    import openpyxl

    pg, _, errors = page
    town = "Canillo"
    pg.select_option("#county", "Andorra")
    pg.select_option("#township", town)
    try:
        href = pg.evaluate("document.getElementById('list-xlsx').href")
        assert href.startswith(live.url) and "f=xlsx" in href
        r = httpx.get(href, timeout=60)
        assert r.status_code == 200
        wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
        assert wb.sheetnames[:2] == ["说明", "汇总"] and "通硬化路" in wb.sheetnames
        rows = list(wb["饮水安全"].iter_rows(values_only=True))
        assert rows[1][:5] == ("序号", "县（市、区）", "乡（镇）", "村代码", "村名")
        v = tables.villages
        want = set(v.loc[(v["township"] == town) & (v["water"] == "missing"), "code"])
        assert want and {r[3] for r in rows[2:] if isinstance(r[0], int | float)} == want
    finally:
        pg.select_option("#county", "")
    assert not errors


def test_bundle_link_shows_progress_then_downloads_the_zip(page, live, demo_run, tables,
                                                           tmp_path) -> None:
    """The bundle link runs an export job: its queue place or progress is shown while it
    runs, then the browser downloads a zip holding the county's map (PDF and PNG), ledger,
    GeoPackage, manifest and read-me."""
    import json
    import zipfile

    import openpyxl
    import pyogrio

    pg, outside, errors = page
    pg.evaluate("""() => {
        window.exportSeen = [];
        const el = document.getElementById('export-step');
        new MutationObserver(() => window.exportSeen.push(
            [document.getElementById('export-status').dataset.state || '', el.textContent,
             document.getElementById('export-progress').value]))
          .observe(el, {childList: true, characterData: true, subtree: true});
    }""")
    with pg.expect_download(timeout=180_000) as dl:
        pg.click("#export-bundle")
    path = tmp_path / "bundle.zip"
    dl.value.save_as(path)
    seen = pg.evaluate("window.exportSeen")
    under_way = [s for s in seen if s[0] in ("queued", "running")]
    assert under_way, seen  # the page showed the job while it ran
    assert any(s[0] == "running" and "%" in s[1] for s in seen), seen
    assert seen[-1][0] == "done" and seen[-1][2] == 1, seen
    assert not pg.is_hidden("#export-status")

    assert dl.value.suggested_filename.endswith(".zip")
    z = zipfile.ZipFile(path)
    assert z.testzip() is None  # every member's CRC checks out
    names = z.namelist()
    county = tables.villages["county"].dropna().unique()
    assert len(county) == 1  # the demo is one county: one zip, not a zip of zips
    want = {f"{county[0]}-补短板缺口图.pdf", f"{county[0]}-补短板缺口图.png",
            f"{county[0]}-补短板台账.xlsx", f"{county[0]}.gpkg", "manifest.json", "说明.txt"}
    assert set(names) == want, names
    assert z.read(f"{county[0]}-补短板缺口图.pdf")[:5] == b"%PDF-"
    assert z.read(f"{county[0]}-补短板缺口图.png")[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads(z.read("manifest.json"))
    assert manifest["run_id"] == json.loads((demo_run / "manifest.json").read_text())["run_id"]
    z.extract(f"{county[0]}-补短板台账.xlsx", tmp_path)
    z.extract(f"{county[0]}.gpkg", tmp_path)
    wb = openpyxl.load_workbook(tmp_path / f"{county[0]}-补短板台账.xlsx", read_only=True)
    assert wb.sheetnames[:2] == ["说明", "汇总"]
    gpkg = tmp_path / f"{county[0]}.gpkg"
    layers = [n for n, _ in pyogrio.list_layers(gpkg)]
    v = pyogrio.read_dataframe(gpkg, layer="villages" if "villages" in layers else layers[0])
    assert set(v["code"]) == set(tables.villages["code"])
    assert outside == [] and not errors


def test_ledger_filter_and_chart_hidden_for_one_unchecked_run(page) -> None:
    """The demo is one run not checked against a ledger: no filter, no chart button, no ring."""
    pg, _, errors = page
    assert pg.is_hidden("#discrepancy-box") and pg.is_hidden("#chart-open")
    assert pg.evaluate("window.buqueMap.getLayer('regressions') === undefined")
    assert not errors
