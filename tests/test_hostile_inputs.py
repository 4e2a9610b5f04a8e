"""Issue 17: text from inputs is untrusted. Hostile names, codes and ids go through the run, the
archive, the API's downloads and every export format; no CSV cell the product writes starts with
a formula trigger, text comes back as it went in, the HTML export carries it only escaped, and a
malformed CSV row is rejected alone (the browser side is tests/api/test_hostile_browser.py)."""

from __future__ import annotations

import csv
import html.parser
import io
import re
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from hostile_world import LONG_NAME, NATURAL, VILLAGES, WATER_IDS
from synth_world import run_cli

from buque.geo.archive import read_run

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def formula_cells(data: bytes, encoding: str = "utf-8-sig") -> list[str]:
    """Cells of a CSV that a spreadsheet would evaluate (a trigger first, not a number)."""
    text = data.decode(encoding)
    return [c for row in csv.reader(io.StringIO(text, newline="")) for c in row
            if c[:1] in TRIGGERS and not NUMBER.fullmatch(c)]


def cells(data: bytes, encoding: str = "utf-8-sig") -> set[str]:
    return {c for row in csv.reader(io.StringIO(data.decode(encoding), newline="")) for c in row}


def test_neutralise_rule_and_its_inverse() -> None:
    from buque.geo.csvsafe import neutralise_frame, restore_frame

    vals = ['=HYPERLINK("x")', "+1+1", "@SUM(A1)", "-12.5", "+3", "1e-3", "-", "\tx", "\rx",
            "'=x", "''+y", "a=b", None, "- 3", "普通", "村-1"]
    df = pd.DataFrame({"s": pd.array(vals, dtype="string"), "n": range(len(vals))})
    out = neutralise_frame(df)
    assert out["s"].tolist()[:12] == ["'=HYPERLINK(\"x\")", "'+1+1", "'@SUM(A1)", "-12.5", "+3",
                                      "1e-3", "'-", "'\tx", "'\rx", "''=x", "'''+y", "a=b"]
    assert out["n"].tolist() == list(range(len(vals)))  # numbers untouched
    back = restore_frame(out)
    assert back["s"].fillna("<NA>").tolist() == df["s"].fillna("<NA>").tolist()


def test_every_hostile_village_is_assessed_with_its_text_intact(hostile, hostile_run) -> None:
    v = gpd.read_parquet(hostile_run / "villages.parquet")
    assert sorted(v["code"]) == sorted(hostile.codes)  # nothing lost, nothing shifted
    by = v.set_index("code")
    for code, name, county, township, _ in VILLAGES:
        assert by.loc[code, "name"] == name.strip()
        assert by.loc[code, "county"] == county.strip()
        assert by.loc[code, "township"] == township.strip()
    assert by.loc["V4", "name"] == LONG_NAME and len(LONG_NAME) == 10_000
    for code, name, _ in NATURAL:
        assert by.loc[code, "name"] == name
    # the GBK water CSV decoded (its ids are Chinese), the UTF-8 files too
    water = gpd.read_parquet(hostile_run / "layers" / "water.parquet")
    assert sorted(water["id"]) == sorted(WATER_IDS)


def test_no_archive_csv_has_a_formula_cell(hostile_run) -> None:
    found = {p.name: formula_cells(p.read_bytes()) for p in hostile_run.rglob("*.csv")}
    assert {"projects.csv", "summary.csv", "rejected.csv", "warnings.csv"} <= set(found)
    assert {k: v for k, v in found.items() if v} == {}
    text = cells((hostile_run / "projects.csv").read_bytes())
    assert "'=HYPERLINK(\"http://evil.invalid\",\"点此\")" in text  # kept, as text
    assert "-12.5" in text  # a number stays a number


def test_archive_reads_back_the_original_text(hostile_run) -> None:
    t = read_run(hostile_run)
    assert '=HYPERLINK("http://evil.invalid","点此")' in set(t.projects["name"])
    assert {"=1+2", "-2+3"} <= set(t.projects["village_code"])
    assert {"+SUM(1,2)", "-cmd|' /C calc'!A0"} <= set(t.summary["county"].dropna())
    assert "'=already quoted" in set(t.summary["township"].dropna())
    assert "-12.5" in set(t.summary["township"].dropna().astype(str))


@pytest.fixture(scope="module")
def api(hostile_run):
    with warnings.catch_warnings():  # starlette prefers httpx2; httpx works (tests/api/conftest)
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from fastapi.testclient import TestClient

    from buque.api.app import create_app
    from buque.api.settings import Settings

    with TestClient(create_app(Settings(data=hostile_run))) as c:
        yield c


def test_api_csv_downloads_have_no_formula_cells(api, hostile_run) -> None:
    run_id = api.get("/runs").json()["newest"]
    urls = ["/collections/villages/items?f=csv&limit=1000", "/projects?f=csv",
            "/summary?by=county&f=csv", "/summary?by=township&f=csv",
            f"/runs/{run_id}/diff/{run_id}?f=csv"]
    urls += [f"/collections/{k}/items?f=csv&limit=1000"
             for k in ("roads", "water", "power", "clinics", "broadband")]
    seen: set[str] = set()
    for url in urls:
        r = api.get(url)
        assert r.status_code == 200, (url, r.text[:300])
        assert r.headers["content-type"].startswith("text/csv")
        assert formula_cells(r.content) == [], url
        seen |= cells(r.content)
    assert "'=HYPERLINK(\"http://evil.invalid\",\"点此\")" in seen
    assert "'=HYPERLINK(\"http://evil.invalid\",\"路\")" in seen  # a road id
    # JSON keeps the text as it came in
    fc = api.get("/collections/villages/items", params={"q": "HYPERLINK"}).json()
    assert [f["properties"]["name"] for f in fc["features"]] == [
        '=HYPERLINK("http://evil.invalid","点此")']


def test_api_exports_of_hostile_text(api) -> None:
    for fmt in ("csv", "shp"):
        r = api.get(f"/exports/{fmt}")
        assert r.status_code == 200, r.text[:300]
        if fmt == "csv":
            assert formula_cells(r.content) == []
        else:
            with zipfile.ZipFile(io.BytesIO(r.content)) as z:
                for n in z.namelist():
                    if n.endswith(".csv"):
                        assert formula_cells(z.read(n)) == [], n
    r = api.get("/exports/html")
    assert r.status_code == 200
    check_html_export(r.text)


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        self._in_title = tag == "title"

    def handle_endtag(self, tag) -> None:
        self._in_title = False

    def handle_data(self, data) -> None:
        if self._in_title:
            self.title += data


def check_html_export(text: str) -> None:
    """No data string became markup: no tag a payload carries, the title is plain text, and
    no payload closes the script element it is inlined in."""
    p = _Tags()
    p.feed(text)
    assert not {"img", "svg"} & set(p.tags), sorted(set(p.tags))
    raw_title = text[text.index("<title>") + 7:text.index("</title>")]
    assert "<" not in raw_title and "&lt;img" in raw_title  # the project's name, as text
    assert "onerror=" in p.title
    assert "</script><script>window.__pwned" not in text
    assert "</title><script>" not in text
    # payloads are in the data, escaped for the script element they are in
    assert "onerror" in text and "<\\/script>" in text


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "html", "geojson", "gpkg", "shp", "pdf", "png",
                                 "pmtiles"])
def test_every_export_format_takes_hostile_text(hostile_run, tmp_path, fmt) -> None:
    from buque.geo.report import ExportOptions, export

    ext = {"shp": "shp"}.get(fmt, fmt)
    res = export(hostile_run, tmp_path / f"out.{ext}", ExportOptions(fmt=fmt, dpi=72))
    assert res.files and all(f.stat().st_size > 0 for f in res.files)
    for f in res.files:
        if f.suffix == ".csv":
            assert formula_cells(f.read_bytes()) == [], f.name
    out = res.files[0]
    if fmt == "csv":
        assert "'=HYPERLINK(\"http://evil.invalid\",\"点此\")" in cells(out.read_bytes())
    elif fmt == "xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(out)
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    assert c.data_type != "f", (ws.title, c.coordinate, c.value)
    elif fmt == "html":
        check_html_export(out.read_text("utf-8"))
    elif fmt in ("geojson", "gpkg"):
        v = pyogrio.read_dataframe(out, layer="villages" if fmt == "gpkg" else None)
        assert set(v["name"]) >= {LONG_NAME, '=HYPERLINK("http://evil.invalid","点此")'}


def test_csv_export_per_county_with_hostile_county_names(hostile_run, tmp_path) -> None:
    from buque.geo.report import ExportOptions, export

    res = export(hostile_run, tmp_path / "v.csv", ExportOptions(fmt="csv", per_county=True))
    assert len(res.files) == len({v[2].strip() for v in VILLAGES})
    for f in res.files:
        assert f.parent == tmp_path  # a county name cannot walk out of the folder
        assert formula_cells(f.read_bytes()) == []


# --- one malformed CSV row -------------------------------------------------------------------

HEADER = "code,name,county,township,lon,lat"
GOOD = [f"61090200100{i},村{i},汉滨区,张滩镇,{109.0 + i * 0.01:.2f},32.70" for i in range(2, 7)]


def _project(d: Path, lines: list[str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "villages.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (d / "project.toml").write_text('name = "x"\nstandard = "national"\ncrs = "EPSG:4490"\n'
                                    '[layers.villages]\npath = "villages.csv"\n', encoding="utf-8")
    return d / "project.toml"


@pytest.mark.parametrize("where, bad, line", [
    ("first", '=HYPERLINK("http://evil.invalid","点此"),郑家村,汉滨区,张滩镇,109.00,32.70', 2),
    ("middle-short", "610902001099,短行,汉滨区,109.05", 5),
])
def test_a_malformed_row_is_rejected_alone(tmp_path, where, bad, line) -> None:
    rows = list(GOOD)
    rows.insert(line - 2, bad)
    proc = run_cli("run", _project(tmp_path / "p", [HEADER, *rows]), "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    rej = pd.read_csv(tmp_path / "run" / "rejected.csv", encoding="utf-8-sig", dtype=str)
    assert len(rej) == 1, rej
    r = rej.iloc[0]
    assert Path(r["file"]).name == "villages.csv" and r["layer"] == "villages"
    assert int(r["row"]) == line  # the spreadsheet line (header = 1), as the reason says
    assert f"line {line} of the file counting the header as line 1" in r["reason"]
    n_fields = len(next(csv.reader([bad])))
    assert f"{n_fields} fields where the header has 6" in r["reason"]
    v = gpd.read_parquet(tmp_path / "run" / "villages.parquet")
    assert sorted(v["code"]) == sorted(g.split(",")[0] for g in GOOD)  # the others intact
    want = {g.split(",")[0]: g.split(",") for g in GOOD}
    for _, x in v.iterrows():
        w = want[x["code"]]
        assert (x["name"], x["county"], x["township"]) == (w[1], w[2], w[3])
        assert abs(x["ref_lon"] - float(w[4])) < 1e-9
    man = __import__("json").loads((tmp_path / "run" / "manifest.json").read_text("utf-8"))
    assert man["counts"]["rejected"] == 1
    assert man["counts"]["assessed"] == len(GOOD)
