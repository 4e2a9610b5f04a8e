"""Narrow search windows: nearest features are first looked for within NEAR_MARGIN_DEG of a band
and the search widens for villages the narrow window cannot settle; results must be exactly those
of the wide window alone."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod, Transformer

from buque.geo.gaps import assess
from buque.geo.metric import MARGIN_DEG, NEAR_MARGIN_DEG, bands_of, outside_bound_m
from buque.geo.rules import band as geo_rules_band
from buque.geo.rules import spatial as geo_rules_spatial
from buque.layers.profile import load_profile


def test_outside_bound_is_a_lower_bound():
    rng = np.random.default_rng(0)
    n = 20_000
    west, east = 108.0, 114.0  # UTM zone 49
    lon = rng.uniform(west, east, n)
    lat = rng.uniform(18.0, 53.0, n)
    window = (west - NEAR_MARGIN_DEG, east + NEAR_MARGIN_DEG)
    bound = outside_bound_m(lon, lat, window)
    # features just outside the window on either side, at any latitude nearby
    side = rng.integers(0, 2, n)
    flon = np.where(side == 0, window[0] - rng.uniform(0, 3, n), window[1] + rng.uniform(0, 3, n))
    flat = np.clip(lat + rng.uniform(-3, 3, n), -80, 80)
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32649", always_xy=True)
    x0, y0 = to_utm.transform(lon, lat)
    x1, y1 = to_utm.transform(flon, flat)
    projected = np.hypot(x1 - x0, y1 - y0)
    _, _, geodesic = Geod(ellps="WGS84").inv(lon, lat, flon, flat)
    assert (bound > 30_000).all()  # half a degree is tens of kilometres at these latitudes
    assert (projected >= bound).all()
    assert (geodesic >= bound).all()


def _world(n_vill: int, n_feat: int, seed: int):
    """Natural villages over four UTM zones, and sparse water and power features."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(101.0, 119.0, n_vill)
    lat = rng.uniform(24.0, 40.0, n_vill)
    v = gpd.GeoDataFrame({
        "code": [f"N{i:06d}" for i in range(n_vill)], "level": "natural",
        "households": pd.array(rng.integers(5, 80, n_vill), dtype="Int64"),
        "ref_lon": lon, "ref_lat": lat}, geometry=shapely.points(lon, lat), crs="EPSG:4326")
    flon = rng.uniform(100.0, 120.0, n_feat)
    flat = rng.uniform(23.0, 41.0, n_feat)
    water = gpd.GeoDataFrame({
        "id": [f"W{i}" for i in range(n_feat)], "kind": "tap",
        "safe": pd.array(rng.choice([True, False, None], n_feat), dtype="boolean")},
        geometry=shapely.points(flon, flat), crs="EPSG:4326")
    # power lines: short segments
    a = np.column_stack([rng.uniform(100.0, 120.0, n_feat), rng.uniform(23.0, 41.0, n_feat)])
    b = a + rng.normal(0, 0.05, a.shape)
    power = gpd.GeoDataFrame({"id": [f"P{i}" for i in range(n_feat)], "kind": "line",
                              "voltage": 10000},
                             geometry=shapely.linestrings(np.stack([a, b], axis=1)),
                             crs="EPSG:4326")
    return v, {"water": water, "power": power}


def test_narrow_then_wide_equals_wide_only(monkeypatch):
    # sparse features: nearest ones often lie beyond half a degree, so many villages widen
    v, layers = _world(3000, 400, seed=1)
    assert len(list(bands_of(v["ref_lon"], v["ref_lat"]))) == 4  # UTM zones 47-50
    profile = load_profile("national")
    got = assess(v, layers, profile)
    for mod in (geo_rules_band, geo_rules_spatial):  # one wide window only
        monkeypatch.setattr(mod, "NEAR_MARGIN_DEG", MARGIN_DEG)
    ref = assess(v, layers, profile)
    pd.testing.assert_frame_equal(got, ref)
    water = got[got["indicator"] == "water"]
    assert (water["distance_m"] > 60_000).sum() > 50  # the widening was exercised


def test_nearest_beyond_the_narrow_window_is_found():
    # V at 113.9°E (zone 49, east edge): F1 at 114.8°E (outside the narrow window, ~87 km) is
    # nearer than F2 at 112.9°E (inside it, ~96 km); the narrow search alone would pick F2
    lon = np.array([113.9, 101.0, 118.0])
    lat = np.array([30.0, 30.0, 30.0])
    v = gpd.GeoDataFrame({"code": ["V", "A", "B"], "level": "natural", "ref_lon": lon,
                          "ref_lat": lat}, geometry=shapely.points(lon, lat), crs="EPSG:4326")
    water = gpd.GeoDataFrame({"id": ["F1", "F2", "near A", "near B"], "kind": "tap",
                              "safe": True},
                             geometry=shapely.points([114.8, 112.9, 101.001, 118.001],
                                                     [30.0, 30.0, 30.0, 30.0]), crs="EPSG:4326")
    g = assess(v, {"water": water}, load_profile("national"))
    row = g[(g["village_code"] == "V") & (g["indicator"] == "water")].iloc[0]
    assert row["evidence_id"] == "F1"
    tr = Transformer.from_crs("EPSG:4326", "EPSG:32649", always_xy=True)
    x, y = tr.transform([113.9, 114.8], [30.0, 30.0])
    assert row["distance_m"] == pytest.approx(float(np.hypot(x[1] - x[0], y[1] - y[0])), abs=1e-6)
    assert row["status"] == "missing"


def test_narrow_window_is_freed_after_its_last_user_and_results_do_not_change(monkeypatch):
    v, layers = _world(1500, 300, seed=2)
    profile = load_profile("national")
    seen: list[geo_rules_band.BandWork] = []
    real = geo_rules_band.BandWork.done_narrow

    def spy(self, layer):
        seen.append(self)
        real(self, layer)

    monkeypatch.setattr(geo_rules_band.BandWork, "done_narrow", spy)
    got = assess(v, layers, profile)
    assert seen  # the engine said when it was done
    for band in seen:  # no narrow window is left in any band's cache
        assert not [k for k in band._cache if k[0] == f"window {NEAR_MARGIN_DEG}"]
    monkeypatch.setattr(geo_rules_band.BandWork, "done_narrow", lambda self, layer: None)
    kept = assess(v, layers, profile)  # every window kept for the band's life
    pd.testing.assert_frame_equal(got, kept)
