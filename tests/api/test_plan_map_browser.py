"""A plan's works on the gap map, in a real headless Chromium (network closed to anything but
127.0.0.1): the toggle draws the works from the plan's vector tiles, each drawn work with the
phase and funding of works.parquet and the colour of its phase; a click on a line lists exactly
the villages of work_villages.csv for that work; the toggle removes them again."""

from __future__ import annotations

import io

import geopandas as gpd
import pandas as pd
import pytest
from conftest import serve
from PIL import Image
from playwright.sync_api import sync_playwright
from test_map_browser import ARGS, CHROMIUM, keep_on_server

from buque.geo.plan.archive import write_plan
from buque.geo.plan.make import make_plan

PHASE_RGB = {"2027": (0x1F, 0x78, 0xB4), "2028": (0x33, 0xA0, 0x2C)}  # planmap.js PHASE_COLOURS


@pytest.fixture(scope="module")
def plan_dir(demo_run, tmp_path_factory):
    full = make_plan(demo_run).meta["totals"]["cost"]
    out = tmp_path_factory.mktemp("map-plans") / "plans"
    write_plan(out / "andorra", make_plan(demo_run, [f"2027={full * 0.3}", f"2028={full * 0.3}"]))
    return out


@pytest.fixture(scope="module")
def page(demo_run, plan_dir):
    outside: list[str] = []
    errors: list[str] = []
    for url in serve(demo_run, plans=str(plan_dir)):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            pg = browser.new_page(viewport={"width": 1280, "height": 800})

            keep_on_server(pg, outside)
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(f"{url}/map")
            pg.wait_for_function("() => window.buqueReady === true", timeout=60_000)
            yield pg, outside, errors
            browser.close()


def idle(pg) -> None:
    pg.evaluate("""() => new Promise((done) => {
        const m = window.buqueMap;
        if (m.loaded() && m.areTilesLoaded()) setTimeout(done, 300);
        else m.once('idle', () => setTimeout(done, 300));
    })""")


def test_toggle_draws_works_by_phase_and_click_lists_villages(page, plan_dir):
    pg, outside, errors = page
    works = gpd.read_parquet(plan_dir / "andorra" / "works.parquet").set_index("work_id")
    wv = pd.read_csv(plan_dir / "andorra" / "work_villages.csv", dtype=str)
    assert set(works["phase"].dropna()) == {"2027", "2028"} and (~works["funded"]).any()
    assert pg.is_visible("#plan-box") and pg.evaluate("!window.buqueMap.getLayer('plan-lines')")
    pg.click("#plan-toggle")
    idle(pg)
    drawn = pg.evaluate("""() => window.buqueMap.queryRenderedFeatures(
        {layers: ['plan-lines', 'plan-sites']}).map((f) => f.properties)""")
    assert drawn, "no planned work drawn"
    ids = {d["work_id"] for d in drawn}
    assert ids <= set(works.index)
    for d in drawn:
        w = works.loc[d["work_id"]]
        assert d["phase"] == (w["phase"] if pd.notna(w["phase"]) else "none")
        assert bool(d["funded"]) == bool(w["funded"]) and w["action"] != "verify"
    assert {d["phase"] for d in drawn} >= {"2027", "2028", "none"}
    # the legend lists the phases and "unfunded"
    legend = pg.inner_text("#plan-legend")
    assert "2027" in legend and "2028" in legend and "未安排资金" in legend

    # the longest funded line drawn: its colour on screen is its phase's, a click lists its villages
    lines = works.loc[sorted(ids)]
    lines = lines[(lines.geom_type == "LineString") & lines["funded"]]
    wid = lines.assign(km=lines.to_crs(3857).length).sort_values("km").index[-1]
    mid = works.loc[wid].geometry.interpolate(0.5, normalized=True)
    xy = pg.evaluate(f"(() => {{ const p = window.buqueMap.project([{mid.x}, {mid.y}]); "
                     "return [p.x, p.y]; })()")
    box = pg.locator("#map").bounding_box()
    shot = Image.open(io.BytesIO(pg.locator("#map").screenshot())).convert("RGB")
    want = PHASE_RGB[works.loc[wid, "phase"]]
    near = [shot.getpixel((int(xy[0]) + dx, int(xy[1]) + dy)) for dx in range(-3, 4)
            for dy in range(-3, 4)]
    assert any(sum(abs(a - b) for a, b in zip(px, want, strict=True)) < 60 for px in near), \
        (wid, want, sorted(set(near))[:10])
    pg.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    popup = pg.locator(".work-popup")
    popup.wait_for(timeout=20_000)
    shown = popup.locator(".muted").first.inner_text()
    assert shown in works.index
    # the work shown passes through the clicked point (another work may cross it)
    sm = works.loc[[shown]].to_crs(3857).geometry.iloc[0]
    pt = gpd.GeoSeries.from_xy([mid.x], [mid.y], crs=4326).to_crs(3857).iloc[0]
    assert sm.distance(pt) < 50, (shown, wid)
    text = popup.inner_text()
    codes = set(wv.loc[wv["work_id"] == shown, "village_code"])
    assert codes and all(c in text for c in codes)
    rows = pg.evaluate("document.querySelectorAll('.work-popup tr').length")
    assert rows == 1 + len(wv[wv["work_id"] == shown])
    pg.click("#plan-toggle")
    assert pg.evaluate("!window.buqueMap.getLayer('plan-lines') && "
                       "!window.buqueMap.getSource('plan-works')")
    assert outside == [] and not errors
