"""The OGR reader's own Arrow decoding against pyogrio's ``read_dataframe`` (the reference).

``layers.readers`` takes the WKB column out of GDAL's Arrow stream (:func:`fetch`, which a run
starts a layer ahead in a thread) before the conversion to pandas; the frame it gives must be the
one ``pyogrio.read_dataframe(..., use_arrow=True)`` gives, for every kind of field and geometry a
GeoPackage or GeoJSON holds, read ahead or not.
Also: the run's per-indicator status counts (from dictionary codes) against a pandas groupby.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pandas.testing import assert_frame_equal

from buque.geo.run import _status_counts
from buque.layers.errors import BuqueInputError
from buque.layers.project import LayerSpec
from buque.layers.readers import Prefetch, _read_vector, fetch


def _read(path, ahead: bool = False) -> gpd.GeoDataFrame:
    """The layer as a run reads it: fetched in a thread first (``ahead``) or all at once."""
    spec = LayerSpec("roads", path)
    if not ahead:
        return _read_vector(spec)
    with ThreadPoolExecutor(1) as pool:
        return _read_vector(spec, Prefetch(spec, pool))


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


@pytest.mark.parametrize("ahead", [False, True])
@pytest.mark.parametrize("suffix,driver", [(".gpkg", "GPKG"), (".geojson", "GeoJSON")])
def test_arrow_read_equals_pyogrio_read_dataframe(tmp_path, suffix, driver, ahead):
    path = tmp_path / f"mixed{suffix}"
    pyogrio.write_dataframe(_mixed_frame(), path, driver=driver)
    got = _read(path, ahead)
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
    assert fetch(LayerSpec("roads", path)) is None  # pyogrio parses the dates itself
    got = _read(path, ahead=True)
    want = pyogrio.read_dataframe(path, use_arrow=True)
    assert_frame_equal(pd.DataFrame(got.drop(columns="geometry")),
                       pd.DataFrame(want.drop(columns="geometry")))


def test_a_file_gdal_cannot_read_fails_naming_it_read_ahead_or_not(tmp_path):
    path = tmp_path / "broken.gpkg"
    path.write_bytes(b"not a GeoPackage at all")
    for ahead in (False, True):
        with pytest.raises(BuqueInputError, match="broken.gpkg.*cannot read layer 'roads'"):
            _read(path, ahead)


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
