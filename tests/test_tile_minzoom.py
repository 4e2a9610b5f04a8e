"""``geo.tiles.draw_minzoom``: filtering ``minzoom <= z`` draws, in each tile, the points that
``TileLayer.select`` draws there (the PostGIS store's tiles rest on it)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from buque.geo.tiles import MAX_FEATURES, WEB_MERCATOR_HALF, TileLayer, draw_minzoom


@pytest.fixture(scope="module")
def dense() -> TileLayer:
    """12,000 points over ~0.6° with a dense core: tiles thin up to about z11."""
    rng = np.random.default_rng(7)
    n = 12_000
    core = rng.random(n) < 0.5
    lon = np.where(core, 100.0 + rng.normal(0, 0.02, n), 100.0 + rng.uniform(-0.3, 0.3, n))
    lat = np.where(core, 30.0 + rng.normal(0, 0.02, n), 30.0 + rng.uniform(-0.3, 0.3, n))
    gdf = gpd.GeoDataFrame({"id": np.arange(n)}, geometry=gpd.points_from_xy(lon, lat),
                           crs="EPSG:4326")
    return TileLayer.from_frame("villages", gdf, ["id"], rank=rng.integers(0, 5, n) * 1e6
                                + rng.random(n))


def _home(layer: TileLayer, z: int) -> tuple[np.ndarray, np.ndarray]:
    xy = shapely.get_coordinates(layer.geoms)
    side = 2 * WEB_MERCATOR_HALF / (1 << z)
    return (np.floor((xy[:, 0] + WEB_MERCATOR_HALF) / side).astype(int),
            np.floor((WEB_MERCATOR_HALF - xy[:, 1]) / side).astype(int))


def test_minzoom_matches_select_in_every_tile(dense: TileLayer) -> None:
    mz = draw_minzoom(dense)
    assert mz.min() == 0 and mz.max() >= 8       # thinning happens and then stops
    thinned_somewhere = False
    for z in range(4, 15):
        tx, ty = _home(dense, z)
        for x, y in set(zip(tx.tolist(), ty.tolist(), strict=True)):
            home = np.flatnonzero((tx == x) & (ty == y))
            idx, _ = dense.select(z, x, y)
            drawn = home[np.isin(home, idx)]
            thinned_somewhere |= len(drawn) < len(home)
            np.testing.assert_array_equal(np.sort(home[mz[home] <= z]), np.sort(drawn),
                                          err_msg=f"tile {z}/{x}/{y}")
    assert thinned_somewhere


def test_sparse_points_are_drawn_from_zoom_zero() -> None:
    gdf = gpd.GeoDataFrame({"id": [1, 2]}, geometry=gpd.points_from_xy([100, 101], [30, 31]),
                           crs="EPSG:4326")
    layer = TileLayer.from_frame("villages", gdf, ["id"])
    assert draw_minzoom(layer).tolist() == [0, 0]
    assert MAX_FEATURES // 4 > 2
