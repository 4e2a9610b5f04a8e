"""GeoParquet and GeoArrow inputs (read with pyarrow: this GDAL has no Parquet driver).

The synthetic county is converted layer by layer into Arrow formats — GeoParquet with WKB and
with native GeoArrow geometry, Feather, a plain Parquet table with lon/lat columns — and must
give the same run as the original GeoPackage / GeoJSON / Shapefile / CSV files.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest

from buque.geo.run import run_project
from buque.layers.errors import BuqueInputError


def _convert(d, synth) -> None:
    """Rewrite the project's layers as Arrow files (the same features, other formats/CRSs)."""
    admin = pyogrio.read_dataframe(synth.files["villages"], layer="cun")  # EPSG:4490 polygons
    admin.to_parquet(d / "admin.parquet")
    nat = pyogrio.read_dataframe(synth.files["natural_villages"])
    nat.to_feather(d / "natural.feather")  # GeoArrow IPC
    roads = pyogrio.read_dataframe(synth.files["roads"])
    # projected CRS and native GeoArrow geometry: the file's CRS must be honoured
    roads.to_crs("EPSG:32649").to_parquet(d / "roads.parquet", geometry_encoding="geoarrow")
    water = pd.read_csv(synth.files["water"], dtype=str)  # no geometry: lon/lat columns, no CRS
    water.to_parquet(d / "water.parquet", index=False)
    toml = (d / "project.toml").read_text("utf-8")
    for old, new in (("admin.gpkg", "admin.parquet"), ("natural.geojson", "natural.feather"),
                     ("roads.shp", "roads.parquet"), ("water.csv", "water.parquet")):
        assert old in toml
        toml = toml.replace(f'"{old}"', f'"{new}"')
    (d / "arrow.toml").write_text(toml, encoding="utf-8")


def test_geoparquet_and_geoarrow_inputs_give_the_same_run(copy_synth, synth, tmp_path):
    d = copy_synth()
    _convert(d, synth)
    ref = run_project(d / "project.toml", tmp_path / "ref")
    got = run_project(d / "arrow.toml", tmp_path / "arrow")
    kinds = {i["layer"]: i["path"] for i in got.manifest["inputs"]}
    assert kinds["villages"].endswith("admin.parquet")
    assert kinds["roads"].endswith("roads.parquet")
    assert got.manifest["counts"]["villages_in"] == ref.manifest["counts"]["villages_in"]
    assert got.manifest["counts"]["rejected"] == ref.manifest["counts"]["rejected"]
    a = ref.tables.gaps.sort_values(["village_code", "indicator"]).reset_index(drop=True)
    b = got.tables.gaps.sort_values(["village_code", "indicator"]).reset_index(drop=True)
    assert len(a) > 0
    for col in ("village_code", "indicator", "status", "evidence_id", "candidate_id", "reason"):
        assert a[col].astype(object).where(a[col].notna(), None).tolist() == \
            b[col].astype(object).where(b[col].notna(), None).tolist(), col
    # roads went through UTM and back: distances agree to well under a millimetre
    np.testing.assert_allclose(b["distance_m"], a["distance_m"], atol=1e-3, equal_nan=True)
    va = gpd.read_parquet(tmp_path / "ref" / "villages.parquet").set_index("code").sort_index()
    vb = gpd.read_parquet(tmp_path / "arrow" / "villages.parquet").set_index("code").sort_index()
    assert va.index.tolist() == vb.index.tolist()
    assert va["name"].tolist() == vb["name"].tolist()  # Chinese text survives
    assert va["missing"].fillna("").tolist() == vb["missing"].fillna("").tolist()


def test_parquet_rows_without_coordinates_are_rejected_with_row(copy_synth, tmp_path):
    d = copy_synth()
    water = pd.read_csv(d / "water.csv", dtype=str)
    water.loc[1, "经度"] = None
    water.to_parquet(d / "water.parquet", index=False)
    toml = (d / "project.toml").read_text("utf-8").replace('"water.csv"', '"water.parquet"')
    (d / "p.toml").write_text(toml, encoding="utf-8")
    run = run_project(d / "p.toml", tmp_path / "out")
    rej = run.tables.rejected
    mine = rej[rej["file"].str.endswith("water.parquet")]
    assert mine["row"].astype(int).tolist() == [3]   # data row 2: line 3 (header = line 1)
    assert "coordinates" in mine["reason"].iloc[0]


def test_corrupt_parquet_names_the_file(copy_synth, tmp_path):
    d = copy_synth()
    (d / "roads.parquet").write_bytes(np.random.default_rng(2).bytes(2048))
    toml = (d / "project.toml").read_text("utf-8").replace('"roads.shp"', '"roads.parquet"')
    (d / "p.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(BuqueInputError) as e:
        run_project(d / "p.toml", tmp_path / "out")
    assert str(d / "roads.parquet") in str(e.value)
    assert not (tmp_path / "out").exists()


def test_parquet_without_geometry_or_coordinates_says_what_is_missing(copy_synth, tmp_path):
    d = copy_synth()
    pd.DataFrame({"id": ["a", "b"], "surface": ["asphalt", "gravel"]}).to_parquet(
        d / "roads.parquet", index=False)
    toml = (d / "project.toml").read_text("utf-8").replace('"roads.shp"', '"roads.parquet"')
    (d / "p.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(BuqueInputError, match="longitude"):
        run_project(d / "p.toml", tmp_path / "out")
