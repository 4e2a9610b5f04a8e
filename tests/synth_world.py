"""The synthetic test county, in real file formats, and helpers shared by the tests.

(In a module of its own, not conftest.py: tests/api/ has a conftest too, and
``from conftest import ...`` would find whichever was imported last.)

The synthetic project ("synth") is laid out in metres around an origin near 安康 (Ankang) and
written in the formats a county office actually hands over:

- ``admin.gpkg``        administrative villages, polygons, EPSG:4490, Chinese column names
- ``admin_points.gpkg`` two administrative villages given as points (used by ``points.toml``)
- ``natural.geojson``   natural villages (points), one without geometry, one duplicate code
- ``roads.shp``         roads, EPSG:4490, Chinese surface values, short DBF column names
- ``water.csv``         water points with 经度/纬度 columns and no CRS (the project's CRS applies)
- ``power.gpkg``        lines and transformer points in one layer
- ``clinics.gpkg``      clinic points, EPSG:4490, ``standardized`` as 是/否/blank
- ``broadband.gpkg``    towers (with and without radius) and a coverage polygon

Every feature is also kept in :class:`Synth` as plain Python (lon/lat geometry and canonical
attributes), so tests compute what to expect from the source data, not from Buque's readers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import Transformer

REPO = Path(__file__).resolve().parent.parent
DEMO_TOML = REPO / "layers" / "demo" / "andorra.toml"
ANDORRA_PBF = REPO / "layers" / "demo" / "andorra-latest.osm.pbf"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: published tag counts of the Andorra extract (tests/fixtures/README.md)
OSM_TAG_STATS = FIXTURES / "andorra_osm_tag_stats.json"

#: local origin of the synthetic county (lon, lat), in UTM zone 49N
ORIGIN = (109.0, 32.7)
#: a second origin on the UTM 48/49 zone border (108°E): villages west, features east of it
BORDER = (108.0, 32.7)

# real NBS 12-digit codes of 汉滨区 villages (tests/fixtures/ankang_official_sample.csv)
CODE_V1 = "610902102201"
CODE_V2 = "610902102202"
CODE_V3 = "610902102203"
CODE_V4 = "610902102204"
CODE_W1 = "610902102205"
CODE_P1 = "610902102206"
CODE_P2 = "610902102207"


def require_tools(*tools: str, package: str) -> None:
    """Fail (never skip) when a command the test needs is missing, naming what installs it:
    on a machine set up by ``setup.sh`` every tool is there, so a skip would hide a gap."""
    import shutil

    import pytest

    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: install {package} (bash setup.sh does)")


def local_to_lonlat(origin: tuple[float, float]):
    """A function mapping local metres (x east, y north) around ``origin`` to lon/lat."""
    tr = Transformer.from_crs(
        f"+proj=aeqd +lat_0={origin[1]} +lon_0={origin[0]} +datum=WGS84 +units=m",
        "EPSG:4326", always_xy=True)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return fn


def geom(origin: tuple[float, float], g: shapely.Geometry,
         step: float | None = 100.0) -> shapely.Geometry:
    """A geometry drawn in local metres, densified to ``step`` m (None: as is), as lon/lat.

    (GEOS's densifier rebuilds polygons valid, so invalid test shapes must pass step=None.)
    """
    if step is not None and shapely.get_type_id(g) != 0:
        g = shapely.segmentize(g, step)
    return shapely.transform(g, local_to_lonlat(origin))


def square(cx: float, cy: float, half: float) -> shapely.Polygon:
    return shapely.box(cx - half, cy - half, cx + half, cy + half)


def line(*pts: tuple[float, float]) -> shapely.LineString:
    return shapely.LineString(pts)


def pt(x: float, y: float) -> shapely.Point:
    return shapely.Point(x, y)


OG, BD = ORIGIN, BORDER

#: administrative villages (polygons): code, name, township, households, poor, exit year,
#: given centre (local metres) or None, polygon (local metres), origin
ADMIN = [
    (CODE_V1, "张家村", "甲镇", 320, "是", 2019, None, square(0, 0, 1000), OG),
    (CODE_V2, "李家村", "甲镇", 150, "是", None, None, square(4000, 0, 1000), OG),
    # given centre: (300, 5400)
    (CODE_V3, "王家村", "乙镇", 210, "否", None, (300, 5400), square(0, 5000, 1000), OG),
    # an L shape whose centroid lies outside it: the reference must still be inside
    (CODE_V4, "赵家村", "乙镇", 90, "否", None, None,
     shapely.Polygon([(7000, -1000), (9000, -1000), (9000, -600), (7400, -600), (7400, 1000),
                      (7000, 1000)]), OG),
    # west of 108°E (UTM 48) with its road east of it (UTM 49)
    (CODE_W1, "边界村", "丙镇", None, None, None, None, square(-300, 0, 250), BD),
]
COUNTY = "汉滨区"

#: administrative villages given as points (admin_points.gpkg, points.toml)
ADMIN_POINTS = [
    (CODE_P1, "南坪村", "丁镇", pt(0, -8000), OG),
    (CODE_P2, "北坪村", "丁镇", pt(6000, -8000), OG),
]

#: natural villages: code, name, village_code (given) or None, households, point or None
NATURAL = [
    ("N1", "张家湾", CODE_V1, 45, pt(200, 300)),      # inside V1, parent given
    ("N2", "李家沟", None, 12, pt(4300, -200)),       # inside V2: parent by containment
    ("N3", "石板岩", None, None, pt(-2500, 0)),       # outside all: nearest is V1
    ("N4", "王家坪", None, 80, pt(2000, 5500)),       # outside all: nearest is V3
    ("N5", "梨树垭", None, 33, pt(4000, 2500)),       # outside all: nearest is V2
    ("N6", "无图组", None, 20, None),                  # no geometry -> rejected
    ("N5", "重号组", None, 40, pt(-4000, -4000)),     # duplicate of N5 -> rejected
]

#: roads: id, surface, width, highway, line (local metres), origin
ROADS = [
    ("R1", "沥青", 6.0, "县道", line((-1500, -300), (6000, -300)), OG),
    ("R2", "砂石", 4.0, "村道", line((-3000, 5600), (3000, 5600)), OG),
    ("R3", None, None, "村道", line((-2700, -2000), (-2700, 2000)), OG),
    ("R4", "水泥", 3.0, "村道", line((-1000, 700), (1000, 700)), OG),
    ("R5", "concrete", None, "村道", line((4300, 2000), (4300, 3000)), OG),
    ("R6", "沥青", 5.0, "县道", line((100, -3000), (100, 3000)), BD),
    ("R7", "水泥", 4.5, "乡道", line((-1000, -8600), (7000, -8600)), OG),
]

#: water points: id, kind, safe (是/否/blank), point, origin
WATER = [
    ("S1", "tap", "", pt(200, 1000), OG),
    ("S2", "spring", "是", pt(4300, 300), OG),
    ("S3", "spring", "否", pt(-2500, 300), OG),
    ("S4", "pond", "", pt(2000, 6000), OG),
    ("S5", "", "", pt(4000, 2900), OG),
    ("S6", "水井", "", pt(-3500, -3000), OG),
]

#: power: id, kind, voltage, geometry, origin
POWER = [
    ("T1", "变压器", "10kV", pt(300, 500), OG),
    ("L1", "线路", "10kV", line((-3000, 600), (-2000, 600)), OG),
    ("L2", None, "0.4kV", line((4500, -1000), (4500, 1000)), OG),
    ("P1", "pole", None, pt(2100, 5600), OG),
    ("T2", "transformer", "10kV", pt(4000, 3300), OG),
]

#: clinics: id, name, standardized (是/否/blank), point, origin
CLINICS = [
    ("C1", "张家村卫生室", "是", pt(-200, 200), OG),
    ("C2", "李家村卫生室", "否", pt(3800, 500), OG),
    ("C3", "王家村卫生室", "", pt(-500, 4500), OG),
    ("C4", "南坪卫生室", "是", pt(1500, -8000), OG),
]

#: broadband: id, kind, radius_m (None = the profile's default), geometry, origin
BROADBAND = [
    ("B1", "tower", 1500.0, pt(0, 1000), OG),
    ("B2", "coverage", None, square(4000, 500, 1000), OG),
    ("B3", "tower", 200.0, pt(300, 4900), OG),
    ("B4", "tower", None, pt(300, 7000), OG),
]


@dataclass
class Synth:
    """The synthetic project folder and its source features in canonical form (EPSG:4326)."""

    dir: Path
    project: Path
    points_project: Path
    files: dict[str, Path]
    admin: gpd.GeoDataFrame
    admin_points: gpd.GeoDataFrame
    natural: gpd.GeoDataFrame
    layers: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)

    @property
    def n_input_villages(self) -> int:
        return len(self.admin) + len(self.natural)


PROJECT_TOML = """\
name = "合成测试县 (synthetic)"
standard = "national"
crs = "EPSG:4490"

[layers.villages]
path = "admin.gpkg"
fields = {{ code = "CUN_DM", name = "CUN_MC", county = "XIAN_MC", township = "XIANG_MC", \
households = "HS", poor = "PKC", exit_year = "TCNF", ref_lon = "ZX_JD", ref_lat = "ZX_WD" }}

[layers.natural_villages]
path = "natural.geojson"

[layers.roads]
path = "roads.shp"
fields = {{ id = "LXBM", surface = "LMLX", width_m = "LMKD", highway = "JSDJ" }}

[layers.water]
path = "water.csv"
lon = "经度"
lat = "纬度"
fields = {{ id = "编号", kind = "类型", safe = "达标" }}

[layers.power]
path = "power.gpkg"

[layers.clinics]
path = "clinics.gpkg"
fields = {{ standardized = "BZH" }}

[layers.broadband]
path = "broadband.gpkg"
{extra}"""

POINTS_TOML = PROJECT_TOML.replace('path = "admin.gpkg"', 'path = "admin_points.gpkg"').replace(
    ', ref_lon = "ZX_JD", ref_lat = "ZX_WD"', "")


def _yes(v: str | None) -> bool | None:
    return {"是": True, "否": False}.get(v or "")


def build_synth(d: Path) -> Synth:
    d.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    # administrative villages: polygons, Chinese column names, EPSG:4490
    rows = []
    for code, name, town, hh, poor, exit_year, centre, poly, org in ADMIN:
        c = geom(org, pt(*centre)) if centre else None
        rows.append({"CUN_DM": code, "CUN_MC": name, "XIAN_MC": COUNTY, "XIANG_MC": town,
                     "HS": hh, "PKC": poor, "TCNF": exit_year,
                     "ZX_JD": c.x if c else None, "ZX_WD": c.y if c else None,
                     "geometry": geom(org, poly)})
    admin_src = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4490")
    admin_src["HS"] = admin_src["HS"].astype("Int64")
    admin_src["TCNF"] = admin_src["TCNF"].astype("Int64")
    files["villages"] = d / "admin.gpkg"
    pyogrio.write_dataframe(admin_src, files["villages"], layer="cun", driver="GPKG")
    admin = gpd.GeoDataFrame({
        "code": admin_src["CUN_DM"], "name": admin_src["CUN_MC"], "county": COUNTY,
        "township": admin_src["XIANG_MC"], "households": admin_src["HS"],
        "poor": [_yes(p) for p in admin_src["PKC"]], "exit_year": admin_src["TCNF"],
        "ref_lon": admin_src["ZX_JD"], "ref_lat": admin_src["ZX_WD"], "row": range(1, len(rows) + 1),
    }, geometry=admin_src.geometry.to_numpy(), crs="EPSG:4326")

    prow = [{"CUN_DM": c, "CUN_MC": n, "XIAN_MC": COUNTY, "XIANG_MC": t, "HS": 100, "PKC": "否",
             "TCNF": None, "geometry": geom(o, p)} for c, n, t, p, o in ADMIN_POINTS]
    pts_src = gpd.GeoDataFrame(prow, geometry="geometry", crs="EPSG:4326")
    pts_src["TCNF"] = pts_src["TCNF"].astype("Int64")
    files["admin_points"] = d / "admin_points.gpkg"
    pyogrio.write_dataframe(pts_src, files["admin_points"], driver="GPKG")
    admin_points = gpd.GeoDataFrame({"code": pts_src["CUN_DM"], "name": pts_src["CUN_MC"],
                                     "county": COUNTY, "township": pts_src["XIANG_MC"]},
                                    geometry=pts_src.geometry.to_numpy(), crs="EPSG:4326")

    # natural villages: GeoJSON points with canonical names; one null geometry
    nat = gpd.GeoDataFrame({
        "code": [r[0] for r in NATURAL], "name": [r[1] for r in NATURAL],
        "village_code": [r[2] for r in NATURAL],
        "households": pd.array([r[3] for r in NATURAL], dtype="Int64"),
        "row": range(1, len(NATURAL) + 1),
    }, geometry=[geom(OG, r[4]) if r[4] is not None else None for r in NATURAL], crs="EPSG:4326")
    files["natural_villages"] = d / "natural.geojson"
    pyogrio.write_dataframe(nat.drop(columns="row"), files["natural_villages"], driver="GeoJSON")

    layers: dict[str, gpd.GeoDataFrame] = {}

    # roads: Shapefile (UTF-8 .cpg), EPSG:4490, short DBF names
    roads = gpd.GeoDataFrame({
        "id": [r[0] for r in ROADS], "surface": [r[1] for r in ROADS],
        "width_m": [r[2] for r in ROADS], "highway": [r[3] for r in ROADS],
    }, geometry=[geom(r[5], r[4]) for r in ROADS], crs="EPSG:4326")
    layers["roads"] = roads
    files["roads"] = d / "roads.shp"
    pyogrio.write_dataframe(
        roads.rename(columns={"id": "LXBM", "surface": "LMLX", "width_m": "LMKD", "highway": "JSDJ"})
        .set_crs("EPSG:4490", allow_override=True), files["roads"], driver="ESRI Shapefile")

    # water: CSV with Chinese lon/lat headers and no CRS
    wg = [geom(r[4], r[3]) for r in WATER]
    files["water"] = d / "water.csv"
    pd.DataFrame({"编号": [r[0] for r in WATER], "类型": [r[1] for r in WATER],
                  "达标": [r[2] for r in WATER], "经度": [f"{g.x:.8f}" for g in wg],
                  "纬度": [f"{g.y:.8f}" for g in wg]}).to_csv(files["water"], index=False,
                                                              encoding="utf-8")
    layers["water"] = gpd.GeoDataFrame({
        "id": [r[0] for r in WATER], "kind": [r[1] or None for r in WATER],
        "safe": [_yes(r[2]) for r in WATER]}, geometry=wg, crs="EPSG:4326")

    # power: lines and points in one GeoPackage layer
    power = gpd.GeoDataFrame({"id": [r[0] for r in POWER], "kind": [r[1] for r in POWER],
                              "voltage": [r[2] for r in POWER]},
                             geometry=[geom(r[4], r[3]) for r in POWER], crs="EPSG:4326")
    layers["power"] = power
    files["power"] = d / "power.gpkg"
    pyogrio.write_dataframe(power, files["power"], driver="GPKG", geometry_type="Unknown")

    # clinics: EPSG:4490, standardized as 是/否/blank in column BZH
    clinics = gpd.GeoDataFrame({"id": [r[0] for r in CLINICS], "name": [r[1] for r in CLINICS],
                                "BZH": [r[2] or None for r in CLINICS]},
                               geometry=[geom(r[4], r[3]) for r in CLINICS], crs="EPSG:4326")
    files["clinics"] = d / "clinics.gpkg"
    pyogrio.write_dataframe(clinics.set_crs("EPSG:4490", allow_override=True), files["clinics"],
                            driver="GPKG")
    layers["clinics"] = clinics.assign(standardized=[_yes(r[2]) for r in CLINICS]).drop(
        columns="BZH")

    # broadband: towers and a coverage polygon
    bb = gpd.GeoDataFrame({"id": [r[0] for r in BROADBAND], "kind": [r[1] for r in BROADBAND],
                           "radius_m": [r[2] for r in BROADBAND]},
                          geometry=[geom(r[4], r[3]) for r in BROADBAND], crs="EPSG:4326")
    layers["broadband"] = bb
    files["broadband"] = d / "broadband.gpkg"
    pyogrio.write_dataframe(bb, files["broadband"], driver="GPKG", geometry_type="Unknown")

    project = d / "project.toml"
    project.write_text(PROJECT_TOML.format(extra=""), encoding="utf-8")
    points_project = d / "points.toml"
    points_project.write_text(POINTS_TOML.format(extra=""), encoding="utf-8")
    return Synth(dir=d, project=project, points_project=points_project, files=files, admin=admin,
                 admin_points=admin_points, natural=nat, layers=layers)


def run_cli(*args: str | os.PathLike, cwd: Path | None = None, timeout: float = 120,
            columns: int | None = None) -> subprocess.CompletedProcess:
    """The real ``buque`` command (as installed), capturing its output."""
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning", "NO_COLOR": "1"}
    if columns:
        env["COLUMNS"] = str(columns)
    exe = Path(sys.executable).with_name("buque")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "buque.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


@dataclass
class CliRun:
    out: Path
    proc: subprocess.CompletedProcess


