"""Issue 17 in a real headless Chromium: a run whose every text field carries a script
(tests/hostile_world.py) is served; searching each village, opening its popup, the county and
township dropdowns, the labels and the HTML export run none of them. Each payload would call
``alert`` (recorded by a dialog handler) and set ``window.__pwned``; a CSP violation report
would mean data was parsed as markup somewhere, so none is allowed either."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import geopandas as gpd
import httpx
import pytest
from hostile_world import VILLAGES
from playwright.sync_api import sync_playwright

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from buque.api.app import create_app
from buque.api.settings import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ''}`));
"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (setup.sh installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class Watched:
    """A page with a dialog recorder, page-error list and CSP-violation list."""

    def __init__(self, browser, offline_to: str | None) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.add_init_script(WATCH)
        if offline_to:
            self.page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(
                offline_to) else r.abort())

    def assert_clean(self) -> None:
        pwned = self.page.evaluate("() => window.__pwned || null")
        csp = self.page.evaluate("() => window.__csp")
        assert pwned is None, pwned
        assert self.dialogs == []
        assert csp == [], csp
        assert self.errors == []


@pytest.fixture(scope="module")
def gap_map(browser, hostile_live):
    w = Watched(browser, "http://127.0.0.1")
    w.page.goto(f"{hostile_live}/map")
    w.page.wait_for_function("() => window.buqueReady === true", timeout=60_000)
    w.page.wait_for_function("() => window.buqueMap.loaded() && window.buqueMap.areTilesLoaded()",
                             timeout=60_000)
    yield w
    w.page.close()


def test_every_response_carries_the_security_headers(hostile_live) -> None:
    for path in ("/", "/map", "/map/config.json", "/collections/villages/items",
                 "/static/map.js", "/tiles/villages.json", "/no-such-page", "/docs"):
        r = httpx.get(hostile_live + path, timeout=30)
        csp = r.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp, (path, csp)
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0], (path, csp)
        assert "'unsafe-eval'" not in csp
        assert r.headers.get("x-content-type-options") == "nosniff", path
        assert r.headers.get("referrer-policy"), path
    assert "'sha256-" in httpx.get(hostile_live + "/docs").headers["content-security-policy"]


def test_search_and_popup_of_every_hostile_village(gap_map, hostile_run) -> None:
    pg = gap_map.page
    names = gpd.read_parquet(hostile_run / "villages.parquet").set_index("code")["name"]
    for code, _name, county, township, _ in VILLAGES:
        shown = names.loc[code]
        pg.evaluate("() => document.getElementById('results').replaceChildren()")
        pg.fill("#q", code if len(shown) > 100 else shown)  # the long one by its code
        pg.click("#search button")
        item = pg.locator("#results li").first
        item.wait_for(timeout=20_000)
        assert shown[:50] in item.inner_text()
        pg.evaluate("() => document.querySelectorAll('.maplibregl-popup').forEach(p => p.remove())")
        item.click()
        popup = pg.locator(".maplibregl-popup-content")
        popup.wait_for(timeout=20_000)
        text = popup.inner_text()
        assert shown[:200] in text and code in text  # shown as text
        assert county.strip()[:4] in text and township.strip()[:4] in text
        n = pg.evaluate("() => document.querySelectorAll('#panel img, #panel svg, #panel script, "
                        ".maplibregl-popup img, .maplibregl-popup svg, .maplibregl-popup script')"
                        ".length")
        assert n == 0
        gap_map.assert_clean()


def test_evidence_ids_in_popups_are_text(gap_map) -> None:
    pg = gap_map.page
    pg.evaluate("() => document.getElementById('results').replaceChildren()")
    pg.fill("#q", "张家村")
    pg.click("#search button")
    pg.locator("#results li").first.wait_for(timeout=20_000)
    pg.evaluate("() => document.querySelectorAll('.maplibregl-popup').forEach(p => p.remove())")
    pg.locator("#results li").first.click()
    popup = pg.locator(".maplibregl-popup-content")
    popup.wait_for(timeout=20_000)
    assert "<img src=x onerror=" in popup.inner_text()  # the road's id, as text
    gap_map.assert_clean()


def test_county_and_township_dropdowns_show_names_as_text(gap_map, hostile_run) -> None:
    pg = gap_map.page
    v = gpd.read_parquet(hostile_run / "villages.parquet")
    counties = sorted(set(v["county"].dropna()))
    got = pg.evaluate("() => [...document.querySelectorAll('#county option')].map(o => o.value)")
    assert sorted(got[1:]) == counties
    for county in counties:
        pg.select_option("#county", value=county)
        towns = pg.evaluate("() => [...document.querySelectorAll('#township option')]"
                            ".map(o => o.textContent)")
        want = sorted(set(v.loc[v["county"] == county, "township"].dropna()))
        assert sorted(towns[1:]) == want
        if want:
            pg.select_option("#township", value=want[0])
        gap_map.assert_clean()
    pg.select_option("#county", value="")
    for key in pg.evaluate("() => [...document.querySelectorAll('#colour option')].map(o => o.value)"):
        pg.select_option("#colour", value=key)  # legend redrawn for each
    assert pg.evaluate("() => document.querySelectorAll('#legend img, #legend svg').length") == 0
    gap_map.assert_clean()


def test_village_labels_are_text(gap_map, hostile_run) -> None:
    pg = gap_map.page
    pg.evaluate("""() => new Promise((done) => {
        const m = window.buqueMap;
        m.once('idle', () => setTimeout(done, 300));
        m.jumpTo({center: [109.06, 32.68], zoom: 13});
    })""")
    labels = pg.evaluate("() => [...document.querySelectorAll('.village-label')]"
                         ".map(el => [el.dataset.code, el.textContent, el.children.length])")
    assert labels
    names = gpd.read_parquet(hostile_run / "villages.parquet").set_index("code")["name"]
    for code, text, children in labels:
        assert text == names.loc[code] and children == 0
    gap_map.assert_clean()


def test_swagger_docs_work_under_the_policy(browser, hostile_live) -> None:
    w = Watched(browser, "http://127.0.0.1")
    w.page.goto(f"{hostile_live}/docs")
    w.page.locator(".swagger-ui .info .title").wait_for(timeout=30_000)
    assert "API" in w.page.locator(".swagger-ui .info .title").inner_text()
    w.assert_clean()
    w.page.close()


def test_html_export_runs_no_payload(browser, hostile_run, tmp_path) -> None:
    """The downloaded HTML map (no CSP: a file): every popup and tooltip opened."""
    with TestClient(create_app(Settings(data=hostile_run))) as c:
        r = c.get("/exports/html")
    assert r.status_code == 200
    page = tmp_path / "map.html"
    page.write_bytes(r.content)
    w = Watched(browser, None)
    w.page.route("**/*", lambda rt: rt.continue_() if rt.request.url.startswith("file:")
                 else rt.abort())
    w.page.goto(page.as_uri())
    w.page.wait_for_function("() => typeof L !== 'undefined'", timeout=30_000)
    opened = w.page.evaluate("""() => {
        const m = Object.values(window).find((v) => v instanceof L.Map);
        const texts = [];
        m.eachLayer((l) => {
            if (l.feature && l.getPopup && l.getPopup()) {
                l.openPopup(l.getLatLng ? l.getLatLng() : l.getBounds().getCenter());
                texts.push(l.getPopup().getElement().querySelector('.leaflet-popup-content')
                           .textContent);
                l.closePopup();
            }
            if (l.feature && l.getTooltip && l.getTooltip()) { l.openTooltip(); l.closeTooltip(); }
        });
        return texts;
    }""")
    assert len(opened) >= len(VILLAGES)
    joined = "\n".join(opened)
    assert "正常村" in joined and "onerror=" in joined  # names shown as text
    n = w.page.evaluate("() => document.querySelectorAll('.leaflet-pane img:not(.leaflet-marker-icon),"
                        " .leaflet-pane svg image, .bq-pop img, .bq-pop svg').length")
    assert n == 0
    assert w.page.evaluate("() => window.__pwned || null") is None
    assert w.dialogs == [] and w.errors == []
    w.page.close()
