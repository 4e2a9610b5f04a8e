"""The map's ledger filter, regression rings and progress chart in a real headless Chromium.

A folder of three runs of the synthetic project (r2: R2 paved; r3: R1 removed, R5 gravel),
the newest checked against a ledger with disagreements injected from its own gaps: each class
of the filter draws exactly the villages given that class by hand from the evidence; the rings
are the pairs met in r2 and missing in r3 (a merge of the two runs' gaps); the chart has one
point per run and indicator at the rate summed from each run's own summary.csv.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import serve
from playwright.sync_api import sync_playwright
from test_map_browser import ARGS, CHROMIUM
from three_runs import make_three

from buque.geo.archive import read_villages
from buque.geo.ledger import check_run
from buque.layers.project import LedgerSpec

CLASSES = ("claimed_met_evidence_missing", "claimed_met_evidence_unknown",
           "claimed_missing_evidence_met")


def _expected(claims: dict[tuple[str, str], bool], gaps: pd.DataFrame) -> dict[str, set[str]]:
    """Each class's villages, by the rule written out: a met claim against missing or unknown
    evidence, a missing claim against met evidence."""
    status = gaps.set_index([gaps["village_code"].astype(str), gaps["indicator"].astype(str)])
    status = status["status"]
    out: dict[str, set[str]] = {c: set() for c in CLASSES}
    for (code, ind), met in claims.items():
        s = status[(code, ind)]
        if met and s == "missing":
            out["claimed_met_evidence_missing"].add(code)
        elif met and s == "unknown":
            out["claimed_met_evidence_unknown"].add(code)
        elif not met and s == "met":
            out["claimed_missing_evidence_met"].add(code)
    return out


@pytest.fixture(scope="module")
def world(synth, tmp_path_factory):
    d = tmp_path_factory.mktemp("map-verify")
    runs = make_three(synth.dir, d)
    r3 = runs / "r3"
    gaps = pd.read_parquet(r3 / "gaps.parquet")
    v = read_villages(r3)
    admin = sorted(v.loc[v["level"] == "admin", "code"].astype(str))
    st = gaps.set_index([gaps["village_code"].astype(str), gaps["indicator"].astype(str)])["status"]
    claims: dict[tuple[str, str], bool] = {}
    flipped = {"road": {"missing": 0, "met": 0}, "clinic": {"unknown": 0}}
    for code in admin:  # agree everywhere, but flip the first of each kind
        for ind in ("road", "clinic"):
            s = st.get((code, ind))
            if s is None:
                continue
            if s in flipped[ind] and flipped[ind][s] < 1:
                flipped[ind][s] += 1
                claims[(code, ind)] = s != "met"
            elif s in ("met", "missing"):
                claims[(code, ind)] = s == "met"
    assert all(n == 1 for f in flipped.values() for n in f.values()), flipped
    word = {True: "是", False: "否"}
    lines = ["村代码,通硬化路,标准化村卫生室"]
    for code in admin:
        lines.append(",".join([code, *(word[claims[(code, i)]] if (code, i) in claims else ""
                                       for i in ("road", "clinic"))]))
    led = d / "台账.csv"
    led.write_text("\n".join(lines) + "\n", encoding="utf-8")
    check_run(r3, LedgerSpec(path=led))
    expected = _expected(claims, gaps)
    assert all(expected[c] for c in CLASSES), expected
    g2 = pd.read_parquet(runs / "r2" / "gaps.parquet")
    both = g2.merge(gaps, on=["village_code", "indicator"], suffixes=("_2", "_3"))
    regressed = set(both.loc[(both["status_2"] == "met") & (both["status_3"] == "missing"),
                             "village_code"].astype(str))
    assert regressed  # R1's villages lost their road
    return runs, expected, regressed


@pytest.fixture(scope="module")
def page(world):
    runs, _, _ = world
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (setup.sh installs it)")
    errors: list[str] = []
    for url in serve(runs):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            pg = browser.new_page(viewport={"width": 1280, "height": 800})
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            pg.goto(f"{url}/map")
            pg.wait_for_function("() => window.buqueReady === true", timeout=60_000)
            _idle(pg)
            yield pg, errors
            browser.close()


def _idle(pg) -> None:
    pg.wait_for_function("() => window.buqueMap.loaded() && window.buqueMap.areTilesLoaded()",
                         timeout=60_000)
    pg.evaluate("() => new Promise((done) => { const m = window.buqueMap; "
                "if (m.loaded()) setTimeout(done, 200); else m.once('idle', () => done()); })")


def _drawn(pg, layer: str) -> set[str]:
    return set(pg.evaluate(f"""() => window.buqueMap.queryRenderedFeatures({{layers: ['{layer}']}})
                              .map((f) => String(f.properties.code))"""))


def test_filter_by_class_draws_exactly_those_villages(page, world) -> None:
    pg, errors = page
    _, expected, _ = world
    assert pg.is_visible("#discrepancy")
    everything = _drawn(pg, "villages")
    assert set().union(*expected.values()) <= everything
    for cls in CLASSES:
        pg.select_option("#discrepancy", cls)
        _idle(pg)
        assert _drawn(pg, "villages") == expected[cls], cls
        listed = pg.evaluate("[...document.querySelectorAll('#discrepancy-list li')]"
                             ".map((li) => li.dataset.code)")
        assert set(listed) == expected[cls] and len(listed) == len(expected[cls])
    pg.select_option("#discrepancy", "any")
    _idle(pg)
    assert _drawn(pg, "villages") == set().union(*expected.values())
    options = pg.evaluate("[...document.querySelectorAll('#discrepancy option')].map(o => o.text)")
    assert any(o.startswith("疑似虚报/错退") for o in options)
    assert any(o.startswith("待核实") for o in options)
    assert any(o.startswith("台账未更新") for o in options)
    pg.select_option("#discrepancy", "")
    _idle(pg)
    assert _drawn(pg, "villages") == everything
    assert pg.is_hidden("#discrepancy-list")
    assert not errors, errors


def test_regressions_are_ringed(page, world) -> None:
    pg, errors = page
    _, _, regressed = world
    everything = _drawn(pg, "villages")
    assert regressed <= everything
    assert _drawn(pg, "regressions") == regressed
    assert "反弹" in pg.inner_text("#legend")
    assert not errors, errors


def test_chart_has_one_point_per_run(page, world) -> None:
    pg, errors = page
    runs, _, _ = world
    ids, own = [], {}
    for name in ("r1", "r2", "r3"):
        rid = json.loads((runs / name / "manifest.json").read_text("utf-8"))["run_id"]
        ids.append(rid)
        s = pd.read_csv(runs / name / "summary.csv", encoding="utf-8-sig")
        c = s[s["scope"] == "county"].groupby("indicator")[["met", "assessed"]].sum()
        for ind, row in c.iterrows():
            if row["assessed"] > 0:
                own.setdefault(ind, []).append(row["met"] / row["assessed"])
    assert pg.is_visible("#chart-open") and pg.is_hidden("#chart-panel")
    pg.click("#chart-open")
    pg.wait_for_selector("#chart circle.chart-point")
    pts = pg.evaluate("""() => [...document.querySelectorAll('#chart circle.chart-point')].map(
        (c) => [c.dataset.indicator, c.dataset.run, Number(c.dataset.rate)])""")
    by: dict[str, list] = {}
    for ind, rid, rate in pts:
        by.setdefault(ind, []).append((rid, rate))
    assert set(by) == set(own)
    for ind, got in by.items():
        assert [r for r, _ in got] == ids, ind
        assert [x for _, x in got] == pytest.approx(own[ind], abs=1e-9), ind
    text = pg.inner_text("#chart-panel")
    assert "评估日期" in text and "达标率" in text and "通硬化路" in text
    assert pg.locator("#chart line.target").count() == len(own)
    pg.click("#chart-close")
    assert pg.is_hidden("#chart-panel")
    assert not errors, errors
