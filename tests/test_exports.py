"""Report exports (issue 5): real files checked with real tools (poppler, openpyxl, GDAL, zip).

Two runs are made once per module: a small synthetic project with Chinese county and township
names (two counties, polygon and point administrative villages), and the bundled Andorra demo
(real OpenStreetMap data, ODbL attribution).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
from PIL import Image
from synth_world import require_tools

from buque.geo.report import ExportError, ExportOptions, Selection, export, export_bundle, load_report

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "layers" / "demo" / "andorra.toml"
ODBL = "© OpenStreetMap contributors, ODbL 1.0"


@pytest.fixture
def poppler() -> None:
    """The PDF checks read pages with poppler's tools."""
    require_tools("pdftoppm", "pdffonts", "pdftotext", "pdfinfo", package="poppler-utils")


@pytest.fixture(scope="module", autouse=True)
def font_cache(tmp_path_factory):
    """Font subsets go to a temporary cache, not the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUQUE_CACHE", str(tmp_path_factory.mktemp("buque-cache")))
        yield


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory) -> Path:
    from bench.synth import generate
    from buque.geo.run import run_project

    src = tmp_path_factory.mktemp("export-synth")
    generate(src, admin=90, natural=450, roads=900, counties=2, townships=3, admin_points=0.2,
             verbose=False)
    out = tmp_path_factory.mktemp("export-runs") / "synth"
    run_project(src / "project.toml", out)
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    from buque.geo.run import run_project

    out = tmp_path_factory.mktemp("export-runs") / "demo"
    run_project(DEMO, out)
    return out


@pytest.fixture(scope="module")
def synth(synth_run):
    return load_report(synth_run)


def _cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "buque.cli", "export", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def _ink(png: Path) -> float:
    """Standard deviation of the grey levels: ~0 for a blank page."""
    with Image.open(png) as im:
        return float(np.asarray(im.convert("L"), dtype=float).std())


def _missing_pairs(run: Path) -> set[tuple[str, str]]:
    g = pd.read_parquet(run / "gaps.parquet")
    g = g[g["status"] == "missing"]
    return set(zip(g["village_code"], g["indicator"], strict=True))


# --------------------------------------------------------------------------- print maps

@pytest.mark.usefixtures("poppler")
def test_pdf_per_county_pages_fonts_and_text(synth_run, synth, tmp_path):
    out = tmp_path / "counties.pdf"
    proc = _cli(synth_run, "--format", "pdf", "--per-county", "--dpi", "150", "--out", out)
    assert proc.returncode == 0, proc.stderr
    counties = synth.run_counties
    assert len(counties) == 2 and all(re.search(r"[\u4e00-\u9fff]", c) for c in counties)
    info = subprocess.run(["pdfinfo", out], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+2$", info, re.M), info
    assert re.search(r"^Page size:\s+841\.\d+ x 595\.\d+ pts \(A4\)", info, re.M), info

    fonts = subprocess.run(["pdffonts", out], capture_output=True, text=True, check=True).stdout
    rows = [r.split() for r in fonts.splitlines()[2:]]
    cjk = [r for r in rows if "CJK" in r[0]]
    assert cjk, fonts
    # name, type..., emb sub uni: every CJK font embedded, as valid CID TrueType
    assert all(r[-5] == "yes" for r in cjk), fonts
    assert all("CID TrueType" in " ".join(r) for r in cjk), fonts

    for page, county in enumerate(counties, start=1):
        text = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), out, "-"],
                              capture_output=True, text=True, check=True).stdout
        assert county in text
        assert f"{county} 补短板缺口图" in text
        assert "评估日期" in text and "比例尺 1:" in text and "位置示意" in text
        png = tmp_path / f"page-{page}"
        subprocess.run(["pdftoppm", "-r", "40", "-f", str(page), "-l", str(page), "-png",
                        "-singlefile", out, png], check=True)
        assert _ink(png.with_suffix(".png")) > 20


@pytest.mark.usefixtures("poppler")
def test_pdf_attribution_and_english(demo_run, tmp_path):
    out = tmp_path / "demo-en.pdf"
    r = export(demo_run, out, ExportOptions(fmt="pdf", lang="en", paper="A3",
                                            orientation="portrait", dpi=100))
    assert r.files == [out]
    info = subprocess.run(["pdfinfo", out], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Page size:\s+841\.\d+ x 1190\.\d+ pts \(A3\)", info, re.M), info
    text = subprocess.run(["pdftotext", out, "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Andorra — Gap map" in text
    assert ODBL in text
    assert json.loads((demo_run / "manifest.json").read_text("utf-8"))["run_id"] in text


def test_png_300_dpi_single_indicator(synth, tmp_path):
    county = synth.run_counties[0]
    out = tmp_path / "road.png"
    export(synth, out, ExportOptions(fmt="png", selection=Selection.parse(county, None, "road")))
    with Image.open(out) as im:
        assert im.size == (3508, 2480)  # A4 landscape at 300 dpi
        assert im.info.get("Title") == f"{county} 通硬化路缺口图"
        px = np.asarray(im.convert("RGB").resize((877, 620)), dtype=int)
    assert _ink(out) > 20
    # the map frame is drawn in colour: some village is red (missing)
    red = (px[..., 0] > 180) & (px[..., 1] < 90) & (px[..., 2] < 90)
    assert red.sum() > 10


def test_png_carries_demo_attribution(demo_run, tmp_path):
    out = tmp_path / "demo.png"
    export(demo_run, out, ExportOptions(fmt="png", dpi=72, orientation="portrait"))
    with Image.open(out) as im:
        assert im.size == (595, 842)
        assert ODBL in im.info.get("Copyright", "")


# --------------------------------------------------------------------------- ledger

def test_xlsx_lists_every_missing_pair_once(synth_run, synth, tmp_path):
    out = tmp_path / "ledger.xlsx"
    export(synth, out, ExportOptions(fmt="xlsx"))
    wb = openpyxl.load_workbook(out, read_only=False)
    labels = {synth.indicator(k).label_zh: k for k in synth.indicators}
    seen: list[tuple[str, str]] = []
    for ws in wb.worksheets:
        if ws.title not in labels:
            continue
        header = [c.value for c in ws[2]]
        code = header.index("村代码")
        for name in ("县（市、区）", "乡（镇）", "村名", "人口", "脱贫村", "脱贫年份",
                     "距最近达标设施（米）", "补短板措施", "数量", "估算投资（元）", "完成时限"):
            assert name in header, (ws.title, name)
        assert ws.freeze_panes == "F3"
        assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A2:")
        seen += [(row[code], labels[ws.title]) for row in ws.iter_rows(min_row=3, values_only=True)
                 if row[code] is not None]
    expected = _missing_pairs(synth_run)
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected
    # summary sheet: a total, then counties and townships, rates against targets
    summ = wb["汇总"]
    head = [c.value for c in summ[2]]
    assert {"达标率", "目标", "估算投资（元）"} <= set(head)
    firsts = [r[0] for r in summ.iter_rows(min_row=3, values_only=True)]
    assert firsts[0] == "合计" and set(synth.run_counties) <= set(firsts)
    # widths fit Chinese text: the name column is wider than its longest name in characters
    ws = wb[next(iter(labels))]
    header = [c.value for c in ws[2]]
    letter = openpyxl.utils.get_column_letter(header.index("乡（镇）") + 1)
    longest = max(len(str(r[0])) for r in ws.iter_rows(min_row=3, min_col=header.index("乡（镇）") + 1,
                                                       max_col=header.index("乡（镇）") + 1,
                                                       values_only=True))
    assert ws.column_dimensions[letter].width >= 2 * longest


def test_xlsx_filters_by_indicator_and_township(synth, tmp_path):
    county = synth.run_counties[1]
    town = sorted(synth.villages.loc[synth.villages["county"] == county, "township"].unique())[0]
    out = tmp_path / "water.xlsx"
    export(synth, out, ExportOptions(fmt="xlsx", lang="en", selection=Selection.parse(
        county, town, "water")))
    wb = openpyxl.load_workbook(out)
    assert [ws.title for ws in wb.worksheets] == ["About", "Summary", "Safe drinking water"]
    ws = wb["Safe drinking water"]
    header = [c.value for c in ws[2]]
    rows = list(ws.iter_rows(min_row=3, values_only=True))
    assert rows[-1][0] == "Total"
    rows = rows[:-1]
    assert rows and {r[header.index("County")] for r in rows} == {county}
    assert {r[header.index("Township")] for r in rows} == {town}
    summ = list(wb["Summary"].iter_rows(min_row=3, values_only=True))
    assert {r[1] for r in summ} == {town} and {r[2] for r in summ} == {"Safe drinking water"}


def test_xlsx_indicator_sheets_end_in_a_total_and_name_the_parent(synth, tmp_path):
    out = tmp_path / "ledger.xlsx"
    export(synth, out, ExportOptions(fmt="xlsx"))
    wb = openpyxl.load_workbook(out)
    labels = {synth.indicator(k).label_zh: k for k in synth.indicators}
    names = synth.all_villages.set_index("code")["name"]
    parents_seen = 0
    for title, key in labels.items():
        ws = wb[title]
        header = [c.value for c in ws[2]]
        rows = list(ws.iter_rows(min_row=3, values_only=True))
        total, data = rows[-1], rows[:-1]
        assert total[0] == "合计", (title, total)
        assert total[header.index("村名")] == f"{len(data):,} 个村"
        cost = synth.projects.loc[synth.projects["indicator"] == key, "cost"].sum()
        assert total[header.index("估算投资（元）")] == pytest.approx(cost, rel=1e-9)
        assert ws.auto_filter.ref.endswith(str(2 + max(len(data), 1)))  # the total is not sorted
        parent = header.index("所属行政村")
        for r in data:
            if r[parent]:
                code = r[parent].rsplit("（", 1)[1].rstrip("）")
                assert r[parent] == f"{names[code]}（{code}）"
                parents_seen += 1
    assert parents_seen


def test_map_wording_is_one_language_and_names_the_sources(synth_run, synth, tmp_path):
    out = tmp_path / "map.pdf"
    export(synth, out, ExportOptions(fmt="pdf", dpi=72))
    text = " ".join(subprocess.run(["pdftotext", out, "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    assert "标准：全国农村基础设施补短板标准（2026.1）" in text
    assert "national default" not in text and "标准 national" not in text
    m = json.loads((synth_run / "manifest.json").read_text("utf-8"))
    assert "数据来源：" in text
    for i in m["inputs"]:
        assert Path(i["path"]).name in text, i["path"]
    assert f"数据来源：{m['project']['name']}" not in text


# --------------------------------------------------------------------------- GIS

def test_shapefile_gbk_round_trip(synth, tmp_path):
    county = synth.run_counties[0]
    out = tmp_path / "v.shp"
    r = export(synth, out, ExportOptions(fmt="shp", encoding="GBK",
                                         selection=Selection.parse(county)))
    assert (tmp_path / "v.cpg").read_text() == "GBK"
    dbf = (tmp_path / "v.dbf").read_bytes()
    assert county.encode("gbk") in dbf and county.encode("utf-8") not in dbf
    back = pyogrio.read_dataframe(out)
    assert all(len(c) <= 10 for c in back.columns)
    src = synth.villages[synth.villages["county"] == county]
    assert len(back) == len(src)
    assert sorted(back["name"]) == sorted(src["name"])
    assert set(back.geom_type) == {"Point"}
    polys = tmp_path / "v_polygons.shp"
    assert polys in r.files and set(pyogrio.read_dataframe(polys).geom_type) <= {
        "Polygon", "MultiPolygon"}
    fields = pd.read_csv(tmp_path / "v_fields.csv", encoding="utf-8-sig")
    assert dict(zip(fields["column"], fields["field"], strict=True))["road_distance_m"] == "road_dist"


def test_unencodable_text_is_replaced_and_reported(synth, tmp_path):
    data = synth
    v = data.villages.copy()
    v.loc[v.index[0], "name"] = "Straße 😀"
    from dataclasses import replace

    r = export(replace(data, villages=v), tmp_path / "x.shp",
               ExportOptions(fmt="shp", encoding="GBK"))
    assert any("GBK cannot hold" in n for n in r.notes)
    back = pyogrio.read_dataframe(tmp_path / "x.shp")
    assert "Stra?e ?" in set(back["name"])


def test_gpkg_geojson_csv(synth_run, synth, tmp_path):
    gpkg = tmp_path / "all.gpkg"
    export(synth, gpkg, ExportOptions(fmt="gpkg"))
    names = {str(n) for n in pyogrio.list_layers(gpkg)[:, 0]}
    assert {"villages", "gaps", "roads", "power", "water", "clinics", "broadband", "projects",
            "summary"} <= names
    gaps = pyogrio.read_dataframe(gpkg, layer="gaps")
    assert len(gaps) == len(pd.read_parquet(synth_run / "gaps.parquet"))
    assert not (gaps["name"] == "<NA>").any()

    gj = tmp_path / "v.geojson"
    export(synth, gj, ExportOptions(fmt="geojson", selection=Selection.parse(None, None, "road")))
    doc = json.loads(gj.read_text("utf-8"))
    assert doc["type"] == "FeatureCollection" and doc["run_id"]
    props = doc["features"][0]["properties"]
    assert "road" in props and "water" not in props and "clinic_distance_m" not in props

    csv = tmp_path / "v.csv"
    export(synth, csv, ExportOptions(fmt="csv"))
    assert csv.read_bytes().startswith(b"\xef\xbb\xbf")
    df = pd.read_csv(csv, encoding="utf-8-sig", dtype={"code": str})
    assert len(df) == len(synth.villages) and set(df["county"]) == set(synth.run_counties)
    gbk = tmp_path / "gbk.csv"
    export(synth, gbk, ExportOptions(fmt="csv", encoding="GBK"))
    assert set(pd.read_csv(gbk, encoding="gbk")["county"]) == set(synth.run_counties)


def test_gpkg_township_filter_clips_layers(synth, tmp_path):
    county = synth.run_counties[0]
    town = sorted(synth.villages.loc[synth.villages["county"] == county, "township"].unique())[0]
    out = tmp_path / "t.gpkg"
    export(synth, out, ExportOptions(fmt="gpkg", selection=Selection.parse(county, town)))
    v = pyogrio.read_dataframe(out, layer="villages")
    assert set(v["township"]) == {town}
    roads = pyogrio.read_dataframe(out, layer="roads")
    assert 0 < len(roads) < len(synth.layers["roads"])
    projects = pyogrio.read_dataframe(out, layer="projects")
    assert set(projects["township"]) <= {town}


# --------------------------------------------------------------------------- HTML

def test_html_is_self_contained(demo_run, tmp_path):
    out = tmp_path / "map.html"
    export(demo_run, out, ExportOptions(fmt="html"))
    html = out.read_text("utf-8")
    assert not re.search(r"<script[^>]+src\s*=", html, re.I)
    assert not re.search(r"<link[^>]+href\s*=\s*[\"']?(https?:)?//", html, re.I)
    assert not re.search(r"url\(\s*[\"']?(https?:)?//", html, re.I)
    assert not re.search(r"@import", html)
    assert "L.geoJSON" in html and "buqueVillagePopup" in html
    assert "ODbL 1.0" in html and "Andorra" in html
    assert html.count("<script") >= 3  # Leaflet and the map inline


def test_html_draws_offline_in_chromium(synth, tmp_path):
    require_tools("chromium", package="chromium")
    county = synth.run_counties[0]
    out = tmp_path / "map.html"
    export(synth, out, ExportOptions(fmt="html", selection=Selection.parse(county)))
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,700",
         "--virtual-time-budget=8000", f"--screenshot={shot}", out.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as im:
        px = np.asarray(im.convert("RGB"), dtype=int)
    # villages are drawn in their class colours (orange/red/green), not just the page chrome
    coloured = (np.abs(px[..., 0] - px[..., 1]) > 60) | (np.abs(px[..., 1] - px[..., 2]) > 60)
    assert coloured.sum() > 500


# --------------------------------------------------------------------------- selection, CLI

def test_unknown_names_fail_with_one_line(synth_run, tmp_path):
    proc = _cli(synth_run, "--county", "不存在县", "--out", tmp_path / "x.pdf")
    assert proc.returncode == 2
    assert "--county" in proc.stderr and "不存在县" in proc.stderr
    assert not (tmp_path / "x.pdf").exists()
    with pytest.raises(ExportError, match="--indicator"):
        export(synth_run, tmp_path / "x.xlsx",
               ExportOptions(fmt="xlsx", selection=Selection.parse(None, None, "school")))
    with pytest.raises(ExportError, match="--township"):
        export(synth_run, tmp_path / "x.xlsx",
               ExportOptions(fmt="xlsx", selection=Selection.parse(None, "无此镇")))
    with pytest.raises(ExportError, match="--paper"):
        ExportOptions(fmt="pdf", paper="A5")
    assert list(tmp_path.iterdir()) == []


def test_per_county_files_and_bundles(synth, tmp_path):
    r = export(synth, tmp_path / "ledger.xlsx", ExportOptions(fmt="xlsx", per_county=True))
    assert sorted(p.name for p in r.files) == sorted(f"ledger-{c}.xlsx" for c in synth.run_counties)
    b = export_bundle(synth, tmp_path / "bundles", ExportOptions(fmt="pdf", dpi=72))
    assert sorted(p.name for p in b.files) == sorted(f"{c}.zip" for c in synth.run_counties)
    for county, z in zip(sorted(synth.run_counties), sorted(b.files), strict=True):
        with zipfile.ZipFile(z) as zf:
            names = set(zf.namelist())
        assert {f"{county}-补短板缺口图.pdf", f"{county}-补短板缺口图.png",
                f"{county}-补短板台账.xlsx", f"{county}.gpkg", "manifest.json", "说明.txt"} == names
    with pytest.raises(ExportError, match="--out"):
        export_bundle(synth, tmp_path / "one.zip", ExportOptions(fmt="pdf"))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
