"""The OGR reader's own Arrow decoding against pyogrio's ``read_dataframe`` (the reference).

``layers.readers._read_ogr_arrow`` takes the WKB column out of GDAL's Arrow stream before the
conversion to pandas; the frame it gives must be the one ``pyogrio.read_dataframe(...,
use_arrow=True)`` gives, for every kind of field and geometry a GeoPackage or GeoJSON holds.
Also: the run's per-indicator status counts (from dictionary codes) against a pandas groupby.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pandas.testing import assert_frame_equal

from buque.geo.run import _status_counts
from buque.layers.readers import _read_ogr_arrow


def _mixed_frame(n: int = 60) -> gpd.GeoDataFrame:
    """Text with nulls and Chinese, integers with nulls, floats, booleans; points, lines,
    polygons, 3D, empty and null geometries."""
    rng = np.random.default_rng(3)
    geoms = []
    for i in range(n):
        x, y = 100 + rng.random(), 30 + rng.random()
        kind = i % 6
        geoms.append(
            shapely.Point(x, y) if kind == 0 else
            shapely.LineString([(x, y), (x + 0.01, y + 0.02)]) if kind == 1 else
            shapely.box(x, y, x + 0.01, y + 0.01) if kind == 2 else
            shapely.Point(x, y, 1200.0) if kind == 3 else
            shapely.LineString() if kind == 4 else None)
    return gpd.GeoDataFrame({
        "id": [f"F{i}" for i in range(n)],
        "name": [None if i % 7 == 0 else f"村{i}" for i in range(n)],
        "households": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),
        "width_m": rng.random(n) * 6,
        "safe": [bool(i % 2) for i in range(n)],
    }, geometry=geoms, crs="EPSG:4490")


@pytest.mark.parametrize("suffix,driver", [(".gpkg", "GPKG"), (".geojson", "GeoJSON")])
def test_arrow_read_equals_pyogrio_read_dataframe(tmp_path, suffix, driver):
    path = tmp_path / f"mixed{suffix}"
    pyogrio.write_dataframe(_mixed_frame(), path, driver=driver)
    got = _read_ogr_arrow(path, None)
    want = pyogrio.read_dataframe(path, use_arrow=True)
    assert isinstance(got, gpd.GeoDataFrame)
    assert got.crs == want.crs
    assert got.geometry.name == want.geometry.name
    assert_frame_equal(got.drop(columns=got.geometry.name),
                       want.drop(columns=want.geometry.name))
    # the same geometries, nulls and empties included, with their Z values
    assert shapely.equals_exact(got.geometry.array, want.geometry.array, 0).sum() \
        + (got.geometry.isna() & want.geometry.isna()).sum() == len(want)
    assert (shapely.has_z(got.geometry.array) == shapely.has_z(want.geometry.array)).all()


def test_arrow_read_of_a_layer_with_dates_takes_pyogrio_path(tmp_path):
    path = tmp_path / "dated.gpkg"
    df = _mixed_frame(12)
    df["surveyed"] = pd.to_datetime([f"2024-0{1 + i % 9}-15" for i in range(12)])
    pyogrio.write_dataframe(df, path)
    got = _read_ogr_arrow(path, None)
    want = pyogrio.read_dataframe(path, use_arrow=True)
    assert_frame_equal(pd.DataFrame(got.drop(columns="geometry")),
                       pd.DataFrame(want.drop(columns="geometry")))


def test_status_counts_match_a_groupby():
    rng = np.random.default_rng(5)
    n = 5000
    gaps = pd.DataFrame({
        "indicator": pd.array(rng.choice(["road", "water", "power", "clinic"], n),
                              dtype="string"),
        "status": pd.array(rng.choice(["met", "missing", "unknown"], n, p=[.6, .3, .1]),
                           dtype="string"),
    })
    gaps.loc[rng.random(n) < 0.02, "status"] = pd.NA  # a null is not a status
    want: dict[str, dict[str, int]] = {}
    for (ind, st), c in gaps.dropna().groupby(["indicator", "status"]).size().items():
        want.setdefault(ind, {})[st] = int(c)
    assert _status_counts(gaps) == want
    assert list(_status_counts(gaps)) == sorted(want)
