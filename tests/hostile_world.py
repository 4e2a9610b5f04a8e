"""A project whose every text field is hostile (issue 17: text from inputs is untrusted).

Script in HTML (``<img onerror>``, ``<svg onload>``, ``</title><script>``), spreadsheet formula
prefixes (``=``, ``+``, ``-``, ``@``, tab, carriage return), control and bidi characters, a
10,000-character name, and mixed encodings (the water points are a GBK CSV, the villages a
UTF-8 CSV with a byte-order mark, the other layers GeoJSON), and ``$...$`` (mathtext to a
plotting library). Every script payload calls
``alert`` and sets ``window.__pwned`` so a browser test can tell if any of them ran.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

LON0, LAT0 = 109.02, 32.68  # 汉滨区, Ankang
STEP = 0.02                 # degrees between villages (~1.9 km)


def js(tag: str) -> str:
    """A script payload that records ``tag`` in ``window.__pwned`` and opens a dialog."""
    return f"window.__pwned=(window.__pwned||[]).concat(['{tag}']);alert('{tag}')"


def img(tag: str) -> str:
    return f'<img src=x onerror="{js(tag)}">'


LONG_NAME = "长" * 9_991 + "<b>末尾</b>"  # 10,000 characters
#: the villages: code, name, county, township, households
VILLAGES = [
    ("<img src=x onerror=alert('code')>", img("name") + "张家村",
     "</title><script>" + js("county") + "</script>县", f"<svg onload=\"{js('township')}\">镇",
     "120"),
    ("=1+2", '=HYPERLINK("http://evil.invalid","点此")', "+SUM(1,2)", "@SUM(A1)", "=1+1"),
    ("-2+3", "\t=1+1 村", "-cmd|' /C calc'!A0", "\r@SUM(1)", "80"),
    ("V4", LONG_NAME, "县\x01\x07\x1b\u202e\u2028", "'=already quoted", "60"),
    ("610902001003", "正常村", "汉滨区", "-12.5", "95"),
]
#: the natural villages: code, name, parent village code
NATURAL = [("<img src=x onerror=alert('nat')>", img("natural") + "组", "=1+2"),
           ("@N2", "+自然村", "610902001003"), ("N3", r"$\undefined{x}$ 组", "V4")]
ROAD_IDS = [img("road"), '=HYPERLINK("http://evil.invalid","路")', "+road", "@road", "-road"]
WATER_IDS = [img("water") + "水", "=水源", "@井", "+泉", "-塔"]


@dataclass
class Hostile:
    dir: Path
    project: Path
    villages_csv: Path
    codes: list[str]            #: every input village code (admin and natural), as read


def payload_strings() -> list[str]:
    """The distinctive script fragments that must never run or appear as markup."""
    return ["onerror=", "onload=", "<script>"]


def _write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str) -> None:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _geojson(path: Path, feats: list[tuple[dict, dict]]) -> None:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": p, "geometry": g} for p, g in feats]},
        ensure_ascii=False), encoding="utf-8")


def build_hostile(d: Path) -> Hostile:
    d.mkdir(parents=True, exist_ok=True)
    rows = [[c, n, co, tw, hh, "是" if i % 2 else "否", f"{LON0 + i * STEP:.6f}", f"{LAT0:.6f}"]
            for i, (c, n, co, tw, hh) in enumerate(VILLAGES)]
    villages = d / "villages.csv"
    _write_csv(villages, ["code", "name", "county", "township", "households", "poor", "lon",
                          "lat"], rows, "utf-8-sig")
    _geojson(d / "natural.geojson", [
        ({"code": c, "name": n, "village_code": p, "households": 40},
         {"type": "Point", "coordinates": [LON0 + i * STEP * 4 + 0.004, LAT0 + 0.003]})
        for i, (c, n, p) in enumerate(NATURAL)])
    # a road beside every village (hardened or of hostile surface), 300 m away
    _geojson(d / "roads.geojson", [
        ({"id": rid, "name": "<script>" + js("roadname") + "</script>",
          "surface": "asphalt" if i % 2 == 0 else img("surface"), "highway": "=residential"},
         {"type": "LineString", "coordinates": [[LON0 + i * STEP - 0.003, LAT0 + 0.003],
                                                [LON0 + i * STEP + 0.003, LAT0 + 0.003]]})
        for i, rid in enumerate(ROAD_IDS)])
    _write_csv(d / "water.csv", ["编号", "类型", "达标", "经度", "纬度"],
               [[wid, "tap" if i % 2 == 0 else "=HYPERLINK(\"x\")", "是",
                 f"{LON0 + i * STEP + 0.002:.6f}", f"{LAT0 - 0.002:.6f}"]
                for i, wid in enumerate(WATER_IDS)], "gbk")
    _geojson(d / "power.geojson", [
        ({"id": "@power" if i else img("power"), "kind": "transformer",
          "name": "+变压器" if i else img("powername")},
         {"type": "Point", "coordinates": [LON0 + i * STEP * 2, LAT0 + 0.001]})
        for i in range(3)])
    _geojson(d / "clinics.geojson", [
        ({"id": f"<svg onload=\"{js('clinic')}\">" if i == 0 else "=clinic",
          "name": img("clinicname"), "standardized": "是"},
         {"type": "Point", "coordinates": [LON0 + i * STEP * 3, LAT0 - 0.001]})
        for i in range(2)])
    _geojson(d / "broadband.geojson", [
        ({"id": "+tower" if i else img("tower"), "kind": "tower", "radius_m": 1500},
         {"type": "Point", "coordinates": [LON0 + i * STEP * 3 + 0.001, LAT0]})
        for i in range(2)])
    project = d / "project.toml"
    project.write_text(f"""\
name = {json.dumps(img("project"), ensure_ascii=False)}
standard = "national"
crs = "EPSG:4490"

[layers.villages]
path = "villages.csv"

[layers.natural_villages]
path = "natural.geojson"

[layers.roads]
path = "roads.geojson"

[layers.water]
path = "water.csv"
encoding = "GBK"
lon = "经度"
lat = "纬度"
fields = {{ id = "编号", kind = "类型", safe = "达标" }}

[layers.power]
path = "power.geojson"

[layers.clinics]
path = "clinics.geojson"

[layers.broadband]
path = "broadband.geojson"
""", encoding="utf-8")
    codes = [v[0].strip() for v in VILLAGES] + [n[0] for n in NATURAL]
    return Hostile(dir=d, project=project, villages_csv=villages, codes=codes)
