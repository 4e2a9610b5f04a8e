"""Bad inputs: a clear error naming the file and field/row, or a rejection with file, row and reason.

And nothing is lost: every input village ends up in villages.parquet or in rejected.csv.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import prcoords
import pyogrio
import pytest
import shapely
from synth_world import ORIGIN, geom, pt, square

from buque.geo.run import run_project
from buque.layers.errors import BuqueInputError

CN_NAMES = ["张家村", "李家村", "王家村"]


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", dtype={"code": str, "village_code": str},
                       keep_default_na=False, na_values=[""])


def write_project(d: Path, villages: str, extra: str = "", layer_extra: str = "",
                  top: str = "") -> Path:
    p = d / "project.toml"
    p.write_text(f'name = "bad"\n{top}\n[layers.villages]\npath = "{villages}"\n{layer_extra}\n'
                 f"{extra}", encoding="utf-8")
    return p


def villages_gdf(geoms: list, codes: list[str] | None = None, crs: str | None = "EPSG:4326",
                 names: list[str] | None = None) -> gpd.GeoDataFrame:
    n = len(geoms)
    return gpd.GeoDataFrame({"code": codes or [f"61090210{i:04d}" for i in range(1, n + 1)],
                             "name": names or [f"村{i}" for i in range(1, n + 1)]},
                            geometry=geoms, crs=crs)


def assert_nothing_lost(out: Path, src: Path, codes: list[str]) -> pd.DataFrame:
    """Every source row is a village of the run or a row of rejected.csv for that file."""
    v = gpd.read_parquet(out / "villages.parquet")
    rej = read_csv(out / "rejected.csv")
    mine = rej[rej["file"].map(lambda f: Path(f).resolve()) == src.resolve()]
    rejected_rows = set(mine["row"].astype(int) - 1)   # spreadsheet lines: header = line 1
    kept_rows = [i for i in range(1, len(codes) + 1) if i not in rejected_rows]
    assert set(v["code"]) >= {codes[i - 1] for i in kept_rows}
    assert len(v) == len(kept_rows)
    assert rejected_rows <= set(range(1, len(codes) + 1))
    m = json.loads((out / "manifest.json").read_text("utf-8"))
    assert m["counts"]["villages_in"] == len(codes)
    assert m["counts"]["assessed"] + m["counts"]["rejected"] == len(codes)
    return mine.set_index("row")


def test_corrupt_file_named_gpkg(tmp_path):
    (tmp_path / "v.gpkg").write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.gpkg"), tmp_path / "out")
    assert str(tmp_path / "v.gpkg") in str(e.value)
    assert not (tmp_path / "out").exists()


def test_missing_layer_file(tmp_path):
    with pytest.raises(BuqueInputError, match="nothere.gpkg"):
        run_project(write_project(tmp_path, "nothere.gpkg"), tmp_path / "out")


# ------------------------------------------------------------------------- legacy encodings

@pytest.fixture
def gbk_shapefile(tmp_path) -> Path:
    g = villages_gdf([geom(ORIGIN, pt(i * 1000, 0)) for i in range(3)], names=CN_NAMES,
                     crs="EPSG:4490")
    path = tmp_path / "cun.shp"
    pyogrio.write_dataframe(g, path, encoding="GBK")
    assert (tmp_path / "cun.dbf").read_bytes().find("张家村".encode("gbk")) > 0
    return path


def test_gbk_shapefile_with_cpg_reads_chinese(gbk_shapefile, tmp_path):
    assert (tmp_path / "cun.cpg").read_text().strip().upper() == "GBK"
    run_project(write_project(tmp_path, "cun.shp"), tmp_path / "out")
    v = gpd.read_parquet(tmp_path / "out" / "villages.parquet")
    assert sorted(v["name"]) == sorted(CN_NAMES)


def test_gbk_shapefile_without_cpg_and_declared_encoding(gbk_shapefile, tmp_path):
    (tmp_path / "cun.cpg").unlink()    # a legacy DBF: nothing says what encoding it is
    run_project(write_project(tmp_path, "cun.shp", layer_extra='encoding = "GBK"'),
                tmp_path / "out")
    v = gpd.read_parquet(tmp_path / "out" / "villages.parquet")
    assert sorted(v["name"]) == sorted(CN_NAMES)


def test_gbk_shapefile_without_cpg_or_encoding_is_a_clear_error(gbk_shapefile, tmp_path):
    (tmp_path / "cun.cpg").unlink()
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "cun.shp"), tmp_path / "out")
    assert "cun.shp" in str(e.value) and "encoding" in str(e.value) and "name" in str(e.value)


def test_gbk_csv_without_encoding_is_a_clear_error(tmp_path):
    pd.DataFrame({"code": ["610902100001"], "name": ["张家村"], "lon": [109.0], "lat": [32.7]}
                 ).to_csv(tmp_path / "v.csv", index=False, encoding="gbk")
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.csv", top='crs = "EPSG:4490"'), tmp_path / "out")
    assert "v.csv" in str(e.value) and "GBK" in str(e.value)
    run_project(write_project(tmp_path, "v.csv", top='crs = "EPSG:4490"',
                              layer_extra='encoding = "GBK"'), tmp_path / "out")
    assert gpd.read_parquet(tmp_path / "out" / "villages.parquet")["name"].tolist() == ["张家村"]


# ------------------------------------------------------------------------------------ CRS

def test_layer_without_crs_and_no_project_crs(tmp_path):
    g = villages_gdf([geom(ORIGIN, pt(0, 0))])
    pyogrio.write_dataframe(g, tmp_path / "v.shp")
    (tmp_path / "v.prj").unlink()
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.shp"), tmp_path / "out")
    assert "v.shp" in str(e.value) and "crs" in str(e.value).lower()
    assert e.value.field == "crs"
    # with the project's CRS it reads
    run_project(write_project(tmp_path, "v.shp", top='crs = "EPSG:4490"'), tmp_path / "out")
    assert len(gpd.read_parquet(tmp_path / "out" / "villages.parquet")) == 1


def test_unknown_declared_crs(tmp_path):
    pyogrio.write_dataframe(villages_gdf([geom(ORIGIN, pt(0, 0))]), tmp_path / "v.gpkg")
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.gpkg", layer_extra='crs = "EPSG:999999"'),
                    tmp_path / "out")
    assert "v.gpkg" in str(e.value) and "999999" in str(e.value)


@pytest.mark.parametrize(("datum", "forward"), [("GCJ-02", prcoords.wgs_gcj),
                                                ("BD-09", prcoords.wgs_bd)])
def test_offset_datum_layer_is_converted(tmp_path, datum, forward):
    """Points published in GCJ-02 / BD-09 land where their WGS84 originals are."""
    from buque.geo.crs import to_wgs84

    wgs = [geom(ORIGIN, pt(x, y)) for x, y in ((0, 0), (3000, 1000), (-2000, 4000))]
    off = [forward((p.y, p.x), True) for p in wgs]              # independent forward transform
    g = villages_gdf([shapely.Point(c.lon, c.lat) for c in off])
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg")
    run_project(write_project(tmp_path, "v.gpkg", layer_extra=f'crs = "{datum}"'), tmp_path / "out")
    v = gpd.read_parquet(tmp_path / "out" / "villages.parquet").set_index("code")
    got = v.loc[g["code"]].geometry
    lon, lat = to_wgs84([c.lon for c in off], [c.lat for c in off], datum)
    assert np.allclose(got.x, lon, atol=1e-9) and np.allclose(got.y, lat, atol=1e-9)
    # and that is the original WGS84 position (the offset here is hundreds of metres)
    from refcalc import GEOD

    wx, wy = np.array([p.x for p in wgs]), np.array([p.y for p in wgs])
    _, _, err = GEOD.inv(got.x.to_numpy(), got.y.to_numpy(), wx, wy)
    _, _, offset = GEOD.inv(np.array([c.lon for c in off]), np.array([c.lat for c in off]), wx, wy)
    assert (err < 0.5).all() and (offset > 100).all()


def test_offset_datum_declared_on_projected_file_is_an_error(tmp_path):
    g = villages_gdf([geom(ORIGIN, pt(0, 0))]).to_crs("EPSG:4545")
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg")
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.gpkg", layer_extra='crs = "GCJ-02"'),
                    tmp_path / "out")
    assert "v.gpkg" in str(e.value) and "GCJ-02" in str(e.value)


def test_projected_cgcs2000_inputs_give_the_same_gaps(synth, copy_synth, tmp_path):
    """County data often comes in a CGCS2000 3-degree Gauss-Kruger projection (EPSG:4545,
    CM 108E): the same villages and roads give the same assessment as in degrees."""
    d = copy_synth()
    for name, layer in (("admin.gpkg", "cun"), ("clinics.gpkg", None)):
        g = pyogrio.read_dataframe(d / name, layer=layer)
        (d / name).unlink()
        pyogrio.write_dataframe(g.to_crs("EPSG:4545"), d / name, layer=layer)
    roads = pyogrio.read_dataframe(d / "roads.shp")
    for f in d.glob("roads.*"):
        f.unlink()
    pyogrio.write_dataframe(roads.to_crs("EPSG:4545"), d / "roads.shp")
    assert "4545" in pyogrio.read_info(d / "admin.gpkg", layer="cun")["crs"]
    base = run_project(synth.project, tmp_path / "out-base").tables.gaps
    proj = run_project(d / "project.toml", tmp_path / "out-proj").tables.gaps
    key = ["village_code", "indicator"]
    a, b = base.set_index(key).sort_index(), proj.set_index(key).sort_index()
    assert a.index.equals(b.index)
    assert (a["status"] == b["status"]).all()
    assert np.allclose(a["distance_m"], b["distance_m"], atol=0.01, equal_nan=True)


# ------------------------------------------------------------------------------------ CSV

def test_csv_with_swapped_lat_lon(tmp_path):
    pd.DataFrame({"code": ["610902100001", "610902100002"], "name": ["甲", "乙"],
                  "lon": [32.70, 32.71], "lat": [109.00, 109.02]}).to_csv(tmp_path / "v.csv",
                                                                         index=False)
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.csv", top='crs = "EPSG:4490"'), tmp_path / "out")
    msg = str(e.value)
    assert "v.csv" in msg and "swap" in msg and "lat" in msg


def test_csv_row_without_coordinates_rejected_once(tmp_path):
    codes = ["610902100001", "610902100002", "610902100003"]
    pd.DataFrame({"code": codes, "name": ["甲", "乙", "丙"], "lon": ["109.0", "", "109.02"],
                  "lat": ["32.70", "32.71", "abc"]}).to_csv(tmp_path / "v.csv", index=False)
    run_project(write_project(tmp_path, "v.csv", top='crs = "EPSG:4490"'), tmp_path / "out")
    rej = assert_nothing_lost(tmp_path / "out", tmp_path / "v.csv", codes)
    assert sorted(rej.index) == [3, 4]           # each bad row once, not once per check
    assert all("coordinates" in r for r in rej["reason"])
    m = json.loads((tmp_path / "out" / "manifest.json").read_text("utf-8"))
    assert m["inputs"][0]["rows"] == 3


def test_csv_without_coordinate_columns(tmp_path):
    pd.DataFrame({"code": ["610902100001"], "east": [109.0], "north": [32.7]}).to_csv(
        tmp_path / "v.csv", index=False)
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.csv", top='crs = "EPSG:4490"'), tmp_path / "out")
    assert "v.csv" in str(e.value) and "longitude" in str(e.value)


# ------------------------------------------------------------------------------ geometry

def test_invalid_bowtie_polygon_repaired_and_warned(tmp_path):
    bowtie = shapely.Polygon([(7000, -1000), (9000, 1000), (9000, -1000), (7000, 1000)])
    assert not bowtie.is_valid
    g = villages_gdf([geom(ORIGIN, square(0, 0, 500)), geom(ORIGIN, bowtie, step=None)])
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg")
    out = tmp_path / "out"
    run_project(write_project(tmp_path, "v.gpkg"), out)
    assert_nothing_lost(out, tmp_path / "v.gpkg", list(g["code"]))
    w = read_csv(out / "warnings.csv")
    w = w[w["layer"] == "villages"]   # (also said: no natural villages for water and power)
    assert len(w) == 1
    assert w.iloc[0]["row"] == 3 and w.iloc[0]["code"] == g["code"][1]
    assert "invalid" in w.iloc[0]["reason"] and Path(w.iloc[0]["file"]).name == "v.gpkg"
    v = gpd.read_parquet(out / "villages.parquet").set_index("code")
    fixed = v.loc[g["code"][1], "geometry"]
    assert fixed.is_valid and fixed.geom_type in ("MultiPolygon", "Polygon")
    # both triangles survive the repair
    assert fixed.area == pytest.approx(shapely.make_valid(g.geometry[1]).area, rel=1e-9)
    assert fixed.contains(shapely.Point(v.loc[g["code"][1], "ref_lon"],
                                        v.loc[g["code"][1], "ref_lat"]))


def test_empty_and_null_geometry_rejected_with_row_and_reason(tmp_path):
    g = villages_gdf([geom(ORIGIN, square(0, 0, 500)), shapely.Polygon(), None,
                      geom(ORIGIN, pt(2000, 0))])
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg", geometry_type="Unknown")
    out = tmp_path / "out"
    run_project(write_project(tmp_path, "v.gpkg"), out)
    rej = assert_nothing_lost(out, tmp_path / "v.gpkg", list(g["code"]))
    assert sorted(rej.index) == [3, 4]
    assert "empty" in rej.loc[3, "reason"] and rej.loc[3, "code"] == g["code"][1]
    assert "null" in rej.loc[4, "reason"] and rej.loc[4, "code"] == g["code"][2]
    assert rej.loc[3, "name"] == g["name"][1]


def test_out_of_range_coordinates_rejected(tmp_path):
    g = villages_gdf([geom(ORIGIN, pt(0, 0)), shapely.Point(209.0, 32.7),
                      shapely.Point(109.0, -95.0)], crs="EPSG:4490")
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg")
    out = tmp_path / "out"
    run_project(write_project(tmp_path, "v.gpkg"), out)
    rej = assert_nothing_lost(out, tmp_path / "v.gpkg", list(g["code"]))
    assert sorted(rej.index) == [3, 4]
    assert all("range" in r for r in rej["reason"])


def test_wrong_geometry_type_rejected(tmp_path):
    g = villages_gdf([geom(ORIGIN, pt(0, 0)), geom(ORIGIN, shapely.LineString([(0, 0), (1, 1)]))])
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg", geometry_type="Unknown")
    out = tmp_path / "out"
    run_project(write_project(tmp_path, "v.gpkg"), out)
    rej = assert_nothing_lost(out, tmp_path / "v.gpkg", list(g["code"]))
    assert list(rej.index) == [3] and "type" in rej.loc[3, "reason"]


# --------------------------------------------------------------------------------- codes

def test_duplicate_codes_later_rejected_naming_first(tmp_path):
    codes = ["610902100001", "610902100002", "610902100003", "610902100002"]
    g = villages_gdf([geom(ORIGIN, pt(i * 800, 0)) for i in range(4)], codes=codes)
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg")
    out = tmp_path / "out"
    run_project(write_project(tmp_path, "v.gpkg"), out)
    rej = assert_nothing_lost(out, tmp_path / "v.gpkg", codes)
    assert list(rej.index) == [5]
    reason = rej.loc[5, "reason"]
    assert "duplicate" in reason and "v.gpkg" in reason and "row 3" in reason
    # the first one is the one kept
    v = gpd.read_parquet(out / "villages.parquet").set_index("code")
    assert v.loc["610902100002", "geometry"].equals_exact(g.geometry[1], 1e-9)


def test_missing_code_rejected(tmp_path):
    g = villages_gdf([geom(ORIGIN, pt(0, 0)), geom(ORIGIN, pt(900, 0))],
                     codes=["610902100001", None])
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg")
    out = tmp_path / "out"
    run_project(write_project(tmp_path, "v.gpkg"), out)
    rej = read_csv(out / "rejected.csv").set_index("row")
    assert list(rej.index) == [3] and "code" in rej.loc[3, "reason"]


def test_fields_mapping_names_a_missing_column(tmp_path):
    pyogrio.write_dataframe(villages_gdf([geom(ORIGIN, pt(0, 0))]), tmp_path / "v.gpkg")
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.gpkg", layer_extra='fields = { name = "CUN_MC" }'),
                    tmp_path / "out")
    assert "v.gpkg" in str(e.value) and "CUN_MC" in str(e.value)
    assert e.value.field == "CUN_MC"


def test_fields_mapping_unknown_canonical_name(tmp_path):
    pyogrio.write_dataframe(villages_gdf([geom(ORIGIN, pt(0, 0))]), tmp_path / "v.gpkg")
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.gpkg", layer_extra='fields = { cunming = "name" }'),
                    tmp_path / "out")
    assert "project.toml" in str(e.value) and "cunming" in str(e.value)


def test_unparseable_attribute_left_null_with_warning(tmp_path):
    g = villages_gdf([geom(ORIGIN, pt(0, 0)), geom(ORIGIN, pt(900, 0))])
    g["HS"] = ["120", "约八十"]
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg")
    out = tmp_path / "out"
    run_project(write_project(tmp_path, "v.gpkg", layer_extra='fields = { households = "HS" }'),
                out)
    v = gpd.read_parquet(out / "villages.parquet").set_index("code")
    assert v.loc[g["code"][0], "households"] == 120
    assert pd.isna(v.loc[g["code"][1], "households"])
    w = read_csv(out / "warnings.csv")
    w = w[w["layer"] == "villages"]   # (also said: no natural villages for water and power)
    assert list(w["row"]) == [3] and list(w["field"]) == ["HS"]


# ------------------------------------------------------------------------------ profiles

def test_unknown_profile_name(tmp_path):
    pyogrio.write_dataframe(villages_gdf([geom(ORIGIN, pt(0, 0))]), tmp_path / "v.gpkg")
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.gpkg", top='standard = "provincial-xx"'),
                    tmp_path / "out")
    assert "provincial-xx" in str(e.value) and "national" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_missing_project_file(tmp_path):
    with pytest.raises(BuqueInputError, match="nope.toml"):
        run_project(tmp_path / "nope.toml", tmp_path / "out")


def test_project_without_village_layer(tmp_path):
    (tmp_path / "p.toml").write_text('[layers.roads]\npath = "roads.shp"\n', encoding="utf-8")
    with pytest.raises(BuqueInputError) as e:
        run_project(tmp_path / "p.toml", tmp_path / "out")
    assert "p.toml" in str(e.value) and "village" in str(e.value)


# ------------------------------------------------- what a county office's spreadsheet holds

@pytest.mark.parametrize("lon,lat", [("东经", "北纬"), ("X坐标", "Y坐标"), ("经度", "纬度"),
                                     ("lng", "lat"), ("x", "y"), ("Longitude", "Latitude"),
                                     (" 东经 ", "北纬")])
def test_chinese_and_english_coordinate_columns_are_recognised(tmp_path, lon, lat):
    pd.DataFrame({"code": ["610902100001", "610902100002"], "name": ["甲村", "乙村"],
                  lon: ["109.0", "109.01"], lat: ["32.70", "32.71"]}
                 ).to_csv(tmp_path / "v.csv", index=False)
    run_project(write_project(tmp_path, "v.csv", top='crs = "EPSG:4490"'), tmp_path / "out")
    m = json.loads((tmp_path / "out" / "manifest.json").read_text("utf-8"))
    assert m["counts"]["assessed"] == 2


def test_rejected_and_warning_rows_carry_code_name_and_spreadsheet_line(tmp_path):
    """``row`` is the line a spreadsheet shows (header = line 1); code and name say which row."""
    pd.DataFrame({"CUN_DM": ["610902100001", "610902100002", "610902100003"],
                  "CUN_MC": ["甲村", "乙村", "丙村"], "HS": ["10", "十户", "30"],
                  "东经": ["109.0", "109.01", ""], "北纬": ["32.70", "32.71", "32.72"]}
                 ).to_csv(tmp_path / "v.csv", index=False)
    run_project(write_project(tmp_path, "v.csv", top='crs = "EPSG:4490"',
                              layer_extra='fields = { code = "CUN_DM", name = "CUN_MC", '
                              'households = "HS" }'), tmp_path / "out")
    lines = (tmp_path / "v.csv").read_text("utf-8").splitlines()
    rej = read_csv(tmp_path / "out" / "rejected.csv")
    assert list(rej.columns[:6]) == ["file", "layer", "row", "code", "name", "field"]
    r = rej.iloc[0]
    assert (int(r["row"]), r["code"], r["name"]) == (4, "610902100003", "丙村")
    assert lines[int(r["row"]) - 1].startswith("610902100003,丙村")
    w = read_csv(tmp_path / "out" / "warnings.csv")
    w = w[w["field"] == "HS"].iloc[0]
    assert (int(w["row"]), w["code"], w["name"]) == (3, "610902100002", "乙村")
    assert "十户" in lines[int(w["row"]) - 1]


def test_rejected_features_carry_their_id_and_name(tmp_path):
    pd.DataFrame({"code": ["610902100001"], "name": ["甲村"], "lon": ["109.0"],
                  "lat": ["32.7"]}).to_csv(tmp_path / "v.csv", index=False)
    pd.DataFrame({"编号": ["C1", "C2"], "名称": ["一号卫生室", "二号卫生室"], "东经": ["109.0", "abc"],
                  "北纬": ["32.7", "32.7"]}).to_csv(tmp_path / "c.csv", index=False)
    extra = '[layers.clinics]\npath = "c.csv"\nfields = { id = "编号", name = "名称" }\n'
    run_project(write_project(tmp_path, "v.csv", extra, top='crs = "EPSG:4490"'),
                tmp_path / "out")
    rej = read_csv(tmp_path / "out" / "rejected.csv")
    r = rej[rej["layer"] == "clinics"].iloc[0]
    assert (int(r["row"]), r["code"], r["name"]) == (3, "C2", "二号卫生室")


@pytest.mark.parametrize("make", [
    lambda v: pd.Series(v, dtype="object"),
    lambda v: pd.Series(v, dtype="string[pyarrow]"),
    lambda v: pd.concat([pd.Series(v[:3], dtype="string[pyarrow]"),
                         pd.Series(v[3:], dtype="string[pyarrow]")], ignore_index=True),
    lambda v: pd.Series(["\ufffd前", *v], dtype="string[pyarrow]").iloc[1:],  # sliced past it
])
def test_replacement_chars_match_a_per_cell_search(make):
    """Text that did not decode is found cell by cell, also in chunked and sliced columns (the
    byte search that skips clean columns must never miss one)."""
    from buque.layers.readers import _replacement_chars
    for values in (["张家村", None, "李\ufffd村", "王村", "\ufffd", None],
                   ["张家村", None, "王村", "赵村", "x", None], [None] * 6):
        col = make(values)
        want = np.array([isinstance(v, str) and "\ufffd" in v for v in col.astype(object)])
        assert (_replacement_chars(col) == want).all()


def test_text_that_did_not_decode_names_file_row_and_field(tmp_path):
    g = villages_gdf([geom(ORIGIN, pt(i * 1000, 0)) for i in range(3)],
                     names=["张家村", "李\ufffd村", "王村"], crs="EPSG:4490")
    pyogrio.write_dataframe(g, tmp_path / "v.gpkg")
    with pytest.raises(BuqueInputError) as e:
        run_project(write_project(tmp_path, "v.gpkg"), tmp_path / "out")
    assert "v.gpkg" in str(e.value) and "does not decode" in str(e.value)
    assert e.value.field == "name" and e.value.row == 3  # the header is line 1
